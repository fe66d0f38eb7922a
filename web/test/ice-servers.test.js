import assert from 'node:assert/strict';
import { test } from 'node:test';

import ProductApi, { ApiError, iceServersFrom } from '../js/product-api.js';

const UUID = 'b829c4a1-5867-477b-a555-25fe2b5f9555';

/** A fetch stand-in: one answer per call from `answers`, each call recorded. */
function fakeFetch(...answers) {
    const calls = [];
    const fetch = async (url, init) => {
        calls.push({ url, ...init });
        const answer = answers.shift();
        if (answer instanceof Error) {
            throw answer;
        }
        const [status, body] = answer;
        return { ok: status >= 200 && status < 300, status, json: async () => body };
    };
    return { fetch, calls };
}

const storage = { getItem: () => null, setItem() {}, removeItem() {} };

const TURN = {
    urls: ['turn:10.0.0.1:3478?transport=udp'],
    username: '1700003600:3f2a9c1b7d4e5f60',
    credential: 'UZtqCfVrgV04H/Mu1E0r0pu1goI=',
};

test('ICE servers are taken as the orchestrator gives them, malformed entries dropped', () => {
    const stun = { urls: ['stun:10.0.0.1:3478'] };
    assert.deepEqual(iceServersFrom({ iceServers: [stun, TURN] }), [stun, TURN]);
    // A single URL string is what RTCIceServer also takes; kept as a list.
    assert.deepEqual(iceServersFrom({ iceServers: [{ urls: 'stun:x' }] }), [{ urls: ['stun:x'] }]);
    // Nothing configured, or nothing usable: connect as without them.
    assert.deepEqual(iceServersFrom({ iceServers: [] }), []);
    assert.deepEqual(iceServersFrom(null), []);
    assert.deepEqual(iceServersFrom({ iceServers: 'turn:x' }), []);
    assert.deepEqual(iceServersFrom({
        iceServers: [
            {},
            { urls: [] },
            { urls: [42] },
            { urls: ['turn:x'], username: 'u' },
            { urls: ['turn:x'], username: 'u', credential: 7 },
            stun,
        ],
    }), [stun]);
});

test('the page asks for them with its token, for the instance, every time', async () => {
    const { fetch, calls } = fakeFetch([200, { iceServers: [TURN] }], [200, { iceServers: [] }]);
    const api = new ProductApi({ fetch, storage });
    assert.deepEqual(await api.iceServers(UUID, 'vSHARE'), [TURN]);
    assert.deepEqual(await api.iceServers(UUID, 'sOWNER'), []);
    assert.equal(calls.length, 2);
    assert.equal(calls[0].url, `/api/instances/${UUID}/ice-servers`);
    assert.equal(calls[0].method, 'GET');
    assert.equal(calls[0].headers.Authorization, 'Bearer vSHARE');
    assert.equal(calls[0].cache, 'no-store');
    assert.ok(calls[0].signal instanceof AbortSignal, 'a request that hangs is given up');
    assert.equal(calls[1].headers.Authorization, 'Bearer sOWNER');
});

test('a refusal or no answer is an ApiError the page can fall back from', async () => {
    const { fetch } = fakeFetch([403, { error: 'this instance belongs to another browser session' }],
        new TypeError('Failed to fetch'));
    const api = new ProductApi({ fetch, storage });
    await assert.rejects(api.iceServers(UUID, 'sOTHER'),
        (err) => err instanceof ApiError && err.status === 403);
    await assert.rejects(api.iceServers(UUID, 'sOWNER'),
        (err) => err instanceof ApiError && err.status === 0);
});

test('a request that hangs is aborted after the timeout', async () => {
    const fetch = (_url, init) => new Promise((_resolve, reject) => {
        init.signal.addEventListener('abort', () => reject(init.signal.reason));
    });
    const api = new ProductApi({ fetch, storage });
    // Node does not wait for AbortSignal.timeout's timer (browsers have no such notion).
    const keepAlive = setTimeout(() => {}, 5000);
    try {
        await assert.rejects(api.iceServers(UUID, 'sOWNER', { timeoutMs: 20 }),
            (err) => err instanceof ApiError && err.status === 0);
    } finally {
        clearTimeout(keepAlive);
    }
});
