/**
 * Entry of the stream page (`/stream/<uuid>`, `#view=<token>` for a share link).
 *
 * Phases (`document.body.dataset.phase`): `loading` → `waiting` (the instance starts; a
 * progress bar, pushed status) → `connecting` → `streaming` (the video fills the window;
 * input goes to the instance) ⇄ `reconnecting` (the connection dropped; it comes back by
 * itself) → `ended` (the page says why). `refused` when this browser may not watch.
 *
 * The owner's window size is the stream's size: a resize is sent (debounced) through the
 * orchestrator's RESOLUTION. Spectators (share links) watch, and steer only while an owner
 * has handed them the controls. The show panel (F8, show-panel.js) says who has them and
 * gives the owner views, scripts and handing over, through the `app` channel.
 *
 * @module stream-page
 */

import AppChannel from './app-channel.js';
import confirmClick from './confirm-click.js';
import InstanceFeed, { reconnectDelay } from './instance-feed.js';
import ProductApi, {
    instanceIdFromPath, shareTokenFromHash, socketUrl, startupProgress, streamSize,
} from './product-api.js';
import SessionState from './session-state.js';
import ShowPanel from './show-panel.js';
import StreamView from './stream-view.js';

/** Quiet time after the last window resize before the stream follows. */
const RESIZE_DEBOUNCE_MS = 400;

const $ = (id) => document.getElementById(id);
const elements = {
    video: $('stream'),
    status: $('status'),
    stats: $('stats'),
    start: $('start'),
    waiting: $('waiting'),
    progress: $('progress'),
    waitingText: $('waiting-text'),
    ended: $('ended'),
    endedTitle: $('ended-title'),
    endedReason: $('ended-reason'),
    role: $('role'),
    share: $('share'),
    toggleStats: $('toggle-stats'),
    fullscreen: $('fullscreen'),
    stop: $('stop'),
    shareBox: $('share-box'),
    shareUrl: $('share-url'),
    shareClose: $('share-close'),
    notice: $('notice'),
    toggleShow: $('toggle-show'),
    show: {
        panel: $('show-panel'),
        controlsLine: $('controls-line'),
        ownerTools: $('owner-tools'),
        spectatorList: $('spectator-list'),
        noSpectators: $('no-spectators'),
        takeBack: $('take-back'),
        controlsReply: $('controls-reply'),
        viewButtons: $('view-buttons'),
        noViews: $('no-views'),
        viewReply: $('view-reply'),
        scriptForm: $('script-form'),
        script: $('script'),
        runScript: $('run-script'),
        scriptReply: $('script-reply'),
    },
};

const api = new ProductApi();
const id = instanceIdFromPath(window.location.pathname);
const shareToken = shareTokenFromHash(window.location.hash);
const token = shareToken ?? api.token;

/** Page state. */
const state = {
    phase: 'loading',
    /** Every phase entered, in order (tests read it). */
    phases: ['loading'],
    /** 'owner' or 'viewer'. */
    access: null,
    /** The latest instance view pushed or fetched. */
    instance: null,
    /** @type {StreamView | null} */
    view: null,
    /** The current connection's `app` channel. @type {AppChannel | null} */
    app: null,
    /** The show panel, made once the access is known. @type {ShowPanel | null} */
    panel: null,
    /** Whether a connection is waiting for its ICE servers (no second one may start). */
    preparing: false,
    /** Reconnection attempts since the last time the stream played. */
    attempt: 0,
    /** Connections made after the first. */
    reconnects: 0,
    /** Whether the stats overlay is shown; kept across reconnections. */
    statsVisible: false,
    /** The size last asked for. */
    requestedSize: null,
    reconnectTimer: null,
    resizeTimer: null,
    waitingTimer: null,
    noticeTimer: null,
    /** @type {InstanceFeed | null} */
    feed: null,
};

function setPhase(phase) {
    if (state.phase === phase) {
        return;
    }
    state.phase = phase;
    state.phases.push(phase);
    document.body.dataset.phase = phase;
}

/**
 * A banner over the stream.
 * @param {string} text - '' hides it
 * @param {{kind?: string, forMs?: number}} [options]
 */
function notice(text, { kind = 'info', forMs = 0 } = {}) {
    clearTimeout(state.noticeTimer);
    elements.notice.textContent = text;
    elements.notice.dataset.kind = kind;
    elements.notice.hidden = !text;
    if (text && forMs > 0) {
        state.noticeTimer = setTimeout(() => { elements.notice.hidden = true; }, forMs);
    }
}

