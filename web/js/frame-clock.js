/**
 * Per-frame timing of the displayed video, from the timestamp strip the test host stamps on
 * each frame (see timestamp-strip.js). The latency benchmark reads these samples.
 *
 * @module frame-clock
 */

import decodeTimestampStrip, { SAMPLE_ROW, STRIP_ROWS } from './timestamp-strip.js';

/**
 * Decoded times further than this from the viewer's clock are not a strip (a black frame
 * decodes as 1970, a white one as the year 10889): such frames are counted, not recorded.
 */
const PLAUSIBLE_SKEW_MS = 24 * 60 * 60 * 1000;

/**
 * @typedef {object} FrameSample
 * @property {number} frame - the host's frame counter, modulo 65536
 * @property {number} renderedMs - wall clock (ms since the epoch) when the host rendered it
 * @property {number} presentedMs - wall clock when the browser expected to show it
 * @property {number | null} receiveMs - wall clock when its last packet arrived (null when
 *   the browser does not say)
 * @property {number} latencyMs - `presentedMs - renderedMs`: glass-to-glass minus the
 *   display's own delay
 * @property {number} presentedFrames - the browser's running count of presented frames
 * @property {number | null} rtpTimestamp
 */

/**
 * @fires FrameClock#frame - a frame was decoded and recorded; `detail`: a {@link FrameSample}
 */
export default class FrameClock extends EventTarget {
    #video;
    #canvas;
    #context;
    #maxSamples;
    /** @type {FrameSample[]} */
    #samples = [];
    #skipped = 0;
    #mismatched = 0;
    #callbackId = null;

    /**
     * @param {HTMLVideoElement} video
     * @param {object} [options]
     * @param {number} [options.maxSamples=36000] - oldest samples are dropped past this
     *   (20 minutes at 30 fps) so a long session cannot grow without bound
     * @param {number} [options.sampleWidth=512] - width the strip is scaled to before decoding;
     *   8 pixels a block is plenty, and reading back fewer pixels is cheaper
     */
    constructor(video, { maxSamples = 36000, sampleWidth = 512 } = {}) {
        super();
        this.#video = video;
        this.#maxSamples = maxSamples;
        this.#canvas = video.ownerDocument.createElement('canvas');
        this.#canvas.width = sampleWidth;
        this.#canvas.height = STRIP_ROWS;
        // Read back every frame: keep the canvas in CPU memory.
        this.#context = this.#canvas.getContext('2d', { willReadFrequently: true });
    }

    /** Whether frames are being recorded. */
    get running() {
        return this.#callbackId !== null;
    }

    /** A copy of the recorded samples, oldest first. */
    get samples() {
        return this.#samples.slice();
    }

    /** The latest sample, or null. */
    get last() {
        return this.#samples.at(-1) ?? null;
    }

    /** Presented frames whose strip did not decode to a plausible time. */
    get skipped() {
        return this.#skipped;
    }

    /**
     * Callbacks that drew a newer frame than the one they were called for (see #record),
     * left out of the samples.
     */
    get mismatched() {
        return this.#mismatched;
    }

    /** Starts recording every presented frame. */
    start() {
        if (!this.running) {
            this.#schedule();
        }
    }

    stop() {
        if (this.running) {
            this.#video.cancelVideoFrameCallback(this.#callbackId);
            this.#callbackId = null;
        }
    }

    /** Forgets the samples recorded so far (e.g. after a warm-up). */
    clear() {
        this.#samples = [];
        this.#skipped = 0;
        this.#mismatched = 0;
    }

    /**
     * Decodes the strip of the frame the video shows now.
     * @returns {{renderedMs: number, frame: number} | null} null before the first frame
     */
    readCurrent() {
        const video = this.#video;
        if (video.readyState < HTMLMediaElement.HAVE_CURRENT_DATA || video.videoWidth === 0) {
            return null;
        }
        const { width } = this.#canvas;
        this.#context.drawImage(video, 0, 0, video.videoWidth, STRIP_ROWS, 0, 0, width, STRIP_ROWS);
        const row = this.#context.getImageData(0, SAMPLE_ROW, width, 1).data;
        return decodeTimestampStrip(row, width);
    }

    #schedule() {
        this.#callbackId = this.#video.requestVideoFrameCallback((now, metadata) => {
            this.#record(metadata);
            this.#schedule();
        });
    }

    #record(metadata) {
        // Anchor the monotonic clock to the wall clock now rather than at page load
        // (performance.timeOrigin): the two drift apart over a long session.
        const wallNow = Date.now();
        const perfNow = performance.now();
        const toWall = (t) => wallNow + (t - perfNow);

        const decoded = this.readCurrent();
        if (!decoded || Math.abs(decoded.renderedMs - wallNow) > PLAUSIBLE_SKEW_MS) {
            this.#skipped += 1;
            return;
        }
        const presentedMs = toWall(metadata.expectedDisplayTime);
        const receiveMs = metadata.receiveTime === undefined ? null : toWall(metadata.receiveTime);
        // When the main thread runs late, the video element may already show a newer frame
        // than the one this callback describes: the strip is then ahead of the timings, and
        // the sample would understate the latency. It shows as a frame shown or received
        // before it was rendered, or as the next callback decoding the same frame again (then
        // the earlier sample was the wrong one).
        if (presentedMs < decoded.renderedMs || (receiveMs !== null && receiveMs < decoded.renderedMs)) {
            this.#mismatched += 1;
            return;
        }
        if (decoded.frame === this.last?.frame) {
            this.#samples.pop();
            this.#mismatched += 1;
        }
        /** @type {FrameSample} */
        const sample = {
            frame: decoded.frame,
            renderedMs: decoded.renderedMs,
            presentedMs,
            receiveMs,
            latencyMs: presentedMs - decoded.renderedMs,
            presentedFrames: metadata.presentedFrames,
            rtpTimestamp: metadata.rtpTimestamp ?? null,
        };
        if (this.#samples.length >= this.#maxSamples) {
            this.#samples.shift();
        }
        this.#samples.push(sample);
        this.dispatchEvent(new CustomEvent('frame', { detail: sample }));
    }
}
