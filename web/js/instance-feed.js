/**
 * The orchestrator's push channel for pages (`/api/events` or `/api/instances/<uuid>/events`):
 * a WebSocket of JSON messages that reconnects by itself, so a page follows its instances
 * without polling and survives an orchestrator restart.
 *
 * @module instance-feed
 */

/** Waits between reconnection attempts, ms; the last repeats. */
export const RECONNECT_DELAYS_MS = Object.freeze([250, 500, 1000, 2000, 4000]);

/**
 * The wait before reconnection attempt `attempt` (1 for the first).
 * @param {number} attempt
 * @param {readonly number[]} [delays=RECONNECT_DELAYS_MS]
 * @returns {number}
 */
export function reconnectDelay(attempt, delays = RECONNECT_DELAYS_MS) {
    return delays[Math.min(Math.max(attempt, 1), delays.length) - 1];
}

/**
 * @fires InstanceFeed#message - a message from the server; `detail`: the parsed object
 * @fires InstanceFeed#connection - connected or lost; `detail`: `{connected, attempt}`
 * @fires InstanceFeed#refused - the server refused the socket before it opened (token not
 *   valid for this instance, or the instance does not exist); no more attempts are made
 *   after the first connection was refused
 */
export default class InstanceFeed extends EventTarget {
    #url;
    #socket = null;
    #attempt = 0;
    #timer = null;
    #closed = false;
    #everOpened = false;
    #WebSocket;

    /**
     * @param {string} url - `ws(s)://…/events?token=…`
     * @param {object} [options]
     * @param {typeof WebSocket} [options.WebSocket] - for tests
     */
    constructor(url, options = {}) {
        super();
        this.#url = url;
        this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    }

    /** True while the socket is open. */
    get connected() {
        return this.#socket?.readyState === 1;
    }

    /** Opens the socket (and keeps reopening it until {@link close}). */
    start() {
        this.#closed = false;
        this.#open();
    }

    /** Closes for good. */
    close() {
        this.#closed = true;
        clearTimeout(this.#timer);
        this.#socket?.close(1000);
        this.#socket = null;
    }

    #open() {
        const socket = new this.#WebSocket(this.#url);
        this.#socket = socket;
        let opened = false;
        socket.addEventListener('open', () => {
            opened = true;
            this.#everOpened = true;
            this.#attempt = 0;
            this.dispatchEvent(new CustomEvent('connection', { detail: { connected: true, attempt: 0 } }));
        });
        socket.addEventListener('message', (event) => {
            let message;
            try {
                message = JSON.parse(event.data);
            } catch {
                return;
            }
            this.dispatchEvent(new CustomEvent('message', { detail: message }));
        });
        socket.addEventListener('close', () => {
            if (this.#socket !== socket || this.#closed) {
                return;
            }
            this.#socket = null;
            // Refused at the very first try: the token does not open this instance. Later
            // refusals are an orchestrator coming back up; keep trying.
            if (!opened && !this.#everOpened) {
                this.dispatchEvent(new CustomEvent('refused'));
                return;
            }
            this.#attempt += 1;
            this.dispatchEvent(new CustomEvent('connection', {
                detail: { connected: false, attempt: this.#attempt },
            }));
            this.#timer = setTimeout(() => this.#open(), reconnectDelay(this.#attempt));
        });
    }
}
