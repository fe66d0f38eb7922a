import assert from 'node:assert/strict';
import { mock, test } from 'node:test';

import AppChannel, { REPLY_TIMEOUT_MS, controlsFrom, viewsFrom } from '../js/app-channel.js';

/** An RTCDataChannel as far as AppChannel uses one: what the page sent, and the server's side. */
class FakeChannel extends EventTarget {
    readyState = 'open';
    sent = [];

    send(text) {
        if (this.readyState !== 'open') {
            throw new Error(`InvalidStateError: readyState is ${this.readyState}`);
        }
        this.sent.push(JSON.parse(text));
    }

    /** The server sends `message` (an object, or raw text). */
    deliver(message) {
        const event = new Event('message');
        event.data = typeof message === 'string' ? message : JSON.stringify(message);
        this.dispatchEvent(event);
    }

    closeFromServer() {
        this.readyState = 'closed';
        this.dispatchEvent(new Event('close'));
    }
}

/** Fails the test on a promise that settles now, before anything answers it. */
async function stillPending(promise) {
    const marker = Symbol('pending');
    const first = await Promise.race([promise.then(() => 'settled', () => 'settled'),
        new Promise((resolve) => { setImmediate(() => resolve(marker)); })]);
    return first === marker;
}

test('requests carry fresh ids and the documented fields', async () => {
    const channel = new FakeChannel();
    const app = new AppChannel(channel);
    const requests = [
        app.runScript('openspace.time.togglePause()'),
        app.goToView('Above'),
        app.passControl(5),
        app.takeControl(),
    ];
    assert.deepEqual(channel.sent, [
        { type: 'runScript', script: 'openspace.time.togglePause()', id: 1 },
        { type: 'goToView', view: 'Above', id: 2 },
        { type: 'passControl', viewerId: 5, id: 3 },
        { type: 'takeControl', id: 4 },
    ]);
    assert.equal(app.pendingCount, 4);
    app.close();
    const settled = await Promise.allSettled(requests);
    assert.deepEqual(settled.map((r) => r.reason?.message),
        Array(4).fill('the app channel was closed by the page'));
});

test('each request resolves from the reply with its id, in whatever order replies come', async () => {
    const channel = new FakeChannel();
    const app = new AppChannel(channel);
    const script = app.runScript('return 1');
    const view = app.goToView('Mars');
    channel.deliver({ type: 'reply', id: 2, ok: false, message: 'no view named "Mars"' });
    assert.deepEqual(await view, { ok: false, message: 'no view named "Mars"' });
    assert.ok(await stillPending(script), 'the script is still waiting for its own reply');
    channel.deliver({ type: 'reply', id: 1, ok: true, message: 'ran' });
    assert.deepEqual(await script, { ok: true, message: 'ran' });
    assert.equal(app.pendingCount, 0);
});

test('a reply without a message resolves with an empty one; a second reply is ignored', async () => {
    const channel = new FakeChannel();
    const app = new AppChannel(channel);
    const take = app.takeControl();
    channel.deliver({ type: 'reply', id: 1, ok: true });
    assert.deepEqual(await take, { ok: true, message: '' });
    channel.deliver({ type: 'reply', id: 1, ok: false, message: 'late' });
    assert.equal(app.pendingCount, 0);
});

test('a refusal the server could not match (id 0) or junk leaves requests waiting', async (t) => {
    t.mock.method(console, 'warn', () => {});
    const channel = new FakeChannel();
    const app = new AppChannel(channel);
    const script = app.runScript('x');
    channel.deliver({ type: 'reply', id: 0, ok: false, message: 'not an app request' });
    channel.deliver('{not json');
    channel.deliver({ type: 'somethingNewer', id: 1 });
    assert.ok(await stillPending(script));
    app.close();
    await assert.rejects(script);
});

test('no reply in time rejects with a clear error', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
        const channel = new FakeChannel();
        const app = new AppChannel(channel);
        const view = app.goToView('Home');
        mock.timers.tick(REPLY_TIMEOUT_MS - 1);
        assert.ok(await stillPending(view));
        mock.timers.tick(1);
        await assert.rejects(view, { message: `no reply to goToView within ${REPLY_TIMEOUT_MS / 1000} s` });
        assert.equal(app.pendingCount, 0);
        // The reply that comes after all finds nobody waiting.
        channel.deliver({ type: 'reply', id: 1, ok: true });
    } finally {
        mock.timers.reset();
    }
});

