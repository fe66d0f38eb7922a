import assert from 'node:assert/strict';
import { test } from 'node:test';

import InstanceFeed, { RECONNECT_DELAYS_MS, reconnectDelay } from '../js/instance-feed.js';

test('reconnection waits grow and then stay at the last step', () => {
    assert.equal(reconnectDelay(1), RECONNECT_DELAYS_MS[0]);
    assert.equal(reconnectDelay(2), RECONNECT_DELAYS_MS[1]);
    assert.equal(reconnectDelay(99), RECONNECT_DELAYS_MS.at(-1));
    assert.equal(reconnectDelay(0), RECONNECT_DELAYS_MS[0]);
});

/** A WebSocket stand-in the test drives by hand. */
class FakeSocket extends EventTarget {
    static made = [];

    constructor(url) {
        super();
        this.url = url;
        this.readyState = 0;
        FakeSocket.made.push(this);
    }

    open() {
        this.readyState = 1;
        this.dispatchEvent(new Event('open'));
    }

    message(data) {
        const event = new Event('message');
        event.data = data;
        this.dispatchEvent(event);
    }

    drop() {
        this.readyState = 3;
        this.dispatchEvent(new Event('close'));
    }

    close() {
        this.readyState = 3;
    }
}

test('messages are parsed, drops reconnect, a first refusal gives up', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    FakeSocket.made = [];
    const feed = new InstanceFeed('ws://x/api/events?token=s1', { WebSocket: FakeSocket });
    const got = [];
    const connection = [];
    feed.addEventListener('message', (e) => got.push(e.detail));
    feed.addEventListener('connection', (e) => connection.push(e.detail));
    feed.start();
    FakeSocket.made[0].open();
    assert.equal(feed.connected, true);
    FakeSocket.made[0].message('{"type":"instance","instance":{"id":"a"}}');
    FakeSocket.made[0].message('not json');
    assert.deepEqual(got, [{ type: 'instance', instance: { id: 'a' } }]);

    FakeSocket.made[0].drop();
    assert.deepEqual(connection.at(-1), { connected: false, attempt: 1 });
    t.mock.timers.tick(RECONNECT_DELAYS_MS[0]);
    assert.equal(FakeSocket.made.length, 2);
    // The server is still down: the next try waits longer.
    FakeSocket.made[1].drop();
    assert.deepEqual(connection.at(-1), { connected: false, attempt: 2 });
    t.mock.timers.tick(RECONNECT_DELAYS_MS[1]);
    FakeSocket.made[2].open();
    assert.deepEqual(connection.at(-1), { connected: true, attempt: 0 });
    feed.close();
    FakeSocket.made[2].drop();
    t.mock.timers.tick(10000);
    assert.equal(FakeSocket.made.length, 3, 'no reconnection after close()');

    const refusedFeed = new InstanceFeed('ws://x/bad', { WebSocket: FakeSocket });
    let refused = false;
    refusedFeed.addEventListener('refused', () => { refused = true; });
    refusedFeed.start();
    FakeSocket.made[3].drop();
    t.mock.timers.tick(10000);
    assert.equal(refused, true);
    assert.equal(FakeSocket.made.length, 4);
});
