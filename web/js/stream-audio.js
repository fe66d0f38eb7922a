/**
 * The stream's sound. A streamer with sound offers an Opus track beside the video, in the same
 * MediaStream (both carry the same msid): the browser lip-syncs the tracks of one stream, and
 * the video element plays them together. The element starts muted, because browsers let only
 * a muted video play without a click; once it plays, this tries to unmute it, and when the
 * browser refuses, shows a small "Sound on" button (a click is the gesture it asks for). A
 * stream without sound shows no button at all.
 *
 * @module stream-audio
 */

/**
 * Whether the "Sound on" button is hidden: it is shown only for a stream that has sound and
 * plays muted.
 * @param {{hasAudio: boolean, muted: boolean}} state
 * @returns {boolean}
 */
export function soundButtonHidden({ hasAudio, muted }) {
    return !hasAudio || !muted;
}

/**
 * Puts `track` into `stream` unless it is there already (the track event's stream has it when
 * the offer names one msid for both, as rust-core's does; a stream made for a track-only offer
 * does not). Returns whether it was added.
 * @param {MediaStream} stream
 * @param {MediaStreamTrack} track
 * @returns {boolean}
 */
export function addAudioTrack(stream, track) {
    if (!stream || !track || stream.getTracks().includes(track)) {
        return false;
    }
    stream.addTrack(track);
    return true;
}

/**
 * What the browser says about unmuted autoplay for `video`: `'allowed'`, `'allowed-muted'`,
 * `'disallowed'`, or null when it cannot say (Chromium has no `getAutoplayPolicy` yet), in
 * which case only trying tells.
 * @param {HTMLVideoElement} video
 * @param {Navigator} [nav]
 * @returns {string | null}
 */
export function autoplayPolicy(video, nav = globalThis.navigator) {
    try {
        return typeof nav?.getAutoplayPolicy === 'function' ? nav.getAutoplayPolicy(video) : null;
    } catch {
        return null;
    }
}

/**
 * @fires StreamAudio#change - the sound state changed; `detail`: `{hasAudio, muted}`
 */
export default class StreamAudio extends EventTarget {
    #video;
    #button;
    /** @type {MediaStreamTrack | null} */
    #track = null;
    /** @type {MediaStream | null} */
    #stream = null;
    #nav;
    #abort = new AbortController();
    /** One try at unmuting per stream: a refused try is not repeated without a click. */
    #tried = false;

    /**
     * @param {HTMLVideoElement} video - the stream's element (starts `muted`)
     * @param {HTMLButtonElement | null} [button] - the "Sound on" button; optional
     * @param {{navigator?: Navigator}} [options] - for tests
     */
    constructor(video, button = null, { navigator: nav = globalThis.navigator } = {}) {
        super();
        this.#video = video;
        this.#button = button;
        this.#nav = nav;
        const { signal } = this.#abort;
        button?.addEventListener('click', () => { this.unmute(); }, { signal });
        video.addEventListener('volumechange', () => this.#update(), { signal });
        this.#update();
    }

    /** Whether the stream has sound. */
    get hasAudio() {
        return this.#track !== null && this.#track.readyState !== 'ended';
    }

    /** The received audio track, or null. */
    get track() {
        return this.#track;
    }

    /** The session's audio track arrived. */
    setTrack(track) {
        this.#track = track;
        track.addEventListener?.('ended', () => this.#update(), { signal: this.#abort.signal });
        addAudioTrack(this.#stream, track);
        this.#update();
        if (this.#stream) {
            this.tryUnmute();
        }
    }

    /** The video element got `stream` (the track event's): the sound goes into it too. */
    attach(stream) {
        this.#stream = stream;
        addAudioTrack(stream, this.#track);
        this.#update();
    }

    /**
     * Unmutes the playing video if the browser allows sound without a click, once per stream;
     * otherwise leaves it muted and playing, with the button shown. Resolves with whether it
     * plays with sound.
     */
    async tryUnmute() {
        const video = this.#video;
        if (!this.hasAudio || !video.muted || this.#tried) {
            return !video.muted;
        }
        this.#tried = true;
        const policy = autoplayPolicy(video, this.#nav);
        if (policy === 'allowed-muted' || policy === 'disallowed') {
            this.#update();
            return false;
        }
        video.muted = false;
        try {
            await video.play();
        } catch (err) {
            if (err?.name !== 'NotAllowedError') {
                console.warn(`playing the sound: ${err?.message ?? err}`);
            }
            // Refused: back to muted, which the browser lets play.
            video.muted = true;
            video.play().catch(() => {});
        }
        this.#update();
        return !video.muted;
    }

    /** Turns the sound on (from a click, the gesture browsers ask for). */
    unmute() {
        const video = this.#video;
        video.muted = false;
        video.play().catch((err) => console.warn(`playing the sound: ${err?.message ?? err}`));
        this.#update();
    }

    /** Forgets the track (the session ended); the button goes. */
    reset() {
        this.#track = null;
        this.#stream = null;
        this.#tried = false;
        this.#update();
    }

    /** Stops listening to the element and the button. */
    close() {
        this.reset();
        this.#abort.abort();
    }

    #update() {
        const state = { hasAudio: this.hasAudio, muted: Boolean(this.#video.muted) };
        if (this.#button) {
            this.#button.hidden = soundButtonHidden(state);
        }
        this.dispatchEvent(new CustomEvent('change', { detail: state }));
    }
}
