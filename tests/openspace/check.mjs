/**
 * The end-to-end check against a real OpenSpace build with the WebRtc module:
 * the orchestrator in OpenSpace mode launches OpenSpace, headless Chromium presses Launch,
 * plays OpenSpace's frames, flies it, and OpenSpace itself is asked (through the web
 * origin's JSON API proxy) whether the input arrived. Runs inside a loopback-only network
 * namespace (run.sh); builds nothing of OpenSpace.
 *
 *     OPENSPACE_ROOT=/path/to/OpenSpace node tests/openspace/check.mjs
 *
 * Prints one line per step ("ok - ..." or "FAIL - ..."), the measurements, and last
 * "N passed, M failed". Exits 0 only when every step passed.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import WebSocket from '../e2e/node_modules/ws/wrapper.mjs';
import {
    dragOnVideo, launchBrowser, launchFromHome, newProductContext, openHome, readStrip, waitForPlaying,
} from '../e2e/lib/browser.js';
import { freeDisplays } from '../e2e/lib/orchestrator.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const ORCHESTRATOR = process.env.OSW_ORCHESTRATOR || path.join(REPO, 'target/debug/orchestrator');
const ROOT = process.env.OPENSPACE_ROOT;
/** OpenSpace on llvmpipe needs tens of seconds to its first frame. */
const STARTUP_S = Number(process.env.OSW_OPENSPACE_STARTUP_S || 240);
const VIEWPORT = { width: 1280, height: 720 };
const RESIZED = { width: 960, height: 540 };
/** Where the page's screenshot goes. */
const SHOTS = process.env.OSW_SCREENSHOTS || path.join(REPO, 'tests/out/openspace');

const results = [];
const figures = [];

function report(name, ok, detail = '') {
    results.push({ name, ok });
    console.log(`${ok ? 'ok' : 'FAIL'} - ${name}${detail ? `: ${detail}` : ''}`);
}

/** Runs one step; a step that throws fails with the error's message. */
async function step(name, body) {
    try {
        const detail = await body();
        report(name, true, detail ?? '');
        return true;
    } catch (err) {
        report(name, false, err.message.split('\n').slice(0, 6).join(' | '));
        return false;
    }
}

