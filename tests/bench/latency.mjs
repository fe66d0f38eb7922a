/**
 * The latency benchmark's driver (run through tests/bench/latency, which builds the Release
 * host and enters a loopback-only network namespace).
 *
 * Glass-to-glass latency here is `presentedMs - renderedMs`: the wall clock when Chromium
 * expects to show a frame minus the wall clock the host stamped into the frame's strip just
 * before handing it to rust-core. Both clocks are this machine's, so no sync is needed.
 * Receive latency uses the video frame callback's `receiveTime` (last packet in) instead.
 *
 * Sound (`--audio host,pulse`, after the video runs): the host's A/V sync probe
 * (`--tone-every`, a tone and a marked frame, tests/gl-host/README.md) at readback/x264,
 * its PCM handed through the C ABI (`host`) or played into a private PulseAudio server whose
 * sink's monitor rust-core streams (`pulse`, the path OpenSpace's sound takes). Per tone the
 * page (tests/e2e/lib/av-probe.js) notes when it heard it and when it showed its frame; the
 * host's TONE line says when the tone was handed over, on the same clock as the strip. The
 * A/V offset is heard − shown; glass-to-ear is heard − handed over, the sound's counterpart of
 * glass-to-glass.
 */

import { readFileSync } from 'node:fs';
import os from 'node:os';

import { avProbeResults, pairTones, parseTone, startAvProbe } from '../e2e/lib/av-probe.js';
import { launchBrowser, openViewer, waitForPlaying, frameSamples, lastStats } from '../e2e/lib/browser.js';
import { GlHost } from '../e2e/lib/gl-host.js';
import { startPulse } from '../e2e/lib/pulse.js';
import { option, requireLoopbackNamespace, sleep } from './common.mjs';

const SECONDS = Number(option('--seconds', '30'));
const WARMUP = Number(option('--warmup', '5'));
const ALL = ['readback:x264', 'readback:vp8', 'gl:x264', 'gl:vp8'];
const ONLY = option('--only', ALL.join(',')).split(',');
const AUDIO = option('--audio', 'host,pulse').split(',').filter((m) => m && m !== 'none');
const TONE_EVERY = Number(option('--tone-every', '15'));
// glFinish before each timed submit: software GL (Mesa llvmpipe) finishes rendering the
// frame inside any readback, which would be counted as the call's cost; on a GPU that wait
// does not happen on the render thread. The frame's pixels are the same either way.
const HOST_ARGS = ['--width', '1280', '--height', '720', '--fps', '30', '--finish-before-submit'];

requireLoopbackNamespace('latency');

const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux
function cpuSeconds(pid) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS; // utime + stime
}

function percentile(values, p) {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x, digits = 1) => (x === null ? null : Number(x.toFixed(digits)));

/** CPU of the host over the window with streaming off: the baseline for the overhead. */
async function baselineCpu() {
    const host = await GlHost.start([...HOST_ARGS, '--no-stream']);
    await sleep(WARMUP * 1000);
    const cpu0 = cpuSeconds(host.pid);
    await sleep(SECONDS * 1000);
    const cpu = ((cpuSeconds(host.pid) - cpu0) / SECONDS) * 100;
    await host.stop();
    return cpu;
}

async function measure(capture, encoder, browser) {
    const host = await GlHost.start([...HOST_ARGS, '--capture', capture, '--encoder', encoder]);
    const page = await browser.newPage();
    try {
        await openViewer(page, host.signalUrl);
        await waitForPlaying(page);
        await sleep(WARMUP * 1000);
        await frameSamples(page, { clear: true });
        const encoded0 = host.stats.framesEncoded;
        const browser0 = await lastStats(page);
        const cpu0 = cpuSeconds(host.pid);
        await sleep(SECONDS * 1000);
        const cpu = ((cpuSeconds(host.pid) - cpu0) / SECONDS) * 100;
        const samples = await frameSamples(page);
        const encoded = host.stats.framesEncoded - encoded0;
        const browser1 = await lastStats(page);
        const latencies = samples.map((s) => s.latencyMs);
        const receive = samples.filter((s) => s.receiveMs !== null).map((s) => s.receiveMs - s.renderedMs);
        const decoded = browser1.framesDecoded - browser0.framesDecoded;
        const stats = host.stats;
        await page.close();
        const exit = await host.stop();
        return {
            capture,
            encoder: stats.encoder,
            codec: stats.codec,
            g2gP50Ms: round(percentile(latencies, 50)),
            g2gP95Ms: round(percentile(latencies, 95)),
            g2gMaxMs: round(percentile(latencies, 100)),
            receiveP50Ms: round(percentile(receive, 50)),
            receivedFps: round(samples.length / SECONDS),
            // Encoder and decoder counts come from stats refreshed once a second on each
            // side, so their difference is only good to about a second's worth of frames.
            framesEncoded: encoded,
            framesDecoded: decoded,
            // What was really lost: RTP packets that never arrived (a sequence gap in the
            // browser) and frames that arrived but were not decoded.
            packetsLost: browser1.packetsLost - browser0.packetsLost,
            framesDroppedByBrowser: browser1.framesDropped - browser0.framesDropped,
            senderDropped: stats.framesDropped,
            senderCpuPercent: round(cpu),
            frameCallMedianUs: host.frameCost?.median_us ?? null,
            frameCallP95Us: host.frameCost?.p95_us ?? null,
            hostExit: exit.code,
        };
    }
    catch (err) {
        await page.close().catch(() => {});
        await host.stop();
        throw err;
    }
}

