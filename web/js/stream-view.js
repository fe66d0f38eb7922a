/**
 * A stream on a page: joins the session, plays its video, captures input, shows status and
 * stats. Pages bring the elements; this module only wires them, so the viewer page and the
 * product's later pages share it.
 *
 * @module stream-view
 */

import FrameClock from './frame-clock.js';
import PictureWatch from './picture-watch.js';
import RemoteController from './remote-controller.js';
import SessionState from './session-state.js';
import StatsOverlay from './stats-overlay.js';
import StreamAudio from './stream-audio.js';
import ViewerSession from './viewer-session.js';

/** How long a notice stays in the status line before the state shows again. */
const NOTICE_MS = 5000;

function capitalize(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Ends `text` with a full stop unless it already ends a sentence. */
function sentence(text) {
    return /[.!?…]$/.test(text) ? text : `${text}.`;
}

/**
 * The status line for a session state, in plain words.
 * @param {string} state - one of SessionState
 * @param {string} reason - the session's reason (for closed and failed)
 * @param {boolean} viewOnly
 * @returns {{text: string, kind: 'progress' | 'ok' | 'ended' | 'error'}}
 */
export function describeState(state, reason, viewOnly) {
    switch (state) {
        case SessionState.IDLE:
            return { text: 'Starting…', kind: 'progress' };
        case SessionState.CONNECTING:
            return { text: 'Connecting to the streaming server…', kind: 'progress' };
        case SessionState.NEGOTIATING:
            return { text: 'Setting up the video connection…', kind: 'progress' };
        case SessionState.STREAMING:
            return { text: viewOnly ? 'Streaming (view only)' : 'Streaming', kind: 'ok' };
        case SessionState.CLOSED:
            return { text: sentence(`Stream ended: ${reason || 'closed'}`), kind: 'ended' };
        default:
            return { text: sentence(`Error: ${capitalize(reason || 'unknown error')}`), kind: 'error' };
    }
}

/**
 * @fires StreamView#status - the status line changed; `detail`: `{text, kind}`
 */
export default class StreamView extends EventTarget {
    #elements;
    #options;
    #session;
    #overlay;
    #frameClock;
    #pictureWatch;
    /** The stream's sound, if it has any (stream-audio.js). */
    #audio;
    /** @type {RemoteController | null} */
    #controller = null;
    /** The open `input` channel, kept to capture once this page may send. */
    #inputChannel = null;
    /** Whether this page holds the controls; null while unknown (see holdsControls). */
    #holdsControls = null;
    #noticeTimer = null;

    /**
     * @param {object} elements
     * @param {HTMLVideoElement} elements.video - should be `muted playsinline autoplay`, so
     *   browsers let it play without a click
     * @param {HTMLElement} elements.status - the status line
     * @param {HTMLElement} elements.stats - the stats overlay
     * @param {HTMLButtonElement} elements.startButton - shown when the browser blocks autoplay
     * @param {HTMLButtonElement} [elements.soundButton] - "Sound on", shown while a stream
     *   with sound plays muted (browsers allow sound only after a click)
     * @param {object} options
     * @param {string} options.signalUrl
     * @param {boolean} [options.viewOnly=false]
     * @param {RTCIceServer[]} [options.iceServers]
     * @param {string[]} [options.reservedCodes=[]] - more `KeyboardEvent.code`s the page
     *   keeps for itself (besides the stats toggle): never sent to the host
     */
    constructor(elements, options) {
        super();
        this.#elements = elements;
        this.#options = { viewOnly: false, ...options };
        this.#session = new ViewerSession(options.signalUrl, this.#options);
        this.#overlay = new StatsOverlay(elements.stats);
        this.#frameClock = new FrameClock(elements.video);
        this.#pictureWatch = new PictureWatch(elements.video);
        this.#pictureWatch.addEventListener('change', (e) => this.#onPicture(e.detail));
        this.#audio = new StreamAudio(elements.video, elements.soundButton ?? null);

        const session = this.#session;
        session.addEventListener('statechange', (e) => this.#onStateChange(e.detail.state));
        session.addEventListener('notice', (e) => this.#showNotice(e.detail.message));
        session.addEventListener('stream', (e) => this.#play(e.detail.stream));
        session.addEventListener('inputchannel', (e) => this.#capture(e.detail.channel));
        session.addEventListener('audiotrack', (e) => this.#audio.setTrack(e.detail.track));
        elements.startButton.addEventListener('click', () => this.#play(session.stream));
        this.#showStatus(describeState(session.state, '', this.#options.viewOnly));
    }

    get session() {
        return this.#session;
    }

    get frameClock() {
        return this.#frameClock;
    }

    get statsOverlay() {
        return this.#overlay;
    }

    /** The stream's sound (`hasAudio`, `track`, `unmute()`). */
    get audio() {
        return this.#audio;
    }

    /** The input capture, or null (view-only, or before the data channel opens). */
    get controller() {
        return this.#controller;
    }

    /** Whether this page holds the controls, as last set; null while unknown. */
    get holdsControls() {
        return this.#holdsControls;
    }

    /**
     * Who has the controls, from the `app` channel: input is captured exactly while this page
     * holds them (a spectator an owner handed them to as well). While unknown (null, and on
     * pages without the `app` channel) it is captured unless `viewOnly`.
     * @param {boolean | null} holds
     */
    set holdsControls(holds) {
        this.#holdsControls = holds === null ? null : Boolean(holds);
        this.#updateCapture();
    }

    start() {
        this.#session.start();
    }

    /** Leaves the session and stops capturing input. */
    close() {
        this.#session.close();
        this.#pictureWatch.stop();
        this.#overlay.close();
        this.#audio.close();
    }

    #onStateChange(state) {
        if (state === SessionState.CLOSED || state === SessionState.FAILED) {
            this.#controller?.close();
            this.#controller = null;
            this.#inputChannel = null;
            this.#overlay.detach();
            this.#frameClock.stop();
            this.#audio.reset();
        }
        if (state === SessionState.STREAMING) {
            this.#pictureWatch.start();
        } else {
            this.#pictureWatch.stop();
        }
        clearTimeout(this.#noticeTimer);
        this.#showStatus(describeState(state, this.#session.reason, this.#options.viewOnly));
    }

    /** The picture went away or came back while the connection stayed up. */
    #onPicture({ gone, forMs }) {
        if (this.#session.state !== SessionState.STREAMING) {
            return;
        }
        clearTimeout(this.#noticeTimer);
        this.#showStatus(gone
            ? { text: `No picture: nothing has arrived for ${Math.floor(forMs / 1000)} s`, kind: 'warning' }
            : describeState(SessionState.STREAMING, '', this.#options.viewOnly));
    }

    #showNotice(message) {
        clearTimeout(this.#noticeTimer);
        this.#showStatus({ text: capitalize(message), kind: 'notice' });
        this.#noticeTimer = setTimeout(() => {
            const { state, reason } = this.#session;
            this.#showStatus(describeState(state, reason, this.#options.viewOnly));
        }, NOTICE_MS);
    }

    #showStatus(status) {
        const { status: element } = this.#elements;
        element.textContent = status.text;
        element.dataset.kind = status.kind;
        this.dispatchEvent(new CustomEvent('status', { detail: status }));
    }

    #play(stream) {
        const { video, startButton } = this.#elements;
        if (!stream) {
            return;
        }
        if (video.srcObject !== stream) {
            video.srcObject = stream;
            this.#overlay.attach(this.#session.peerConnection);
            this.#frameClock.start();
            this.#audio.attach(stream);
        }
        video.play().then(() => {
            startButton.hidden = true;
            // Playing (muted): now sound may be asked for.
            this.#audio.tryUnmute();
        }, (err) => {
            // Browsers may refuse to play before a click despite `muted` (power saving).
            if (err.name === 'NotAllowedError') {
                startButton.hidden = false;
            }
        });
    }

    #capture(channel) {
        this.#inputChannel = channel;
        this.#updateCapture();
    }

    #updateCapture() {
        const wanted = this.#holdsControls ?? !this.#options.viewOnly;
        if (!wanted) {
            this.#controller?.close();
            this.#controller = null;
            return;
        }
        if (this.#controller || this.#inputChannel?.readyState !== 'open') {
            return;
        }
        this.#controller = new RemoteController(this.#elements.video, this.#inputChannel, {
            reservedCodes: [this.#overlay.toggleCode, ...(this.#options.reservedCodes ?? [])],
        });
    }
}
