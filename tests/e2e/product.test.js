/**
 * The browser product through the real orchestrator: headless Chromium on the home and
 * stream pages, the orchestrator binary (both roles in one process) launching real GL test
 * hosts, every viewer's signaling proxied through its single origin.
 *
 * Steps share one orchestrator and build on each other (like a user's visit): launch →
 * waiting view → video; the stream follows the window; two instances at once; reload and
 * rejoin; another browser is refused; a share link watches without control; stop frees the
 * slot; an idle instance is stopped and says why; a restart keeps the session. A second
 * part runs the two roles as two processes and restarts the web role under a playing stream:
 * the page reconnects by itself to the adopted instance.
 *
 * Screenshots of every page state go to tests/out/product/ (or $OSW_SCREENSHOTS).
 * Opens peer connections: runs only inside a loopback-only network namespace.
 */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import {
    describePage, dragOnVideo, KEEP_BACKGROUND_PAGES_ALIVE, launchBrowser, launchFromHome,
    needsLoopbackNamespace, newProductContext, openHome, readStrip, waitForPlaying,
} from './lib/browser.js';
import { Orchestrator } from './lib/orchestrator.js';
import { waitUntil } from './lib/wait.js';

const OUT = process.env.OSW_SCREENSHOTS
    || fileURLToPath(new URL('../out/product/', import.meta.url));
const VIEWPORT = { width: 800, height: 450 };
/** Seconds without a viewer before the orchestrator stops an instance, in this test. */
const IDLE_TIMEOUT_S = 8;
/** Fixed web ports: a restart must keep the origin, whose localStorage holds the session. */
const WEB_PORT = 4690;
const SPLIT_WEB_PORT = 4691;

const skip = needsLoopbackNamespace();
let shots = 0;

/** Saves a screenshot of `page` as tests/out/product/NN-name.png (home pages in full). */
async function shot(page, name) {
    mkdirSync(OUT, { recursive: true });
    await page.bringToFront();
    shots += 1;
    const file = path.join(OUT, `${String(shots).padStart(2, '0')}-${name}.png`);
    const fullPage = await page.evaluate(() => document.body.classList.contains('home'));
    await page.screenshot({ path: file, fullPage, timeout: 15000 });
    return file;
}

/** Waits until `probe()` resolves to something truthy and returns it. */
const eventually = (probe, what, timeoutMs = 15000) => waitUntil(probe, what, { timeoutMs });

/** A browser context of the product at this test's viewport (lib/browser.js). */
const newContext = (browser, origin) => newProductContext(browser, origin, VIEWPORT);

function homeInstances(page) {
    return page.evaluate(() => window.__oswHome.instances);
}

/** Waits for the stream page to reach one of `phases`. */
async function phase(page, phases, timeoutMs = 20000) {
    const wanted = Array.isArray(phases) ? phases : [phases];
    try {
        await page.waitForFunction((w) => w.includes(window.__osw?.phase), wanted, { timeout: timeoutMs });
    } catch (err) {
        const now = await page.evaluate(() => ({ phases: window.__osw?.phases, notice: document.getElementById('notice')?.textContent }))
            .catch(() => ({}));
        throw new Error(`stream page not in ${wanted.join('/')}: ${JSON.stringify(now)}\n${await describePage(page)}\n${err.message}`);
    }
    return page.evaluate(() => window.__osw.phase);
}


async function videoSize(page) {
    return page.evaluate(() => {
        const v = document.getElementById('stream');
        return { width: v.videoWidth, height: v.videoHeight };
    });
}

async function waitForVideoSize(page, width, height, what) {
    await eventually(async () => {
        const size = await videoSize(page);
        return size.width === width && size.height === height;
    }, `${what}: video ${width}x${height} (now ${JSON.stringify(await videoSize(page))})`, 20000);
}

function cameraLines(orchestrator, slot) {
    return orchestrator.instanceLog(slot).split('\n').filter((l) => l.startsWith('CAMERA ')).length;
}

