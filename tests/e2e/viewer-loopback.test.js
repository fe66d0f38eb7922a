/**
 * The viewer page against a fake streamer over real WebRTC: video, the timestamp strip, the
 * frame clock, stats and every kind of input, end to end through the `input` data channel.
 *
 * The fake streamer (fixtures/fake-streamer.js) is a second Chromium page standing in for
 * rust-core; this test relays the signaling between the two, speaking the server's side of
 * rust-core/SIGNALING.md. The real engine's tests use the same helpers.
 *
 * It opens peer connections, so it runs only inside a loopback-only network namespace:
 *   ../../scripts/in-loopback-netns.sh node --test viewer-loopback.test.js
 */

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { WebSocketServer } from 'ws';

import {
    allowLoopbackIce, dragOnVideo, frameClockCounts, frameSamples, lastStats, launchBrowser, needsLoopbackNamespace,
    openViewer, readStrip, serveStatic, sessionInfo, statusText, waitForPlaying, waitForSessionState,
} from './lib/browser.js';
import { waitUntil } from './lib/wait.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));


/** Waits until `probe()` returns something truthy, and returns it. */
const eventually = (probe, what, timeoutMs = 5000) =>
    waitUntil(probe, what, { timeoutMs, intervalMs: 50 });

/**
 * A signaling endpoint whose server side is the fake streamer page: `join` gets `welcome`
 * and the streamer's offer; answer and ICE go to the streamer, its ICE comes back.
 */
async function fakeStreamer(browser, fixtures) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await allowLoopbackIce(page, fixtures.url);
    const viewers = new Map();
    await page.exposeFunction('toViewer', (id, message) => viewers.get(id)?.send(JSON.stringify(message)));
    await page.goto(new URL('fake-streamer.html', fixtures.url).href);

    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => { wss.once('listening', resolve); });
    const joins = [];
    let lastId = 0;
    wss.on('connection', (socket) => {
        lastId += 1;
        const id = lastId;
        viewers.set(id, socket);
        const streamer = (method, ...args) => page.evaluate(
            ([name, values]) => window.streamer[name](...values), [method, args]);
        // One message at a time, in order: an ICE candidate must not overtake the answer.
        let chain = Promise.resolve();
        socket.on('message', (data) => {
            const message = JSON.parse(data.toString());
            chain = chain.then(async () => {
                switch (message.type) {
                    case 'join':
                        joins.push(message);
                        socket.send(JSON.stringify({ type: 'welcome', viewerId: id, protocol: 1 }));
                        await streamer('offer', id);
                        break;
                    case 'answer':
                        await streamer('answer', id, message.sdp);
                        break;
                    case 'ice':
                        await streamer('ice', id, message.candidate, message.sdpMLineIndex);
                        break;
                    default:
                        break;
                }
            });
        });
        socket.on('close', () => {
            viewers.delete(id);
            chain = chain.then(() => streamer('leave', id)).catch(() => {});
        });
    });
    return {
        url: `ws://127.0.0.1:${wss.address().port}/`,
        joins,
        /** Input messages the streamer received; `clear` forgets them after reading. */
        received: (clear = false) => page.evaluate((c) => window.streamer.received(c), clear),
        close: async () => {
            for (const client of wss.clients) client.terminate();
            await new Promise((resolve) => { wss.close(() => resolve()); });
            await context.close();
        },
    };
}

