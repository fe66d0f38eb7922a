/**
 * One viewer's WebRTC session with a streamer: signaling, the peer connection, the video
 * track and the server's data channels, `input` and `app`.
 *
 * The sequence (rust-core/SIGNALING.md): `join` → `welcome` → the server's `offer` → our
 * `answer`, ICE candidates trickled both ways, and `bye` from either side.
 *
 * @module viewer-session
 */

import config from './config.js';
import SessionState, { canTransition, isFinal } from './session-state.js';
import SignalingChannel from './signaling-channel.js';

/** Label of the data channel the server creates for input. */
const INPUT_CHANNEL_LABEL = 'input';
/** Label of the data channel for show control (requests, replies, controls, status). */
const APP_CHANNEL_LABEL = 'app';

/**
 * @fires ViewerSession#statechange - `detail`: `{state, previous, reason}`
 * @fires ViewerSession#stream - the remote video arrived; `detail`: `{stream}` (a MediaStream)
 * @fires ViewerSession#audiotrack - the streamer's sound arrived (a streamer with `audio`
 *   set); `detail`: `{track, streams}`
 * @fires ViewerSession#inputchannel - the `input` data channel is open; `detail`: `{channel}`
 * @fires ViewerSession#appchannel - the `app` data channel is open; `detail`: `{channel}`
 * @fires ViewerSession#notice - something worth telling the viewer that does not end the
 *   session (a refused request, a connection hiccup); `detail`: `{message}`
 */
export default class ViewerSession extends EventTarget {
    #signalUrl;
    #viewOnly;
    #iceServers;
    #connectTimeoutMs;
    #state = SessionState.IDLE;
    #reason = '';
    #viewerId = null;
    #streamLimit = null;
    /** @type {SignalingChannel | null} */
    #signaling = null;
    /** @type {RTCPeerConnection | null} */
    #pc = null;
    /** @type {MediaStream | null} */
    #stream = null;
    /** @type {MediaStreamTrack | null} */
    #audioTrack = null;
    /** @type {RTCDataChannel | null} */
    #inputChannel = null;
    /** @type {RTCDataChannel | null} */
    #appChannel = null;
    #sentEndOfCandidates = false;
    #connectTimer = null;
    /**
     * Signaling messages are handled one after the other: an ICE candidate that arrives while
     * the offer is still being applied must wait for it, or the browser rejects it.
     */
    #work = Promise.resolve();

    /**
     * @param {string} signalUrl - the streamer's signaling endpoint, e.g. `ws://127.0.0.1:4700/`
     * @param {object} [options]
     * @param {boolean} [options.viewOnly=false] - watch only; the server ignores our input
     * @param {RTCIceServer[]} [options.iceServers=[]] - STUN/TURN servers (none by default)
     * @param {number} [options.connectTimeoutMs] - give up if not streaming by then
     */
    constructor(signalUrl, options = {}) {
        super();
        this.#signalUrl = signalUrl;
        this.#viewOnly = Boolean(options.viewOnly);
        this.#iceServers = options.iceServers ?? config.iceServers;
        this.#connectTimeoutMs = options.connectTimeoutMs ?? config.connectTimeoutMs;
    }

    /** One of {@link SessionState}. */
    get state() {
        return this.#state;
    }

    /** Why the session closed or failed, in plain words ('' before that). */
    get reason() {
        return this.#reason;
    }

    /**
     * The largest stream the instance takes (`{maxWidth, maxHeight}` from `welcome`, the
     * protocol crate's one constant), or null before the welcome.
     */
    get streamLimit() {
        return this.#streamLimit;
    }

    /** The id the server gave this viewer in `welcome`, or null before. */
    get viewerId() {
        return this.#viewerId;
    }

    get viewOnly() {
        return this.#viewOnly;
    }

    get signalUrl() {
        return this.#signalUrl;
    }

    /** The streamer's sound, or null (a stream without it, or before it arrives). */
    get audioTrack() {
        return this.#audioTrack;
    }

    /** The remote video as a MediaStream, or null before it arrives. */
    get stream() {
        return this.#stream;
    }

    /** The peer connection, or null before the server's offer. For stats and tests. */
    get peerConnection() {
        return this.#pc;
    }