function refuse(reason) {
    setPhase('refused');
    elements.endedTitle.textContent = 'You cannot watch this instance';
    elements.endedReason.textContent = reason;
    elements.ended.hidden = false;
    elements.waiting.hidden = true;
    for (const owned of [elements.share, elements.stop, elements.toggleStats, elements.fullscreen,
        elements.toggleShow]) {
        owned.hidden = true;
    }
}

function seconds(ms) {
    return Math.max(0, Math.round(ms / 1000));
}

function showWaiting() {
    setPhase('waiting');
    elements.waiting.hidden = false;
    const tick = () => {
        const view = state.instance;
        if (!view || view.status !== 'INITIALIZING') {
            return;
        }
        const elapsed = Date.now() - view.createdAt;
        const expected = view.expectedStartupMs;
        elements.progress.value = startupProgress(elapsed, expected);
        const usual = expected > 0 ? ` It usually takes about ${Math.max(1, seconds(expected))} s.` : '';
        elements.waitingText.textContent = elapsed > 1.5 * expected && expected > 0
            ? `Launched ${seconds(elapsed)} s ago; this is taking longer than usual…`
            : `Launched ${seconds(elapsed)} s ago.${usual}`;
    };
    tick();
    clearInterval(state.waitingTimer);
    state.waitingTimer = setInterval(tick, 200);
}

function hideWaiting() {
    clearInterval(state.waitingTimer);
    elements.progress.value = 1;
    elements.waiting.hidden = true;
}

/** The instance is gone: no more reconnecting; say why. */
function end(reason) {
    clearTimeout(state.reconnectTimer);
    clearTimeout(state.resizeTimer);
    hideWaiting();
    closeView();
    notice('');
    setPhase('ended');
    elements.endedTitle.textContent = 'This instance has ended';
    elements.endedReason.textContent = reason || 'It is no longer running.';
    elements.ended.hidden = false;
    elements.share.hidden = true;
    elements.stop.hidden = true;
    elements.shareBox.hidden = true;
    if (state.panel) {
        state.panel.visible = false;
    }
}

/** What to do with an instance's (new) state. */
function apply(view) {
    state.instance = view;
    switch (view.status) {
        case 'INITIALIZING':
            showWaiting();
            break;
        case 'RUNNING':
            hideWaiting();
            if (!state.view && !state.reconnectTimer && !state.preparing) {
                // The stream follows the window once the welcome has told the limit.
                connect();
            }
            break;
        case 'DEINITIALIZING':
            notice('The instance is stopping…', { kind: 'warning' });
            break;
        default:
            end(view.reason);
            break;
    }
}

function closeView() {
    state.app?.close();
    state.app = null;
    if (state.access !== 'owner') {
        elements.role.textContent = 'View only';
        delete elements.role.dataset.holding;
    }
    if (state.view) {
        state.statsVisible = state.view.statsOverlay.visible;
        const view = state.view;
        state.view = null;
        view.close();
    }
    // A stream whose connection died would hold the video element on a source that never
    // delivers another frame; headless Chromium then stalls page captures.
    elements.video.srcObject = null;
}

/** A fresh start button per connection: old sessions must not keep listeners on it. */
function freshStartButton() {
    const button = elements.start.cloneNode(true);
    button.hidden = true;
    elements.start.replaceWith(button);
    elements.start = button;
    return button;
}

/**
 * The STUN/TURN servers for the next connection, asked for each time: their TURN
 * credentials expire. `[]` when the orchestrator has none, or cannot say.
 */
async function freshIceServers() {
    try {
        return await api.iceServers(id, token);
    } catch (err) {
        // Without them a browser on the streamer's network still connects; one that needs a
        // relay fails, and its reconnection asks again.
        console.warn(`connecting without STUN/TURN servers: ${err.message}`);
        return [];
    }
}

