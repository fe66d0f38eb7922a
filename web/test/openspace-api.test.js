import assert from 'node:assert/strict';
import { test } from 'node:test';

import OpenSpaceApi, {
    CALL_TIMEOUT_MS, OpenSpaceApiError, openSpaceApiUrl, returnValues,
} from '../js/openspace-api.js';

const UUID = 'b829c4a1-5867-477b-a555-25fe2b5f9555';

/** A WebSocket stand-in the test drives by hand; it records what the client sends. */
class FakeSocket extends EventTarget {
    static made = [];

    constructor(url) {
        super();
        this.url = url;
        this.readyState = 0;
        this.sent = [];
        FakeSocket.made.push(this);
    }

    open() {
        this.readyState = 1;
        this.dispatchEvent(new Event('open'));
    }

    send(text) {
        this.sent.push(JSON.parse(text));
    }

    answer(value) {
        const event = new Event('message');
        event.data = typeof value === 'string' ? value : JSON.stringify(value);
        this.dispatchEvent(event);
    }

    drop(code = 1006, reason = '') {
        this.readyState = 3;
        const event = new Event('close');
        event.code = code;
        event.reason = reason;
        this.dispatchEvent(event);
    }

    close(code) {
        this.drop(code, '');
    }
}

async function connected() {
    FakeSocket.made = [];
    const api = new OpenSpaceApi('ws://x/api/instances/u/openspace?token=s1', { WebSocket: FakeSocket });
    const opening = api.connect();
    FakeSocket.made[0].open();
    await opening;
    return { api, socket: FakeSocket.made[0] };
}

test('the URL is the page origin\'s proxy path with the token, ws or wss like the page', () => {
    assert.equal(openSpaceApiUrl({ protocol: 'http:', host: '127.0.0.1:4690' }, UUID, 'sTOKEN'),
        `ws://127.0.0.1:4690/api/instances/${UUID}/openspace?token=sTOKEN`);
    assert.equal(openSpaceApiUrl({ protocol: 'https:', host: 'example.org' }, UUID, 's1'),
        `wss://example.org/api/instances/${UUID}/openspace?token=s1`);
});

test('return values come in OpenSpace\'s order, "1" first, other keys ignored', () => {
    assert.deepEqual(returnValues({ 2: 'b', 1: 'a', 10: 'j', x: 'no' }), ['a', 'b', 'j']);
    assert.deepEqual(returnValues({}), []);
    assert.deepEqual(returnValues(null), []);
    assert.deepEqual(returnValues({ '01': 'no', 0: 'no' }), []);
});

test('a Lua call is OpenSpace\'s luascript message, and its answer is matched by topic', async () => {
    const { api, socket } = await connected();
    const first = api.runLua('return openspace.time.UTC()');
    const second = api.runLua('return 1, 2');
    assert.deepEqual(socket.sent, [
        // OpenSpace closes a connection whose first message is not the handshake.
        { type: 'apiHandshake', apiVersion: { major: 1, minor: 0, patch: 0 } },
        { topic: 1, type: 'luascript', payload: { script: 'return openspace.time.UTC()', return: true } },
        { topic: 2, type: 'luascript', payload: { script: 'return 1, 2', return: true } },
    ]);
    // Answers may come in any order; each goes to its own call.
    socket.answer({ payload: { 1: 1, 2: 2 }, topic: 2 });
    socket.answer({ payload: { 1: '2026-01-01T00:00:00' }, topic: 1 });
    assert.deepEqual(await second, [1, 2]);
    assert.deepEqual(await first, ['2026-01-01T00:00:00']);

    // A quiet call waits for nothing and still takes a topic of its own.
    api.runLuaQuietly('openspace.time.setPause(true)');
    assert.deepEqual(socket.sent.at(-1),
        { topic: 3, type: 'luascript', payload: { script: 'openspace.time.setPause(true)' } });

    // Messages for no call are passed on; junk is dropped.
    const others = [];
    api.addEventListener('message', (e) => others.push(e.detail));
    socket.answer({ topic: 99, payload: { value: 1 } });
    socket.answer('not json');
    assert.deepEqual(others, [{ topic: 99, payload: { value: 1 } }]);
});

test('errors in OpenSpace\'s shape reject the call with their code', async () => {
    const { api, socket } = await connected();
    const call = api.runLua('x'.repeat(10));
    socket.answer({ code: 413, message: 'message of 70000 bytes is larger than the limit of 65536', status: 'error', topic: 1 });
    await assert.rejects(call, (err) => err instanceof OpenSpaceApiError && err.code === 413
        && /larger than the limit/.test(err.message));
});

test('a refused connection, a closed one and a silent instance reject with a reason', async (t) => {
    FakeSocket.made = [];
    const refused = new OpenSpaceApi('ws://x/y', { WebSocket: FakeSocket });
    const opening = refused.connect();
    FakeSocket.made[0].drop(1006);
    await assert.rejects(opening, /refused the connection.*owner/);
    assert.throws(() => refused.runLua('return 1'), /not connected/);

    const { api, socket } = await connected();
    const closedInfo = [];
    api.addEventListener('closed', (e) => closedInfo.push(e.detail));
    const pending = api.runLua('return 1');
    socket.drop(1000, 'the instance closed the connection');
    await assert.rejects(pending, /closed: the instance closed the connection \(topic 1 unanswered\)/);
    assert.deepEqual(closedInfo, [{ code: 1000, reason: 'the instance closed the connection' }]);

    t.mock.timers.enable({ apis: ['setTimeout'] });
    const quiet = await connected();
    const unanswered = quiet.api.runLua('return 1');
    t.mock.timers.tick(CALL_TIMEOUT_MS);
    await assert.rejects(unanswered, /no answer to topic 1 within/);
    // A late answer after the timeout is just another message.
    const late = [];
    quiet.api.addEventListener('message', (e) => late.push(e.detail));
    quiet.socket.answer({ payload: { 1: 1 }, topic: 1 });
    assert.equal(late.length, 1);
});