    /** The `input` data channel once open, else null. */
    get inputChannel() {
        return this.#inputChannel?.readyState === 'open' ? this.#inputChannel : null;
    }

    /** The `app` data channel once open, else null (web/js/app-channel.js speaks on it). */
    get appChannel() {
        return this.#appChannel?.readyState === 'open' ? this.#appChannel : null;
    }

    /**
     * Connects and asks for the stream. Progress is reported by `statechange` events; a
     * failure ends in state `failed` with a `reason`, never in a rejected promise, so a page
     * has one place to show errors.
     */
    start() {
        if (this.#state !== SessionState.IDLE) {
            throw new Error(`start() called in state ${this.#state}`);
        }
        this.#setState(SessionState.CONNECTING);
        this.#connectTimer = setTimeout(() => {
            this.#fail(`no stream after ${Math.round(this.#connectTimeoutMs / 1000)} s; `
                + 'the streaming server did not complete the connection');
        }, this.#connectTimeoutMs);

        const signaling = new SignalingChannel(this.#signalUrl);
        this.#signaling = signaling;
        signaling.addEventListener('open', () => {
            signaling.send({ type: 'join', viewOnly: this.#viewOnly });
        });
        signaling.addEventListener('welcome', (e) => this.#onWelcome(e.detail));
        signaling.addEventListener('offer', (e) => this.#enqueue(() => this.#onOffer(e.detail)));
        signaling.addEventListener('ice', (e) => this.#enqueue(() => this.#onRemoteIce(e.detail)));
        signaling.addEventListener('error', (e) => this.#onServerError(e.detail));
        signaling.addEventListener('bye', (e) => {
            const why = e.detail.reason ? `: ${e.detail.reason}` : '';
            this.#end(SessionState.CLOSED, `the server ended the session${why}`);
        });
        signaling.addEventListener('protocol-error', (e) => this.#notice(e.detail.message));
        signaling.addEventListener('close', (e) => {
            // Closing the socket is `bye` for the server, so the session cannot outlive it.
            if (!e.detail.byUs) {
                this.#fail(e.detail.message);
            }
        });
        // Also catches an address the WebSocket refuses outright, which fires no `close`.
        signaling.open().catch((err) => this.#fail(err.message));
    }

    /**
     * Leaves: tells the server `bye`, closes the socket and the peer connection.
     * @param {string} [reason='closed by the viewer']
     */
    close(reason = 'closed by the viewer') {
        this.#end(SessionState.CLOSED, reason);
    }

    #onWelcome({ viewerId, limit }) {
        if (this.#state !== SessionState.CONNECTING) {
            this.#notice('the server welcomed this viewer twice; ignored');
            return;
        }
        this.#viewerId = viewerId ?? null;
        const valid = (n) => Number.isInteger(n) && n > 0;
        this.#streamLimit = valid(limit?.maxWidth) && valid(limit?.maxHeight)
            ? { maxWidth: limit.maxWidth, maxHeight: limit.maxHeight }
            : null;
        this.#setState(SessionState.NEGOTIATING);
    }

    async #onOffer({ sdp }) {
        if (typeof sdp !== 'string' || sdp === '') {
            this.#notice('the server sent an offer without SDP; ignored');
            return;
        }
        const pc = this.#pc ?? this.#createPeerConnection();
        await pc.setRemoteDescription({ type: 'offer', sdp });
        await pc.setLocalDescription();
        this.#signaling.send({ type: 'answer', sdp: pc.localDescription.sdp });
    }

    async #onRemoteIce({ candidate, sdpMLineIndex }) {
        if (!this.#pc?.remoteDescription) {
            this.#notice('the server sent an ICE candidate before its offer; ignored');
            return;
        }
        const init = { candidate: candidate ?? '', sdpMLineIndex: sdpMLineIndex ?? 0 };
        try {
            // An empty candidate is the server's end of candidates.
            await this.#pc.addIceCandidate(init);
        } catch (err) {
            // One unusable candidate (or an end marker the browser does not take) is no
            // reason to give up: ICE fails on its own if no candidate works.
            this.#notice(`ignored an ICE candidate from the server: ${err.message}`);
        }
    }

    #onServerError({ message, fatal }) {
        const text = typeof message === 'string' && message ? message : 'unspecified error';
        if (fatal) {
            this.#fail(`the server refused the stream: ${text}`);
        }
        else {
            this.#notice(`the server reported: ${text}`);
        }
    }

    #createPeerConnection() {
        const pc = new RTCPeerConnection({ iceServers: this.#iceServers });
        this.#pc = pc;
        pc.addEventListener('icecandidate', ({ candidate }) => {
            // Chromium may report the end twice (an empty candidate, then null); say it once.
            if (!candidate?.candidate) {
                if (!this.#sentEndOfCandidates) {
                    this.#sentEndOfCandidates = true;
                    this.#signaling.send({ type: 'ice', candidate: '', sdpMLineIndex: 0 });
                }
                return;
            }
            this.#signaling.send({
                type: 'ice',
                candidate: candidate.candidate,
                sdpMLineIndex: candidate.sdpMLineIndex ?? 0,
            });
        });
        pc.addEventListener('track', ({ track, receiver, streams }) => {
            if (track.kind === 'audio') {
                // The streamer's sound, in the video's MediaStream (stream-audio.js plays it).
                this.#audioTrack = track;
                this.dispatchEvent(new CustomEvent('audiotrack', { detail: { track, streams } }));
                return;
            }
            if (track.kind !== 'video') {
                return;
            }
            // Every frame held back in the jitter buffer is latency; ask for none. The first
            // is Chromium's older name (seconds), the second the standard one (milliseconds).
            if ('playoutDelayHint' in receiver) {
                receiver.playoutDelayHint = 0;
            }
            if ('jitterBufferTarget' in receiver) {
                receiver.jitterBufferTarget = 0;
            }
            // webrtcbin's offer may carry no stream id, and then `streams` is empty.
            this.#stream = streams[0] ?? new MediaStream([track]);
            this.dispatchEvent(new CustomEvent('stream', { detail: { stream: this.#stream } }));
        });
        pc.addEventListener('datachannel', ({ channel }) => {
            const { label } = channel;
            if (label === INPUT_CHANNEL_LABEL) {
                this.#inputChannel = channel;
            }
            else if (label === APP_CHANNEL_LABEL) {
                this.#appChannel = channel;
            }
            else {
                return;
            }
            // `inputchannel` or `appchannel`.
            const announce = () => {
                this.dispatchEvent(new CustomEvent(`${label}channel`, { detail: { channel } }));
            };
            if (channel.readyState === 'open') {
                announce();
            }
            else {
                channel.addEventListener('open', announce, { once: true });
            }
        });
        pc.addEventListener('connectionstatechange', () => {
            switch (pc.connectionState) {
                case 'connected':
                    if (this.#state === SessionState.NEGOTIATING) {
                        clearTimeout(this.#connectTimer);
                        this.#setState(SessionState.STREAMING);
                    }
                    break;
                case 'disconnected':
                    this.#notice('the media connection is interrupted; trying to recover');
                    break;
                case 'failed':
                    this.#fail('the media connection failed (no network path to the streaming server)');
                    break;
                default:
                    break;
            }
        });
        return pc;
    }

    #enqueue(task) {
        this.#work = this.#work.then(async () => {
            if (isFinal(this.#state)) {
                return;
            }
            try {
                await task();
            } catch (err) {
                this.#fail(`negotiation failed: ${err.message}`);
            }
        });
    }

    #notice(message) {
        this.dispatchEvent(new CustomEvent('notice', { detail: { message } }));
    }

    #fail(reason) {
        this.#end(SessionState.FAILED, reason);
    }

    #end(state, reason) {
        if (isFinal(this.#state)) {
            return;
        }
        clearTimeout(this.#connectTimer);
        this.#reason = reason;
        if (this.#signaling) {
            this.#signaling.send({ type: 'bye' });
            this.#signaling.close();
        }
        this.#inputChannel?.close();
        this.#appChannel?.close();
        this.#pc?.close();
        this.#setState(state);
    }

    #setState(state) {
        const previous = this.#state;
        if (!canTransition(previous, state)) {
            throw new Error(`invalid session transition ${previous} → ${state}`);
        }
        this.#state = state;
        this.dispatchEvent(new CustomEvent('statechange', {
            detail: { state, previous, reason: this.#reason },
        }));
    }
}
