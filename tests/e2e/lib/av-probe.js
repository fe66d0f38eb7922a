/**
 * The A/V sync probe's viewer side, for tests and benchmarks: the GL test host's
 * `--tone-every N` puts a 40 ms, 1 kHz tone in the sound and a white square in the bottom-left
 * corner of every Nth frame, and prints `TONE frame=<n> unix_ms=<t>` (the moment the tone's
 * first sample was handed over, which is also that frame's strip time).
 *
 * In the page, {@link startAvProbe} listens to the received audio track with an AudioWorklet
 * (the first loud sample after 50 ms of quiet is an onset, timed by when the AudioContext
 * outputs it) and watches every presented frame with requestVideoFrameCallback (the square's
 * pixels, read from a canvas, mark a tone's frame; its time is when Chromium shows it). All
 * times are wall-clock milliseconds (performance.timeOrigin + performance time), as the host's
 * are: the two share this machine's clock.
 */

/**
 * The AudioWorklet: an onset is the first sample above a quarter of full scale (the tone is at
 * half) after 50 ms below it; the tone's own zero crossings never last that long.
 */
const WORKLET = `
class Onsets extends AudioWorkletProcessor {
    constructor() {
        super();
        this.quiet = 1e9;
    }

    process(inputs) {
        const channel = inputs[0] && inputs[0][0];
        if (!channel) {
            return true;
        }
        for (let i = 0; i < channel.length; i += 1) {
            if (Math.abs(channel[i]) > 0.25) {
                if (this.quiet > sampleRate * 0.05) {
                    this.port.postMessage({ frame: currentFrame + i });
                }
                this.quiet = 0;
            } else {
                this.quiet += 1;
            }
        }
        return true;
    }
}
registerProcessor('osw-onsets', Onsets);
`;

/**
 * The host's `TONE frame=<n> unix_ms=<t>` line, after `TONE ` (what GlHost's `TONE` event
 * hands over), as {@link pairTones} takes it.
 * @param {string} rest
 * @returns {{frame: number, unixMs: number}}
 */
export function parseTone(rest) {
    const fields = Object.fromEntries(rest.trim().split(' ').map((kv) => kv.split('=')));
    return { frame: Number(fields.frame), unixMs: Number(fields.unix_ms) };
}

/**
 * Installs the probe in the viewer page (web/viewer.html or the product's stream page) once
 * its stream has an audio track. Resolves with the AudioContext's state and latencies.
 * @param {import('playwright-core').Page} page
 * @param {{timeoutMs?: number}} [options]
 */
export async function startAvProbe(page, { timeoutMs = 20000 } = {}) {
    return page.evaluate(async ({ limitMs, worklet }) => {
        const deadline = performance.now() + limitMs;
        const video = document.getElementById('stream');
        let track = null;
        while (!track) {
            const pc = window.__osw?.session?.peerConnection;
            track = pc?.getReceivers().map((r) => r.track).find((t) => t?.kind === 'audio' && t.readyState === 'live') ?? null;
            if (!track) {
                if (performance.now() > deadline) {
                    throw new Error('no audio track arrived');
                }
                await new Promise((resolve) => { setTimeout(resolve, 50); });
            }
        }
        const probe = { onsets: [], marks: [], frames: 0, errors: [], outputLag: [] };
        window.__oswAvProbe = probe;

        const context = new AudioContext({ latencyHint: 'interactive' });
        // From a blob: URL. The product's pages allow scripts from 'self' only: open them in a
        // context made with `bypassCSP` (playwright cannot answer a worklet's request itself).
        await context.audioWorklet.addModule(URL.createObjectURL(new Blob([worklet], { type: 'text/javascript' })));
        const source = context.createMediaStreamSource(new MediaStream([track]));
        const node = new AudioWorkletNode(context, 'osw-onsets');
        node.port.onmessage = ({ data }) => {
            // When the sample reached the graph: the context's clock runs at the sample rate,
            // so it was processed (ctx.currentTime − its time) ago. That is when the track
            // delivered it, as it delivers it to the <video> element that plays it; the
            // probe's own output buffering (baseLatency + outputLatency) is left out, since
            // nobody hears the probe.
            const sampleTime = data.frame / context.sampleRate;
            const at = performance.now() - (context.currentTime - sampleTime) * 1000;
            const { contextTime, performanceTime } = context.getOutputTimestamp();
            const out = performanceTime + (sampleTime - contextTime) * 1000;
            probe.onsets.push(performance.timeOrigin + at);
            probe.outputLag.push(out - at);
        };
        source.connect(node);
        node.connect(context.destination);
        await context.resume();
        probe.context = context;

        // Picture: the square's middle, read from each presented frame.
        const canvas = document.createElement('canvas');
        canvas.width = 4;
        canvas.height = 4;
        const g = canvas.getContext('2d', { willReadFrequently: true });
        const onFrame = (now, metadata) => {
            probe.frames += 1;
            const side = Math.max(16, Math.floor(video.videoHeight / 15));
            // The middle half of the square, at its bottom-left corner.
            const x = side / 4;
            const y = video.videoHeight - (side * 3) / 4;
            try {
                g.drawImage(video, x, y, side / 2, side / 2, 0, 0, 4, 4);
                const pixels = g.getImageData(0, 0, 4, 4).data;
                let sum = 0;
                for (let i = 0; i < pixels.length; i += 4) {
                    sum += pixels[i] + pixels[i + 1] + pixels[i + 2];
                }
                const mean = sum / (pixels.length / 4) / 3;
                if (mean > 200) {
                    const strip = window.__osw.readStrip?.() ?? null;
                    probe.marks.push({
                        shownMs: performance.timeOrigin + metadata.expectedDisplayTime,
                        frame: strip?.frame ?? null,
                        renderedMs: strip?.renderedMs ?? null,
                    });
                }
            } catch (err) {
                probe.errors.push(err.message);
            }
            video.requestVideoFrameCallback(onFrame);
        };
        video.requestVideoFrameCallback(onFrame);
        return {
            state: context.state,
            sampleRate: context.sampleRate,
            baseLatencyMs: context.baseLatency * 1000,
            outputLatencyMs: (context.outputLatency ?? 0) * 1000,
        };
    }, { limitMs: timeoutMs, worklet: WORKLET });
}

