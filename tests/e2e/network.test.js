/**
 * The real engine over shaped links: the GL test host (1280x720, 30 fps, x264, readback
 * capture) streaming to headless Chromium viewers that each sit in a network namespace of
 * their own behind a veth link (lib/netns.js), limited with a token bucket or losing UDP at
 * random. What a viewer behind a slow or lossy link must still get, and what such a viewer
 * must not take away from the owner.
 *
 * Opens peer connections and makes namespaces, so it runs only inside a loopback-only network
 * namespace, as real root (`scripts/in-loopback-netns.sh npm test`).
 *
 * `OSW_NET_TEST_RATE_KBIT` replaces the 1.5 Mbit/s of the rate-limit test (e.g. 50000 to
 * check the harness itself against an engine that cannot adapt its bitrate).
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { lastStats, sessionInfo, waitForPlaying, waitForSessionState } from './lib/browser.js';
import { GlHost } from './lib/gl-host.js';
import { waitUntil } from './lib/wait.js';
import {
    launchBrowserOnLink, NetworkLab, needsNetworkLab, openViewerOnLink, shownOver, stripSamples,
} from './lib/netns.js';

const HEIGHT = 720;
const HOST_ARGS = ['--width', '1280', '--height', String(HEIGHT), '--fps', '30', '--encoder', 'x264',
    '--capture', 'readback'];
/** What a viewer must see: the strip advancing at this many frames a second or more. */
const MIN_FPS = 25;
const WARMUP_MS = 6000;
const MEASURE_MS = 8000;
const SLOW_RATE_KBIT = Number(process.env.OSW_NET_TEST_RATE_KBIT || 1500);
const TEST_TIMEOUT_MS = 90000;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

const skip = needsNetworkLab();

/**
 * Makes one link per entry of `linkOptions`, starts the host gathering ICE on their host-side
 * addresses, and runs `body({ host, links, open, launch })`: `launch(link)` starts Chromium on
 * a link, `open(link, { viewOnly, browser })` opens a viewer there (in `browser`, or a new
 * one). Everything is stopped and removed afterwards, whatever happened; the
 * host's exit code is checked when the body passed.
 */
async function withLinks(linkOptions, body) {
    const lab = NetworkLab.create();
    let host;
    const browsers = [];
    let passed = false;
    try {
        const links = [];
        for (const options of linkOptions) {
            links.push(await lab.addLink(options));
        }
        host = await GlHost.start(HOST_ARGS, { env: { OSW_ICE_ADDRESSES: lab.iceAddresses } });
        const launch = async (link) => {
            const browser = await launchBrowserOnLink(link);
            browsers.push(browser);
            return browser;
        };
        const open = async (link, options = {}) => {
            const viewer = await openViewerOnLink(link, host.port, { ...options, sourceHeight: HEIGHT });
            if (!options.browser) {
                browsers.push(viewer.browser);
            }
            return viewer;
        };
        await body({ host, links, open, launch });
        passed = true;
    } finally {
        for (const browser of browsers) {
            await browser.close().catch(() => {});
        }
        const exit = await host?.stop();
        await lab.close();
        if (passed) {
            assert.equal(exit.code, 0, `host exit: ${JSON.stringify(exit)}\n${host.stderr.slice(-2000)}`);
        }
    }
}

/** What the page showed over the next `ms` (see shownOver in lib/netns.js). */
async function shownFor(page, ms) {
    await stripSamples(page, { clear: true });
    const from = Date.now();
    await sleep(ms);
    const to = Date.now();
    const { samples, skipped, mismatched } = await stripSamples(page);
    const shown = shownOver(samples, from, to);
    return { ...shown, seconds: (to - from) / 1000, counts: { recorded: samples.length, skipped, mismatched } };
}

