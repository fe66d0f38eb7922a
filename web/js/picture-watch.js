/**
 * Notices a stream that is connected but shows nothing: no new video frame for a while.
 * A peer connection can stay "connected" while no picture arrives (an encoder that failed,
 * a host that stopped rendering, a link that carries nothing), and the page must not keep
 * saying "Streaming" then.
 *
 * @module picture-watch
 */

/** How long without a new frame before the picture counts as gone. */
export const NO_PICTURE_MS = 2000;
/** How often the watch looks. */
const CHECK_MS = 250;

/**
 * Whether the picture is gone, and for how long: pure, for tests.
 * @param {number | null} lastFrameAt - when the last frame was presented (ms), null if never
 * @param {number} startedAt - when watching began (ms)
 * @param {number} now - ms
 * @returns {{gone: boolean, forMs: number}}
 */
export function pictureGone(lastFrameAt, startedAt, now) {
    const since = now - (lastFrameAt ?? startedAt);
    return { gone: since >= NO_PICTURE_MS, forMs: Math.max(0, since) };
}

/**
 * Watches a video element's presented frames.
 * @fires PictureWatch#change - `detail`: `{gone: boolean, forMs: number}`, on every change
 */
export default class PictureWatch extends EventTarget {
    #video;
    #lastFrameAt = null;
    #startedAt = 0;
    #gone = false;
    #timer = null;
    #callbackId = null;

    /** @param {HTMLVideoElement} video */
    constructor(video) {
        super();
        this.#video = video;
    }

    /** Whether the picture is gone now. */
    get gone() {
        return this.#gone;
    }

    start() {
        this.stop();
        this.#startedAt = performance.now();
        this.#lastFrameAt = null;
        const onFrame = (now) => {
            this.#lastFrameAt = now;
            this.#callbackId = this.#video.requestVideoFrameCallback(onFrame);
        };
        this.#callbackId = this.#video.requestVideoFrameCallback(onFrame);
        this.#timer = setInterval(() => this.#check(), CHECK_MS);
    }

    stop() {
        clearInterval(this.#timer);
        this.#timer = null;
        if (this.#callbackId !== null) {
            this.#video.cancelVideoFrameCallback(this.#callbackId);
            this.#callbackId = null;
        }
        this.#gone = false;
    }

    #check() {
        const status = pictureGone(this.#lastFrameAt, this.#startedAt, performance.now());
        // While gone, report the growing time too (the status line counts up).
        if (status.gone !== this.#gone || status.gone) {
            this.#gone = status.gone;
            this.dispatchEvent(new CustomEvent('change', { detail: status }));
        }
    }
}
