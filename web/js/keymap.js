/**
 * Browser keys to GLFW keys: `KeyboardEvent.code` (the physical key, whatever the layout)
 * to `GLFW_KEY_*`, and the event's modifier flags to `GLFW_MOD_*` bits. OpenSpace runs on
 * GLFW and expects what GLFW would have reported for a local keyboard; GLFW key codes name
 * physical keys too, so `code` (not `key`) is the right source. Pure data, no DOM.
 *
 * @module keymap
 */

/** GLFW modifier bits (`GLFW_MOD_*`). */
export const GLFW_MOD = Object.freeze({
    SHIFT: 0x01,
    CONTROL: 0x02,
    ALT: 0x04,
    SUPER: 0x08,
    CAPS_LOCK: 0x10,
    NUM_LOCK: 0x20,
});

function buildTable() {
    const table = {
        Space: 32,
        Quote: 39,
        Comma: 44,
        Minus: 45,
        Period: 46,
        Slash: 47,
        Semicolon: 59,
        Equal: 61,
        BracketLeft: 91,
        Backslash: 92,
        BracketRight: 93,
        Backquote: 96,
        // The extra key left of Z on ISO keyboards; GLFW's X11 backend calls it WORLD_1.
        IntlBackslash: 161,

        Escape: 256,
        Enter: 257,
        Tab: 258,
        Backspace: 259,
        Insert: 260,
        Delete: 261,
        ArrowRight: 262,
        ArrowLeft: 263,
        ArrowDown: 264,
        ArrowUp: 265,
        PageUp: 266,
        PageDown: 267,
        Home: 268,
        End: 269,
        CapsLock: 280,
        ScrollLock: 281,
        NumLock: 282,
        PrintScreen: 283,
        Pause: 284,

        NumpadDecimal: 330,
        NumpadDivide: 331,
        NumpadMultiply: 332,
        NumpadSubtract: 333,
        NumpadAdd: 334,
        NumpadEnter: 335,
        NumpadEqual: 336,

        ShiftLeft: 340,
        ControlLeft: 341,
        AltLeft: 342,
        MetaLeft: 343,
        ShiftRight: 344,
        ControlRight: 345,
        AltRight: 346,
        MetaRight: 347,
        // Firefox before version 118 called the Windows/Command keys OSLeft and OSRight.
        OSLeft: 343,
        OSRight: 347,
        ContextMenu: 348,
    };
    for (let i = 0; i < 26; i += 1) {
        const letter = String.fromCharCode(65 + i);
        table[`Key${letter}`] = 65 + i;
    }
    for (let i = 0; i <= 9; i += 1) {
        table[`Digit${i}`] = 48 + i;
        table[`Numpad${i}`] = 320 + i;
    }
    for (let i = 1; i <= 25; i += 1) {
        table[`F${i}`] = 289 + i;
    }
    return Object.freeze(table);
}

/** `KeyboardEvent.code` → `GLFW_KEY_*`. Codes GLFW has no key for are absent. */
const KEY_CODES = buildTable();

/**
 * The GLFW key for a `KeyboardEvent.code`.
 * @param {string} code
 * @returns {number | undefined} undefined for keys GLFW does not know
 */
export function glfwKey(code) {
    return Object.hasOwn(KEY_CODES, code) ? KEY_CODES[code] : undefined;
}

/**
 * GLFW modifier bits for an event's modifier state.
 * @param {{shiftKey?: boolean, ctrlKey?: boolean, altKey?: boolean, metaKey?: boolean,
 *          getModifierState?: (key: string) => boolean}} event - a KeyboardEvent,
 *   PointerEvent or WheelEvent (or anything with the same fields)
 * @returns {number}
 */
export function glfwMods(event) {
    let mods = 0;
    if (event.shiftKey) mods |= GLFW_MOD.SHIFT;
    if (event.ctrlKey) mods |= GLFW_MOD.CONTROL;
    if (event.altKey) mods |= GLFW_MOD.ALT;
    if (event.metaKey) mods |= GLFW_MOD.SUPER;
    if (event.getModifierState?.('CapsLock')) mods |= GLFW_MOD.CAPS_LOCK;
    if (event.getModifierState?.('NumLock')) mods |= GLFW_MOD.NUM_LOCK;
    return mods;
}

export default KEY_CODES;
