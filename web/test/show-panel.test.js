import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
    SHOW_PANEL_TOGGLE_CODE, holderText, replyText, spectatorRows, viewerName,
} from '../js/show-panel.js';
import config from '../js/config.js';
import { glfwKey } from '../js/keymap.js';

const controls = (holder) => ({
    holder,
    viewers: [
        { viewerId: 1, role: 'owner' },
        { viewerId: 3, role: 'spectator' },
        { viewerId: 4, role: 'owner' },
        { viewerId: 7, role: 'spectator' },
    ],
});

test('the holder line, as the owner says it', () => {
    assert.equal(holderText(controls(1), 1, true), 'You have the controls');
    assert.equal(holderText(controls(3), 1, true), 'Spectator 3 has the controls');
    assert.equal(holderText(controls(4), 1, true), 'Another of your windows has the controls');
    assert.equal(holderText(controls(null), 1, true), 'Nobody has the controls');
});

test('the holder line, as a spectator says it', () => {
    assert.equal(holderText(controls(3), 3, false), 'You have the controls');
    assert.equal(holderText(controls(7), 3, false), 'Spectator 7 has the controls');
    assert.equal(holderText(controls(1), 3, false), 'The owner has the controls');
    assert.equal(holderText(controls(4), 3, false), 'The owner has the controls');
});

test('before the server said, and a holder not in the list', () => {
    assert.match(holderText(null, 1, true), /^Waiting/);
    assert.equal(holderText({ holder: 9, viewers: [] }, 1, true), 'Viewer 9 has the controls');
});

test('the owner hands over to spectators only, in join order', () => {
    assert.deepEqual(spectatorRows(controls(7)), [
        { viewerId: 3, name: 'Spectator 3', holds: false },
        { viewerId: 7, name: 'Spectator 7', holds: true },
    ]);
    assert.deepEqual(spectatorRows(null), []);
    assert.equal(viewerName({ viewerId: 1, role: 'owner' }), 'The owner');
});

test('replies in plain words: the host\'s text, done, or why not', () => {
    assert.deepEqual(replyText('Script', { ok: true, message: 'ran' }), { text: 'Script: ran', kind: 'ok' });
    assert.deepEqual(replyText('Above', { ok: true, message: '' }), { text: 'Above: done', kind: 'ok' });
    assert.deepEqual(replyText('Mars', { ok: false, message: 'no view named "Mars"' }),
        { text: 'Mars refused: no view named "Mars"', kind: 'error' });
    assert.deepEqual(replyText('Take back', { ok: false, message: '' }),
        { text: 'Take back refused: no reason given', kind: 'error' });
});

test('the panel\'s key is not the stats key, and the page keeps it from the host', () => {
    assert.notEqual(SHOW_PANEL_TOGGLE_CODE, config.statsToggleCode);
    // A key the host would otherwise get: the page must reserve it (stream-page.js does).
    assert.notEqual(glfwKey(SHOW_PANEL_TOGGLE_CODE), undefined);
    // OpenSpace's default bindings.
    assert.ok(!['F1', 'F2', 'F5', 'F12'].includes(SHOW_PANEL_TOGGLE_CODE));
});
