/**
 * Defaults of the viewer, and reading the few settings a page takes from its URL.
 *
 * @module config
 */

const config = Object.freeze({
    /** Port of rust-core's signaling endpoint for instance 0 (4700 + instance number). */
    signalingPort: 4700,
    /**
     * No STUN or TURN by default: the streamer and the viewer usually share a network, and
     * a server that is not ours would learn about every session.
     */
    iceServers: Object.freeze([]),
    /** From `start()` to streaming; past this the session fails instead of hanging. */
    connectTimeoutMs: 20000,
    /** How often the stats overlay asks the peer connection for stats. */
    statsIntervalMs: 1000,
    /**
     * `KeyboardEvent.code` that shows and hides the stats overlay. F9 because OpenSpace's
     * default key bindings use F1, F2, F5 and F12; this key never reaches the host.
     */
    statsToggleCode: 'F9',
    /** Whether the stats overlay is visible when the page opens. */
    statsVisible: true,
    /** Pixels of `DOM_DELTA_PIXEL` wheel movement that make one wheel notch (Chromium's step). */
    wheelPixelsPerNotch: 100,
    /** Lines of `DOM_DELTA_LINE` wheel movement that make one notch (the usual system setting). */
    wheelLinesPerNotch: 3,
    /** Change of the distance between two fingers, in CSS pixels, that makes one notch. */
    pinchPixelsPerNotch: 40,
});

/**
 * The viewer's settings from a page URL's query string.
 *
 * `?signal=ws://127.0.0.1:4700/` names the signaling endpoint (default: port
 * {@link config.signalingPort} on the page's own host), `?viewOnly=1` watches without
 * sending input.
 *
 * @param {string} search - `location.search`
 * @param {string} hostname - `location.hostname`, for the default endpoint
 * @returns {{signalUrl: string, viewOnly: boolean}}
 */
export function viewerOptionsFromQuery(search, hostname) {
    const params = new URLSearchParams(search);
    // `hostname` keeps an IPv6 literal's brackets, and is empty for a page opened from a file.
    const host = hostname || '127.0.0.1';
    const signalUrl = params.get('signal') || `ws://${host}:${config.signalingPort}/`;
    const viewOnly = ['1', 'true', 'yes'].includes((params.get('viewOnly') ?? '').toLowerCase());
    return { signalUrl, viewOnly };
}

export default config;
