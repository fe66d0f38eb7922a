/**
 * A client of an instance's own OpenSpace JSON API, through the orchestrator's proxy
 * (`/api/instances/<uuid>/openspace?token=…`, the owner's session token only; see
 * orchestrator/README.md). The page never learns the instance's address or port.
 *
 * OpenSpace's protocol (its `server` module): each message is `{"topic": <integer>, "type":
 * "<topic type>", "payload": {...}}`; answers carry the same topic. A Lua call is the
 * `luascript` type with `{"script": "...", "return": true}`, answered `{"topic": n,
 * "payload": {"1": v1, "2": v2, …}}` (the script's return values; `{}` when it failed), or,
 * for what cannot be served, `{"topic": n, "status": "error", "message", "code"}`.
 *
 * @module openspace-api
 */

import { socketUrl } from './product-api.js';

/** How long a call waits for its answer by default, ms. */
/** The JSON API version this client speaks, sent in the `apiHandshake` OpenSpace expects. */
export const API_VERSION = Object.freeze({ major: 1, minor: 0, patch: 0 });

export const CALL_TIMEOUT_MS = 10000;

/**
 * The proxy's URL for instance `instanceId`, on the page's own origin.
 * @param {{protocol: string, host: string}} location - the page's `location`
 * @param {string} instanceId - the instance's UUID
 * @param {string} token - the owner's session token
 * @returns {string}
 */
export function openSpaceApiUrl(location, instanceId, token) {
    return socketUrl(location, `/api/instances/${instanceId}/openspace`, token);
}

/**
 * A script's return values from a `luascript` answer's payload, in order: OpenSpace keys
 * them "1", "2", …
 * @param {object} payload
 * @returns {unknown[]}
 */
export function returnValues(payload) {
    if (payload === null || typeof payload !== 'object') {
        return [];
    }
    return Object.keys(payload)
        .filter((key) => /^[1-9][0-9]*$/.test(key))
        .sort((a, b) => Number(a) - Number(b))
        .map((key) => payload[key]);
}

/** OpenSpace (or the proxy, in OpenSpace's words) refused a call, or it went unanswered. */
export class OpenSpaceApiError extends Error {
    /**
     * @param {string} message
     * @param {number | null} [code] - the answer's `code` (HTTP's numbers), null when the
     *   connection failed or the call timed out
     */
    constructor(message, code = null) {
        super(message);
        this.name = 'OpenSpaceApiError';
        this.code = code;
    }
}

/**
 * One connection to an instance's OpenSpace API.
 *
 * @fires OpenSpaceApi#message - a message that answers no call of this client (a
 *   subscription's update, for example); `detail`: the parsed object
 * @fires OpenSpaceApi#closed - the connection ended; `detail`: `{code, reason}`
 */
export default class OpenSpaceApi extends EventTarget {
    #url;
    #WebSocket;
    #timeoutMs;
    #socket = null;
    #nextTopic = 1;
    /** Calls waiting for their answer, by topic: `{resolve, reject, timer}`. */
    #pending = new Map();
    #opening = null;

    /**
     * @param {string} url - from {@link openSpaceApiUrl}
     * @param {object} [options]
     * @param {typeof WebSocket} [options.WebSocket] - for tests
     * @param {number} [options.timeoutMs=CALL_TIMEOUT_MS] - per call
     */
    constructor(url, options = {}) {
        super();
        this.#url = url;
        this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
        this.#timeoutMs = options.timeoutMs ?? CALL_TIMEOUT_MS;
    }

    /**
     * Opens the connection. Rejects when it is refused or closed before it opened: the
     * proxy refuses a share link's token, another session's, and an instance that is not
     * running; a browser cannot read why, so the message says what may be the cause.
     * @returns {Promise<void>}
     */
    connect() {
        if (this.#opening) {
            return this.#opening;
        }
        this.#opening = new Promise((resolve, reject) => {
            const socket = new this.#WebSocket(this.#url);
            this.#socket = socket;
            let opened = false;
            socket.addEventListener('open', () => {
                opened = true;
                // OpenSpace closes a connection whose first message is not this handshake
                // ("Unsupported API version"); it stores the version and checks nothing else.
                socket.send(JSON.stringify({ type: 'apiHandshake', apiVersion: API_VERSION }));
                resolve();
            });
            socket.addEventListener('message', (event) => this.#received(event.data));
            socket.addEventListener('close', (event) => {
                const reason = event.reason || `code ${event.code ?? 'none'}`;
                if (!opened) {
                    reject(new OpenSpaceApiError('the OpenSpace API refused the connection '
                        + '(only the instance\'s owner may use it, while it runs)'));
                }
                this.#failPending(`the OpenSpace API connection closed: ${reason}`);
                this.#socket = null;
                this.dispatchEvent(new CustomEvent('closed', {
                    detail: { code: event.code ?? null, reason: event.reason ?? '' },
                }));
            });
        });
        return this.#opening;
    }

    /**
     * Runs `script` in OpenSpace and resolves with its return values.
     * @param {string} script - Lua, e.g. `return openspace.time.UTC()`
     * @returns {Promise<unknown[]>}
     */
    runLua(script) {
        const topic = this.#send('luascript', { script, return: true });
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.#pending.delete(topic);
                reject(new OpenSpaceApiError(`no answer to topic ${topic} within ${this.#timeoutMs} ms`));
            }, this.#timeoutMs);
            this.#pending.set(topic, { resolve, reject, timer });
        });
    }

    /**
     * Runs `script` without waiting for anything: OpenSpace answers nothing then.
     * @param {string} script
     */
    runLuaQuietly(script) {
        this.#send('luascript', { script });
    }

    /** Closes the connection; calls still waiting are rejected. */
    close() {
        this.#socket?.close(1000);
    }

    #send(type, payload) {
        if (this.#socket?.readyState !== 1) {
            throw new OpenSpaceApiError('the OpenSpace API is not connected');
        }
        const topic = this.#nextTopic;
        this.#nextTopic += 1;
        this.#socket.send(JSON.stringify({ topic, type, payload }));
        return topic;
    }

    #received(data) {
        let message;
        try {
            message = JSON.parse(data);
        } catch {
            return;
        }
        const call = this.#pending.get(message?.topic);
        if (!call) {
            this.dispatchEvent(new CustomEvent('message', { detail: message }));
            return;
        }
        this.#pending.delete(message.topic);
        clearTimeout(call.timer);
        if (message.status === 'error') {
            call.reject(new OpenSpaceApiError(String(message.message ?? 'error'), message.code ?? null));
        }
        else {
            call.resolve(returnValues(message.payload));
        }
    }

    #failPending(why) {
        for (const [topic, call] of this.#pending) {
            clearTimeout(call.timer);
            call.reject(new OpenSpaceApiError(`${why} (topic ${topic} unanswered)`));
        }
        this.#pending.clear();
    }
}
