/**
 * The product's API client (the orchestrator's `/api/…`, see orchestrator/src/web/api.rs)
 * and the pure helpers the home and stream pages share.
 *
 * The browser keeps one thing: an opaque session token in localStorage. Never a server
 * address, a port or a process id; the orchestrator proxies everything under one origin.
 *
 * @module product-api
 */

/** localStorage key of the session token. */
export const SESSION_KEY = 'osw.sessionToken';

/** Smallest stream size worth asking for (the GL test host refuses less than 64). */
export const MIN_DIMENSION = 64;

/**
 * The share token in a stream page's fragment (`#view=<token>`), or null. The fragment
 * never reaches a server, so the link's token does not end up in logs.
 * @param {string} hash - `location.hash`
 * @returns {string | null}
 */
export function shareTokenFromHash(hash) {
    const params = new URLSearchParams((hash ?? '').replace(/^#/, ''));
    const token = params.get('view');
    return token && /^[A-Za-z0-9]+$/.test(token) ? token : null;
}

/**
 * The instance UUID of a stream page's path (`/stream/<uuid>`), or null.
 * @param {string} pathname - `location.pathname`
 * @returns {string | null}
 */
export function instanceIdFromPath(pathname) {
    const match = /^\/stream\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\/?$/
        .exec(pathname ?? '');
    return match ? match[1] : null;
}

/**
 * A WebSocket URL on the page's own origin: `ws:` for `http:`, `wss:` for `https:`.
 * @param {{protocol: string, host: string}} location - the page's `location`
 * @param {string} path - e.g. `/api/instances/<uuid>/signal`
 * @param {string} token - session or share token, sent as `?token=` (browsers cannot give a
 *   WebSocket an Authorization header)
 * @returns {string}
 */
export function socketUrl(location, path, token) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = new URL(`${scheme}//${location.host}${path}`);
    url.searchParams.set('token', token);
    return url.href;
}

/**
 * The stream size for a window: device pixels, so the picture is sharp on HiDPI screens,
 * rounded down to even numbers (4:2:0 video needs them) and kept within the instance's
 * limit (the `limit` of the viewer's `welcome`, which comes from the protocol crate), the
 * aspect ratio kept when it must shrink. The instance applies the same rule; asking for
 * exactly what it will give spares a resize that would never be confirmed.
 * @param {number} cssWidth - `innerWidth`
 * @param {number} cssHeight - `innerHeight`
 * @param {number} ratio - `devicePixelRatio`
 * @param {{maxWidth: number, maxHeight: number}} limit - from the welcome
 * @returns {{width: number, height: number}}
 */
export function streamSize(cssWidth, cssHeight, ratio, limit) {
    let width = Math.max(1, cssWidth * (ratio > 0 ? ratio : 1));
    let height = Math.max(1, cssHeight * (ratio > 0 ? ratio : 1));
    const shrink = Math.min(1, limit.maxWidth / width, limit.maxHeight / height);
    width *= shrink;
    height *= shrink;
    const even = (n) => Math.max(MIN_DIMENSION, Math.floor(n / 2) * 2);
    return { width: even(width), height: even(height) };
}

/**
 * Where the waiting view's bar is: elapsed over the expected startup time, slowing down near
 * the end instead of stopping, and never full before the instance is.
 * @param {number} elapsedMs
 * @param {number} expectedMs - the server's recent startup time (0 when unknown)
 * @returns {number} 0 … 0.97
 */
export function startupProgress(elapsedMs, expectedMs) {
    const expected = expectedMs > 0 ? expectedMs : 10000;
    const x = Math.max(0, elapsedMs) / expected;
    // Linear to 80 % at the expected time, then an ever slower approach.
    const value = x <= 1 ? 0.8 * x : 0.8 + 0.17 * (1 - Math.exp(-(x - 1)));
    return Math.min(0.97, value);
}

/**
 * An instance's status in words, for lists and badges.
 * @param {{status: string, reason?: string | null, viewers?: number}} view
 * @returns {{text: string, kind: 'progress' | 'ok' | 'ended'}}
 */
export function describeInstance(view) {
    switch (view.status) {
        case 'INITIALIZING':
            return { text: 'Starting…', kind: 'progress' };
        case 'RUNNING': {
            const n = view.viewers ?? 0;
            const who = n === 0 ? 'no viewer' : n === 1 ? '1 viewer' : `${n} viewers`;
            return { text: `Running, ${who}`, kind: 'ok' };
        }
        case 'DEINITIALIZING':
            return { text: 'Stopping…', kind: 'progress' };
        default:
            return { text: view.reason || 'Ended.', kind: 'ended' };
    }
}

/**
 * The `iceServers` of an `…/ice-servers` answer, as `RTCPeerConnection` takes them. Entries
 * that are not `{urls, username?, credential?}` of strings are dropped rather than handed to
 * the browser, which would throw on them and fail the whole connection.
 * @param {unknown} answer - `{"iceServers": [...]}`
 * @returns {RTCIceServer[]}
 */
export function iceServersFrom(answer) {
    const list = Array.isArray(answer?.iceServers) ? answer.iceServers : [];
    const servers = [];
    for (const entry of list) {
        const urls = typeof entry?.urls === 'string' ? [entry.urls] : entry?.urls;
        if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
            continue;
        }
        const server = { urls: [...urls] };
        if (entry.username !== undefined || entry.credential !== undefined) {
            if (typeof entry.username !== 'string' || typeof entry.credential !== 'string') {
                continue;
            }
            server.username = entry.username;
            server.credential = entry.credential;
        }
        servers.push(Object.freeze(server));
    }
    return servers;
}

