/**
 * The network benchmark's driver (run through tests/bench/network, which builds the Release
 * host and enters a loopback-only network namespace).
 *
 * Each viewer is a headless Chromium in a network namespace of its own, joined to this
 * process's namespace by a veth pair (tests/e2e/lib/netns.js): a token bucket on the host
 * end limits what it receives, iptables in its namespace drops UDP at random. The host
 * gathers ICE on the host ends only, so all media crosses the shaped links.
 *
 * Figures per viewer, over a measured window:
 * - fps shown: frames presented per second, or the rate the timestamp strip's frame counter
 *   advanced if lower (startStripClock and shownOver in tests/e2e/lib/netns.js: the strip is
 *   read at whatever size a tier sends), and that size;
 * - freezes: gaps of more than 200 ms without a new frame presented (window edges included),
 *   their count and the longest;
 * - glass-to-glass p50/p95: `presentedMs - renderedMs` of those frames, as in the latency
 *   benchmark;
 * - bitrate: the browser's inbound-rtp `bytesReceived` over the window (sampled 4 times a
 *   second in the page), and packets lost;
 * - after a rate change: seconds until fps shown is back to ≥ 25 and stays there for 3 s
 *   (after a drop), or until the bitrate over a second reaches 80 % of the new rate (after a
 *   rise); null when that did not happen within the step.
 */

import os from 'node:os';

import { sessionInfo, waitForPlaying } from '../e2e/lib/browser.js';
import { GlHost } from '../e2e/lib/gl-host.js';
import { NetworkLab, needsNetworkLab, openViewerOnLink, shownOver, stripSamples } from '../e2e/lib/netns.js';
import { option, sleep } from './common.mjs';

const SECONDS = Number(option('--seconds', '15'));
const WARMUP = Number(option('--warmup', '5'));
const ENCODER = option('--encoder', 'x264');
const ALL = ['a', 'b', 'c', 'd', 'e', 'f'];
const ONLY = option('--only', ALL.join(',')).split(',').map((s) => s.trim()).filter(Boolean);
const HEIGHT = 720;
const HOST_ARGS = ['--width', '1280', '--height', String(HEIGHT), '--fps', '30', '--capture', 'readback',
    '--encoder', ENCODER];
const GOOD_FPS = 25;
const PLAY_TIMEOUT_MS = 20000;

{
    const unknown = ONLY.filter((s) => !ALL.includes(s));
    if (unknown.length > 0) {
        console.error(`network benchmark: unknown scenario ${unknown.join(', ')} (known: ${ALL.join(', ')})`);
        process.exit(2);
    }
    const reason = needsNetworkLab();
    if (reason) {
        console.error(`network benchmark ${reason}`);
        process.exit(2);
    }
}

function percentile(values, p) {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x, digits = 1) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits)));

/** Samples the page's inbound video counters four times a second, in the page. */
function startCounters(page) {
    return page.evaluate(() => {
        window.__oswNet = [];
        window.setInterval(async () => {
            const pc = window.__osw.session.peerConnection;
            if (!pc) return;
            const report = await pc.getStats().catch(() => null);
            for (const s of report?.values() ?? []) {
                if (s.type === 'inbound-rtp' && s.kind === 'video') {
                    window.__oswNet.push({
                        t: Date.now(),
                        bytes: s.bytesReceived ?? 0,
                        packetsLost: s.packetsLost ?? 0,
                        nacks: s.nackCount ?? 0,
                        plis: s.pliCount ?? 0,
                    });
                }
            }
        }, 250);
    });
}

/** A viewer: its browser and page, and what it recorded. */
class Viewer {
    constructor(name, link, browser, page) {
        this.name = name;
        this.link = link;
        this.browser = browser;
        this.page = page;
        this.played = false;
        this.viewerId = null;
    }

    static async open(name, link, host, { viewOnly = false } = {}) {
        const { browser, page } = await openViewerOnLink(link, host.port, { viewOnly, sourceHeight: HEIGHT });
        const viewer = new Viewer(name, link, browser, page);
        await startCounters(page);
        return viewer;
    }

