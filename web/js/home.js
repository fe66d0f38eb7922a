/**
 * Entry of the home page (`/`): launch an instance, list this browser's instances with their
 * live status (pushed by the orchestrator), rejoin, share or stop one.
 *
 * @module home
 */

import confirmClick from './confirm-click.js';
import InstanceFeed from './instance-feed.js';
import ProductApi, { describeInstance, isLive, socketUrl } from './product-api.js';

const api = new ProductApi();
const elements = {
    launch: document.getElementById('launch'),
    message: document.getElementById('message'),
    list: document.getElementById('instances'),
    empty: document.getElementById('empty'),
    connection: document.getElementById('connection'),
    template: document.getElementById('instance-row'),
};

/** The instances shown, by id, in the server's order (newest first). */
let instances = new Map();
/** Share links made on this page, by instance id. */
const shareLinks = new Map();
let feed = null;

function showMessage(text, kind = 'info') {
    elements.message.textContent = text;
    elements.message.dataset.kind = kind;
}

function shortId(id) {
    return id.slice(0, 8);
}

function clockTime(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Replaces the whole list (a snapshot from the server). */
function setAll(views) {
    instances = new Map(views.map((v) => [v.id, v]));
    render();
}

/** Adds or updates one instance (a pushed change). */
function upsert(view) {
    if (!instances.has(view.id)) {
        instances = new Map([[view.id, view], ...instances]);
    }
    else {
        instances.set(view.id, view);
    }
    render();
}

function render() {
    const views = [...instances.values()];
    // Live ones first, each group newest first.
    views.sort((a, b) => (isLive(b) - isLive(a)) || (b.createdAt - a.createdAt));
    elements.empty.hidden = views.length > 0;
    const rows = views.map((view) => rowFor(view));
    elements.list.replaceChildren(...rows);
}

/** Existing rows are reused so a half-confirmed Stop or an open share link survives updates. */
const rowCache = new Map();

function rowFor(view) {
    let row = rowCache.get(view.id);
    if (!row) {
        row = elements.template.content.firstElementChild.cloneNode(true);
        row.dataset.id = view.id;
        row.querySelector('.stop').addEventListener('click', (e) => onStop(view.id, e.currentTarget));
        row.querySelector('.share').addEventListener('click', () => onShare(view.id, row));
        rowCache.set(view.id, row);
    }
    const { text, kind } = describeInstance(view);
    const live = isLive(view);
    row.dataset.status = view.status;
    row.classList.toggle('ended', !live);
    const badge = row.querySelector('.badge');
    badge.textContent = view.status === 'ENDED' ? 'ENDED' : view.status;
    badge.dataset.kind = kind;
    const name = row.querySelector('.name');
    name.textContent = `Instance ${shortId(view.id)}`;
    name.href = view.url;
    row.querySelector('.since').textContent = view.endedAt
        ? `started ${clockTime(view.createdAt)}, ended ${clockTime(view.endedAt)}`
        : `started ${clockTime(view.createdAt)}`;
    row.querySelector('.detail').textContent = text;
    const open = row.querySelector('.open');
    open.href = view.url;
    open.textContent = view.status === 'INITIALIZING' ? 'Open' : 'Rejoin';
    open.hidden = !live;
    row.querySelector('.share').hidden = !live;
    const stop = row.querySelector('.stop');
    stop.hidden = !live;
    if (view.status === 'DEINITIALIZING') {
        stop.disabled = true;
        stop.textContent = 'Stopping…';
    }
    const link = shareLinks.get(view.id);
    const linkBox = row.querySelector('.share-link');
    linkBox.hidden = !link || !live;
    if (link) {
        linkBox.querySelector('input').value = link;
    }
    return row;
}

async function onLaunch() {
    elements.launch.disabled = true;
    showMessage('Launching an instance…', 'progress');
    try {
        const view = await api.launch();
        upsert(view);
        showMessage('Launched. Opening its stream…', 'ok');
        window.location.assign(view.url);
    } catch (err) {
        showMessage(`Could not launch: ${err.message}.`, 'error');
        elements.launch.disabled = false;
    }
}

async function onStop(id, button) {
    if (!confirmClick(button, { label: 'Stop' })) {
        return;
    }
    button.disabled = true;
    button.textContent = 'Stopping…';
    try {
        upsert(await api.stop(id));
        showMessage(`Instance ${shortId(id)} stopped; its slot is free again.`, 'ok');
    } catch (err) {
        showMessage(`Could not stop instance ${shortId(id)}: ${err.message}.`, 'error');
        button.disabled = false;
        button.textContent = 'Stop';
    }
}

async function onShare(id, row) {
    try {
        const { url } = await api.share(id);
        const link = new URL(url, window.location.origin).href;
        shareLinks.set(id, link);
        render();
        const input = row.querySelector('.share-link input');
        input.focus();
        input.select();
        await navigator.clipboard?.writeText(link).then(
            () => showMessage('View-only link copied to the clipboard.', 'ok'),
            () => showMessage('Copy the view-only link below.', 'info'),
        );
    } catch (err) {
        showMessage(`Could not make a share link: ${err.message}.`, 'error');
    }
}

function follow() {
    feed?.close();
    feed = new InstanceFeed(socketUrl(window.location, '/api/events', api.token));
    feed.addEventListener('message', ({ detail }) => {
        if (detail.type === 'instances') {
            setAll(detail.instances);
        }
        else if (detail.type === 'instance') {
            upsert(detail.instance);
        }
    });
    feed.addEventListener('connection', ({ detail }) => {
        elements.connection.hidden = detail.connected;
        elements.connection.textContent = detail.connected
            ? ''
            : 'Lost contact with the server; reconnecting…';
    });
    feed.addEventListener('refused', () => {
        elements.connection.hidden = false;
        elements.connection.textContent = 'Live updates are unavailable; reload the page.';
    });
    feed.start();
}

/** Resolves once the first list is shown (tests wait on it). */
const ready = (async () => {
    elements.launch.addEventListener('click', onLaunch);
    try {
        setAll(await api.listInstances());
        follow();
    } catch (err) {
        showMessage(`The server cannot be reached: ${err.message}.`, 'error');
    }
})();

/** Test hooks (tests/e2e/product.test.js). */
window.__oswHome = Object.freeze({
    ready,
    get instances() { return [...instances.values()]; },
});