test('the timeout is an option', async () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
        const app = new AppChannel(new FakeChannel(), { timeoutMs: 500 });
        const script = app.runScript('x');
        mock.timers.tick(500);
        await assert.rejects(script, /no reply to runScript within 1 s/);
    } finally {
        mock.timers.reset();
    }
});

test('a channel that closes rejects what waits, and refuses new requests', async () => {
    const channel = new FakeChannel();
    const app = new AppChannel(channel);
    let closed = 0;
    app.addEventListener('close', () => { closed += 1; });
    const script = app.runScript('x');
    channel.closeFromServer();
    await assert.rejects(script, { message: 'the app channel closed before the reply came' });
    await assert.rejects(app.takeControl(), { message: 'the app channel is not open' });
    assert.equal(closed, 1);
    app.close();
    assert.equal(closed, 1, 'close once');
});

test('a channel not open yet, or one that fails to send, rejects at once', async () => {
    const connecting = new FakeChannel();
    connecting.readyState = 'connecting';
    await assert.rejects(new AppChannel(connecting).runScript('x'), /not open/);

    const broken = new FakeChannel();
    broken.send = () => { throw new Error('OperationError: buffer full'); };
    const app = new AppChannel(broken);
    await assert.rejects(app.goToView('Home'), { message: 'could not send goToView: OperationError: buffer full' });
    assert.equal(app.pendingCount, 0);
});

test('controls and status are emitted and kept', () => {
    const channel = new FakeChannel();
    const app = new AppChannel(channel);
    const seen = [];
    app.addEventListener('controls', (e) => seen.push(['controls', e.detail]));
    app.addEventListener('status', (e) => seen.push(['status', e.detail]));
    assert.equal(app.controls, null);
    assert.equal(app.status, null);

    channel.deliver({
        type: 'controls',
        holder: 1,
        viewers: [{ viewerId: 1, role: 'owner' }, { viewerId: 5, role: 'spectator' }],
    });
    channel.deliver({ type: 'status', status: { host: 'osw-gl-host', views: ['Home', 'Above'] } });
    channel.deliver({ type: 'controls', holder: null, viewers: [] });
    assert.deepEqual(seen, [
        ['controls', { holder: 1, viewers: [{ viewerId: 1, role: 'owner' }, { viewerId: 5, role: 'spectator' }] }],
        ['status', { status: { host: 'osw-gl-host', views: ['Home', 'Above'] } }],
        ['controls', { holder: null, viewers: [] }],
    ]);
    assert.deepEqual(app.controls, { holder: null, viewers: [] });
    assert.deepEqual(app.status, { host: 'osw-gl-host', views: ['Home', 'Above'] });
});

test('after close nothing more is emitted', () => {
    const channel = new FakeChannel();
    const app = new AppChannel(channel);
    let events = 0;
    app.addEventListener('controls', () => { events += 1; });
    app.close();
    channel.deliver({ type: 'controls', holder: 1, viewers: [] });
    assert.equal(events, 0);
});

test('controlsFrom drops malformed viewers and reads a missing holder as nobody', () => {
    assert.equal(controlsFrom({ type: 'controls' }), null);
    assert.deepEqual(controlsFrom({
        holder: 0,
        viewers: [{ viewerId: 2, role: 'owner', extra: 1 }, { viewerId: '3', role: 'spectator' },
            { viewerId: 4, role: 'admin' }, null, { viewerId: 6, role: 'spectator' }],
    }), { holder: null, viewers: [{ viewerId: 2, role: 'owner' }, { viewerId: 6, role: 'spectator' }] });
});

test('viewsFrom takes the names as given, strings only, each once', () => {
    assert.deepEqual(viewsFrom({ views: ['Home', 'Above', 'Home', '', 7, null, 'Side'] }), ['Home', 'Above', 'Side']);
    assert.deepEqual(viewsFrom({ host: 'x' }), []);
    assert.deepEqual(viewsFrom(null), []);
});
