/**
 * The `app` data channel (rust-core/SIGNALING.md, "The `app` data channel"): requests to the
 * host or about the controls, each answered by one `reply` with its id; and what the server
 * pushes, who has the controls and the host's status.
 *
 * Requests resolve with the reply, `{ok, message}`, whether the server did it or said why not
 * (`ok: false`); they reject only when no reply can come (the channel is not open or closed,
 * or none came in time), with a plain-words `Error`.
 *
 * @module app-channel
 */

/**
 * How long a request waits for its reply. rust-core answers for a host that stays silent
 * after 30 s, so this is only reached when the reply itself is lost.
 */
export const REPLY_TIMEOUT_MS = 35000;

/**
 * @typedef {object} Controls
 * @property {number | null} holder - the viewer whose input reaches the host, null for nobody
 * @property {{viewerId: number, role: 'owner' | 'spectator'}[]} viewers - everyone present,
 *   in join order
 */

/**
 * A `controls` message as the page uses it: malformed entries dropped, `holder` null for
 * nobody. Pure.
 * @param {object} message
 * @returns {Controls | null} null when it is no usable `controls` message
 */
export function controlsFrom(message) {
    if (!Array.isArray(message?.viewers)) {
        return null;
    }
    const viewers = message.viewers
        .filter((v) => Number.isInteger(v?.viewerId) && (v.role === 'owner' || v.role === 'spectator'))
        .map(({ viewerId, role }) => ({ viewerId, role }));
    const holder = Number.isInteger(message.holder) && message.holder > 0 ? message.holder : null;
    return { holder, viewers };
}

/**
 * The view names of a host's status (`views`, by convention): strings only, each once. Pure.
 * @param {object | null} status
 * @returns {string[]}
 */
export function viewsFrom(status) {
    const views = Array.isArray(status?.views) ? status.views : [];
    return [...new Set(views.filter((v) => typeof v === 'string' && v !== ''))];
}

/**
 * @fires AppChannel#controls - who has the controls changed (or was first told);
 *   `detail`: {@link Controls}
 * @fires AppChannel#status - the host published its status; `detail`: `{status}` (its object)
 * @fires AppChannel#close - the channel closed; pending requests were rejected
 */
export default class AppChannel extends EventTarget {
    #channel;
    #timeoutMs;
    #nextId = 1;
    /** Request id → `{resolve, reject, timer}`. */
    #pending = new Map();
    /** @type {Controls | null} */
    #controls = null;
    #status = null;
    #closed = false;
    #onMessage = (event) => this.#receive(event.data);
    #onClose = () => this.#shut('the app channel closed before the reply came');

    /**
     * @param {{readyState: string, send: (text: string) => void,
     *          addEventListener: Function, removeEventListener: Function}} channel - the
     *   RTCDataChannel labelled `app` (ViewerSession#appChannel)
     * @param {object} [options]
     * @param {number} [options.timeoutMs=REPLY_TIMEOUT_MS] - how long a request waits
     */
    constructor(channel, options = {}) {
        super();
        this.#channel = channel;
        this.#timeoutMs = options.timeoutMs ?? REPLY_TIMEOUT_MS;
        channel.addEventListener('message', this.#onMessage);
        channel.addEventListener('close', this.#onClose);
    }

    /** Who has the controls, as last told, or null before the server said. */
    get controls() {
        return this.#controls;
    }

    /** The host's status object as last published, or null before. */
    get status() {
        return this.#status;
    }

    /** Requests sent and not answered yet. */
    get pendingCount() {
        return this.#pending.size;
    }

    /**
     * Runs a script in the host (Lua in OpenSpace). Owners only.
     * @param {string} script
     * @returns {Promise<{ok: boolean, message: string}>} `message`: the host's result text,
     *   or why not
     */
    runScript(script) {
        return this.request({ type: 'runScript', script });
    }

    /**
     * Flies to a view the host named in its status. Owners only.
     * @param {string} view
     */
    goToView(view) {
        return this.request({ type: 'goToView', view });
    }

    /**
     * Hands the controls to another viewer (a spectator too). Owners only.
     * @param {number} viewerId
     */
    passControl(viewerId) {
        return this.request({ type: 'passControl', viewerId });
    }

    /** Takes the controls back. Owners only. */
    takeControl() {
        return this.request({ type: 'takeControl' });
    }

    /**
     * Sends one request with a fresh id.
     * @param {{type: string}} request - without `id`
     * @returns {Promise<{ok: boolean, message: string}>}
     */
    request(request) {
        if (this.#closed || this.#channel.readyState !== 'open') {
            return Promise.reject(new Error('the app channel is not open'));
        }
        const id = this.#nextId;
        this.#nextId += 1;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.#pending.delete(id);
                reject(new Error(`no reply to ${request.type} within ${Math.round(this.#timeoutMs / 1000)} s`));
            }, this.#timeoutMs);
            this.#pending.set(id, { resolve, reject, timer });
            try {
                this.#channel.send(JSON.stringify({ ...request, id }));
            } catch (err) {
                clearTimeout(timer);
                this.#pending.delete(id);
                reject(new Error(`could not send ${request.type}: ${err.message}`));
            }
        });
    }

    /** Stops listening; pending requests are rejected. The channel itself is the session's. */
    close() {
        this.#shut('the app channel was closed by the page');
    }

    #shut(why) {
        if (this.#closed) {
            return;
        }
        this.#closed = true;
        this.#channel.removeEventListener('message', this.#onMessage);
        this.#channel.removeEventListener('close', this.#onClose);
        for (const { reject, timer } of this.#pending.values()) {
            clearTimeout(timer);
            reject(new Error(why));
        }
        this.#pending.clear();
        this.dispatchEvent(new CustomEvent('close'));
    }

    #receive(data) {
        let message;
        try {
            message = JSON.parse(data);
        } catch {
            console.warn('app channel: a message that is not JSON; ignored');
            return;
        }
        switch (message?.type) {
            case 'reply': {
                const waiting = this.#pending.get(message.id);
                if (!waiting) {
                    // Id 0: the server could not read a request at all. Nothing to match.
                    console.warn(`app channel: a reply to no request (${message.id}): ${message.message ?? ''}`);
                    return;
                }
                this.#pending.delete(message.id);
                clearTimeout(waiting.timer);
                waiting.resolve({
                    ok: message.ok === true,
                    message: typeof message.message === 'string' ? message.message : '',
                });
                break;
            }
            case 'controls': {
                const controls = controlsFrom(message);
                if (controls) {
                    this.#controls = controls;
                    this.dispatchEvent(new CustomEvent('controls', { detail: controls }));
                }
                break;
            }
            case 'status':
                if (message.status && typeof message.status === 'object') {
                    this.#status = message.status;
                    this.dispatchEvent(new CustomEvent('status', { detail: { status: message.status } }));
                }
                break;
            default:
                // A newer server may say more; this page knows these.
                break;
        }
    }
}