/**
 * What the probe saw so far: `onsets` (wall ms each tone was heard), `marks` (`{shownMs,
 * frame, renderedMs}` per presented frame with the square), `frames` presented.
 * @param {import('playwright-core').Page} page
 */
export function avProbeResults(page) {
    return page.evaluate(() => {
        const { onsets, marks, frames, errors, outputLag } = window.__oswAvProbe;
        return {
            onsets: [...onsets], marks: [...marks], frames, errors: [...errors], outputLag: [...outputLag],
        };
    });
}

/**
 * Pairs each of the host's tones with what the page heard and saw of it.
 *
 * A tone's picture is the first presented frame with the square whose strip carries the
 * tone's frame number (or, should the strip not decode, the first marked frame within
 * `windowMs` after the tone); its sound the first onset within `windowMs` after the tone.
 *
 * @param {{frame: number, unixMs: number}[]} tones - from the host's TONE lines
 * @param {{onsets: number[], marks: {shownMs: number, frame: number | null}[]}} seen
 * @param {{windowMs?: number}} [options] - the longest a tone may take to arrive; less than
 *   the time between tones
 * @returns {{frame: number, unixMs: number, heardMs: number | null, shownMs: number | null,
 *   offsetMs: number | null, earMs: number | null, eyeMs: number | null}[]} per tone:
 *   `offsetMs` = heard − shown (positive: the sound comes after the picture), `earMs` =
 *   heard − handed over (glass-to-ear), `eyeMs` = shown − rendered (glass-to-glass)
 */
export function pairTones(tones, { onsets, marks }, { windowMs = 400 } = {}) {
    return tones.map(({ frame, unixMs }) => {
        const within = (t) => t >= unixMs && t < unixMs + windowMs;
        const heardMs = onsets.find(within) ?? null;
        const mark = marks.find((m) => m.frame === (frame & 0xffff) && within(m.shownMs))
            ?? marks.find((m) => within(m.shownMs));
        const shownMs = mark?.shownMs ?? null;
        const diff = (a, b) => (a === null || b === null ? null : a - b);
        return {
            frame,
            unixMs,
            heardMs,
            shownMs,
            offsetMs: diff(heardMs, shownMs),
            earMs: diff(heardMs, unixMs),
            eyeMs: diff(shownMs, unixMs),
        };
    });
}

/** The median of the numbers in `values` (nulls skipped), or null. */
export function median(values) {
    const sorted = values.filter((v) => v !== null).sort((a, b) => a - b);
    if (sorted.length === 0) {
        return null;
    }
    const middle = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * The receivers' jitter buffer counters now (`getStats()` inbound-rtp, per kind), for
 * {@link jitterBuffers}.
 * @param {import('playwright-core').Page} page
 */
export function receiveCounters(page) {
    return page.evaluate(async () => {
        const out = {};
        const report = await window.__osw.session.peerConnection.getStats();
        const reports = {};
        report.forEach((r) => {
            if (r.type === 'remote-outbound-rtp') {
                reports[r.kind] = r.reportsSent ?? 0;
            }
        });
        report.forEach((r) => {
            if (r.type === 'inbound-rtp') {
                out[r.kind] = {
                    delay: r.jitterBufferDelay ?? 0,
                    target: r.jitterBufferTargetDelay ?? 0,
                    minimum: r.jitterBufferMinimumDelay ?? 0,
                    emitted: r.jitterBufferEmittedCount ?? 0,
                    concealed: r.concealedSamples ?? 0,
                    samples: r.totalSamplesReceived ?? 0,
                    senderReports: reports[r.kind] ?? 0,
                };
            }
        });
        return out;
    });
}

/**
 * Each receiver's jitter buffer between two {@link receiveCounters} readings: the mean delay,
 * target and minimum (ms; the minimum is what the browser's lip sync imposes), the RTCP
 * sender reports received, and for the sound the share of samples concealed (%).
 */
export function jitterBuffers(before, after) {
    const out = {};
    for (const kind of Object.keys(after)) {
        const a = after[kind];
        const b = before[kind] ?? { delay: 0, target: 0, minimum: 0, emitted: 0, concealed: 0, samples: 0 };
        const emitted = a.emitted - b.emitted;
        const mean = (key) => (emitted > 0 ? Math.round((1000 * (a[key] - b[key])) / emitted) : null);
        out[kind] = {
            delayMs: mean('delay'),
            targetMs: mean('target'),
            minimumMs: mean('minimum'),
            senderReports: a.senderReports - (b.senderReports ?? 0),
        };
        if (kind === 'audio') {
            const samples = a.samples - b.samples;
            out[kind].concealedPercent = samples > 0
                ? Math.round((1000 * (a.concealed - b.concealed)) / samples) / 10 : null;
        }
    }
    return out;
}

