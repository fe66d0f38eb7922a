import assert from 'node:assert/strict';
import { test } from 'node:test';

import SessionState, { canTransition, isFinal } from '../js/session-state.js';

const { IDLE, CONNECTING, NEGOTIATING, STREAMING, CLOSED, FAILED } = SessionState;

test('the states are the six of the design, frozen', () => {
    assert.deepEqual(Object.values(SessionState).sort(),
        ['closed', 'connecting', 'failed', 'idle', 'negotiating', 'streaming']);
    assert.ok(Object.isFrozen(SessionState));
});

test('the happy path goes forward one step at a time', () => {
    const path = [IDLE, CONNECTING, NEGOTIATING, STREAMING, CLOSED];
    for (let i = 1; i < path.length; i += 1) {
        assert.ok(canTransition(path[i - 1], path[i]), `${path[i - 1]} → ${path[i]}`);
    }
});

test('no skipping ahead and no going back', () => {
    assert.equal(canTransition(IDLE, STREAMING), false);
    assert.equal(canTransition(CONNECTING, STREAMING), false);
    assert.equal(canTransition(STREAMING, NEGOTIATING), false);
    assert.equal(canTransition(NEGOTIATING, CONNECTING), false);
    assert.equal(canTransition(STREAMING, STREAMING), false);
});

test('every live state can close or fail', () => {
    for (const state of [IDLE, CONNECTING, NEGOTIATING, STREAMING]) {
        assert.ok(canTransition(state, CLOSED), state);
        assert.ok(canTransition(state, FAILED), state);
        assert.equal(isFinal(state), false);
    }
});

test('closed and failed are final', () => {
    for (const state of [CLOSED, FAILED]) {
        assert.ok(isFinal(state));
        for (const next of Object.values(SessionState)) {
            assert.equal(canTransition(state, next), false, `${state} → ${next}`);
        }
    }
});

test('unknown states go nowhere', () => {
    assert.equal(canTransition('bogus', CLOSED), false);
    assert.equal(canTransition(IDLE, 'bogus'), false);
});