describe('the product through the orchestrator', { skip }, () => {
    let dir;
    let orchestrator;
    let browser;
    let origin;
    /** Browser A: the owner. Its pages. */
    let ownerContext;
    let home;
    let first;
    let firstId;
    let second;
    let secondId;
    /** Browser B: a stranger, later a spectator. */
    let otherContext;
    let spectator;

    before(async () => {
        rmSync(OUT, { recursive: true, force: true });
        dir = mkdtempSync(path.join(os.tmpdir(), 'osw-product-'));
        orchestrator = await Orchestrator.start({
            dir, webPort: WEB_PORT, idleTimeout: IDLE_TIMEOUT_S, startupDelayS: 1.5,
        });
        origin = orchestrator.url;
        browser = await launchBrowser({ extraArgs: KEEP_BACKGROUND_PAGES_ALIVE });
        ownerContext = await newContext(browser, origin);
        otherContext = await newContext(browser, origin);
    });

    after(async () => {
        await browser?.close();
        await orchestrator?.stopAndClean(dir);
    });

    test('launch: the home page, then the waiting view, then the video by itself', async () => {
        home = await openHome(ownerContext, origin);
        assert.deepEqual(await homeInstances(home), []);
        await shot(home, 'home-empty');

        firstId = await launchFromHome(home);
        first = home;
        home = null;
        await first.waitForSelector('#waiting:not([hidden])', { timeout: 10000 });
        await shot(first, 'waiting');
        await phase(first, 'streaming', 30000);
        const { videoWidth, videoHeight } = await waitForPlaying(first);
        assert.ok(videoWidth > 0 && videoHeight > 0);
        const phases = await first.evaluate(() => window.__osw.phases);
        assert.deepEqual(phases.filter((p) => ['waiting', 'connecting', 'streaming'].includes(p)),
            ['waiting', 'connecting', 'streaming'], `phases: ${phases}`);
        assert.equal(await first.evaluate(() => window.__osw.access), 'owner');
        // Full window.
        const box = await first.locator('#stream').boundingBox();
        assert.deepEqual([box.width, box.height], [VIEWPORT.width, VIEWPORT.height]);
        // The browser knows a token, never an address: nothing but the token is stored.
        const stored = await first.evaluate(() => Object.keys(localStorage));
        assert.deepEqual(stored, ['osw.sessionToken']);
        assert.ok(!(await first.content()).includes(':4700'));

        // Input reaches the instance through the proxied session: a drag turns its camera.
        await eventually(() => first.evaluate(() => window.__osw.view?.controller !== null), 'input capture');
        const before = cameraLines(orchestrator, 0);
        await dragOnVideo(first, 120, 30);
        await eventually(() => cameraLines(orchestrator, 0) > before, 'a CAMERA line after the drag');
        await shot(first, 'streaming');
    });

    test('the stream follows the window size, and the stats overlay toggles with F9', async () => {
        // The page asked for its window's size as soon as the instance ran.
        await waitForVideoSize(first, VIEWPORT.width, VIEWPORT.height, 'initial size');
        await first.setViewportSize({ width: 640, height: 480 });
        await waitForVideoSize(first, 640, 480, 'after the resize');
        assert.match(orchestrator.instanceLog(0), /RESIZE 640x480/);
        assert.equal(await first.isVisible('#stats'), false);
        await first.keyboard.press('F9');
        await eventually(() => first.isVisible('#stats'), 'the stats overlay');
        await eventually(() => first.evaluate(() => window.__osw.stats?.width === 640), 'stats of the new size');
        await shot(first, 'resized-640x480-stats');
        await first.keyboard.press('F9');
        assert.equal(await first.isVisible('#stats'), false);
        await first.setViewportSize(VIEWPORT);
        await waitForVideoSize(first, VIEWPORT.width, VIEWPORT.height, 'back to the first size');
    });

    test('two instances at once: distinct UUIDs and distinct streams', async () => {
        home = await openHome(ownerContext, origin);
        const listed = await homeInstances(home);
        assert.deepEqual(listed.map((i) => [i.id, i.status]), [[firstId, 'RUNNING']]);
        secondId = await launchFromHome(home);
        second = home;
        home = null;
        assert.notEqual(secondId, firstId);
        await phase(second, 'streaming', 30000);
        await waitForPlaying(second);
        // Each page shows its own instance: their frame counters are far apart (the first
        // started seconds earlier), and move on independently.
        const [a, b] = [await readStrip(first), await readStrip(second)];
        assert.ok(a && b, 'both strips decode');
        assert.ok(Math.abs(a.frame - b.frame) > 20, `frames ${a.frame} and ${b.frame}`);
        await shot(second, 'second-instance');

        home = await openHome(ownerContext, origin);
        await eventually(async () => (await homeInstances(home)).filter((i) => i.status === 'RUNNING').length === 2,
            'two running instances on the home page');
        await shot(home, 'home-two-instances');
    });

    test('reload rejoins the same instance; the home page rejoins too', async () => {
        await first.reload();
        assert.equal(new URL(first.url()).pathname, `/stream/${firstId}`);
        await phase(first, 'streaming');
        await waitForPlaying(first);
        assert.equal(await first.evaluate(() => window.__osw.instance.id), firstId);

        const row = home.locator(`li[data-id="${firstId}"]`);
        await row.locator('.open').click();
        await home.waitForURL(new RegExp(`/stream/${firstId}$`));
        await phase(home, 'streaming');
        await waitForPlaying(home);
        await shot(home, 'rejoined');
        // Two viewers of one instance now; the home page shows it.
        await home.goto(origin);
        await home.evaluate(() => window.__oswHome.ready);
        await eventually(async () => (await homeInstances(home)).find((i) => i.id === firstId)?.viewers === 1,
            'one viewer of the first instance after leaving it');
    });

    test('another browser without the token is refused', async () => {
        const stranger = await otherContext.newPage();
        await stranger.goto(`${origin}stream/${firstId}`);
        await phase(stranger, 'refused');
        assert.match(await stranger.textContent('#ended-reason'), /belongs to another browser/);
        await shot(stranger, 'refused');
        // Its own session cannot act on the instance, nor watch it.
        const refusals = await stranger.evaluate(async (id) => {
            const { token } = await (await fetch('/api/sessions', { method: 'POST' })).json();
            const auth = { Authorization: `Bearer ${token}` };
            const get = await fetch(`/api/instances/${id}`, { headers: auth });
            const del = await fetch(`/api/instances/${id}`, { method: 'DELETE', headers: auth });
            const anonymous = await fetch(`/api/instances/${id}`);
            const socket = await new Promise((resolve) => {
                const ws = new WebSocket(`ws://${location.host}/api/instances/${id}/signal?token=${token}`);
                ws.onopen = () => resolve('opened');
                ws.onclose = () => resolve('refused');
            });
            return { get: get.status, del: del.status, anonymous: anonymous.status, socket };
        }, firstId);
        assert.deepEqual(refusals, { get: 403, del: 403, anonymous: 401, socket: 'refused' });
        await stranger.close();
    });

    test('a share link gives video without control', async () => {
        await first.click('#share');
        await first.waitForSelector('#share-box:not([hidden])');
        const link = await first.inputValue('#share-url');
        assert.match(link, new RegExp(`/stream/${firstId}#view=v[0-9a-f]{64}$`));
        await shot(first, 'share-link');
        await first.click('#share-close');

        spectator = await otherContext.newPage();
        await spectator.goto(link);
        await phase(spectator, 'streaming', 30000);
        await waitForPlaying(spectator);
        const seen = await spectator.evaluate(() => ({
            access: window.__osw.access,
            viewOnly: window.__osw.session.viewOnly,
            controller: window.__osw.view.controller,
        }));
        assert.deepEqual(seen, { access: 'viewer', viewOnly: true, controller: null });
        assert.equal(await spectator.isVisible('#role'), true);
        assert.equal(await spectator.isVisible('#stop'), false);
        await shot(spectator, 'spectator');

        // Even a page that asks for control with the share token gets a view-only join: the
        // proxy rewrites it, and the instance refuses what it sends.
        const refusedBefore = orchestrator.instanceStats()[0]?.inputRefused ?? 0;
        const sent = await spectator.evaluate(async (id) => {
            const { default: ViewerSession } = await import('/js/viewer-session.js');
            const token = new URLSearchParams(location.hash.slice(1)).get('view');
            const session = new ViewerSession(
                `ws://${location.host}/api/instances/${id}/signal?token=${token}`, { viewOnly: false });
            await new Promise((resolve, reject) => {
                session.addEventListener('statechange', ({ detail }) => {
                    if (detail.state === 'streaming') resolve();
                    if (detail.state === 'failed' || detail.state === 'closed') reject(new Error(session.reason));
                });
                session.start();
            });
            for (let i = 0; i < 50 && !session.inputChannel; i += 1) {
                await new Promise((r) => { setTimeout(r, 100); });
            }
            for (let i = 0; i < 5; i += 1) {
                session.inputChannel.send(JSON.stringify({ type: 'key', key: 87, action: 1, mods: 0 }));
            }
            window.__forged = session;
            return 5;
        }, firstId);
        await eventually(() => (orchestrator.instanceStats()[0]?.inputRefused ?? 0) >= refusedBefore + sent,
            `inputRefused to grow by ${sent}`, 10000);
        await spectator.evaluate(() => window.__forged.close());
    });

    test('stop frees the slot: a full server refuses, a stop makes room', async () => {
        home = await openHome(ownerContext, origin);
        await home.click('#launch');
        await eventually(async () => /no rendering server has a free slot/.test(await home.textContent('#message')),
            'the no-slot message');
        await shot(home, 'no-free-slot');

        const row = home.locator(`li[data-id="${secondId}"]`);
        await row.locator('.stop').click();
        await row.locator('.stop').click();
        await eventually(async () => (await row.getAttribute('data-status')) === 'ENDED', 'the row to say ENDED');
        assert.match(await row.locator('.detail').textContent(), /Stopped by its owner/);
        await shot(home, 'home-stopped');
        // Its stream page says why, by itself.
        await phase(second, 'ended');
        assert.match(await second.textContent('#ended-reason'), /Stopped by its owner/);
        await shot(second, 'ended-stopped');

        const thirdId = await launchFromHome(home);
        const third = home;
        home = null;
        await phase(third, 'streaming', 30000);
        await waitForPlaying(third);

        // The idle timeout: nobody watches the third instance any more.
        await third.goto(origin);
        await third.evaluate(() => window.__oswHome.ready);
        const ended = await eventually(async () => {
            const view = (await homeInstances(third)).find((i) => i.id === thirdId);
            return view?.status === 'ENDED' ? view : null;
        }, 'the idle instance to be stopped', (IDLE_TIMEOUT_S + 10) * 1000);
        assert.equal(ended.reason, `Stopped after ${IDLE_TIMEOUT_S} s without a viewer.`);
        await shot(third, 'home-idle-stopped');
        await third.goto(`${origin}stream/${thirdId}`);
        await phase(third, 'ended');
        assert.match(await third.textContent('#ended-reason'), /without a viewer/);
        await shot(third, 'ended-idle');
        home = third;
    });

    test('an orchestrator restart keeps the session; the page says what happened', async () => {
        const tokenBefore = await first.evaluate(() => localStorage.getItem('osw.sessionToken'));
        await orchestrator.stop();
        await phase(first, ['reconnecting', 'ended'], 10000);
        await shot(first, 'orchestrator-down');
        orchestrator = await Orchestrator.start({
            dir, webPort: WEB_PORT, idleTimeout: IDLE_TIMEOUT_S, startupDelayS: 1.5,
        });
        // The combined orchestrator stopped its instances on the way down; the page learns it.
        await phase(first, 'ended', 20000);
        assert.match(await first.textContent('#ended-reason'), /orchestrator shut down/);
        await shot(first, 'ended-after-restart');
        await home.goto(origin);
        await home.evaluate(() => window.__oswHome.ready);
        const listed = await homeInstances(home);
        assert.ok(listed.some((i) => i.id === firstId), 'the session still lists its instances');
        assert.equal(await home.evaluate(() => localStorage.getItem('osw.sessionToken')), tokenBefore);
        await shot(home, 'home-after-restart');
    });
});

