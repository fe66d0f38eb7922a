/**
 * Input capture: the viewer's pointer, wheel, touch and keyboard on the video element,
 * sent to the host as `InputMessage` JSON (rust-core/protocol) on the `input` data channel.
 *
 * Pointer positions are pixels of the video picture as displayed: origin at the picture's
 * top-left corner, with the picture's displayed size, so letterbox bars are not part of the
 * host's window.
 *
 * @module remote-controller
 */

import config from './config.js';
import { glfwKey, glfwMods } from './keymap.js';

const DOM_DELTA_LINE = 1;
const DOM_DELTA_PAGE = 2;

/**
 * Where the picture lies inside a box with `object-fit: contain`: scaled to fit, centred,
 * bars on the two other sides.
 *
 * @param {number} boxWidth - the element's content box, CSS pixels
 * @param {number} boxHeight
 * @param {number} videoWidth - the video's intrinsic size (0 before the first frame)
 * @param {number} videoHeight
 * @returns {{x: number, y: number, width: number, height: number}} the picture's rectangle,
 *   relative to the content box; the whole box while the video size is unknown
 */
export function videoContentRect(boxWidth, boxHeight, videoWidth, videoHeight) {
    if (!(videoWidth > 0 && videoHeight > 0 && boxWidth > 0 && boxHeight > 0)) {
        return { x: 0, y: 0, width: Math.max(boxWidth, 0), height: Math.max(boxHeight, 0) };
    }
    const scale = Math.min(boxWidth / videoWidth, boxHeight / videoHeight);
    const width = videoWidth * scale;
    const height = videoHeight * scale;
    return { x: (boxWidth - width) / 2, y: (boxHeight - height) / 2, width, height };
}

/**
 * A point in the content box, in the picture's coordinates.
 *
 * @param {number} boxX - position in the element's content box, CSS pixels
 * @param {number} boxY
 * @param {{x: number, y: number, width: number, height: number}} rect - from
 *   {@link videoContentRect}
 * @returns {{x: number, y: number, width: number, height: number, inside: boolean}} the
 *   position clamped onto the picture, its size, and whether the point was on the picture
 */
export function toVideoCoordinates(boxX, boxY, rect) {
    const x = boxX - rect.x;
    const y = boxY - rect.y;
    const inside = x >= 0 && y >= 0 && x <= rect.width && y <= rect.height;
    return {
        x: Math.min(Math.max(x, 0), rect.width),
        y: Math.min(Math.max(y, 0), rect.height),
        width: rect.width,
        height: rect.height,
        inside,
    };
}

/**
 * A wheel event's deltas in GLFW scroll units: one notch is 1.0, positive `dy` scrolls up
 * and positive `dx` scrolls left (what GLFW reports on X11 and Windows), the opposite of the
 * DOM's signs.
 *
 * @param {number} deltaX - `WheelEvent.deltaX`
 * @param {number} deltaY - `WheelEvent.deltaY`
 * @param {number} deltaMode - `WheelEvent.deltaMode`: 0 pixels, 1 lines, 2 pages
 * @param {{pixelsPerNotch?: number, linesPerNotch?: number}} [units]
 * @returns {{dx: number, dy: number}}
 */
export function wheelToNotches(deltaX, deltaY, deltaMode, units = {}) {
    const pixelsPerNotch = units.pixelsPerNotch ?? config.wheelPixelsPerNotch;
    const linesPerNotch = units.linesPerNotch ?? config.wheelLinesPerNotch;
    let perNotch = pixelsPerNotch;
    if (deltaMode === DOM_DELTA_LINE) {
        perNotch = linesPerNotch;
    }
    else if (deltaMode === DOM_DELTA_PAGE) {
        // A page per event only happens when the system scrolls a page per notch.
        perNotch = 1;
    }
    // `0 - x` rather than `-x`: no negative zero in the JSON.
    return { dx: 0 - deltaX / perNotch, dy: 0 - deltaY / perNotch };
}

