/**
 * The show panel of the stream page: who has the controls, for everyone; for the owner also
 * the host's views as buttons, a script box, and handing the controls to a spectator and
 * taking them back. It speaks through an {@link AppChannel}; the page brings the elements
 * (`stream.html`) and attaches each connection's channel.
 *
 * Hidden by default; a toolbar button (the page's) and a key ({@link SHOW_PANEL_TOGGLE_CODE},
 * never sent to the host) show and hide it. Keys typed while the focus is in the panel stay
 * in the panel: they do not reach the host.
 *
 * @module show-panel
 */

import { viewsFrom } from './app-channel.js';
import ToggleKey from './toggle-key.js';

/**
 * `KeyboardEvent.code` that shows and hides the panel: F8, beside the stats overlay's F9,
 * and like it free of OpenSpace's default bindings (F1, F2, F5, F12).
 */
export const SHOW_PANEL_TOGGLE_CODE = 'F8';

/**
 * How a viewer is named on the page.
 * @param {{viewerId: number, role: string}} viewer
 * @returns {string}
 */
export function viewerName(viewer) {
    return viewer.role === 'owner' ? 'The owner' : `Spectator ${viewer.viewerId}`;
}

/**
 * The line saying who has the controls, as this page says it. Pure.
 * @param {import('./app-channel.js').Controls | null} controls
 * @param {number | null} myId - this page's viewer id (the welcome's)
 * @param {boolean} owner - whether this page is the owner's
 * @returns {string}
 */
export function holderText(controls, myId, owner) {
    if (!controls) {
        return 'Waiting to hear who has the controls…';
    }
    const { holder, viewers } = controls;
    if (holder === null) {
        return 'Nobody has the controls';
    }
    if (holder === myId) {
        return 'You have the controls';
    }
    const viewer = viewers.find((v) => v.viewerId === holder);
    if (!viewer) {
        return `Viewer ${holder} has the controls`;
    }
    if (viewer.role === 'owner' && owner) {
        // The owner's own page in another window or tab.
        return 'Another of your windows has the controls';
    }
    return `${viewerName(viewer)} has the controls`;
}

/**
 * The spectators an owner may hand the controls to, in join order, and whether each holds
 * them. Pure.
 * @param {import('./app-channel.js').Controls | null} controls
 * @returns {{viewerId: number, name: string, holds: boolean}[]}
 */
export function spectatorRows(controls) {
    return (controls?.viewers ?? [])
        .filter((v) => v.role === 'spectator')
        .map((v) => ({ viewerId: v.viewerId, name: viewerName(v), holds: v.viewerId === controls.holder }));
}

/**
 * What a reply says, in plain words. Pure.
 * @param {string} what - the request, e.g. `Above` or `Script`
 * @param {{ok: boolean, message: string}} reply
 * @returns {{text: string, kind: 'ok' | 'error'}}
 */
export function replyText(what, reply) {
    if (reply.ok) {
        return { text: reply.message ? `${what}: ${reply.message}` : `${what}: done`, kind: 'ok' };
    }
    return { text: `${what} refused: ${reply.message || 'no reason given'}`, kind: 'error' };
}

/**
 * @fires ShowPanel#visibility - shown or hidden; `detail`: `{visible}`
 */
export default class ShowPanel extends EventTarget {
    #el;
    #owner;
    #toggleKey;
    /** @type {import('./app-channel.js').default | null} */
    #app = null;
    #myId = null;
    #listeners = [];

    /**
     * @param {object} elements - from stream.html
     * @param {HTMLElement} elements.panel - the panel (starts hidden)
     * @param {HTMLElement} elements.controlsLine - who has the controls
     * @param {HTMLElement} elements.ownerTools - views, script box, hand over; removed for
     *   spectators
     * @param {HTMLUListElement} elements.spectatorList
     * @param {HTMLElement} elements.noSpectators - shown while nobody else watches
     * @param {HTMLButtonElement} elements.takeBack
     * @param {HTMLElement} elements.controlsReply
     * @param {HTMLElement} elements.viewButtons
     * @param {HTMLElement} elements.noViews
     * @param {HTMLElement} elements.viewReply
     * @param {HTMLFormElement} elements.scriptForm
     * @param {HTMLTextAreaElement} elements.script
     * @param {HTMLButtonElement} elements.runScript
     * @param {HTMLElement} elements.scriptReply
     * @param {object} options
     * @param {boolean} options.owner - the owner's page (else a spectator's)
     * @param {string} [options.toggleCode=SHOW_PANEL_TOGGLE_CODE]
     */
    constructor(elements, { owner, toggleCode = SHOW_PANEL_TOGGLE_CODE }) {
        super();
        this.#el = elements;
        this.#owner = Boolean(owner);
        this.#toggleKey = new ToggleKey(elements.panel.ownerDocument.defaultView, toggleCode,
            () => { this.visible = !this.visible; });