describe('two processes: restarting the web role under a playing stream', { skip }, () => {
    let dir;
    let supervisor;
    let web;
    let browser;

    before(async () => {
        dir = mkdtempSync(path.join(os.tmpdir(), 'osw-product-split-'));
        supervisor = await Orchestrator.start({ dir: path.join(dir, 'supervisor'), role: 'supervisor', slots: 1 });
        web = await Orchestrator.start({
            dir: path.join(dir, 'web'), role: 'web', webPort: SPLIT_WEB_PORT, supervisorAddress: supervisor.supervisor,
        });
        browser = await launchBrowser({ extraArgs: KEEP_BACKGROUND_PAGES_ALIVE });
    });

    after(async () => {
        await browser?.close();
        await web?.stop();
        await supervisor?.stop();
        rmSync(dir, { recursive: true, force: true });
    });

    test('the page reconnects by itself to the adopted instance and says so', async () => {
        const context = await newContext(browser, web.url);
        const page = await openHome(context, web.url);
        const id = await launchFromHome(page);
        await phase(page, 'streaming', 30000);
        await waitForPlaying(page);

        await web.stop();
        await phase(page, 'reconnecting', 10000);
        assert.match(await page.textContent('#notice'), /dropped|Lost contact/);
        await shot(page, 'split-reconnecting');
        web = await Orchestrator.start({
            dir: path.join(dir, 'web'), role: 'web', webPort: SPLIT_WEB_PORT, supervisorAddress: supervisor.supervisor,
        });
        assert.match(web.log, new RegExp(`instance adopted instance=${id}`));
        await phase(page, 'streaming', 30000);
        await waitForPlaying(page);
        assert.ok(await page.evaluate(() => window.__osw.reconnects) >= 1);
        assert.equal(await page.evaluate(() => window.__osw.instance.id), id);
        await eventually(async () => (await page.textContent('#notice')).includes('Reconnected'), 'the Reconnected notice', 5000);
        await shot(page, 'split-reconnected');
    });
});