/** How long the page waits for its ICE servers before it connects without them. */
export const ICE_SERVERS_TIMEOUT_MS = 5000;

/** Whether an instance can still be watched or stopped. */
export function isLive(view) {
    return view.status !== 'ENDED';
}

/** An error answer of the API: `message` is the server's sentence. */
export class ApiError extends Error {
    /**
     * @param {number} status - HTTP status (0: no answer)
     * @param {string} message
     */
    constructor(status, message) {
        super(message);
        this.name = 'ApiError';
        this.status = status;
    }
}

/**
 * The API, for one browser session.
 */
export default class ProductApi {
    #fetch;
    #storage;
    #base;

    /**
     * @param {object} [options]
     * @param {typeof fetch} [options.fetch] - default: the window's
     * @param {Storage} [options.storage] - where the session token is kept; default
     *   localStorage
     * @param {string} [options.base=''] - prefix of API paths (tests)
     */
    constructor(options = {}) {
        this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
        this.#storage = options.storage ?? globalThis.localStorage;
        this.#base = options.base ?? '';
    }

    /** The stored session token, or null. */
    get token() {
        return this.#storage.getItem(SESSION_KEY);
    }

    /** Forgets the session token (the server no longer knows it). */
    forgetSession() {
        this.#storage.removeItem(SESSION_KEY);
    }

    /**
     * The session token, asking the server for a new session when there is none.
     * @returns {Promise<string>}
     */
    async ensureSession() {
        const stored = this.token;
        if (stored) {
            return stored;
        }
        const { token } = await this.request('POST', '/api/sessions');
        this.#storage.setItem(SESSION_KEY, token);
        return token;
    }

    /**
     * One API call. Resolves with the parsed answer; rejects with an {@link ApiError}
     * carrying the server's sentence.
     * @param {string} method
     * @param {string} path
     * @param {{token?: string | null, body?: object, signal?: AbortSignal}} [options]
     */
    async request(method, path, { token = null, body, signal } = {}) {
        const headers = { Accept: 'application/json' };
        if (token) {
            headers.Authorization = `Bearer ${token}`;
        }
        if (body !== undefined) {
            headers['Content-Type'] = 'application/json';
        }
        let response;
        try {
            response = await this.#fetch(`${this.#base}${path}`, {
                method,
                headers,
                body: body === undefined ? undefined : JSON.stringify(body),
                cache: 'no-store',
                signal,
            });
        } catch (err) {
            throw new ApiError(0, `the orchestrator cannot be reached (${err.message})`);
        }
        let data = null;
        try {
            data = await response.json();
        } catch {
            // An answer without JSON: the status says enough.
        }
        if (!response.ok) {
            const message = typeof data?.error === 'string' ? data.error : `HTTP ${response.status}`;
            throw new ApiError(response.status, message);
        }
        return data;
    }

    /**
     * Calls with the session token; a token the server no longer knows (its database was
     * reset) is replaced by a new session once.
     */
    async #withSession(method, path, body) {
        const token = await this.ensureSession();
        try {
            return await this.request(method, path, { token, body });
        } catch (err) {
            if (err instanceof ApiError && err.status === 401) {
                this.forgetSession();
                const fresh = await this.ensureSession();
                return this.request(method, path, { token: fresh, body });
            }
            throw err;
        }
    }

    /** This browser's instances, newest first. */
    async listInstances() {
        const { instances } = await this.#withSession('GET', '/api/instances');
        return instances;
    }

    /** Launches an instance; resolves with its view (`id`, `url`, `status`…). */
    launch() {
        return this.#withSession('POST', '/api/instances');
    }

    /** Stops an instance; resolves with its final view. */
    stop(id) {
        return this.request('DELETE', `/api/instances/${id}`, { token: this.token });
    }

    /** A view-only link: `{token, url}`. */
    share(id) {
        return this.request('POST', `/api/instances/${id}/share`, { token: this.token });
    }

    /**
     * One instance, with `access` ('owner' or 'viewer').
     * @param {string} id
     * @param {string} token - session or share token
     */
    instance(id, token) {
        return this.request('GET', `/api/instances/${id}`, { token });
    }

    /**
     * The STUN/TURN servers for one connection to an instance, with TURN credentials made
     * for it (they expire: ask again before every connection). `[]` when the orchestrator
     * has none configured.
     * @param {string} id
     * @param {string} token - session or share token
     * @param {{timeoutMs?: number}} [options]
     * @returns {Promise<RTCIceServer[]>}
     */
    async iceServers(id, token, { timeoutMs = ICE_SERVERS_TIMEOUT_MS } = {}) {
        const answer = await this.request('GET', `/api/instances/${id}/ice-servers`, {
            token,
            signal: AbortSignal.timeout(timeoutMs),
        });
        return iceServersFrom(answer);
    }

    /** Asks for a stream size; resolves once the stream has it. */
    resize(id, width, height) {
        return this.request('POST', `/api/instances/${id}/resolution`, {
            token: this.token,
            body: { width, height },
        });
    }
}
