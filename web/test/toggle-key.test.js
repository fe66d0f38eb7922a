import assert from 'node:assert/strict';
import { test } from 'node:test';

import ToggleKey from '../js/toggle-key.js';

/** A keydown as ToggleKey reads one. */
function keydown(code, { repeat = false } = {}) {
    const event = new Event('keydown', { cancelable: true });
    Object.assign(event, { code, repeat });
    return event;
}

test('its key toggles once per press and is kept from the page; other keys pass', () => {
    const window = new EventTarget();
    let toggles = 0;
    const key = new ToggleKey(window, 'F9', () => { toggles += 1; });
    assert.equal(key.code, 'F9');

    const press = keydown('F9');
    window.dispatchEvent(press);
    assert.equal(toggles, 1);
    assert.equal(press.defaultPrevented, true);

    const held = keydown('F9', { repeat: true });
    window.dispatchEvent(held);
    assert.equal(toggles, 1, 'a held key repeats, but it is one press');
    assert.equal(held.defaultPrevented, true, 'its repeats are not the page\'s either');

    const other = keydown('KeyW');
    window.dispatchEvent(other);
    assert.equal(toggles, 1);
    assert.equal(other.defaultPrevented, false);
});

test('after close it hears nothing', () => {
    const window = new EventTarget();
    let toggles = 0;
    const key = new ToggleKey(window, 'F8', () => { toggles += 1; });
    key.close();
    const press = keydown('F8');
    window.dispatchEvent(press);
    assert.equal(toggles, 0);
    assert.equal(press.defaultPrevented, false);
});