/**
 * The button presses and releases between two `PointerEvent.buttons` masks. The mask's bits
 * (left, right, middle, back, forward) are in GLFW's button order, so bit i is GLFW button i.
 * Comparing masks also catches a second button pressed during a drag, which browsers report
 * as a `pointermove`, not a `pointerdown`.
 *
 * @param {number} before
 * @param {number} after
 * @returns {{button: number, pressed: boolean}[]}
 */
export function buttonChanges(before, after) {
    const changes = [];
    for (let button = 0; button < 5; button += 1) {
        const bit = 1 << button;
        if ((before & bit) !== (after & bit)) {
            changes.push({ button, pressed: (after & bit) !== 0 });
        }
    }
    return changes;
}

/**
 * The text a key press types, if any: a single character, with no Control or Command held
 * (those are shortcuts), except AltGr, which Windows reports as Control+Alt.
 *
 * @param {{key: string, ctrlKey: boolean, metaKey: boolean,
 *          getModifierState?: (key: string) => boolean}} event
 * @returns {string | null}
 */
export function typedText(event) {
    // Spread, not .length: a character outside the BMP is two UTF-16 units.
    if ([...event.key].length !== 1) {
        return null;
    }
    const shortcut = (event.ctrlKey || event.metaKey) && !event.getModifierState?.('AltGraph');
    return shortcut ? null : event.key;
}

function isEditable(target) {
    return Boolean(target?.isContentEditable)
        || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target?.tagName);
}

/**
 * @fires RemoteController#input - a message was sent; `detail`: the InputMessage object
 */
export default class RemoteController extends EventTarget {
    #video;
    #channel;
    #window;
    #reservedCodes;
    #pinchPixelsPerNotch;
    #listeners = [];
    /** `PointerEvent.buttons` of the mouse or pen as last sent. */
    #buttons = 0;
    /** Keys pressed and not yet released, by `code`, to release them if focus is lost. */
    #heldKeys = new Set();
    /** Active touches: pointerId → `{clientX, clientY}`. */
    #touches = new Map();
    /**
     * What the fingers do: null (nothing), 'pending' (one finger down, not moved yet),
     * 'drag' (left button held), 'pinch' (two fingers scroll, until all are lifted).
     */
    #touchMode = null;
    /** Distance between the two pinching fingers at the last wheel message. */
    #pinchDistance = 0;
    /** Where the pointer was last sent, for releases that have no position of their own. */
    #lastAt = { x: 0, y: 0, width: 1, height: 1 };

    /**
     * @param {HTMLVideoElement} video - the element showing the stream
     * @param {{readyState: string, send: (text: string) => void}} channel - the `input`
     *   RTCDataChannel
     * @param {object} [options]
     * @param {string[]} [options.reservedCodes=[]] - `KeyboardEvent.code`s the page keeps for
     *   itself (the stats toggle): never sent, never prevented
     * @param {EventTarget} [options.keyboardTarget=window] - where key events are listened
     *   for; the window, so keys work without first clicking the video
     * @param {number} [options.pinchPixelsPerNotch=config.pinchPixelsPerNotch]
     */
    constructor(video, channel, options = {}) {
        super();
        this.#video = video;
        this.#channel = channel;
        this.#window = video.ownerDocument.defaultView;
        this.#reservedCodes = new Set(options.reservedCodes ?? []);
        this.#pinchPixelsPerNotch = options.pinchPixelsPerNotch ?? config.pinchPixelsPerNotch;

        this.#listen(video, 'pointerdown', (e) => this.#onPointerDown(e));
        this.#listen(video, 'pointermove', (e) => this.#onPointerMove(e));
        this.#listen(video, 'pointerup', (e) => this.#onPointerUp(e));
        this.#listen(video, 'pointercancel', (e) => this.#onPointerUp(e));
        // Passive listeners cannot stop the page from scrolling or zooming.
        this.#listen(video, 'wheel', (e) => this.#onWheel(e), { passive: false });
        this.#listen(video, 'contextmenu', (e) => e.preventDefault());
        // The back and forward buttons would navigate away from the stream.
        this.#listen(video, 'mouseup', (e) => { if (e.button > 2) e.preventDefault(); });
        const keyboardTarget = options.keyboardTarget ?? this.#window;
        this.#listen(keyboardTarget, 'keydown', (e) => this.#onKey(e, true));
        this.#listen(keyboardTarget, 'keyup', (e) => this.#onKey(e, false));
        // Keys or buttons released while the page had no focus would stay down on the host.
        this.#listen(this.#window, 'blur', () => this.releaseAll());
    }