        // Keys in the panel (typing a script, Enter or Space on a button) are the panel's.
        for (const type of ['keydown', 'keyup']) {
            elements.panel.addEventListener(type, (event) => {
                if (event.code === 'Escape' && type === 'keydown') {
                    this.visible = false;
                }
                event.stopPropagation();
            });
        }
        if (this.#owner) {
            elements.takeBack.addEventListener('click', () => this.#takeBack());
            elements.scriptForm.addEventListener('submit', (event) => {
                event.preventDefault();
                this.#runScript();
            });
            elements.script.addEventListener('keydown', (event) => {
                if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
                    event.preventDefault();
                    this.#runScript();
                }
            });
        }
        else {
            elements.ownerTools.remove();
        }
        this.#render();
    }

    /** The `KeyboardEvent.code` that toggles the panel; input capture must skip it. */
    get toggleCode() {
        return this.#toggleKey.code;
    }

    get visible() {
        return !this.#el.panel.hidden;
    }

    set visible(value) {
        const visible = Boolean(value);
        if (visible === this.visible) {
            return;
        }
        this.#el.panel.hidden = !visible;
        if (!visible && this.#el.panel.contains(this.#el.panel.ownerDocument.activeElement)) {
            this.#el.panel.ownerDocument.activeElement.blur();
        }
        this.dispatchEvent(new CustomEvent('visibility', { detail: { visible } }));
    }

    /** The line saying who has the controls, as shown now. */
    get controlsText() {
        return this.#el.controlsLine.textContent;
    }

    /**
     * Speaks through `app` from now on (one per connection).
     * @param {import('./app-channel.js').default} app
     * @param {{viewerId: number | null}} who - this page's viewer id
     */
    attach(app, { viewerId }) {
        this.detach();
        this.#app = app;
        this.#myId = viewerId;
        const on = (type, listener) => {
            app.addEventListener(type, listener);
            this.#listeners.push([type, listener]);
        };
        on('controls', () => this.#render());
        on('status', () => this.#render());
        on('close', () => this.detach());
        this.#render();
    }

    /** The connection is gone: nothing can be asked until the next {@link attach}. */
    detach() {
        if (this.#app) {
            for (const [type, listener] of this.#listeners) {
                this.#app.removeEventListener(type, listener);
            }
        }
        this.#listeners = [];
        this.#app = null;
        this.#render();
    }

    /** Stops listening for the toggle key. */
    close() {
        this.detach();
        this.#toggleKey.close();
    }

    #render() {
        const app = this.#app;
        const controls = app?.controls ?? null;
        this.#el.controlsLine.textContent = app
            ? holderText(controls, this.#myId, this.#owner)
            : 'Not connected to the stream.';
        this.#el.controlsLine.dataset.holding = String(Boolean(controls) && controls.holder === this.#myId);
        if (!this.#owner) {
            return;
        }
        const connected = Boolean(app);
        this.#renderSpectators(controls, connected);
        this.#el.takeBack.hidden = !controls || controls.holder === this.#myId;
        this.#el.takeBack.disabled = !connected;
        this.#renderViews(connected ? viewsFrom(app.status) : [], connected);
        this.#el.runScript.disabled = !connected;
    }

    #renderSpectators(controls, connected) {
        const list = this.#el.spectatorList;
        const focused = list.contains(list.ownerDocument.activeElement)
            ? list.ownerDocument.activeElement.dataset.viewerId
            : null;
        const rows = spectatorRows(controls);
        list.replaceChildren(...rows.map((row) => {
            const item = list.ownerDocument.createElement('li');
            const name = list.ownerDocument.createElement('span');
            name.className = 'spectator-name';
            name.textContent = row.name;
            item.append(name);
            if (row.holds) {
                const holds = list.ownerDocument.createElement('span');
                holds.className = 'spectator-holds';
                holds.textContent = 'has the controls';
                item.append(holds);
            }
            else {
                const button = list.ownerDocument.createElement('button');
                button.type = 'button';
                button.className = 'hand-over';
                button.textContent = 'Hand over';
                button.setAttribute('aria-label', `Hand the controls over to ${row.name}`);
                button.dataset.viewerId = String(row.viewerId);
                button.disabled = !connected;
                button.addEventListener('click', () => this.#handOver(row, button));
                item.append(button);
            }
            return item;
        }));
        this.#el.noSpectators.hidden = rows.length > 0;
        if (focused !== null) {
            const again = list.querySelector(`button[data-viewer-id="${focused}"]`);
            (again ?? (this.#el.takeBack.hidden ? null : this.#el.takeBack))?.focus();
        }
    }

    #renderViews(views, connected) {
        const box = this.#el.viewButtons;
        const shown = [...box.querySelectorAll('button')].map((b) => b.dataset.view);
        if (shown.length === views.length && shown.every((v, i) => v === views[i])) {
            for (const button of box.querySelectorAll('button')) {
                button.disabled = !connected;
            }
        }
        else {
            box.replaceChildren(...views.map((view) => {
                const button = box.ownerDocument.createElement('button');
                button.type = 'button';
                button.className = 'view';
                button.textContent = view;
                button.dataset.view = view;
                button.disabled = !connected;
                button.addEventListener('click', () => this.#goToView(view, button));
                return button;
            }));
        }
        this.#el.noViews.hidden = views.length > 0 || !connected;
    }

    /** Sends one request, the button disabled meanwhile; the reply goes to `output`. */
    async #ask(what, send, button, output) {
        const app = this.#app;
        if (!app) {
            return;
        }
        button.disabled = true;
        output.textContent = `${what}…`;
        output.dataset.kind = 'progress';
        let shown;
        try {
            shown = replyText(what, await send(app));
        } catch (err) {
            shown = { text: `${what} failed: ${err.message}`, kind: 'error' };
        }
        output.textContent = shown.text;
        output.dataset.kind = shown.kind;
        button.disabled = this.#app === null;
    }

    #goToView(view, button) {
        return this.#ask(view, (app) => app.goToView(view), button, this.#el.viewReply);
    }

    #runScript() {
        const script = this.#el.script.value;
        if (!script.trim() || this.#el.runScript.disabled) {
            return;
        }
        this.#ask('Script', (app) => app.runScript(script), this.#el.runScript, this.#el.scriptReply);
    }

    #handOver(row, button) {
        this.#ask(`Hand over to ${row.name}`, (app) => app.passControl(row.viewerId), button,
            this.#el.controlsReply);
    }

    #takeBack() {
        this.#ask('Take back', (app) => app.takeControl(), this.#el.takeBack, this.#el.controlsReply);
    }
}