/**
 * One sound run: readback/x264 with the A/V sync probe, its tones through `mode` (`host`:
 * the C ABI; `pulse`: a private PulseAudio server).
 */
async function measureAudio(mode, browser) {
    const pulse = mode === 'pulse' ? await startPulse() : null;
    const args = [...HOST_ARGS, '--capture', 'readback', '--encoder', 'x264', '--tone-every', String(TONE_EVERY)];
    if (pulse) {
        args.push('--tone-out', 'pulse');
    }
    const host = await GlHost.start(args, { env: pulse?.env ?? {} });
    const tones = [];
    host.on('TONE', (rest) => tones.push(parseTone(rest)));
    const page = await browser.newPage();
    try {
        await openViewer(page, host.signalUrl);
        await waitForPlaying(page);
        await startAvProbe(page);
        await sleep(WARMUP * 1000);
        await frameSamples(page, { clear: true });
        const from = Date.now();
        await sleep(SECONDS * 1000);
        const until = Date.now() - 600;
        await sleep(400);
        const paired = pairTones(tones.filter((t) => t.unixMs >= from && t.unixMs < until), await avProbeResults(page));
        const frames = await frameSamples(page);
        const stats = host.stats;
        await page.close();
        await host.stop();
        const values = (key) => paired.map((p) => p[key]).filter((v) => v !== null);
        return {
            audio: mode,
            tones: paired.length,
            tonesUnheard: paired.filter((p) => p.heardMs === null).length,
            marksUnseen: paired.filter((p) => p.shownMs === null).length,
            avOffsetP50Ms: round(percentile(values('offsetMs'), 50)),
            avOffsetP95Ms: round(percentile(values('offsetMs'), 95)),
            glassToEarP50Ms: round(percentile(values('earMs'), 50)),
            glassToEarP95Ms: round(percentile(values('earMs'), 95)),
            // What lip sync costs the picture: every frame's glass-to-glass with sound on.
            g2gP50Ms: round(percentile(frames.map((f) => f.latencyMs), 50)),
            g2gP95Ms: round(percentile(frames.map((f) => f.latencyMs), 95)),
            audioPackets: stats.audioPackets,
            audioResyncs: stats.audioResyncs,
        };
    }
    catch (err) {
        await page.close().catch(() => {});
        await host.stop();
        throw err;
    }
    finally {
        await pulse?.stop();
    }
}

const machine = `${os.cpus().length} cores (${os.cpus()[0]?.model?.trim()}), ${Math.round(os.totalmem() / 2 ** 30)} GiB`;
console.log(`latency benchmark: 1280x720 at 30 fps, ${SECONDS} s after ${WARMUP} s warm-up, on ${machine}`);
const baseline = await baselineCpu();
console.log(`host CPU with streaming off: ${round(baseline)} % of one core`);
const browser = await launchBrowser();
const results = [];
for (const combination of ONLY) {
    const [capture, encoder] = combination.split(':');
    const result = await measure(capture, encoder, browser);
    result.overheadCpuPercent = round(result.senderCpuPercent - baseline);
    results.push(result);
    console.log(
        `${capture.padEnd(8)} ${result.encoder.padEnd(8)} g2g p50 ${result.g2gP50Ms} ms, p95 ${result.g2gP95Ms} ms, `
        + `max ${result.g2gMaxMs} ms | receive p50 ${result.receiveP50Ms} ms | ${result.receivedFps} fps | `
        + `${result.packetsLost} packets lost, ${result.framesDroppedByBrowser} frames dropped by the browser | CPU ${result.senderCpuPercent} % `
        + `(+${result.overheadCpuPercent} % over no streaming) | frame call median ${result.frameCallMedianUs} µs`,
    );
}
const audio = [];
for (const mode of AUDIO) {
    const result = await measureAudio(mode, browser);
    audio.push(result);
    console.log(
        `sound ${mode.padEnd(5)} readback x264: A/V offset (heard − shown) p50 ${result.avOffsetP50Ms} ms, `
        + `p95 ${result.avOffsetP95Ms} ms | glass-to-ear p50 ${result.glassToEarP50Ms} ms, p95 ${result.glassToEarP95Ms} ms | `
        + `glass-to-glass with sound p50 ${result.g2gP50Ms} ms, p95 ${result.g2gP95Ms} ms | ${result.tones} tones, `
        + `${result.tonesUnheard} unheard, ${result.marksUnseen} marks unseen, ${result.audioResyncs} resyncs`,
    );
}
await browser.close();
console.log(JSON.stringify({ machine, seconds: SECONDS, baselineCpuPercent: round(baseline), results, audio }));