function finish() {
    const passed = results.filter((r) => r.ok).length;
    const failed = results.length - passed;
    for (const line of figures) {
        console.log(`# ${line}`);
    }
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

async function until(probe, what, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        try {
            last = await probe();
            if (last) {
                return last;
            }
        } catch (err) {
            last = err.message;
        }
        await sleep(250);
    }
    throw new Error(`${what} not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];


/** Starts the orchestrator (both roles) in OpenSpace mode; resolves with its web origin. */
function startOrchestrator(dir) {
    const args = [
        '--openspace', ROOT,
        '--slots', '2',
        '--listen', '127.0.0.1:0',
        '--web-listen', '127.0.0.1:0',
        '--database', `sqlite://${path.join(dir, 'check.db')}`,
        '--log-dir', path.join(dir, 'logs'),
        '--xvfb', 'always',
        '--xvfb-display-base', String(freeDisplays(2)),
        '--startup-timeout', String(STARTUP_S),
        '--stop-timeout', '20',
        '--idle-timeout', '900',
        '--instance-env', 'OSW_ICE_ADDRESSES=127.0.0.1',
    ];
    const child = spawn(ORCHESTRATOR, args, {
        env: { ...process.env, ORCHESTRATOR_LOG: 'info' },
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    const up = new Promise((resolve, reject) => {
        readline.createInterface({ input: child.stderr }).on('line', (line) => {
            log = `${log}${line}\n`.slice(-100000);
            const url = /web origin listening .*url=(\S+)/.exec(line);
            if (url) {
                resolve(url[1]);
            }
        });
        child.once('exit', (code) => reject(new Error(`orchestrator exited (${code}):\n${log}`)));
    });
    return { child, up, log: () => log };
}

/**
 * OpenSpace's JSON API through the web origin (`/api/instances/<uuid>/openspace`), as the
 * owner: the API handshake, then `luascript` topics with a return value.
 */
class OpenSpaceApi {
    #ws;
    #topic = 0;
    #pending = new Map();

    static async open(origin, id, token) {
        const url = `${origin.replace(/^http/, 'ws').replace(/\/$/, '')}/api/instances/${id}/openspace?token=${token}`;
        const api = new OpenSpaceApi();
        api.#ws = new WebSocket(url);
        await new Promise((resolve, reject) => {
            api.#ws.once('open', resolve);
            api.#ws.once('error', reject);
            api.#ws.once('unexpected-response', (_, res) => reject(new Error(`HTTP ${res.statusCode}`)));
        });
        api.#ws.on('message', (data) => {
            let message;
            try {
                message = JSON.parse(String(data));
            } catch {
                return;
            }
            const waiter = api.#pending.get(message.topic);
            if (waiter) {
                api.#pending.delete(message.topic);
                waiter(message.payload);
            }
        });
        api.#ws.send(JSON.stringify({
            type: 'apiHandshake', apiVersion: { major: 1, minor: 0, patch: 0 },
        }));
        return api;
    }

    /** Runs `script` in OpenSpace and resolves with its first return value. */
    lua(script, timeoutMs = 15000) {
        this.#topic += 1;
        const topic = this.#topic;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.#pending.delete(topic);
                reject(new Error(`no answer to ${script} within ${timeoutMs} ms`));
            }, timeoutMs);
            this.#pending.set(topic, (payload) => {
                clearTimeout(timer);
                resolve(payload?.['1'] ?? payload);
            });
            this.#ws.send(JSON.stringify({
                topic, type: 'luascript', payload: { script, return: true },
            }));
        });
    }

    close() {
        this.#ws.close();
    }
}

/** Mean and spread of the picture's luminance, sampled from the video element. */
function pictureStats(page) {
    return page.evaluate(() => {
        const video = document.getElementById('stream');
        const canvas = document.createElement('canvas');
        canvas.width = 160;
        canvas.height = 90;
        const g = canvas.getContext('2d');
        g.drawImage(video, 0, 0, canvas.width, canvas.height);
        const { data } = g.getImageData(0, 0, canvas.width, canvas.height);
        let sum = 0;
        let sum2 = 0;
        const n = data.length / 4;
        for (let i = 0; i < data.length; i += 4) {
            const y = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
            sum += y;
            sum2 += y * y;
        }
        const mean = sum / n;
        return { mean, sd: Math.sqrt(Math.max(sum2 / n - mean * mean, 0)) };
    });
}

/** OpenSpace's status() sampled every second for `seconds`; medians of what it reports. */
async function sampleStatus(api, seconds) {
    const samples = [];
    for (let i = 0; i < seconds; i++) {
        samples.push(await api.lua('return openspace.webrtc.status()'));
        await sleep(1000);
    }
    const field = (k) => median(samples.map((s) => Number(s[k])));
    return {
        renderFps: field('renderFps'),
        streamFps: field('fps'),
        postDrawMedianMs: field('postDrawMedianMs'),
        postDrawP99Ms: field('postDrawP99Ms'),
        viewers: field('viewers'),
    };
}

function position(state) {
    // getNavigationState() returns a table; Position is {x, y, z} as an array-like table
    const p = state?.Position ?? state?.position;
    if (!p) {
        throw new Error(`no Position in ${JSON.stringify(state).slice(0, 300)}`);
    }
    const values = Array.isArray(p) ? p : Object.values(p);
    return values.map(Number);
}

