/**
 * Browser-test helpers: Debian's Chromium, headless, driven by playwright-core, and the
 * viewer page (web/viewer.html) with its test hooks (`window.__osw`).
 *
 * Network rule: run anything that opens a peer connection inside a loopback-only network
 * namespace (see README.md). These helpers only ever point Chromium at 127.0.0.1, or (with
 * lib/netns.js) at the test's end of a veth link into a namespace the test made itself.
 */

import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { serveStatic, WEB_ROOT } from './static-server.js';

export { serveStatic, WEB_ROOT };

/** The browser: Debian's package, never a downloaded one. `OSW_CHROMIUM` overrides. */
export const CHROMIUM_PATH = process.env.OSW_CHROMIUM || '/usr/bin/chromium';

/**
 * Chromium's flags. `--allow-loopback-in-peer-connection` and disabling
 * `WebRtcHideLocalIpsWithMdns` (real addresses, not mDNS names, in host candidates) make ICE
 * work on 127.0.0.1; the autoplay policy lets the video play without a click.
 */
export const CHROMIUM_FLAGS = Object.freeze([
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--disable-quic',
    '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    '--autoplay-policy=no-user-gesture-required',
]);

/**
 * Chromium's own defaults that playwright-core would add (launchBrowser turns those off), for
 * `extraArgs`: pages in background tabs keep rendering and keep their timers, as a user's
 * other windows would. Without them a page behind another one draws no frame, and its
 * screenshot or its reconnection timer waits.
 */
export const KEEP_BACKGROUND_PAGES_ALIVE = Object.freeze([
    '--disable-background-timer-throttling',
    '--disable-backgrounding-occluded-windows',
    '--disable-renderer-backgrounding',
]);

/** Default wait for the stream to come up; ICE over loopback takes well under a second. */
const DEFAULT_TIMEOUT_MS = 20000;

/** Console lines and page errors per page, for failure messages. */
const pageLogs = new WeakMap();

/**
 * Launches headless Chromium with {@link CHROMIUM_FLAGS} and a fresh profile, deleted when
 * the browser closes.
 *
 * Playwright's own default flags are switched off (`ignoreDefaultArgs: true`): they include a
 * `--disable-features=` list of their own, and Chromium honours only the last such flag, so
 * one list would silently cancel the other. Only the flags Playwright needs to drive the
 * browser are added back.
 *
 * @param {object} [options]
 * @param {string[]} [options.extraArgs=[]] - more flags (one `--disable-features=` only:
 *   extend the one in CHROMIUM_FLAGS instead)
 * @param {string} [options.executablePath=CHROMIUM_PATH]
 * @param {string} [options.netns] - run Chromium inside this named network namespace
 *   (`ip netns exec <netns> <executablePath>`, through a wrapper script; needs root). See
 *   lib/netns.js.
 * @returns {Promise<import('playwright-core').Browser>}
 */
export async function launchBrowser({ extraArgs = [], executablePath = CHROMIUM_PATH, netns } = {}) {
    const userDataDir = await mkdtemp(path.join(os.tmpdir(), 'osw-chromium-'));
    const tempDirs = [userDataDir];
    const removeTemp = () => Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
    let browser;
    try {
        if (netns !== undefined) {
            const wrapperDir = await mkdtemp(path.join(os.tmpdir(), 'osw-chromium-netns-'));
            tempDirs.push(wrapperDir);
            executablePath = await netnsWrapper(wrapperDir, netns, executablePath);
        }
        browser = await chromium.launch({
            executablePath,
            headless: true,
            ignoreDefaultArgs: true,
            args: [
                ...CHROMIUM_FLAGS,
                ...extraArgs,
                '--headless',
                `--user-data-dir=${userDataDir}`,
                // Playwright talks to the browser over this pipe.
                '--remote-debugging-pipe',
                // Pages come from browser.newPage(); the default window would be a stray tab.
                '--no-startup-window',
            ],
        });
    } catch (err) {
        await removeTemp();
        throw err;
    }
    const removeProfile = () => removeTemp().catch(() => {});
    // close() resolves once Chromium has exited (it writes its profile on the way out), so
    // the profile goes after it, before the caller goes on (and the test process may end).
    const close = browser.close.bind(browser);
    browser.close = async (...args) => {
        await close(...args);
        await removeProfile();
    };
    // A browser that crashed or was killed never gets close(): remove its profile anyway.
    browser.on('disconnected', removeProfile);
    return browser;
}

