import assert from 'node:assert/strict';
import { test } from 'node:test';

import ProductApi, {
    ApiError, SESSION_KEY, describeInstance, instanceIdFromPath, isLive, shareTokenFromHash,
    socketUrl, startupProgress, streamSize,
} from '../js/product-api.js';

const UUID = 'b829c4a1-5867-477b-a555-25fe2b5f9555';

/** A Storage stand-in. */
function memoryStorage(initial = {}) {
    const map = new Map(Object.entries(initial));
    return {
        getItem: (k) => (map.has(k) ? map.get(k) : null),
        setItem: (k, v) => map.set(k, String(v)),
        removeItem: (k) => map.delete(k),
        map,
    };
}

/** A fetch stand-in answering from `routes` (`'METHOD /path'` → [status, body]), recording calls. */
function fakeFetch(routes) {
    const calls = [];
    const fetch = async (url, init) => {
        calls.push({ url, ...init });
        const key = `${init.method} ${url}`;
        const answer = typeof routes[key] === 'function' ? routes[key](init) : routes[key];
        if (!answer) {
            throw new TypeError('Failed to fetch');
        }
        const [status, body] = answer;
        return {
            ok: status >= 200 && status < 300,
            status,
            json: async () => body,
        };
    };
    return { fetch, calls };
}

test('share tokens come from the fragment, instance ids from the path', () => {
    assert.equal(shareTokenFromHash('#view=vabc123'), 'vabc123');
    assert.equal(shareTokenFromHash(''), null);
    assert.equal(shareTokenFromHash('#view=<script>'), null);
    assert.equal(instanceIdFromPath(`/stream/${UUID}`), UUID);
    assert.equal(instanceIdFromPath(`/stream/${UUID}/`), UUID);
    assert.equal(instanceIdFromPath('/stream/not-a-uuid'), null);
    assert.equal(instanceIdFromPath(`/stream/${UUID.toUpperCase()}`), null);
});

test('socket URLs follow the page: ws for http, wss for https, token in the query', () => {
    assert.equal(socketUrl({ protocol: 'http:', host: '127.0.0.1:4690' }, '/api/events', 'sTOKEN'),
        'ws://127.0.0.1:4690/api/events?token=sTOKEN');
    assert.equal(socketUrl({ protocol: 'https:', host: 'example.org' }, `/api/instances/${UUID}/signal`, 'v1'),
        `wss://example.org/api/instances/${UUID}/signal?token=v1`);
});

/** The limit an instance sends in its welcome by default. */
const LIMIT = { maxWidth: 3840, maxHeight: 2160 };

test('the stream size is the window in device pixels, even and within limits', () => {
    assert.deepEqual(streamSize(800, 450, 1, LIMIT), { width: 800, height: 450 });
    assert.deepEqual(streamSize(801, 451, 1, LIMIT), { width: 800, height: 450 });
    assert.deepEqual(streamSize(1280, 720, 2, LIMIT), { width: 2560, height: 1440 });
    assert.deepEqual(streamSize(1000.7, 500.2, 1.25, LIMIT), { width: 1250, height: 624 });
    // Too large: scaled down with its aspect ratio.
    assert.deepEqual(streamSize(5000, 2500, 2, LIMIT), { width: 3840, height: 1920 });
    assert.deepEqual(streamSize(10, 0, 1, LIMIT), { width: 64, height: 64 });
    assert.deepEqual(streamSize(800, 600, 0, LIMIT), { width: 800, height: 600 });
    // A tall window stays tall when it must shrink.
    assert.deepEqual(streamSize(1000, 2000, 2, LIMIT), { width: 1080, height: 2160 });
});

test('startup progress grows, slows past the expected time and never completes', () => {
    assert.equal(startupProgress(0, 5000), 0);
    assert.equal(startupProgress(2500, 5000), 0.4);
    assert.equal(startupProgress(5000, 5000), 0.8);
    assert.ok(startupProgress(10000, 5000) > 0.8);
    assert.ok(startupProgress(1e9, 5000) <= 0.97);
    assert.ok(startupProgress(5000, 0) > 0);
    assert.equal(startupProgress(-10, 5000), 0);
});

test('instances are described in words', () => {
    assert.deepEqual(describeInstance({ status: 'INITIALIZING' }), { text: 'Starting…', kind: 'progress' });
    assert.equal(describeInstance({ status: 'RUNNING', viewers: 0 }).text, 'Running, no viewer');
    assert.equal(describeInstance({ status: 'RUNNING', viewers: 2 }).text, 'Running, 2 viewers');
    assert.equal(describeInstance({ status: 'ENDED', reason: 'Stopped by its owner.' }).text, 'Stopped by its owner.');
    assert.equal(describeInstance({ status: 'ENDED' }).kind, 'ended');
    assert.equal(isLive({ status: 'DEINITIALIZING' }), true);
    assert.equal(isLive({ status: 'ENDED' }), false);
});

test('a session is created once and kept; calls carry it as a bearer token', async () => {
    const storage = memoryStorage();
    const { fetch, calls } = fakeFetch({
        'POST /api/sessions': [201, { token: 'sNEW' }],
        'GET /api/instances': [200, { instances: [{ id: UUID }] }],
        'POST /api/instances': [201, { id: UUID, status: 'INITIALIZING' }],
    });
    const api = new ProductApi({ fetch, storage });
    assert.equal(api.token, null);
    assert.deepEqual(await api.listInstances(), [{ id: UUID }]);
    assert.equal(storage.getItem(SESSION_KEY), 'sNEW');
    await api.launch();
    assert.equal(calls.filter((c) => c.url === '/api/sessions').length, 1);
    assert.equal(calls[1].headers.Authorization, 'Bearer sNEW');
    assert.equal(calls[2].method, 'POST');
});

test('a token the server forgot is replaced by a new session', async () => {
    const storage = memoryStorage({ [SESSION_KEY]: 'sOLD' });
    const { fetch } = fakeFetch({
        'POST /api/sessions': [201, { token: 'sNEW' }],
        'GET /api/instances': (init) => (init.headers.Authorization === 'Bearer sOLD'
            ? [401, { error: 'unknown session token' }]
            : [200, { instances: [] }]),
    });
    const api = new ProductApi({ fetch, storage });
    assert.deepEqual(await api.listInstances(), []);
    assert.equal(api.token, 'sNEW');
});

test('errors carry the server\'s sentence and status', async () => {
    const storage = memoryStorage({ [SESSION_KEY]: 'sTOK' });
    const { fetch, calls } = fakeFetch({
        'POST /api/instances': [503, { error: 'no rendering server has a free slot; stop an instance or try again later' }],
        [`POST /api/instances/${UUID}/resolution`]: [409, { error: 'the instance is stopping, not running' }],
    });
    const api = new ProductApi({ fetch, storage });
    await assert.rejects(api.launch(), (err) => err instanceof ApiError && err.status === 503
        && err.message.startsWith('no rendering server'));
    await assert.rejects(api.resize(UUID, 640, 480), { status: 409 });
    assert.deepEqual(JSON.parse(calls.at(-1).body), { width: 640, height: 480 });
    await assert.rejects(api.stop(UUID), (err) => err.status === 0 && /cannot be reached/.test(err.message));
});
