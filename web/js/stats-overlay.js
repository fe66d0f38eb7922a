/**
 * The stats overlay: once a second it reads the peer connection's stats and shows frame
 * rate, bitrate and the delays a viewer can feel. A key (config.statsToggleCode) shows and
 * hides it.
 *
 * @module stats-overlay
 */

import config from './config.js';
import ToggleKey from './toggle-key.js';

/**
 * @typedef {object} StatsSnapshot
 * @property {number} timestamp - ms, the browser's stats clock
 * @property {string} codec - e.g. 'H264', '' until known
 * @property {number} width - decoded frame width (0 until known)
 * @property {number} height
 * @property {number | null} fps - frames decoded per second
 * @property {number | null} bitrateKbps - received video bitrate over the last interval
 * @property {number} framesDecoded - since the start
 * @property {number} framesDropped - since the start
 * @property {number} packetsLost - since the start
 * @property {number | null} jitterBufferMs - average time a frame waited in the jitter
 *   buffer over the last interval
 * @property {number | null} decodeMsPerFrame - average decode time over the last interval
 * @property {number | null} rttMs - round trip of the selected ICE candidate pair
 * @property {number} bytesReceived - cumulative counters, kept to compute the next interval
 * @property {number} jitterBufferDelay
 * @property {number} jitterBufferEmittedCount
 * @property {number} totalDecodeTime
 */

/** Ratio of two counter increases, or null when the denominator did not grow. */
function perUnit(now, before, countNow, countBefore, scale) {
    const count = countNow - countBefore;
    return count > 0 ? ((now - before) / count) * scale : null;
}

/**
 * Sums up one `getStats()` report. Pure, so it can be tested with made-up reports.
 *
 * @param {Iterable<object>} stats - the report's values (`report.values()`)
 * @param {StatsSnapshot | null} previous - the last snapshot, for per-interval rates
 * @returns {StatsSnapshot | null} null while there is no inbound video yet
 */