    /** Stops capturing; releases what is held first so nothing stays pressed on the host. */
    close() {
        this.releaseAll();
        for (const [target, type, listener, options] of this.#listeners) {
            target.removeEventListener(type, listener, options);
        }
        this.#listeners = [];
    }

    /** Sends a release for every key and button held now. */
    releaseAll() {
        for (const code of this.#heldKeys) {
            this.#send({ type: 'key', key: glfwKey(code), action: 0, mods: 0 });
        }
        this.#heldKeys.clear();
        for (const { button } of buttonChanges(this.#buttons, 0)) {
            this.#sendButton(button, false);
        }
        if (this.#touchMode === 'drag') {
            this.#sendButton(0, false);
        }
        this.#buttons = 0;
        this.#touchMode = null;
        this.#touches.clear();
    }

    #listen(target, type, listener, options) {
        target.addEventListener(type, listener, options);
        this.#listeners.push([target, type, listener, options]);
    }

    #send(message) {
        if (this.#channel.readyState !== 'open') {
            return;
        }
        this.#channel.send(JSON.stringify(message));
        this.dispatchEvent(new CustomEvent('input', { detail: message }));
    }

    /** The event's position on the picture (see {@link toVideoCoordinates}). */
    #locate(event) {
        const video = this.#video;
        const box = video.getBoundingClientRect();
        const style = this.#window.getComputedStyle(video);
        const left = parseFloat(style.borderLeftWidth) + parseFloat(style.paddingLeft);
        const top = parseFloat(style.borderTopWidth) + parseFloat(style.paddingTop);
        const right = parseFloat(style.borderRightWidth) + parseFloat(style.paddingRight);
        const bottom = parseFloat(style.borderBottomWidth) + parseFloat(style.paddingBottom);
        const rect = videoContentRect(box.width - left - right, box.height - top - bottom,
            video.videoWidth, video.videoHeight);
        return toVideoCoordinates(event.clientX - box.left - left, event.clientY - box.top - top, rect);
    }

    #lastPosition() {
        const { x, y, width, height } = this.#lastAt;
        return { x, y, width, height };
    }

    #onPointerDown(event) {
        if (event.pointerType === 'touch') {
            this.#onTouchDown(event);
            return;
        }
        const at = this.#locate(event);
        // A press on the letterbox bars is not a press in the host's window.
        if (!at.inside || at.width < 1 || at.height < 1) {
            return;
        }
        event.preventDefault();
        this.#video.focus({ preventScroll: true });
        // Keep receiving moves and the release when the pointer leaves the video mid-drag.
        this.#video.setPointerCapture(event.pointerId);
        this.#updateButtons(event, at);
    }

    #onPointerMove(event) {
        if (event.pointerType === 'touch') {
            this.#onTouchMove(event);
            return;
        }
        const at = this.#locate(event);
        if ((!at.inside && this.#buttons === 0) || at.width < 1 || at.height < 1) {
            return;
        }
        this.#lastAt = at;
        this.#send({ type: 'pointerMove', ...this.#lastPosition() });
        // Only during a drag: a button pressed on the letterbox bars starts nothing.
        if (this.#buttons !== 0) {
            this.#updateButtons(event, at);
        }
    }

    #onPointerUp(event) {
        if (event.pointerType === 'touch') {
            this.#onTouchUp(event);
            return;
        }
        if (this.#buttons === 0) {
            return;
        }
        event.preventDefault();
        this.#updateButtons(event, this.#locate(event));
    }

    #updateButtons(event, at) {
        // A cancelled pointer reports its buttons as still held; it has none any more.
        const after = event.type === 'pointercancel' ? 0 : event.buttons;
        const mods = glfwMods(event);
        for (const { button, pressed } of buttonChanges(this.#buttons, after)) {
            this.#send({
                type: 'pointerButton', x: at.x, y: at.y, width: at.width, height: at.height,
                button, pressed, mods,
            });
        }
        this.#buttons = after;
        this.#lastAt = at;
    }

    #onWheel(event) {
        event.preventDefault();
        const { dx, dy } = wheelToNotches(event.deltaX, event.deltaY, event.deltaMode);
        if (dx !== 0 || dy !== 0) {
            this.#send({ type: 'wheel', dx, dy });
        }
    }

    // Touch: one finger drags with the left button, two fingers pinch to scroll.

    #onTouchDown(event) {
        event.preventDefault();
        this.#touches.set(event.pointerId, { clientX: event.clientX, clientY: event.clientY });
        this.#video.setPointerCapture(event.pointerId);
        if (this.#touches.size === 1 && this.#touchMode === null) {
            const at = this.#locate(event);
            if (at.inside && at.width >= 1 && at.height >= 1) {
                // Press only once the finger moves or lifts: it may be the first of a pinch.
                this.#touchMode = 'pending';
                this.#lastAt = at;
            }
        }
        else if (this.#touches.size === 2) {
            // The second finger turns a drag into a pinch: end the drag where it was.
            if (this.#touchMode === 'drag') {
                this.#sendButton(0, false);
            }
            this.#touchMode = 'pinch';
            this.#pinchDistance = this.#fingerDistance();
        }
    }

    #onTouchMove(event) {
        if (!this.#touches.has(event.pointerId)) {
            return;
        }
        event.preventDefault();
        this.#touches.set(event.pointerId, { clientX: event.clientX, clientY: event.clientY });
        if (this.#touchMode === 'pinch' && this.#touches.size >= 2) {
            const distance = this.#fingerDistance();
            // Fingers apart zoom in, like scrolling up.
            const dy = (distance - this.#pinchDistance) / this.#pinchPixelsPerNotch;
            this.#pinchDistance = distance;
            if (dy !== 0) {
                this.#send({ type: 'wheel', dx: 0, dy });
            }
            return;
        }
        if (this.#touchMode === 'pending') {
            this.#sendButton(0, true);
            this.#touchMode = 'drag';
        }
        if (this.#touchMode === 'drag') {
            this.#lastAt = this.#locate(event);
            this.#send({ type: 'pointerMove', ...this.#lastPosition() });
        }
    }

    #onTouchUp(event) {
        if (!this.#touches.delete(event.pointerId)) {
            return;
        }
        event.preventDefault();
        // After a pinch, a finger left on the glass does nothing: a drag would jump the view.
        if (this.#touches.size > 0) {
            return;
        }
        if (this.#touchMode === 'pending') {
            // A tap: a click where it touched.
            this.#sendButton(0, true);
            this.#sendButton(0, false);
        }
        else if (this.#touchMode === 'drag') {
            this.#sendButton(0, false);
        }
        this.#touchMode = null;
    }

    #sendButton(button, pressed) {
        this.#send({ type: 'pointerButton', ...this.#lastPosition(), button, pressed, mods: 0 });
    }

    #fingerDistance() {
        const [a, b] = this.#touches.values();
        return Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY);
    }

    #onKey(event, down) {
        if (this.#reservedCodes.has(event.code) || event.isComposing || isEditable(event.target)) {
            return;
        }
        const key = glfwKey(event.code);
        const text = down ? typedText(event) : null;
        if (key === undefined && text === null) {
            return;
        }
        // The browser's own use of the key (scrolling, Tab focus, F5 reload) belongs to the host now.
        event.preventDefault();
        if (key !== undefined) {
            const action = down ? (event.repeat ? 2 : 1) : 0;
            this.#send({ type: 'key', key, action, mods: glfwMods(event) });
            if (down) {
                this.#heldKeys.add(event.code);
            }
            else {
                this.#heldKeys.delete(event.code);
            }
        }
        if (text !== null) {
            this.#send({ type: 'text', text });
        }
    }
}
