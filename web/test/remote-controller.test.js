import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
    buttonChanges, toVideoCoordinates, typedText, videoContentRect, wheelToNotches,
} from '../js/remote-controller.js';

test('a 16:9 video in a 4:3 box gets bars above and below', () => {
    assert.deepEqual(videoContentRect(800, 600, 1280, 720), { x: 0, y: 75, width: 800, height: 450 });
});

test('a 16:9 video in an ultra-wide box gets bars left and right', () => {
    assert.deepEqual(videoContentRect(2000, 720, 1280, 720), { x: 360, y: 0, width: 1280, height: 720 });
});

test('a box of the video\'s own shape has no bars, at any scale', () => {
    assert.deepEqual(videoContentRect(640, 360, 1920, 1080), { x: 0, y: 0, width: 640, height: 360 });
});

test('before the first frame the whole box is the picture', () => {
    assert.deepEqual(videoContentRect(800, 600, 0, 0), { x: 0, y: 0, width: 800, height: 600 });
});

test('a point on the picture is measured from the picture\'s corner', () => {
    const rect = videoContentRect(800, 600, 1280, 720); // y from 75 to 525
    assert.deepEqual(toVideoCoordinates(400, 300, rect), { x: 400, y: 225, width: 800, height: 450, inside: true });
    assert.deepEqual(toVideoCoordinates(0, 75, rect), { x: 0, y: 0, width: 800, height: 450, inside: true });
    assert.deepEqual(toVideoCoordinates(800, 525, rect), { x: 800, y: 450, width: 800, height: 450, inside: true });
});

test('a point on a bar is outside and clamped onto the picture\'s edge', () => {
    const rect = videoContentRect(800, 600, 1280, 720);
    assert.deepEqual(toVideoCoordinates(100, 20, rect), { x: 100, y: 0, width: 800, height: 450, inside: false });
    assert.deepEqual(toVideoCoordinates(900, 590, rect), { x: 800, y: 450, width: 800, height: 450, inside: false });
});

test('pillarboxed: the host gets the same relative position whatever the window', () => {
    // The same point of the picture, a quarter in from the left and half way down.
    const wide = toVideoCoordinates(360 + 320, 360, videoContentRect(2000, 720, 1280, 720));
    const small = toVideoCoordinates(160, 180, videoContentRect(640, 360, 1280, 720));
    assert.equal(wide.x / wide.width, 0.25);
    assert.equal(small.x / small.width, 0.25);
    assert.equal(wide.y / wide.height, 0.5);
    assert.equal(small.y / small.height, 0.5);
});

test('wheel: one Chromium notch (100 px down) is one GLFW notch down', () => {
    assert.deepEqual(wheelToNotches(0, 100, 0), { dx: 0, dy: -1 });
    assert.deepEqual(wheelToNotches(0, -100, 0), { dx: 0, dy: 1 });
});

test('wheel: lines (Firefox) and pages', () => {
    assert.deepEqual(wheelToNotches(0, 3, 1), { dx: 0, dy: -1 });
    assert.deepEqual(wheelToNotches(0, -6, 1), { dx: 0, dy: 2 });
    assert.deepEqual(wheelToNotches(0, 1, 2), { dx: 0, dy: -1 });
});

test('wheel: horizontal scroll to the right is negative x in GLFW', () => {
    assert.deepEqual(wheelToNotches(100, 0, 0), { dx: -1, dy: 0 });
});

test('wheel: trackpad pixels give fractions, and units can be tuned', () => {
    assert.deepEqual(wheelToNotches(0, 25, 0), { dx: 0, dy: -0.25 });
    assert.deepEqual(wheelToNotches(0, 53, 0, { pixelsPerNotch: 53 }), { dx: 0, dy: -1 });
    assert.deepEqual(wheelToNotches(0, 1, 1, { linesPerNotch: 1 }), { dx: 0, dy: -1 });
});

test('wheel: no negative zero reaches the JSON', () => {
    assert.equal(JSON.stringify(wheelToNotches(0, 100, 0)), '{"dx":0,"dy":-1}');
    assert.ok(!Object.is(wheelToNotches(0, 0, 0).dy, -0));
});

test('button masks: bit i is GLFW button i (left 0, right 1, middle 2)', () => {
    assert.deepEqual(buttonChanges(0, 1), [{ button: 0, pressed: true }]);
    assert.deepEqual(buttonChanges(0, 2), [{ button: 1, pressed: true }]);
    assert.deepEqual(buttonChanges(0, 4), [{ button: 2, pressed: true }]);
    assert.deepEqual(buttonChanges(1, 0), [{ button: 0, pressed: false }]);
});

test('button masks: a chord adds one button and keeps the other', () => {
    assert.deepEqual(buttonChanges(1, 3), [{ button: 1, pressed: true }]);
    assert.deepEqual(buttonChanges(3, 2), [{ button: 0, pressed: false }]);
    assert.deepEqual(buttonChanges(5, 5), []);
    assert.deepEqual(buttonChanges(0, 24), [{ button: 3, pressed: true }, { button: 4, pressed: true }]);
});

test('typed text: single characters, not shortcuts, AltGr allowed', () => {
    const key = (k, mods = {}) => ({ key: k, ctrlKey: false, metaKey: false, ...mods });
    assert.equal(typedText(key('a')), 'a');
    assert.equal(typedText(key('A', { shiftKey: true })), 'A');
    assert.equal(typedText(key(' ')), ' ');
    assert.equal(typedText(key('😀')), '😀');
    assert.equal(typedText(key('Enter')), null);
    assert.equal(typedText(key('Dead')), null);
    assert.equal(typedText(key('c', { ctrlKey: true })), null);
    assert.equal(typedText(key('v', { metaKey: true })), null);
    const altGr = { ctrlKey: true, altKey: true, getModifierState: (m) => m === 'AltGraph' };
    assert.equal(typedText(key('€', altGr)), '€');
});
