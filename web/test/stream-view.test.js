import assert from 'node:assert/strict';
import { test } from 'node:test';

import SessionState from '../js/session-state.js';
import { describeState } from '../js/stream-view.js';

test('every state has plain words in the status line', () => {
    for (const state of Object.values(SessionState)) {
        const { text } = describeState(state, 'some reason', false);
        assert.ok(text.length > 0 && !text.includes('undefined'), state);
    }
});

test('a failure shows its reason as an error', () => {
    const status = describeState(SessionState.FAILED, 'the server refused the stream: too many viewers', false);
    assert.equal(status.kind, 'error');
    assert.equal(status.text, 'Error: The server refused the stream: too many viewers.');
});

test('view-only streaming says so; a close says why', () => {
    assert.equal(describeState(SessionState.STREAMING, '', true).text, 'Streaming (view only)');
    assert.equal(describeState(SessionState.CLOSED, 'the server ended the session: shutdown', false).text,
        'Stream ended: the server ended the session: shutdown.');
});

test('a reason that ends a sentence gets no second full stop', () => {
    assert.equal(describeState(SessionState.FAILED, 'the URL \'x\' is invalid.', false).text,
        'Error: The URL \'x\' is invalid.');
});