    /** Waits for the video to play; a viewer that never plays is measured all the same. */
    async waitPlaying() {
        try {
            await waitForPlaying(this.page, { timeoutMs: PLAY_TIMEOUT_MS });
            this.played = true;
        } catch {
            this.played = false;
        }
        this.viewerId = (await sessionInfo(this.page).catch(() => ({}))).viewerId ?? null;
    }

    /** Frame samples and counter samples recorded so far (everything since the page opened). */
    async recorded() {
        const { samples: frames } = await stripSamples(this.page);
        const counters = await this.page.evaluate(() => window.__oswNet.slice());
        return { frames, counters };
    }

    close() {
        return this.browser.close().catch(() => {});
    }
}

/** The counter sample nearest to `t`. */
function counterAt(counters, t) {
    let best = null;
    for (const c of counters) {
        if (best === null || Math.abs(c.t - t) < Math.abs(best.t - t)) best = c;
    }
    return best;
}

/** Bitrate in kbit/s between the counter samples nearest to `from` and `to`. */
function kbpsBetween(counters, from, to) {
    const a = counterAt(counters, from);
    const b = counterAt(counters, to);
    return a && b && b.t > a.t ? ((b.bytes - a.bytes) * 8) / (b.t - a.t) : null;
}

/** The figures of one viewer over [from, to] (wall-clock ms). */
function figures({ frames, counters }, from, to) {
    const shown = shownOver(frames, from, to);
    const a = counterAt(counters, from);
    const b = counterAt(counters, to);
    return {
        size: shown.size,
        fpsShown: round(shown.fps),
        freezes: shown.freezes,
        longestFreezeMs: shown.longestFreezeMs,
        g2gP50Ms: round(percentile(shown.latenciesMs, 50)),
        g2gP95Ms: round(percentile(shown.latenciesMs, 95)),
        bitrateKbps: round(kbpsBetween(counters, from, to), 0),
        packetsLost: a && b ? b.packetsLost - a.packetsLost : null,
        nacksSent: a && b ? b.nacks - a.nacks : null,
        plisSent: a && b ? b.plis - a.plis : null,
    };
}

/** Fps shown over the second before `t`. */
function fpsBefore(frames, t) {
    return shownOver(frames, t - 1000, t).fps;
}

/**
 * Seconds from `change` until fps shown (over a sliding second, every 100 ms) is ≥ 25 and
 * stays so for 3 s, or until `end`; null if never.
 */
function fpsRecoverySeconds(frames, change, end) {
    const step = 100;
    const hold = 3000;
    for (let t = change + 1000; t <= end; t += step) {
        let good = true;
        for (let u = t; u <= Math.min(t + hold, end); u += step) {
            if (fpsBefore(frames, u) < GOOD_FPS) {
                good = false;
                break;
            }
        }
        if (good) return round(Math.max(0, t - 1000 - change) / 1000);
    }
    return null;
}

/** Seconds from `change` until the bitrate over a second reaches `kbps`; null if never. */
function bitrateRecoverySeconds(counters, change, end, kbps) {
    for (const c of counters) {
        if (c.t < change + 1000 || c.t > end) continue;
        const rate = kbpsBetween(counters, c.t - 1000, c.t);
        if (rate !== null && rate >= kbps) return round((c.t - change) / 1000);
    }
    return null;
}

/** The tier the host's stats place `viewerId` in, or null (an engine without tiers). */
function tierOf(stats, viewerId) {
    const peer = stats?.peers?.find((p) => p.viewerId === viewerId);
    return (peer && stats.tiers?.find((t) => t.id === peer.tier)) ?? null;
}

/** Seconds from `change` until the host's STATS put `viewerId`'s tier target at ≥ `kbps`. */
function targetRecoverySeconds(timeline, viewerId, change, end, kbps) {
    const hit = timeline.find(({ t, stats }) => t >= change && t <= end && (tierOf(stats, viewerId)?.targetKbps ?? 0) >= kbps);
    return hit ? round((hit.t - change) / 1000) : null;
}