/**
 * Writes an executable script in `dir` that starts `executable` with its arguments inside the
 * named network namespace `netns` (`ip netns exec`, which then execs it: playwright's pipe and
 * process id are Chromium's own).
 * @returns {Promise<string>} the script's path
 */
async function netnsWrapper(dir, netns, executable) {
    for (const [what, value] of [['namespace', netns], ['executable', executable]]) {
        if (!/^[A-Za-z0-9_./-]+$/.test(value)) {
            throw new Error(`launchBrowser: unusable ${what} name ${JSON.stringify(value)}`);
        }
    }
    const script = path.join(dir, 'chromium-in-netns');
    await writeFile(script, `#!/bin/sh\nexec ip netns exec '${netns}' '${executable}' "$@"\n`);
    await chmod(script, 0o755);
    return script;
}

/**
 * Why a test that opens peer connections must not run here, or false when this process is in
 * a loopback-only network namespace. For `test(name, { skip: needsLoopbackNamespace() }, …)`.
 * @returns {string | false}
 */
export function needsLoopbackNamespace() {
    const outside = Object.values(os.networkInterfaces()).flat().filter((a) => !a.internal);
    return outside.length > 0
        ? `opens peer connections, but ${outside[0].address} is reachable: run inside a `
            + 'loopback-only network namespace (scripts/in-loopback-netns.sh)'
        : false;
}

let sharedWeb = null;

/**
 * The shared static server for `web/`, started on first use. It does not keep the test
 * process alive, so nobody needs to close it.
 * @returns {Promise<{url: string, port: number}>}
 */
export function webServer() {
    sharedWeb ??= serveStatic(WEB_ROOT).then((web) => {
        web.server.unref();
        return web;
    });
    return sharedWeb;
}

/**
 * The viewer page's URL for a signaling endpoint.
 * @param {string} baseUrl - where web/ is served, ending with a slash
 * @param {string} signalUrl - e.g. `ws://127.0.0.1:4700/`
 * @param {{viewOnly?: boolean}} [options]
 * @returns {string}
 */
export function viewerUrl(baseUrl, signalUrl, { viewOnly = false } = {}) {
    const url = new URL('viewer.html', baseUrl);
    url.searchParams.set('signal', signalUrl);
    if (viewOnly) {
        url.searchParams.set('viewOnly', '1');
    }
    return url.href;
}

/**
 * The page's console messages and uncaught errors so far (recorded from `openViewer` on).
 * @param {import('playwright-core').Page} page
 * @returns {string[]}
 */
export function pageLog(page) {
    return pageLogs.get(page) ?? [];
}

function recordLog(page) {
    if (pageLogs.has(page)) {
        return;
    }
    const log = [];
    pageLogs.set(page, log);
    page.on('console', (msg) => log.push(`[${msg.type()}] ${msg.text()}`));
    page.on('pageerror', (err) => log.push(`[pageerror] ${err.message}`));
}

/**
 * What the page shows and knows now, for failure messages.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<string>}
 */
export async function describePage(page) {
    const facts = await page.evaluate(() => {
        const video = document.getElementById('stream');
        return {
            state: window.__osw?.session.state,
            reason: window.__osw?.session.reason,
            status: document.getElementById('status')?.textContent,
            readyState: video?.readyState,
            currentTime: video?.currentTime,
        };
    }).catch((err) => ({ unavailable: err.message }));
    const log = pageLog(page).slice(-20).join('\n  ');
    return `page: ${JSON.stringify(facts)}\npage log:\n  ${log || '(empty)'}`;
}

/**
 * Lets a page's peer connections gather ICE candidates on 127.0.0.1.
 *
 * Without camera or microphone permission Chromium does not enumerate network interfaces; it
 * only binds to the address of the default route. A loopback-only network namespace has no
 * such route, so the page would gather no candidate at all and ICE would never start, flags
 * or not. Granting the camera permission (no camera is opened) lifts that restriction.
 *
 * @param {import('playwright-core').Page} page
 * @param {string} url - any URL of the page's origin
 */
export async function allowLoopbackIce(page, url) {
    await page.context().grantPermissions(['camera'], { origin: new URL(url).origin });
}

/**
 * Opens web/viewer.html on `page`, joined to `signalUrl`, and waits for its hooks. Grants
 * the page's origin what it needs for ICE over loopback ({@link allowLoopbackIce}).
 *
 * @param {import('playwright-core').Page} page
 * @param {string} signalUrl - the streamer's endpoint, e.g. `ws://127.0.0.1:4700/`
 * @param {object} [options]
 * @param {boolean} [options.viewOnly=false]
 * @param {string} [options.baseUrl] - where web/ is served (default: {@link webServer})
 * @returns {Promise<string>} the page URL
 */