/** What the viewer and the host saw, for a failure message. */
async function explain(page, host, link) {
    const browserStats = await lastStats(page).catch((err) => `unavailable: ${err.message}`);
    const hostStats = host.stats && {
        bitrateKbps: host.stats.bitrateKbps,
        bitrateTargetKbps: host.stats.bitrateTargetKbps,
        fpsOut: host.stats.fpsOut,
        framesDropped: host.stats.framesDropped,
        tiers: host.stats.tiers,
        peers: host.stats.peers,
    };
    const dropped = link.lossPercent > 0 ? await link.droppedPackets().catch(() => null) : null;
    return `browser stats: ${JSON.stringify(browserStats)}\nhost stats: ${JSON.stringify(hostStats)}`
        + `\nlink: rate ${link.rateKbit ?? 'unlimited'} kbit/s, loss ${link.lossPercent} %`
        + `${dropped === null ? '' : ` (${dropped} UDP packets dropped)`}`
        + `\nhost stderr tail:\n${host.stderr.slice(-1500)}`;
}

/** One viewer on one shaped link: plays, and after a warm-up shows ≥ MIN_FPS. */
function playsAtFullRate(t, linkOptions) {
    return withLinks([linkOptions], async ({ host, links: [link], open }) => {
        const { page } = await open(link);
        await waitForPlaying(page);
        await sleep(WARMUP_MS);
        // Headless Chromium on a 2-core machine now and then presents fewer frames than it
        // decodes for a few seconds, starved of CPU by the encoder beside it. A window below
        // the mark gets one more; the better counts (an engine that cannot keep up fails
        // both: the old one showed 0 fps in every window).
        let shown = await shownFor(page, MEASURE_MS);
        if (shown.fps < MIN_FPS) {
            const again = await shownFor(page, MEASURE_MS);
            t.diagnostic(`first window ${shown.fps.toFixed(1)} fps, second ${again.fps.toFixed(1)} fps`);
            shown = again.fps > shown.fps ? again : shown;
        }
        // The harness itself: the video came over the shaped link, not some other way.
        const received = (await lastStats(page))?.bytesReceived ?? 0;
        const crossed = await link.bytesToViewer();
        const figures = `${shown.presentedFps.toFixed(1)} frames presented a second (at ${shown.size}), the strip `
            + `advancing ${shown.stripFps.toFixed(1)} frames a second (${shown.distinctFrames} `
            + `strips decoded in ${shown.seconds.toFixed(1)} s), ${shown.freezes} freezes `
            + `(longest ${shown.longestFreezeMs} ms)`;
        t.diagnostic(`${figures}; ${received} bytes received, ${crossed} sent over the link`);
        assert.ok(received > 0 && crossed >= received,
            `the browser received ${received} bytes of video, but only ${crossed} crossed its link`);
        assert.ok(shown.fps >= MIN_FPS,
            `${figures}: wanted ≥ ${MIN_FPS} fps shown (frame clock ${JSON.stringify(shown.counts)})`
            + `\n${await explain(page, host, link)}`);
    });
}

describe('a viewer behind a shaped link', { skip }, () => {
    test(`behind a ${SLOW_RATE_KBIT / 1000} Mbit/s link the video plays at ${MIN_FPS} fps or more`,
        { timeout: TEST_TIMEOUT_MS },
        (t) => playsAtFullRate(t, { rateKbit: SLOW_RATE_KBIT }));

    test(`with 5 % random UDP loss the video plays at ${MIN_FPS} fps or more`,
        { timeout: TEST_TIMEOUT_MS },
        (t) => playsAtFullRate(t, { lossPercent: 5 }));
});

/** The peer `viewerId` and its tier in one host stats object, or null. */
function placement(stats, viewerId) {
    const peer = stats?.peers?.find((p) => p.viewerId === viewerId);
    const tier = peer && stats.tiers?.find((t) => t.id === peer.tier);
    return peer && tier ? { peer, tier } : null;
}

/** Every host stats object printed over the next `ms`. */
async function statsOver(host, ms) {
    const readings = [];
    const record = () => readings.push(host.stats);
    host.on('STATS', record);
    await sleep(ms);
    host.off('STATS', record);
    return readings;
}

function median(values) {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
}

/**
 * Waits (at most `maxMs`) until the owner's tier target stops climbing, as congestion control
 * ramps a new viewer's estimate up from where it starts: three readings in a row within 3 %.
 */
