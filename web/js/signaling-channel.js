/**
 * The signaling WebSocket of one viewer: JSON objects tagged by `type`, as documented in
 * `rust-core/SIGNALING.md`.
 *
 * @module signaling-channel
 */

/** Message types the server may send a viewer; each is dispatched as an event of that name. */
const SERVER_MESSAGE_TYPES = Object.freeze(['welcome', 'offer', 'ice', 'error', 'bye']);

/** WebSocket close code of a normal close (RFC 6455). */
const NORMAL_CLOSURE = 1000;

/**
 * Plain words for the close codes a viewer can meet; browsers hide the reason of a failed
 * connection, so the code is all there is.
 * @param {number} code
 * @returns {string}
 */
function describeClose(code) {
    switch (code) {
        case NORMAL_CLOSURE: return 'the server closed the connection';
        case 1001: return 'the server is going away';
        case 1006: return 'the connection was lost';
        case 1008: return 'the server refused the connection';
        case 1009: return 'a message was too large for the server';
        case 1011: return 'the server hit an internal error';
        default: return `the connection closed (code ${code})`;
    }
}

/**
 * The endpoint as shown in messages: without its query string or fragment, where a
 * credential may ride (the orchestrator's proxy takes `?token=`).
 * @param {string} url
 * @returns {string}
 */
function displayUrl(url) {
    return String(url).replace(/[?#].*$/s, '');
}

/**
 * @fires SignalingChannel#open - the socket is connected
 * @fires SignalingChannel#message - any message from the server; `detail` is the parsed object
 * @fires SignalingChannel#welcome - `detail`: `{viewerId, protocol}`
 * @fires SignalingChannel#offer - `detail`: `{sdp}`
 * @fires SignalingChannel#ice - `detail`: `{candidate, sdpMLineIndex}`
 * @fires SignalingChannel#error - the server refused something; `detail`: `{message, fatal}`
 * @fires SignalingChannel#bye - the server ends the session; `detail`: `{reason}`
 * @fires SignalingChannel#protocol-error - the server sent something that is not a JSON
 *   object with a `type`; `detail`: `{data, message}`
 * @fires SignalingChannel#close - the socket is closed, whoever closed it; `detail`:
 *   `{code, reason, wasClean, byUs, opened, message}` where `message` says what happened in
 *   plain words
 */
export default class SignalingChannel extends EventTarget {
    /** @type {WebSocket | null} */
    #socket = null;
    #url;
    #closedByUs = false;
    #opened = false;

    /**
     * @param {string} url - the endpoint, `ws://` or `wss://`
     */
    constructor(url) {
        super();
        this.#url = url;
    }

    /** The endpoint URL. */
    get url() {
        return this.#url;
    }

    /** True while the socket is open and messages can be sent. */
    get isOpen() {
        return this.#socket?.readyState === WebSocket.OPEN;
    }

    /**
     * Opens the socket. Resolves once it is open; rejects (and fires `close`) when it cannot
     * be opened.
     * @returns {Promise<void>}
     */
    open() {
        if (this.#socket) {
            return Promise.reject(new Error('the signaling channel was already opened'));
        }
        return new Promise((resolve, reject) => {
            let socket;
            try {
                socket = new WebSocket(this.#url);
            } catch (err) {
                // A malformed URL throws synchronously (SyntaxError).
                reject(new Error(`invalid signaling address ${displayUrl(this.#url)}: ${err.message}`));
                return;
            }
            this.#socket = socket;
            socket.addEventListener('open', () => {
                this.#opened = true;
                this.dispatchEvent(new Event('open'));
                resolve();
            });
            socket.addEventListener('message', (event) => this.#onMessage(event.data));
            socket.addEventListener('close', (event) => {
                const detail = {
                    code: event.code,
                    reason: event.reason,
                    wasClean: event.wasClean,
                    byUs: this.#closedByUs,
                    opened: this.#opened,
                    message: this.#opened
                        ? describeClose(event.code)
                        : `could not reach the streaming server at ${displayUrl(this.#url)}`,
                };
                this.dispatchEvent(new CustomEvent('close', { detail }));
                if (!this.#opened) {
                    reject(new Error(detail.message));
                }
            });
        });
    }

    /**
     * Sends one message. Returns false (and sends nothing) when the socket is not open,
     * because a message for a closing session has nowhere useful to go.
     * @param {object} message - a viewer request, e.g. `{type: 'join', viewOnly: false}`
     * @returns {boolean}
     */
    send(message) {
        if (!this.isOpen) {
            return false;
        }
        this.#socket.send(JSON.stringify(message));
        return true;
    }

    /**
     * Closes the socket normally. Safe to call more than once.
     * @param {string} [reason]
     */
    close(reason = '') {
        if (!this.#socket || this.#socket.readyState >= WebSocket.CLOSING) {
            return;
        }
        this.#closedByUs = true;
        this.#socket.close(NORMAL_CLOSURE, reason);
    }

    #onMessage(data) {
        let message;
        try {
            message = typeof data === 'string' ? JSON.parse(data) : null;
        } catch {
            message = null;
        }
        if (message === null || typeof message !== 'object' || typeof message.type !== 'string') {
            this.dispatchEvent(new CustomEvent('protocol-error', {
                detail: { data, message: 'the server sent a message that is not valid JSON with a type' },
            }));
            return;
        }
        this.dispatchEvent(new CustomEvent('message', { detail: message }));
        // Types this client does not know are left to `message` listeners: a newer server may
        // add some, and the viewer must keep working.
        if (SERVER_MESSAGE_TYPES.includes(message.type)) {
            this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
        }
    }
}