export function summarizeStats(stats, previous) {
    const byId = new Map();
    let inbound = null;
    let transport = null;
    for (const s of stats) {
        byId.set(s.id, s);
        if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s;
        if (s.type === 'transport') transport = s;
    }
    if (!inbound) {
        return null;
    }
    let pair = transport?.selectedCandidatePairId ? byId.get(transport.selectedCandidatePairId) : undefined;
    if (!pair) {
        pair = [...byId.values()].find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    }
    const codec = byId.get(inbound.codecId)?.mimeType?.replace(/^video\//i, '') ?? '';

    const current = {
        timestamp: inbound.timestamp,
        framesDecoded: inbound.framesDecoded ?? 0,
        bytesReceived: inbound.bytesReceived ?? 0,
        jitterBufferDelay: inbound.jitterBufferDelay ?? 0,
        jitterBufferEmittedCount: inbound.jitterBufferEmittedCount ?? 0,
        totalDecodeTime: inbound.totalDecodeTime ?? 0,
    };
    // Without a previous report, the averages since the start are the best estimate.
    const base = previous ?? {
        timestamp: null,
        framesDecoded: 0,
        bytesReceived: 0,
        jitterBufferDelay: 0,
        jitterBufferEmittedCount: 0,
        totalDecodeTime: 0,
    };
    const elapsedMs = base.timestamp === null ? 0 : current.timestamp - base.timestamp;

    let fps = inbound.framesPerSecond ?? null;
    if (fps === null && elapsedMs > 0) {
        fps = ((current.framesDecoded - base.framesDecoded) * 1000) / elapsedMs;
    }
    return {
        ...current,
        codec,
        width: inbound.frameWidth ?? 0,
        height: inbound.frameHeight ?? 0,
        fps,
        // bytes × 8 / ms = kbit/s
        bitrateKbps: elapsedMs > 0 ? ((current.bytesReceived - base.bytesReceived) * 8) / elapsedMs : null,
        framesDropped: inbound.framesDropped ?? 0,
        packetsLost: inbound.packetsLost ?? 0,
        jitterBufferMs: perUnit(current.jitterBufferDelay, base.jitterBufferDelay,
            current.jitterBufferEmittedCount, base.jitterBufferEmittedCount, 1000),
        decodeMsPerFrame: perUnit(current.totalDecodeTime, base.totalDecodeTime,
            current.framesDecoded, base.framesDecoded, 1000),
        rttMs: typeof pair?.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : null,
    };
}

function fixed(value, digits, unit) {
    return `${value === null ? '–' : value.toFixed(digits)}${unit}`;
}

/**
 * The overlay's text for a snapshot.
 * @param {StatsSnapshot | null} s
 * @returns {string}
 */
export function formatStats(s) {
    if (!s) {
        return 'waiting for video…';
    }
    return [
        `${s.codec || 'video'} ${s.width}×${s.height}`,
        `${fixed(s.fps, 1, ' fps')}  ${fixed(s.bitrateKbps, 0, ' kbit/s')}`,
        `rtt ${fixed(s.rttMs, 1, ' ms')}  jitter buffer ${fixed(s.jitterBufferMs, 1, ' ms')}`,
        `decode ${fixed(s.decodeMsPerFrame, 1, ' ms')}/frame`,
        `frames ${s.framesDecoded} decoded, ${s.framesDropped} dropped, ${s.packetsLost} packets lost`,
    ].join('\n');
}

/**
 * @fires StatsOverlay#stats - a new snapshot; `detail`: {@link StatsSnapshot}
 */
export default class StatsOverlay extends EventTarget {
    #element;
    #intervalMs;
    #toggleKey;
    /** @type {RTCPeerConnection | null} */
    #pc = null;
    #timer = null;
    /** @type {StatsSnapshot | null} */
    #latest = null;

    /**
     * @param {HTMLElement} element - where the text goes (styled by the page)
     * @param {object} [options]
     * @param {number} [options.intervalMs=config.statsIntervalMs]
     * @param {string} [options.toggleCode=config.statsToggleCode] - `KeyboardEvent.code`
     *   that shows and hides the overlay
     * @param {boolean} [options.visible=config.statsVisible]
     */
    constructor(element, options = {}) {
        super();
        this.#element = element;
        this.#intervalMs = options.intervalMs ?? config.statsIntervalMs;
        this.visible = options.visible ?? config.statsVisible;
        this.#element.textContent = formatStats(null);
        this.#toggleKey = new ToggleKey(element.ownerDocument.defaultView,
            options.toggleCode ?? config.statsToggleCode, () => { this.visible = !this.visible; });
    }

    /** The `KeyboardEvent.code` that toggles the overlay; input capture must skip it. */
    get toggleCode() {
        return this.#toggleKey.code;
    }

    /** The latest snapshot, or null. */
    get latest() {
        return this.#latest;
    }

    get visible() {
        return !this.#element.hidden;
    }

    set visible(value) {
        this.#element.hidden = !value;
    }

    /**
     * Starts polling a peer connection (replacing any previous one).
     * @param {RTCPeerConnection} pc
     */
    attach(pc) {
        this.detach();
        this.#pc = pc;
        // Rates are differences between reports of one connection.
        this.#latest = null;
        this.#timer = setInterval(() => this.#poll(), this.#intervalMs);
    }

    /** Stops polling; the last numbers stay on screen. */
    detach() {
        clearInterval(this.#timer);
        this.#timer = null;
        this.#pc = null;
    }

    /** Stops polling and stops listening for the toggle key. */
    close() {
        this.detach();
        this.#toggleKey.close();
    }

    async #poll() {
        const pc = this.#pc;
        if (!pc || pc.connectionState === 'closed') {
            return;
        }
        const report = await pc.getStats();
        // The connection may have been swapped or closed while the stats were gathered.
        if (pc !== this.#pc) {
            return;
        }
        const snapshot = summarizeStats(report.values(), this.#latest);
        if (!snapshot) {
            return;
        }
        this.#latest = snapshot;
        this.#element.textContent = formatStats(snapshot);
        this.dispatchEvent(new CustomEvent('stats', { detail: snapshot }));
    }
}