async function untilSteady(host, ownerId, maxMs) {
    const deadline = Date.now() + maxMs;
    const recent = [];
    while (Date.now() < deadline) {
        await new Promise((resolve) => { host.once('STATS', resolve); });
        const kbps = placement(host.stats, ownerId)?.tier.targetKbps;
        if (typeof kbps !== 'number') {
            return;
        }
        recent.push(kbps);
        const last3 = recent.slice(-3);
        if (last3.length === 3 && Math.max(...last3) <= 1.03 * Math.min(...last3)) {
            return;
        }
    }
}

/** The owner's tier target over `readings`, failing when the stats do not place the owner. */
function ownerTargets(readings, ownerId, when) {
    const targets = readings.map((s) => placement(s, ownerId)?.tier.targetKbps)
        .filter((kbps) => typeof kbps === 'number');
    assert.ok(targets.length >= 2,
        `${when}: the host's stats never placed the owner (viewer ${ownerId}) in a tier with a `
        + `targetKbps (want "peers": [{"viewerId", "role", "tier", "estimateKbps"}] and "tiers": `
        + `[{"id", "targetKbps", …}]); last stats: ${JSON.stringify(readings.at(-1))}`);
    return targets;
}

describe('an owner and a spectator behind a slow link', { skip }, () => {
    test('the spectator gets a tier of its own and the owner keeps its bitrate',
        { timeout: TEST_TIMEOUT_MS },
        (t) => withLinks([{}, { rateKbit: 1000 }], async ({ host, links: [ownerLink, spectatorLink], open, launch }) => {
            // Both browsers start first: a Chromium starting up takes the CPU for a while,
            // and the owner alone is measured without that.
            const spectatorBrowser = await launch(spectatorLink);
            const owner = await open(ownerLink);
            await waitForPlaying(owner.page);
            const ownerId = (await sessionInfo(owner.page)).viewerId;
            await sleep(WARMUP_MS);
            await untilSteady(host, ownerId, 12000);
            const alone = ownerTargets(await statsOver(host, 4000), ownerId, 'owner alone');
            const aloneKbps = median(alone);

            const spectator = await open(spectatorLink, { viewOnly: true, browser: spectatorBrowser });
            const { viewerId: spectatorId } = await waitForSessionState(spectator.page, 'streaming');
            await waitForPlaying(spectator.page);
            await sleep(5000);
            // Congestion control needs a while to find the spectator's 1 Mbit/s; the placement
            // follows its estimate. Wait (at most 15 s) for the spectator to leave the owner's
            // tier. The spectator's second encoder also takes CPU the host was using, which on
            // 2 cores delays the owner's packets for a moment: its own estimate dips and climbs
            // back. Wait (at most 20 s) until the owner's target is steady again, then measure.
            await waitUntil(() => {
                const s = placement(host.stats, spectatorId);
                const o = placement(host.stats, ownerId);
                return s && o && s.tier.id !== o.tier.id;
            }, 'the spectator in a tier of its own', { timeoutMs: 15000, intervalMs: 200 })
                .catch(() => {}); // measured anyway: the assertions below say what is wrong
            await untilSteady(host, ownerId, 20000);
            const readings = await statsOver(host, 5000);
            const together = ownerTargets(readings, ownerId, 'with the spectator');
            const togetherKbps = median(together);
            const last = readings.at(-1);
            const detail = `owner alone: ${alone.join(', ')} kbit/s; with the spectator: `
                + `${together.join(', ')} kbit/s\nlast host stats: tiers ${JSON.stringify(last?.tiers)}, `
                + `peers ${JSON.stringify(last?.peers)}`;
            t.diagnostic(detail);

            assert.ok(togetherKbps >= 0.9 * aloneKbps,
                `the owner's tier target fell from ${aloneKbps} to ${togetherKbps} kbit/s (median) `
                + `with a spectator behind 1 Mbit/s, more than 10 %\n${detail}`);
            const ownerNow = placement(last, ownerId);
            const spectatorNow = placement(last, spectatorId);
            assert.ok(spectatorNow, `the host's stats do not place the spectator (viewer ${spectatorId})\n${detail}`);
            assert.equal(ownerNow?.peer.role, 'owner', detail);
            assert.equal(spectatorNow.peer.role, 'spectator', detail);
            assert.notEqual(spectatorNow.tier.id, ownerNow.tier.id,
                `the spectator behind 1 Mbit/s shares the owner's tier\n${detail}`);
        }));
});