async function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    setPhase(state.attempt > 0 ? 'reconnecting' : 'connecting');
    state.preparing = true;
    const iceServers = await freshIceServers();
    state.preparing = false;
    // The instance may have ended (or stopped running) while the servers were asked for.
    if (state.view || state.phase === 'ended' || state.instance?.status !== 'RUNNING') {
        return;
    }
    const view = new StreamView({
        video: elements.video,
        status: elements.status,
        stats: elements.stats,
        startButton: freshStartButton(),
        soundButton: document.getElementById('sound'),
    }, {
        signalUrl: socketUrl(window.location, `/api/instances/${id}/signal`, token),
        viewOnly: state.access !== 'owner',
        iceServers,
        reservedCodes: state.panel ? [state.panel.toggleCode] : [],
    });
    view.statsOverlay.visible = state.statsVisible;
    view.session.addEventListener('appchannel', ({ detail }) => {
        if (state.view === view) {
            attachApp(view, new AppChannel(detail.channel));
        }
    });
    state.view = view;
    if (state.phases.includes('streaming')) {
        state.reconnects += 1;
    }
    view.session.addEventListener('statechange', ({ detail }) => {
        if (state.view !== view) {
            return;
        }
        if (detail.state === SessionState.NEGOTIATING) {
            requestSize(true);
        }
        else if (detail.state === SessionState.STREAMING) {
            setPhase('streaming');
            if (state.attempt > 0) {
                notice('Reconnected.', { kind: 'ok', forMs: 3000 });
            }
            state.attempt = 0;
            elements.video.focus({ preventScroll: true });
        }
        else if (detail.state === SessionState.FAILED || detail.state === SessionState.CLOSED) {
            closeView();
            if (state.instance?.status === 'RUNNING') {
                scheduleReconnect(view.session.reason);
            }
        }
    });
    view.start();
}

/** A connection's `app` channel opened: the panel speaks on it; the controls steer input. */
function attachApp(view, app) {
    state.app = app;
    state.panel?.attach(app, { viewerId: view.session.viewerId });
    app.addEventListener('controls', ({ detail }) => {
        if (state.app === app) {
            onControls(view, detail);
        }
    });
}

/** Who has the controls changed: this page captures input while it holds them. */
function onControls(view, { holder }) {
    const holding = holder !== null && holder === view.session.viewerId;
    // Null until the first `controls` message of this connection: a new connection is a new
    // viewer (a new view), which holds nothing until told.
    const before = view.holdsControls;
    view.holdsControls = holding;
    if (state.access === 'owner') {
        return;
    }
    elements.role.textContent = holding ? 'You have the controls' : 'View only';
    elements.role.dataset.holding = String(holding);
    if (holding && before !== true) {
        notice('You have the controls: your mouse and keys now steer the view.',
            { kind: 'ok', forMs: 5000 });
    }
    else if (!holding && before === true) {
        notice('The controls went back to the owner.', { forMs: 4000 });
    }
}

function scheduleReconnect(reason) {
    state.attempt += 1;
    const delay = reconnectDelay(state.attempt);
    setPhase('reconnecting');
    // The reason is for developers; the viewer needs to know it is being handled.
    console.info(`stream connection lost: ${reason || 'no reason given'}`);
    notice(`The connection to the stream dropped; reconnecting… (attempt ${state.attempt})`,
        { kind: 'warning' });
    state.reconnectTimer = setTimeout(() => {
        state.reconnectTimer = null;
        if (state.instance?.status === 'RUNNING' && !state.view && !state.preparing) {
            connect();
        }
    }, delay);
}

/**
 * Makes the stream the window's size (owner only). `force` asks even for the size asked
 * last (after a reconnection the instance may have been resized meanwhile).
 */
async function requestSize(force) {
    if (state.access !== 'owner' || state.instance?.status !== 'RUNNING') {
        return;
    }
    // The instance's limit arrives with the welcome; until then there is nothing to fit to.
    const limit = state.view?.session.streamLimit;
    if (!limit) {
        return;
    }
    const size = streamSize(window.innerWidth, window.innerHeight, window.devicePixelRatio, limit);
    const last = state.requestedSize;
    if (!force && last && last.width === size.width && last.height === size.height) {
        return;
    }
    const current = state.instance;
    if (current.width === size.width && current.height === size.height) {
        state.requestedSize = size;
        return;
    }
    state.requestedSize = size;
    try {
        await api.resize(id, size.width, size.height);
    } catch (err) {
        state.requestedSize = null;
        if (state.instance?.status === 'RUNNING') {
            notice(`The stream could not follow the window's size: ${err.message}.`,
                { kind: 'warning', forMs: 5000 });
        }
    }
}

function onWindowResize() {
    clearTimeout(state.resizeTimer);
    state.resizeTimer = setTimeout(() => requestSize(false), RESIZE_DEBOUNCE_MS);
}

/** Toolbar buttons hand the keyboard back to the stream after a click. */
function onTool(button, action) {
    button.addEventListener('click', async (event) => {
        await action(event);
        button.blur();
    });
}

