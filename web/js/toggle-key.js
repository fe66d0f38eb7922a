/**
 * A key that shows and hides a part of the stream page (the stats overlay, the show panel).
 * It is heard on the window in the capture phase, before the input capture sees the key,
 * and the input capture skips the same code, so the host never gets it.
 *
 * @module toggle-key
 */

export default class ToggleKey {
    #window;
    #code;
    #onToggle;
    #onKeyDown = (event) => {
        if (event.code !== this.#code) {
            return;
        }
        event.preventDefault();
        // Held down, the key repeats; one press is one toggle.
        if (!event.repeat) {
            this.#onToggle();
        }
    };

    /**
     * @param {Window} window - whose keys to hear
     * @param {string} code - the `KeyboardEvent.code`, e.g. 'F9'
     * @param {() => void} onToggle - called once per press
     */
    constructor(window, code, onToggle) {
        this.#window = window;
        this.#code = code;
        this.#onToggle = onToggle;
        this.#window.addEventListener('keydown', this.#onKeyDown, { capture: true });
    }

    /** The `KeyboardEvent.code` it listens for; input capture must skip it. */
    get code() {
        return this.#code;
    }

    /** Stops listening. */
    close() {
        this.#window.removeEventListener('keydown', this.#onKeyDown, { capture: true });
    }
}
