import assert from 'node:assert/strict';
import { test } from 'node:test';

import confirmClick, { CONFIRM_MS } from '../js/confirm-click.js';

function fakeButton() {
    return { dataset: {}, textContent: 'Stop', disabled: false };
}

test('the first click arms, the second confirms', () => {
    const button = fakeButton();
    const scheduled = [];
    const schedule = (fn, ms) => scheduled.push({ fn, ms });
    assert.equal(confirmClick(button, { label: 'Stop', schedule }), false);
    assert.equal(button.textContent, 'Click again to stop');
    assert.equal(scheduled[0].ms, CONFIRM_MS);
    assert.equal(confirmClick(button, { label: 'Stop', schedule }), true);
    assert.equal(button.dataset.confirm, undefined);
});

test('an armed button disarms by itself unless it got disabled meanwhile', () => {
    const button = fakeButton();
    let disarm;
    confirmClick(button, { label: 'Stop', confirmMs: 10, schedule: (fn) => { disarm = fn; } });
    disarm();
    assert.equal(button.textContent, 'Stop');
    assert.equal(button.dataset.confirm, undefined);

    const busy = fakeButton();
    confirmClick(busy, { label: 'Stop', schedule: (fn) => { disarm = fn; } });
    busy.disabled = true;
    disarm();
    assert.equal(busy.textContent, 'Click again to stop', 'a disabled button keeps its label');
});