describe('viewer page over WebRTC to a fake streamer', { skip: needsLoopbackNamespace(), timeout: 120000 }, () => {
    let web;
    let fixtures;
    let browser;
    let streamer;
    let viewer;

    before(async () => {
        web = await serveStatic();
        fixtures = await serveStatic(FIXTURES);
        browser = await launchBrowser();
        streamer = await fakeStreamer(browser, fixtures);
        // 1000×800 around a 16:9 video: bars above and below.
        const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
        viewer = await context.newPage();
        await openViewer(viewer, streamer.url, { baseUrl: web.url });
    });

    after(async () => {
        await streamer?.close();
        await browser?.close();
        await fixtures?.close();
        await web?.close();
    });

    test('the video plays at the streamer\'s size', async () => {
        assert.deepEqual(streamer.joins, [{ type: 'join', viewOnly: false }]);
        assert.deepEqual(await waitForPlaying(viewer), { videoWidth: 640, videoHeight: 360 });
        const session = await waitForSessionState(viewer, 'streaming');
        assert.equal(session.viewerId, 1);
        assert.equal(await statusText(viewer), 'Streaming');
    });

    test('the strip of the shown frame decodes to a recent time', async () => {
        const before = Date.now();
        const strip = await readStrip(viewer);
        assert.ok(strip, 'a strip was read');
        assert.ok(strip.renderedMs <= Date.now() && strip.renderedMs > before - 2000,
            `rendered ${before - strip.renderedMs} ms before the read`);
        assert.ok(Number.isInteger(strip.frame) && strip.frame < 65536);
    });

    test('the frame clock records each frame with its latency', async () => {
        await frameSamples(viewer, { clear: true });
        await new Promise((resolve) => { setTimeout(resolve, 2000); });
        const samples = await frameSamples(viewer);
        assert.ok(samples.length >= 20, `${samples.length} frames in 2 s`);
        // Frames keep coming while the counts are read.
        const counts = await frameClockCounts(viewer);
        assert.ok(counts.recorded >= samples.length, JSON.stringify(counts));
        assert.equal(counts.skipped, 0);
        assert.ok(counts.mismatched <= samples.length / 4, JSON.stringify(counts));
        for (const s of samples) {
            assert.ok(s.latencyMs > 0 && s.latencyMs < 2000, `latency ${s.latencyMs} ms`);
            assert.ok(s.receiveMs === null || (s.receiveMs >= s.renderedMs && s.receiveMs <= s.presentedMs + 1),
                JSON.stringify(s));
        }
        // Frame numbers go up (modulo 65536), skipping at most a few.
        const steps = samples.slice(1).map((s, i) => (s.frame - samples[i].frame + 65536) % 65536);
        assert.ok(steps.every((step) => step >= 1 && step <= 10), `frame steps ${steps}`);
    });

    test('stats show frames, frame rate and bitrate', async () => {
        const stats = await eventually(async () => {
            const s = await lastStats(viewer);
            return s?.bitrateKbps > 0 ? s : null;
        }, 'stats with a bitrate');
        assert.ok(stats.fps > 0, `fps ${stats.fps}`);
        assert.ok(stats.framesDecoded > 0);
        assert.equal(stats.width, 640);
        assert.match(await viewer.locator('#stats').textContent(), /fps/);
    });

    test('a drag arrives as press, moves and release in picture pixels', async () => {
        await eventually(() => viewer.evaluate(() => window.__osw.view.controller !== null), 'input capture');
        await streamer.received(true);
        const drag = await dragOnVideo(viewer, 100, 50);
        // The picture is 1000×562.5, below a bar of 118.75 px.
        assert.deepEqual(drag, { start: { x: 500, y: 281.25 }, end: { x: 600, y: 331.25 }, width: 1000, height: 562.5 });
        const messages = await eventually(async () => {
            const got = await streamer.received();
            return got.some((m) => m.type === 'pointerButton' && !m.pressed) ? got : null;
        }, 'the release');
        const buttons = messages.filter((m) => m.type === 'pointerButton');
        assert.equal(buttons.length, 2);
        const near = (a, b) => Math.abs(a - b) <= 1;
        const [press, release] = buttons;
        assert.ok(press.pressed && press.button === 0 && press.mods === 0);
        assert.ok(near(press.x, 500) && near(press.y, 281.25), JSON.stringify(press));
        assert.ok(!release.pressed && release.button === 0);
        assert.ok(near(release.x, 600) && near(release.y, 331.25), JSON.stringify(release));
        assert.ok(near(press.width, 1000) && near(press.height, 562.5));
        const moves = messages.filter((m) => m.type === 'pointerMove');
        assert.ok(moves.length >= 5, `${moves.length} moves`);
        const pressAt = messages.indexOf(press);
        const releaseAt = messages.indexOf(release);
        assert.ok(messages.slice(pressAt, releaseAt).some((m) => m.type === 'pointerMove' && near(m.x, 600)));
    });

    test('a right click is GLFW button 1 and shows no context menu', async () => {
        await streamer.received(true);
        await dragOnVideo(viewer, 0, 0, { button: 'right', steps: 1 });
        const buttons = await eventually(async () => {
            const got = (await streamer.received()).filter((m) => m.type === 'pointerButton');
            return got.length === 2 ? got : null;
        }, 'press and release');
        assert.deepEqual(buttons.map((m) => [m.button, m.pressed]), [[1, true], [1, false]]);
    });

    test('touch: one finger drags with the left button, two fingers pinch to scroll', async () => {
        await streamer.received(true);
        const cdp = await viewer.context().newCDPSession(viewer);
        const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', {
            type, touchPoints: points.map(([x, y], id) => ({ x, y, id })),
        });
        // The picture's centre is at (500, 400) in the page.
        await touch('touchStart', [[500, 400]]);
        await touch('touchMove', [[540, 400]]);
        await touch('touchEnd', []);
        await touch('touchStart', [[450, 400], [550, 400]]);
        await touch('touchMove', [[430, 400], [570, 400]]);
        await touch('touchEnd', []);
        await cdp.detach();
        const messages = await eventually(async () => {
            const got = await streamer.received();
            const notches = got.filter((m) => m.type === 'wheel').reduce((sum, m) => sum + m.dy, 0);
            return notches >= 1 ? got : null;
        }, 'the pinch');
        const drag = messages.filter((m) => m.type !== 'wheel').map((m) => (m.type === 'pointerButton'
            ? `${m.pressed ? 'press' : 'release'} ${m.button} at ${m.x},${m.y}`
            : `move to ${m.x},${m.y}`));
        // The first finger of the pinch pressed nothing.
        assert.deepEqual(drag, ['press 0 at 500,281.25', 'move to 540,281.25', 'release 0 at 540,281.25']);
        // 40 px more between the fingers is one notch up, at 40 px a notch (in one message
        // per moving finger).
        const wheel = messages.filter((m) => m.type === 'wheel');
        assert.deepEqual(wheel.reduce((sum, m) => [sum[0] + m.dx, sum[1] + m.dy], [0, 0]), [0, 1]);
    });

    test('the wheel arrives in GLFW notches, up positive', async () => {
        await streamer.received(true);
        await viewer.mouse.wheel(0, 100);
        await viewer.mouse.wheel(0, -200);
        const wheels = await eventually(async () => {
            const got = (await streamer.received()).filter((m) => m.type === 'wheel');
            return got.length === 2 ? got : null;
        }, 'two wheel messages');
        assert.deepEqual(wheels, [{ type: 'wheel', dx: 0, dy: -1 }, { type: 'wheel', dx: 0, dy: 2 }]);
    });

    test('keys arrive as GLFW keys with mods, and typed text as text', async () => {
        await streamer.received(true);
        await viewer.keyboard.press('w');
        await viewer.keyboard.press('Shift+KeyA');
        await viewer.keyboard.press('Control+KeyC');
        const messages = await eventually(async () => {
            const got = await streamer.received();
            return got.filter((m) => m.type === 'key').length >= 10 ? got : null;
        }, 'ten key messages');
        assert.deepEqual(messages, [
            { type: 'key', key: 87, action: 1, mods: 0 },
            { type: 'text', text: 'w' },
            { type: 'key', key: 87, action: 0, mods: 0 },
            { type: 'key', key: 340, action: 1, mods: 1 },
            { type: 'key', key: 65, action: 1, mods: 1 },
            { type: 'text', text: 'A' },
            { type: 'key', key: 65, action: 0, mods: 1 },
            { type: 'key', key: 340, action: 0, mods: 0 },
            { type: 'key', key: 341, action: 1, mods: 2 },
            { type: 'key', key: 67, action: 1, mods: 2 },
            { type: 'key', key: 67, action: 0, mods: 2 },
            { type: 'key', key: 341, action: 0, mods: 0 },
        ]);
    });

    test('F9 toggles the stats overlay and never reaches the host', async () => {
        await streamer.received(true);
        const stats = viewer.locator('#stats');
        assert.ok(await stats.isVisible());
        await viewer.keyboard.press('F9');
        assert.ok(await stats.isHidden());
        await viewer.keyboard.press('F9');
        assert.ok(await stats.isVisible());
        await viewer.keyboard.press('F8');
        const keys = await eventually(async () => {
            const got = (await streamer.received()).filter((m) => m.type === 'key');
            return got.length >= 2 ? got : null;
        }, 'F8');
        assert.deepEqual(keys.map((m) => m.key), [297, 297]);
    });

    test('a view-only viewer plays but sends nothing', async () => {
        const page = await browser.newPage();
        try {
            await openViewer(page, streamer.url, { baseUrl: web.url, viewOnly: true });
            await waitForPlaying(page);
            assert.equal((await sessionInfo(page)).state, 'streaming');
            assert.equal(await statusText(page), 'Streaming (view only)');
            await streamer.received(true);
            await dragOnVideo(page, 50, 50);
            await page.keyboard.press('w');
            await new Promise((resolve) => { setTimeout(resolve, 500); });
            assert.deepEqual(await streamer.received(), []);
        } finally {
            await page.close();
        }
    });
});