export async function openViewer(page, signalUrl, { viewOnly = false, baseUrl } = {}) {
    recordLog(page);
    const base = baseUrl ?? (await webServer()).url;
    const url = viewerUrl(base, signalUrl, { viewOnly });
    await allowLoopbackIce(page, url);
    await page.goto(url);
    await page.waitForFunction(() => window.__osw !== undefined);
    return url;
}

/**
 * The session as the page sees it.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{state: string, reason: string, viewerId: number | null}>}
 */
export function sessionInfo(page) {
    return page.evaluate(() => {
        const { state, reason, viewerId } = window.__osw.session;
        return { state, reason, viewerId };
    });
}

/**
 * The status line's text.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<string>}
 */
export function statusText(page) {
    return page.locator('#status').textContent();
}

/**
 * Waits until the session is in one of `states` ('streaming', 'failed', …).
 * @param {import('playwright-core').Page} page
 * @param {string | string[]} states
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<{state: string, reason: string, viewerId: number | null}>}
 */
export async function waitForSessionState(page, states, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    const wanted = [states].flat();
    try {
        await page.waitForFunction((list) => list.includes(window.__osw?.session.state), wanted,
            { timeout: timeoutMs });
    } catch (err) {
        throw new Error(`session never reached ${wanted.join(' or ')} within ${timeoutMs} ms\n`
            + `${await describePage(page)}`, { cause: err });
    }
    return sessionInfo(page);
}

/**
 * Waits until the video plays: a decoded frame is shown (readyState ≥ 2) and currentTime
 * moves on.
 * @param {import('playwright-core').Page} page
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<{videoWidth: number, videoHeight: number}>} the stream's size
 */
export async function waitForPlaying(page, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    const size = await page.evaluate(async (limitMs) => {
        const video = document.getElementById('stream');
        const deadline = performance.now() + limitMs;
        let from = null;
        while (performance.now() < deadline) {
            if (video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA) {
                // Where playback was at the first frame; playing means it moves on from there.
                from ??= video.currentTime;
                if (video.currentTime > from) {
                    return { videoWidth: video.videoWidth, videoHeight: video.videoHeight };
                }
            }
            await new Promise((resolve) => { setTimeout(resolve, 50); });
        }
        return null;
    }, timeoutMs);
    if (!size) {
        throw new Error(`video not playing within ${timeoutMs} ms\n${await describePage(page)}`);
    }
    return size;
}

/**
 * Waits until a stream page of the product (web/stream.html) is in its `streaming` phase,
 * then until its video plays ({@link waitForPlaying}).
 * @param {import('playwright-core').Page} page
 * @param {{timeoutMs?: number, playingTimeoutMs?: number}} [options] - `timeoutMs` for the
 *   phase, `playingTimeoutMs` then for the video
 * @returns {Promise<{videoWidth: number, videoHeight: number}>} the stream's size
 */
export async function waitForStreamPage(page, {
    timeoutMs = DEFAULT_TIMEOUT_MS, playingTimeoutMs = DEFAULT_TIMEOUT_MS,
} = {}) {
    try {
        await page.waitForFunction(() => window.__osw?.phase === 'streaming', null, { timeout: timeoutMs });
    } catch (err) {
        const phases = await page.evaluate(() => window.__osw?.phases).catch(() => null);
        throw new Error(`the stream page never reached streaming within ${timeoutMs} ms (phases `
            + `${JSON.stringify(phases)})\n${await describePage(page)}`, { cause: err });
    }
    return waitForPlaying(page, { timeoutMs: playingTimeoutMs });
}

/**
 * Where the picture is drawn in the page (CSS pixels of the viewport), letterbox bars
 * excluded.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{x: number, y: number, width: number, height: number}>}
 */
export function videoContentBox(page) {
    return page.evaluate(() => {
        const video = document.getElementById('stream');
        const box = video.getBoundingClientRect();
        const scale = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
        const width = video.videoWidth * scale;
        const height = video.videoHeight * scale;
        return {
            x: box.left + (box.width - width) / 2,
            y: box.top + (box.height - height) / 2,
            width,
            height,
        };
    });
}