/** The host's view of its encoders and peers, where its stats say. */
function hostFigures(stats) {
    if (!stats) return null;
    return {
        bitrateKbps: round(stats.bitrateKbps, 0),
        bitrateTargetKbps: stats.bitrateTargetKbps ?? null,
        fpsOut: round(stats.fpsOut),
        framesDropped: stats.framesDropped,
        tiers: stats.tiers ?? null,
        peers: stats.peers ?? null,
    };
}

/**
 * Runs `body` with one link per entry of `specs` (`{name, rateKbit, lossPercent, viewOnly}`)
 * and a viewer on each, all playing (or given up on) and warmed up. Removes everything after.
 */
async function withViewers(specs, body) {
    const lab = NetworkLab.create();
    let host;
    const viewers = [];
    try {
        const links = [];
        for (const spec of specs) {
            links.push(await lab.addLink({ rateKbit: spec.rateKbit ?? null, lossPercent: spec.lossPercent ?? 0 }));
        }
        host = await GlHost.start(HOST_ARGS, { env: { OSW_ICE_ADDRESSES: lab.iceAddresses } });
        // Every STATS line (once a second) with the time it came.
        host.timeline = [];
        host.on('STATS', () => host.timeline.push({ t: Date.now(), stats: host.stats }));
        for (const [i, spec] of specs.entries()) {
            const viewer = await Viewer.open(spec.name, links[i], host, { viewOnly: spec.viewOnly });
            viewers.push(viewer);
            await viewer.waitPlaying();
        }
        await sleep(WARMUP * 1000);
        return await body({ host, viewers });
    } finally {
        for (const viewer of viewers) await viewer.close();
        await host?.stop();
        await lab.close();
    }
}

/** One steady window: every viewer's figures. */
async function steady(specs) {
    return withViewers(specs, async ({ host, viewers }) => {
        const from = Date.now();
        await sleep(SECONDS * 1000);
        const to = Date.now();
        const result = { viewers: [], host: hostFigures(host.stats) };
        for (const viewer of viewers) {
            result.viewers.push({
                name: viewer.name,
                viewerId: viewer.viewerId,
                link: { rateKbit: viewer.link.rateKbit, lossPercent: viewer.link.lossPercent },
                played: viewer.played,
                ...figures(await viewer.recorded(), from, to),
                tier: tierOf(host.stats, viewer.viewerId),
                ...(viewer.link.lossPercent > 0 ? { udpDroppedByLink: await viewer.link.droppedPackets() } : {}),
            });
        }
        return result;
    });
}

/** 8 → 1.5 → 8 Mbit/s, SECONDS each, one viewer. */
async function rateSteps() {
    const rates = [8000, 1500, 8000];
    return withViewers([{ name: 'viewer', rateKbit: rates[0] }], async ({ host, viewers: [viewer] }) => {
        const bounds = [Date.now()];
        const hostSteps = [];
        for (const [i, rate] of rates.entries()) {
            if (i > 0) {
                await viewer.link.setRate(rate);
                bounds.push(Date.now());
            }
            await sleep(SECONDS * 1000);
            hostSteps.push(hostFigures(host.stats));
        }
        bounds.push(Date.now());
        const recorded = await viewer.recorded();
        const steps = rates.map((rate, i) => ({
            rateKbit: rate,
            ...figures(recorded, bounds[i], bounds[i + 1]),
            host: hostSteps[i],
        }));
        return {
            viewers: [{
                name: viewer.name,
                viewerId: viewer.viewerId,
                played: viewer.played,
                steps,
                dropRecoverySeconds: fpsRecoverySeconds(recorded.frames, bounds[1], bounds[2]),
                riseRecoverySeconds: bitrateRecoverySeconds(recorded.counters, bounds[2], bounds[3], 0.8 * rates[2]),
                // The encoder may not fill its budget (a simple picture): when its tier's
                // target got back to 80 % of the link, from the host's stats.
                riseTargetRecoverySeconds: targetRecoverySeconds(host.timeline, viewer.viewerId, bounds[2], bounds[3], 0.8 * rates[2]),
            }],
        };
    });
}