async function main() {
    if (!ROOT) {
        console.log('OPENSPACE_ROOT is not set: point it at an OpenSpace v0.22.0 build with the '
            + 'WebRtc module (the folder with bin/OpenSpace and openspace.cfg). Nothing was tested.');
        report('OPENSPACE_ROOT names an OpenSpace build', false);
        finish();
        process.exitCode = 2;
        return;
    }
    if (!existsSync(path.join(ROOT, 'bin/OpenSpace'))) {
        report('OPENSPACE_ROOT names an OpenSpace build', false, `${ROOT}/bin/OpenSpace does not exist`);
        finish();
        process.exitCode = 2;
        return;
    }
    if (!existsSync(ORCHESTRATOR)) {
        report('the orchestrator is built', false, `no ${ORCHESTRATOR}: cargo build -p orchestrator`);
        finish();
        return;
    }

    const dir = mkdtempSync(path.join(os.tmpdir(), 'osw-openspace-check-'));
    const orchestrator = startOrchestrator(dir);
    let browser;
    let api;
    try {
        const origin = await orchestrator.up;
        browser = await launchBrowser();
        const context = await newProductContext(browser, origin, VIEWPORT);
        const page = await openHome(context, origin);
        let id;
        let token;

        const launched = await step('Launch on the home page plays OpenSpace\'s frames', async () => {
            const started = Date.now();
            id = await launchFromHome(page);
            const size = await waitForPlaying(page, { timeoutMs: STARTUP_S * 1000 });
            token = await page.evaluate(() => localStorage.getItem('osw.sessionToken'));
            figures.push(`launch to first played frame: ${((Date.now() - started) / 1000).toFixed(1)} s`);
            return `${size.videoWidth}x${size.videoHeight} after ${((Date.now() - started) / 1000).toFixed(1)} s`;
        });
        if (!launched) {
            return;
        }

        await step('the picture is OpenSpace\'s, not the test host\'s', async () => {
            // The test host stamps every frame with its render time; a dark row of
            // OpenSpace's picture decodes, at most, as a strip of zeros.
            const strip = await readStrip(page);
            if (strip !== null && (strip.renderedMs !== 0 || strip.frame !== 0)) {
                throw new Error(`the test host's timestamp strip is in the picture: ${JSON.stringify(strip)}`);
            }
            mkdirSync(SHOTS, { recursive: true });
            await page.screenshot({ path: path.join(SHOTS, 'openspace-stream.png') });
            const stats = await pictureStats(page);
            if (stats.sd < 2) {
                throw new Error(`the picture is flat (luminance ${stats.mean.toFixed(1)} ± ${stats.sd.toFixed(1)})`);
            }
            return `luminance ${stats.mean.toFixed(1)} ± ${stats.sd.toFixed(1)}, no strip`;
        });

        const apiOpen = await step('openspace.webrtc.status() answers through the single origin', async () => {
            api = await OpenSpaceApi.open(origin, id, token);
            const status = await api.lua('return openspace.webrtc.status()');
            if (status?.running !== true || Number(status.viewers) < 1) {
                throw new Error(`status: ${JSON.stringify(status)}`);
            }
            return `running, ${status.viewers} viewer(s), ${status.encoder}, ${status.width}x${status.height}`;
        });

        await step('a spectator\'s token gets no OpenSpace API', async () => {
            const share = await page.evaluate(async (instance) => {
                const response = await fetch(`/api/instances/${instance}/share`, {
                    method: 'POST',
                    headers: { Authorization: `Bearer ${localStorage.getItem('osw.sessionToken')}` },
                });
                return response.json();
            }, id);
            try {
                const spectator = await OpenSpaceApi.open(origin, id, share.token);
                const answer = await spectator.lua('return openspace.webrtc.status()', 3000)
                    .then(() => 'answered', () => 'no answer');
                spectator.close();
                if (answer === 'answered') {
                    throw new Error('the spectator ran a Lua script');
                }
            } catch (err) {
                if (/the spectator ran/.test(err.message)) {
                    throw err;
                }
                return `refused (${err.message})`;
            }
            return 'connection closed without an answer';
        });

        if (apiOpen) {
            await step('a drag in the page moves OpenSpace\'s camera', async () => {
                const before = position(await api.lua('return openspace.navigation.getNavigationState()'));
                await dragOnVideo(page, 300, 60, { steps: 20, stepDelayMs: 60 });
                const after = await until(async () => {
                    const now = position(await api.lua('return openspace.navigation.getNavigationState()'));
                    const moved = Math.hypot(...now.map((v, i) => v - before[i]));
                    return moved > 1e-3 * Math.hypot(...before) ? now : null;
                }, 'the camera moving', 15000);
                return `camera ${before.map((v) => v.toFixed(1)).join(',')} → ${after.map((v) => v.toFixed(1)).join(',')}`;
            });

            await step('a key press reaches OpenSpace (P pauses time)', async () => {
                const pausedBefore = await api.lua('return openspace.time.isPaused()');
                if (pausedBefore !== false) {
                    throw new Error(`time paused before the key: ${JSON.stringify(pausedBefore)}`);
                }
                await page.focus('#stream').catch(() => {});
                await page.keyboard.press('p');
                await until(async () => (await api.lua('return openspace.time.isPaused()')) === true,
                    'openspace.time.isPaused() == true', 10000);
                return 'openspace.time.isPaused() is true after P';
            });

            await step('the stream page runs a Lua call in OpenSpace through the origin', async () => {
                const answer = await page.evaluate(async () => {
                    const { default: OpenSpaceApi, openSpaceApiUrl } = await import('/js/openspace-api.js');
                    const { SESSION_KEY, instanceIdFromPath } = await import('/js/product-api.js');
                    const instance = instanceIdFromPath(location.pathname);
                    const client = new OpenSpaceApi(openSpaceApiUrl(location, instance, localStorage.getItem(SESSION_KEY)));
                    try {
                        await client.connect();
                        return { values: await client.runLua('return openspace.time.isPaused(), openspace.webrtc.status().viewers') };
                    } catch (err) {
                        return { error: err.message };
                    } finally {
                        client.close();
                    }
                });
                if (answer.error || answer.values?.[0] !== true || !(answer.values?.[1] >= 1)) {
                    throw new Error(`the page got ${JSON.stringify(answer)}`);
                }
                return `openspace.time.isPaused(), viewers → ${JSON.stringify(answer.values)}`;
            });

            await step('the owner\'s app channel runs a script in OpenSpace and hears its result', async () => {
                const replies = await page.evaluate(async () => {
                    const app = window.__osw.app;
                    if (!app) {
                        return { error: 'the page has no app channel' };
                    }
                    return {
                        paused: await app.runScript('return openspace.time.isPaused()'),
                        failing: await app.runScript('error("deliberately failing")'),
                    };
                });
                if (replies.error) {
                    throw new Error(replies.error);
                }
                const { paused, failing } = replies;
                if (paused.ok !== true || paused.message !== 'true') {
                    throw new Error(`isPaused() answered ${JSON.stringify(paused)}`);
                }
                if (failing.ok !== false || !String(failing.message).includes('deliberately failing')) {
                    throw new Error(`a failing script answered ${JSON.stringify(failing)}`);
                }
                return `isPaused() → ${paused.message}; error() → ok:false "${failing.message}"`;
            });

            await step('a view from the page flies OpenSpace\'s camera to its navigation state', async () => {
                const views = await until(
                    () => page.evaluate(() => window.__osw.app?.status?.views ?? null),
                    'the module\'s status with its views', 10000,
                );
                if (!views.includes('Close')) {
                    throw new Error(`the views are ${JSON.stringify(views)}`);
                }
                const reply = await page.evaluate(() => window.__osw.app.goToView('Close'));
                if (!reply.ok) {
                    throw new Error(`goToView answered ${JSON.stringify(reply)}`);
                }
                // orchestrator/openspace/views/Close.navstate puts the camera at (30, 20, 30).
                // The module asks for a 3 s flight, but OpenSpace moves a camera path by at
                // most 10 ms a frame below 10 fps, so on a software renderer the check waits
                // for the camera to have covered a quarter of the way, not for its arrival.
                const target = [30, 20, 30];
                const away = async () => {
                    const now = position(await api.lua('return openspace.navigation.getNavigationState()'));
                    return { now, distance: Math.hypot(...now.map((v, i) => v - target[i])) };
                };
                const start = await away();
                const arrived = await until(async () => {
                    const { now, distance } = await away();
                    return distance < 0.75 * start.distance ? now : null;
                }, 'the camera a quarter of the way to the view', 60000);
                const unknown = await page.evaluate(() => window.__osw.app.goToView('Nowhere'));
                if (unknown.ok !== false) {
                    throw new Error(`an unknown view answered ${JSON.stringify(unknown)}`);
                }
                return `views ${JSON.stringify(views)}; camera ${start.now.map((v) => v.toFixed(1)).join(',')} → ${arrived.map((v) => v.toFixed(1)).join(',')}, flying to 30,20,30; "Nowhere": ${unknown.message}`;
            });

            await step('streaming stops and starts again at run time; the page comes back by itself', async () => {
                const stopped = Date.now();
                await api.lua('openspace.webrtc.stop(); return true');
                await until(async () => (await api.lua('return openspace.webrtc.status()')).running === false,
                    'status().running == false', 10000);
                const fpsStopped = (await api.lua('return openspace.webrtc.status()')).renderFps;
                await api.lua('openspace.webrtc.start(); return true');
                await until(async () => (await api.lua('return openspace.webrtc.status()')).running === true,
                    'status().running == true', 10000);
                // The page's dropped connection is retried with growing waits.
                await until(async () => Number((await api.lua('return openspace.webrtc.status()')).viewers) >= 1,
                    'the page rejoining', 60000);
                await waitForPlaying(page, { timeoutMs: 30000 });
                return `off and on again, OpenSpace kept rendering (${Number(fpsStopped).toFixed(1)} fps while off); `
                    + `the page plays again after ${((Date.now() - stopped) / 1000).toFixed(1)} s`;
            });

            const withViewer = await sampleStatus(api, 10);

            await step('a page resize changes OpenSpace\'s window and the stream follows', async () => {
                const before = await api.lua('return openspace.webrtc.status()');
                await page.setViewportSize(RESIZED);
                const status = await until(async () => {
                    const s = await api.lua('return openspace.webrtc.status()');
                    return Number(s.width) !== Number(before.width) ? s : null;
                }, 'OpenSpace\'s window size changing', 20000);
                const video = await until(async () => {
                    const v = await page.evaluate(() => ({
                        w: document.getElementById('stream').videoWidth,
                        h: document.getElementById('stream').videoHeight,
                    }));
                    return v.w === Number(status.width) && v.h === Number(status.height) ? v : null;
                }, 'the video following OpenSpace\'s size', 20000);
                return `${before.width}x${before.height} → ${status.width}x${status.height}, video ${video.w}x${video.h}`;
            });

            await page.close();
            await until(async () => Number((await api.lua('return openspace.webrtc.status()')).viewers) === 0,
                'the viewer leaving', 20000);
            await sleep(3000);
            const withoutViewer = await sampleStatus(api, 10);
            await api.lua('openspace.webrtc.stop(); return true');
            await sleep(3000);
            const streamingOff = await sampleStatus(api, 10);
            await api.lua('openspace.webrtc.start(); return true');
            await until(async () => (await api.lua('return openspace.webrtc.status()')).running === true,
                'streaming again', 10000);
            figures.push(`OpenSpace fps (median of 10 one-second samples): streaming off ${streamingOff.renderFps.toFixed(1)}, `
                + `streaming without a viewer ${withoutViewer.renderFps.toFixed(1)}, `
                + `with a viewer ${withViewer.renderFps.toFixed(1)} (stream ${withViewer.streamFps} fps); `
                + `with a viewer / off = ${(withViewer.renderFps / streamingOff.renderFps).toFixed(2)}`);
            figures.push(`module postDraw work with a viewer: median ${withViewer.postDrawMedianMs.toFixed(3)} ms, `
                + `p99 ${withViewer.postDrawP99Ms.toFixed(3)} ms; without: median `
                + `${withoutViewer.postDrawMedianMs.toFixed(3)} ms, p99 ${withoutViewer.postDrawP99Ms.toFixed(3)} ms`);
        }

        await step('a second instance runs beside the first', async () => {
            const second = await newProductContext(browser, origin, VIEWPORT);
            const home = await openHome(second, origin);
            const secondId = await launchFromHome(home);
            await waitForPlaying(home, { timeoutMs: STARTUP_S * 1000 });
            const first = await api.lua('return openspace.webrtc.status()');
            if (first?.running !== true) {
                throw new Error(`the first instance stopped streaming: ${JSON.stringify(first)}`);
            }
            return `instance ${secondId.slice(0, 8)} plays; the first still streams`;
        });

        await step('stopping an instance ends OpenSpace cleanly', async () => {
            const answer = await fetch(`${origin}api/instances/${id}`, {
                method: 'DELETE', headers: { Authorization: `Bearer ${token}` },
            });
            if (!answer.ok) {
                throw new Error(`DELETE answered ${answer.status}`);
            }
            const ended = await until(async () => {
                const r = await fetch(`${origin}api/instances/${id}`, { headers: { Authorization: `Bearer ${token}` } });
                const body = await r.json();
                return ['STOPPED', 'IDLE', 'ENDED', 'stopped', 'ended'].includes(body.status ?? body.state) ? body : null;
            }, 'the instance ending', 30000);
            // The supervisor logs how the process ended: by itself after SIGTERM, or killed.
            const exit = await until(() => /instance stopped exit=(.*)$/m.exec(orchestrator.log())?.[1],
                'the supervisor\'s note of the exit', 30000);
            if (!/^exited with status 0/.test(exit)) {
                throw new Error(`OpenSpace did not exit by itself after SIGTERM: ${exit}`);
            }
            // OpenSpace's console output is buffered: complete only now that it has exited.
            const log = readFileSync(path.join(dir, 'logs/instance-0.log'), 'utf8')
                .replace(/\x1b\[[0-9;]*m/g, '');
            const creation = /Streaming; signaling endpoint on port \d+ \(started in (\d+) ms\)/.exec(log);
            if (!creation) {
                throw new Error('OpenSpace\'s log has no line of the WebRtc module streaming');
            }
            figures.push(`starting the streamer inside OpenSpace's first postDraw: ${creation[1]} ms`);
            if (!/SIGTERM received: shutting down/.test(log)) {
                throw new Error('the module did not see the SIGTERM');
            }
            if (!/Stopped streaming \(in \d+ ms\)/.test(log)) {
                throw new Error('the module did not stop its stream on the way out');
            }
            const stopped = /Stopped streaming \(in (\d+) ms\)/.exec(log)[1];
            figures.push(`stopping the streamer on OpenSpace's way out: ${stopped} ms`);
            return `${ended.status}; ${exit}; the module deinitialized`;
        });
    } catch (err) {
        report('the check ran to its end', false, err.message.split('\n').slice(0, 8).join(' | '));
    } finally {
        api?.close();
        await browser?.close().catch(() => {});
        orchestrator.child.kill('SIGTERM');
        await new Promise((resolve) => {
            const timer = setTimeout(() => { orchestrator.child.kill('SIGKILL'); resolve(); }, 30000);
            orchestrator.child.once('exit', () => { clearTimeout(timer); resolve(); });
        });
        if (!process.env.OSW_KEEP_CHECK_DIR) {
            rmSync(dir, { recursive: true, force: true });
        } else {
            console.log(`# logs kept in ${dir}`);
        }
        finish();
    }
}

await main();
