import assert from 'node:assert/strict';
import { test } from 'node:test';

import KEY_CODES, { GLFW_MOD, glfwKey, glfwMods } from '../js/keymap.js';

test('letters and digits map to their ASCII codes, as in GLFW', () => {
    assert.equal(glfwKey('KeyA'), 65);
    assert.equal(glfwKey('KeyW'), 87);
    assert.equal(glfwKey('KeyZ'), 90);
    assert.equal(glfwKey('Digit0'), 48);
    assert.equal(glfwKey('Digit9'), 57);
});

test('function keys run from F1 = 290 to F25 = 314', () => {
    assert.equal(glfwKey('F1'), 290);
    assert.equal(glfwKey('F12'), 301);
    assert.equal(glfwKey('F25'), 314);
    assert.equal(glfwKey('F26'), undefined);
});

test('navigation, editing and lock keys', () => {
    const expected = {
        Escape: 256, Enter: 257, Tab: 258, Backspace: 259, Insert: 260, Delete: 261,
        ArrowRight: 262, ArrowLeft: 263, ArrowDown: 264, ArrowUp: 265,
        PageUp: 266, PageDown: 267, Home: 268, End: 269,
        CapsLock: 280, ScrollLock: 281, NumLock: 282, PrintScreen: 283, Pause: 284,
        Space: 32, ContextMenu: 348,
    };
    for (const [code, key] of Object.entries(expected)) {
        assert.equal(glfwKey(code), key, code);
    }
});

test('modifier keys, left and right, with the old OS names', () => {
    assert.equal(glfwKey('ShiftLeft'), 340);
    assert.equal(glfwKey('ControlLeft'), 341);
    assert.equal(glfwKey('AltLeft'), 342);
    assert.equal(glfwKey('MetaLeft'), 343);
    assert.equal(glfwKey('ShiftRight'), 344);
    assert.equal(glfwKey('ControlRight'), 345);
    assert.equal(glfwKey('AltRight'), 346);
    assert.equal(glfwKey('MetaRight'), 347);
    assert.equal(glfwKey('OSLeft'), 343);
    assert.equal(glfwKey('OSRight'), 347);
});

test('keypad keys are distinct from the main block', () => {
    for (let i = 0; i <= 9; i += 1) {
        assert.equal(glfwKey(`Numpad${i}`), 320 + i);
    }
    assert.equal(glfwKey('NumpadDecimal'), 330);
    assert.equal(glfwKey('NumpadDivide'), 331);
    assert.equal(glfwKey('NumpadMultiply'), 332);
    assert.equal(glfwKey('NumpadSubtract'), 333);
    assert.equal(glfwKey('NumpadAdd'), 334);
    assert.equal(glfwKey('NumpadEnter'), 335);
    assert.equal(glfwKey('NumpadEqual'), 336);
    assert.notEqual(glfwKey('NumpadEnter'), glfwKey('Enter'));
});

test('punctuation', () => {
    const expected = {
        Quote: 39, Comma: 44, Minus: 45, Period: 46, Slash: 47, Semicolon: 59, Equal: 61,
        BracketLeft: 91, Backslash: 92, BracketRight: 93, Backquote: 96, IntlBackslash: 161,
    };
    for (const [code, key] of Object.entries(expected)) {
        assert.equal(glfwKey(code), key, code);
    }
});

test('unknown codes and inherited property names give undefined', () => {
    assert.equal(glfwKey('Unidentified'), undefined);
    assert.equal(glfwKey(''), undefined);
    assert.equal(glfwKey('toString'), undefined);
    assert.equal(glfwKey('constructor'), undefined);
});

test('the table is frozen and every value is a GLFW printable or named key', () => {
    assert.ok(Object.isFrozen(KEY_CODES));
    for (const [code, key] of Object.entries(KEY_CODES)) {
        assert.ok(Number.isInteger(key) && key >= 32 && key <= 348, `${code} → ${key}`);
    }
});

test('modifier flags become GLFW mod bits', () => {
    assert.equal(glfwMods({}), 0);
    assert.equal(glfwMods({ shiftKey: true }), GLFW_MOD.SHIFT);
    assert.equal(glfwMods({ ctrlKey: true }), 2);
    assert.equal(glfwMods({ altKey: true }), 4);
    assert.equal(glfwMods({ metaKey: true }), 8);
    assert.equal(glfwMods({ shiftKey: true, ctrlKey: true, altKey: true, metaKey: true }), 15);
});

test('lock states come from getModifierState', () => {
    const locks = (...on) => ({ getModifierState: (key) => on.includes(key) });
    assert.equal(glfwMods(locks('CapsLock')), 16);
    assert.equal(glfwMods(locks('NumLock')), 32);
    assert.equal(glfwMods({ ...locks('CapsLock', 'NumLock'), shiftKey: true }), 49);
});