const SCENARIOS = {
    a: { title: 'unlimited', run: () => steady([{ name: 'viewer' }]) },
    b: { title: '1.5 Mbit/s', run: () => steady([{ name: 'viewer', rateKbit: 1500 }]) },
    c: { title: `8 -> 1.5 -> 8 Mbit/s, ${SECONDS} s per step`, run: rateSteps },
    d: {
        title: 'owner unlimited + 3 spectators, one behind 1 Mbit/s',
        run: () => steady([
            { name: 'owner' },
            { name: 'spectator 1', viewOnly: true },
            { name: 'spectator 2', viewOnly: true },
            { name: 'slow spectator', viewOnly: true, rateKbit: 1000 },
        ]),
    },
    e: { title: '5 % random UDP loss, unlimited', run: () => steady([{ name: 'viewer', lossPercent: 5 }]) },
    f: { title: '2 % loss behind 3 Mbit/s', run: () => steady([{ name: 'viewer', rateKbit: 3000, lossPercent: 2 }]) },
};

function line(f) {
    return `${String(f.fpsShown).padStart(5)} fps shown at ${f.size ?? '-'} | ${f.freezes} freezes (longest ${f.longestFreezeMs} ms) | `
        + `g2g p50 ${f.g2gP50Ms} ms, p95 ${f.g2gP95Ms} ms | ${f.bitrateKbps} kbit/s | ${f.packetsLost} packets lost`;
}

const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model?.trim()}), ${Math.round(os.totalmem() / 2 ** 30)} GiB`;
console.log(`network benchmark: 1280x720 at 30 fps, ${ENCODER}, readback; ${SECONDS} s measured after `
    + `${WARMUP} s warm-up, on ${machine}`);
const scenarios = [];
for (const id of ONLY) {
    const { title, run } = SCENARIOS[id];
    const started = Date.now();
    let result;
    try {
        result = await run();
    } catch (err) {
        result = { error: err.message.split('\n')[0] };
    }
    scenarios.push({ id, title, ...result });
    console.log(`(${id}) ${title}  [${Math.round((Date.now() - started) / 1000)} s]`);
    if (result.error) {
        console.log(`    error: ${result.error}`);
        continue;
    }
    for (const v of result.viewers) {
        if (v.steps) {
            for (const step of v.steps) {
                const tier = tierOf(step.host, v.viewerId);
                const target = tier ? ` | tier ${tier.id} target ${tier.targetKbps} kbit/s, ${tier.width}x${tier.height} `
                    + `at ${tier.fps} fps (${tier.mitigation})` : '';
                console.log(`    ${v.name} @ ${String(step.rateKbit / 1000).padStart(3)} Mbit/s: ${line(step)}${target}`);
            }
            const after = (x) => (x === null ? 'never' : `${x} s`);
            console.log(`    ${v.name}: back to ≥ ${GOOD_FPS} fps ${after(v.dropRecoverySeconds)} after the drop; `
                + `≥ 80 % of 8 Mbit/s received ${after(v.riseRecoverySeconds)} after the rise, `
                + `tier target there ${after(v.riseTargetRecoverySeconds)} after it`);
        } else {
            const tier = v.tier ? ` | tier ${v.tier.id} (${v.tier.targetKbps} kbit/s, ${v.tier.mitigation})` : '';
            console.log(`    ${v.name.padEnd(14)} ${v.played ? '' : '(never played) '}${line(v)}${tier}`);
        }
    }
    if (result.host) {
        console.log(`    host: ${result.host.bitrateKbps} kbit/s sent (target ${result.host.bitrateTargetKbps}), `
            + `${result.host.fpsOut} fps out${result.host.tiers ? `, ${result.host.tiers.length} tiers` : ''}`);
    }
}
console.log(JSON.stringify({ machine, seconds: SECONDS, warmup: WARMUP, encoder: ENCODER, scenarios }));