/**
 * Drags the mouse across the picture with a button held, as a viewer would.
 *
 * @param {import('playwright-core').Page} page
 * @param {number} dx - CSS pixels to the right
 * @param {number} dy - CSS pixels down
 * @param {object} [options]
 * @param {{x: number, y: number}} [options.from] - start, in picture coordinates (default:
 *   the picture's centre)
 * @param {'left' | 'right' | 'middle'} [options.button='left']
 * @param {number} [options.steps=10] - pointer moves between press and release
 * @returns {Promise<{start: {x: number, y: number}, end: {x: number, y: number},
 *   width: number, height: number}>} start and end in the coordinates the host receives
 *   (picture pixels), and the picture's displayed size
 */
export async function dragOnVideo(page, dx, dy, { from, button = 'left', steps = 10, stepDelayMs = 0 } = {}) {
    const box = await videoContentBox(page);
    const start = from ?? { x: box.width / 2, y: box.height / 2 };
    const end = { x: start.x + dx, y: start.y + dy };
    await page.mouse.move(box.x + start.x, box.y + start.y);
    await page.mouse.down({ button });
    if (stepDelayMs > 0) {
        // Spread over several of the host's frames: a host rendering a few frames a second
        // (OpenSpace on a software renderer) sees a quick drag as press and release at once.
        for (let i = 1; i <= steps; i++) {
            await page.mouse.move(box.x + start.x + (dx * i) / steps, box.y + start.y + (dy * i) / steps);
            await new Promise((resolve) => setTimeout(resolve, stepDelayMs));
        }
    } else {
        await page.mouse.move(box.x + end.x, box.y + end.y, { steps });
    }
    await page.mouse.up({ button });
    return { start, end, width: box.width, height: box.height };
}

/**
 * Decodes the timestamp strip of the frame the page shows now.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{renderedMs: number, frame: number} | null>} null before the first frame
 */
export function readStrip(page) {
    return page.evaluate(() => window.__osw.readStrip());
}

/**
 * The stats overlay's latest snapshot (fps, bitrateKbps, rttMs, jitterBufferMs,
 * decodeMsPerFrame, framesDecoded, framesDropped, …), or null before the first.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<object | null>}
 */
export function lastStats(page) {
    return page.evaluate(() => window.__osw.stats);
}

/**
 * Per-frame timings recorded by the page's frame clock (`{frame, renderedMs, presentedMs,
 * receiveMs, latencyMs, …}` each, oldest first).
 * @param {import('playwright-core').Page} page
 * @param {{clear?: boolean}} [options] - `clear: true` forgets them after reading (to drop a
 *   warm-up)
 * @returns {Promise<object[]>}
 */
export function frameSamples(page, { clear = false } = {}) {
    return page.evaluate((forget) => {
        const samples = window.__osw.frameClock.samples;
        if (forget) {
            window.__osw.frameClock.clear();
        }
        return samples;
    }, clear);
}

/**
 * How many displayed frames the frame clock left out: `skipped` had no readable strip,
 * `mismatched` were drawn a frame late (the page's main thread was busy), so their timings
 * did not belong to their strip.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{recorded: number, skipped: number, mismatched: number}>}
 */
export function frameClockCounts(page) {
    return page.evaluate(() => {
        const clock = window.__osw.frameClock;
        return { recorded: clock.samples.length, skipped: clock.skipped, mismatched: clock.mismatched };
    });
}

/**
 * A browser context of the product (one "browser", its own localStorage) allowed ICE on
 * loopback: without camera permission Chromium gathers no candidate in a loopback-only
 * namespace (see {@link allowLoopbackIce}). No camera is opened.
 * @param {import('playwright-core').Browser} browser
 * @param {string} origin - the web origin, `http://127.0.0.1:<port>/`
 * @param {{width: number, height: number}} viewport
 */
export async function newProductContext(browser, origin, viewport) {
    const context = await browser.newContext({ viewport });
    await context.grantPermissions(['camera'], { origin: new URL(origin).origin });
    return context;
}

/** Opens the product's home page in `context` and waits until it listed the instances. */
export async function openHome(context, origin) {
    const page = await context.newPage();
    await page.goto(origin);
    await page.waitForFunction(() => window.__oswHome !== undefined);
    await page.evaluate(() => window.__oswHome.ready);
    return page;
}

/** Clicks Launch on the home page; returns the new instance's id once its page opened. */
export async function launchFromHome(home) {
    await home.click('#launch');
    await home.waitForURL(/\/stream\/[0-9a-f-]{36}$/, { timeout: 30000 });
    return new URL(home.url()).pathname.split('/').pop();
}
