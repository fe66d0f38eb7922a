import assert from 'node:assert/strict';
import { test } from 'node:test';

import config, { viewerOptionsFromQuery } from '../js/config.js';

test('defaults are frozen, with no ICE servers', () => {
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.iceServers));
    assert.deepEqual(config.iceServers, []);
    assert.equal(config.signalingPort, 4700);
});

test('the signaling URL defaults to port 4700 on the page\'s host', () => {
    assert.deepEqual(viewerOptionsFromQuery('', 'example.org'), { signalUrl: 'ws://example.org:4700/', viewOnly: false });
    assert.deepEqual(viewerOptionsFromQuery('', '[::1]'), { signalUrl: 'ws://[::1]:4700/', viewOnly: false });
    assert.equal(viewerOptionsFromQuery('', '').signalUrl, 'ws://127.0.0.1:4700/');
});

test('?signal= and ?viewOnly= are read from the query', () => {
    const options = viewerOptionsFromQuery('?signal=ws%3A%2F%2F127.0.0.1%3A4701%2F&viewOnly=1', 'localhost');
    assert.deepEqual(options, { signalUrl: 'ws://127.0.0.1:4701/', viewOnly: true });
    assert.equal(viewerOptionsFromQuery('?signal=ws://127.0.0.1:4702/', 'x').signalUrl, 'ws://127.0.0.1:4702/');
    assert.equal(viewerOptionsFromQuery('?viewOnly=true', 'x').viewOnly, true);
    assert.equal(viewerOptionsFromQuery('?viewOnly=0', 'x').viewOnly, false);
    assert.equal(viewerOptionsFromQuery('?viewOnly=', 'x').viewOnly, false);
});