function setUpToolbar() {
    const owner = state.access === 'owner';
    elements.share.hidden = !owner;
    elements.stop.hidden = !owner;
    elements.role.hidden = owner;
    state.panel = new ShowPanel(elements.show, { owner });
    state.panel.addEventListener('visibility', ({ detail }) => {
        elements.toggleShow.setAttribute('aria-expanded', String(detail.visible));
    });
    onTool(elements.toggleShow, () => {
        state.panel.visible = !state.panel.visible;
    });
    onTool(elements.toggleStats, () => {
        const visible = state.view ? !state.view.statsOverlay.visible : !state.statsVisible;
        state.statsVisible = visible;
        if (state.view) {
            state.view.statsOverlay.visible = visible;
        }
    });
    onTool(elements.fullscreen, async () => {
        try {
            if (document.fullscreenElement) {
                await document.exitFullscreen();
            }
            else {
                await document.documentElement.requestFullscreen();
            }
        } catch (err) {
            notice(`Full screen is not available: ${err.message}`, { forMs: 4000 });
        }
    });
    document.addEventListener('fullscreenchange', () => {
        elements.fullscreen.textContent = document.fullscreenElement ? 'Exit full screen' : 'Full screen';
    });
    onTool(elements.share, async () => {
        try {
            const { url } = await api.share(id);
            elements.shareUrl.value = new URL(url, window.location.origin).href;
            elements.shareBox.hidden = false;
            elements.shareUrl.focus();
            elements.shareUrl.select();
            await navigator.clipboard?.writeText(elements.shareUrl.value).catch(() => {});
        } catch (err) {
            notice(`Could not make a share link: ${err.message}.`, { kind: 'error', forMs: 5000 });
        }
    });
    elements.shareClose.addEventListener('click', () => { elements.shareBox.hidden = true; });
    onTool(elements.stop, async () => {
        const button = elements.stop;
        if (!confirmClick(button, { label: 'Stop' })) {
            return;
        }
        button.disabled = true;
        button.textContent = 'Stopping…';
        try {
            apply(await api.stop(id));
        } catch (err) {
            button.disabled = false;
            button.textContent = 'Stop';
            notice(`Could not stop the instance: ${err.message}.`, { kind: 'error', forMs: 5000 });
        }
    });
}

function follow() {
    const feed = new InstanceFeed(socketUrl(window.location, `/api/instances/${id}/events`, token));
    state.feed = feed;
    feed.addEventListener('message', ({ detail }) => {
        if (detail.type === 'instance' && detail.instance?.id === id) {
            apply(detail.instance);
        }
    });
    feed.addEventListener('connection', ({ detail }) => {
        if (state.phase === 'ended') {
            return;
        }
        if (!detail.connected) {
            notice('Lost contact with the server; reconnecting…', { kind: 'warning' });
        }
        else if (elements.notice.textContent.startsWith('Lost contact')) {
            notice('');
        }
    });
    feed.start();
}

async function main() {
    if (!id) {
        refuse('This is not the address of an instance.');
        return;
    }
    if (!token) {
        refuse('This instance belongs to another browser. Ask its owner for a share link.');
        return;
    }
    let view;
    try {
        view = await api.instance(id, token);
    } catch (err) {
        const why = {
            401: shareToken ? 'This share link is not valid.' : 'This browser has no session the server knows.',
            403: 'This instance belongs to another browser. Ask its owner for a share link.',
            404: 'There is no such instance.',
        }[err.status];
        refuse(why ?? `The server cannot be reached: ${err.message}.`);
        return;
    }
    state.access = view.access;
    setUpToolbar();
    window.addEventListener('resize', onWindowResize);
    window.addEventListener('pagehide', () => {
        state.feed?.close();
        closeView();
    });
    apply(view);
    follow();
}

const idleSession = Object.freeze({ state: 'idle', reason: '', viewerId: null, viewOnly: false });

/**
 * Test hooks, the viewer page's (`session`, `stats`, `readStrip()`, `frameClock`, `view`:
 * tests/e2e/lib/browser.js reads them) plus the product's (`phase`, `phases`, `access`,
 * `instance`, `reconnects`, `app`: the connection's AppChannel, `controls`: who has them).
 */
window.__osw = Object.freeze({
    get session() { return state.view?.session ?? idleSession; },
    get stats() { return state.view?.statsOverlay.latest ?? null; },
    readStrip: () => state.view?.frameClock.readCurrent() ?? null,
    get frameClock() { return state.view?.frameClock ?? null; },
    get view() { return state.view; },
    get phase() { return state.phase; },
    get phases() { return [...state.phases]; },
    get access() { return state.access; },
    get instance() { return state.instance; },
    get reconnects() { return state.reconnects; },
    get app() { return state.app; },
    get controls() { return state.app?.controls ?? null; },
});

main();
