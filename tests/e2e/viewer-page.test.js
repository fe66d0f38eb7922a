/**
 * Smoke test of web/viewer.html against a fake signaling endpoint: the page's side of the
 * protocol up to the point where WebRTC would start, and the errors a viewer must be able to
 * read. No peer connection is opened, so no media leaves the browser.
 *
 * Set OSW_SCREENSHOTS=<folder> to keep screenshots of the page's states.
 */

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { WebSocketServer } from 'ws';

import {
    launchBrowser, openViewer, serveStatic, sessionInfo, statusText, waitForSessionState,
} from './lib/browser.js';

/**
 * A signaling endpoint on 127.0.0.1 that lets the test play the server: each connection
 * queues the JSON messages it receives.
 */
async function fakeSignaling() {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => { wss.once('listening', resolve); });
    const pending = [];
    const waiting = [];
    wss.on('connection', (socket) => {
        const inbox = [];
        const readers = [];
        let closed = null;
        socket.on('message', (data) => {
            const message = JSON.parse(data.toString());
            if (readers.length) readers.shift()(message);
            else inbox.push(message);
        });
        socket.on('close', (code) => {
            closed = code;
            for (const reader of readers.splice(0)) reader(null);
        });
        const connection = {
            /** The next message from the page, or null once the socket closed. */
            next: () => new Promise((resolve) => {
                if (inbox.length) resolve(inbox.shift());
                else if (closed !== null) resolve(null);
                else readers.push(resolve);
            }),
            send: (message) => socket.send(JSON.stringify(message)),
            close: () => socket.close(),
            get closeCode() { return closed; },
        };
        if (waiting.length) waiting.shift()(connection);
        else pending.push(connection);
    });
    return {
        url: `ws://127.0.0.1:${wss.address().port}/`,
        /** The next connection a page opens. */
        connection: () => new Promise((resolve) => {
            if (pending.length) resolve(pending.shift());
            else waiting.push(resolve);
        }),
        close: () => new Promise((resolve) => {
            for (const client of wss.clients) client.terminate();
            wss.close(() => resolve());
        }),
    };
}

/** A 127.0.0.1 port with nothing listening on it. */
async function unusedPort() {
    const server = createServer();
    await new Promise((resolve) => { server.listen(0, '127.0.0.1', resolve); });
    const { port } = server.address();
    await new Promise((resolve) => { server.close(resolve); });
    return port;
}

async function screenshot(page, name) {
    if (process.env.OSW_SCREENSHOTS) {
        await page.screenshot({ path: path.join(process.env.OSW_SCREENSHOTS, `${name}.png`) });
    }
}

let web;
let browser;
let signaling;

before(async () => {
    web = await serveStatic();
    browser = await launchBrowser();
    signaling = await fakeSignaling();
});

after(async () => {
    await browser?.close();
    await signaling?.close();
    await web?.close();
});

async function newViewer(options = {}) {
    const page = await browser.newPage();
    await openViewer(page, signaling.url, { baseUrl: web.url, ...options });
    const server = await signaling.connection();
    return { page, server };
}

test('joins, is welcomed, and shows a fatal server error in plain words', { timeout: 60000 }, async () => {
    const { page, server } = await newViewer();
    try {
        assert.deepEqual(await server.next(), { type: 'join', viewOnly: false });
        assert.equal((await sessionInfo(page)).state, 'connecting');
        assert.match(await statusText(page), /^Connecting to the streaming server/);
        await screenshot(page, 'viewer-connecting');

        server.send({ type: 'welcome', viewerId: 7, protocol: 1 });
        const welcomed = await waitForSessionState(page, 'negotiating');
        assert.equal(welcomed.viewerId, 7);
        assert.match(await statusText(page), /^Setting up the video connection/);

        server.send({ type: 'error', message: 'too many viewers', fatal: true });
        server.close();
        const failed = await waitForSessionState(page, 'failed');
        assert.match(failed.reason, /too many viewers/);
        const status = await statusText(page);
        assert.equal(status, 'Error: The server refused the stream: too many viewers.');
        assert.equal(await page.locator('#status').getAttribute('data-kind'), 'error');
        assert.ok(await page.locator('#status').isVisible());
        await screenshot(page, 'viewer-error');
    } finally {
        await page.close();
    }
});

test('a view-only viewer says so in its join', { timeout: 60000 }, async () => {
    const { page, server } = await newViewer({ viewOnly: true });
    try {
        assert.deepEqual(await server.next(), { type: 'join', viewOnly: true });
    } finally {
        await page.close();
    }
});

test('a non-fatal error is shown but the session goes on', { timeout: 60000 }, async () => {
    const { page, server } = await newViewer();
    try {
        await server.next();
        server.send({ type: 'welcome', viewerId: 1, protocol: 1 });
        await waitForSessionState(page, 'negotiating');
        server.send({ type: 'error', message: 'answer not expected now', fatal: false });
        await page.waitForFunction(() => document.getElementById('status').dataset.kind === 'notice');
        assert.equal(await statusText(page), 'The server reported: answer not expected now');
        assert.equal((await sessionInfo(page)).state, 'negotiating');
    } finally {
        await page.close();
    }
});

test('leaving sends bye and closes the socket normally', { timeout: 60000 }, async () => {
    const { page, server } = await newViewer();
    try {
        await server.next();
        server.send({ type: 'welcome', viewerId: 2, protocol: 1 });
        await waitForSessionState(page, 'negotiating');
        await page.evaluate(() => window.__osw.session.close());
        assert.deepEqual(await server.next(), { type: 'bye' });
        assert.equal(await server.next(), null);
        assert.equal(server.closeCode, 1000);
        assert.match(await statusText(page), /^Stream ended: closed by the viewer/);
    } finally {
        await page.close();
    }
});

test('the server\'s bye ends the session with its reason', { timeout: 60000 }, async () => {
    const { page, server } = await newViewer();
    try {
        await server.next();
        server.send({ type: 'bye', reason: 'shutdown' });
        const closed = await waitForSessionState(page, 'closed');
        assert.equal(closed.reason, 'the server ended the session: shutdown');
        assert.equal(await statusText(page), 'Stream ended: the server ended the session: shutdown.');
    } finally {
        await page.close();
    }
});

test('an unreachable server is reported, not waited for', { timeout: 60000 }, async () => {
    const port = await unusedPort();
    const page = await browser.newPage();
    try {
        await openViewer(page, `ws://127.0.0.1:${port}/`, { baseUrl: web.url });
        await waitForSessionState(page, 'failed', { timeoutMs: 10000 });
        assert.equal(await statusText(page),
            `Error: Could not reach the streaming server at ws://127.0.0.1:${port}/.`);
    } finally {
        await page.close();
    }
});

test('a signaling address that is not a WebSocket URL is reported', { timeout: 60000 }, async () => {
    const page = await browser.newPage();
    try {
        await openViewer(page, 'ftp://127.0.0.1/', { baseUrl: web.url });
        const failed = await waitForSessionState(page, 'failed', { timeoutMs: 10000 });
        assert.match(failed.reason, /^invalid signaling address ftp:\/\/127\.0\.0\.1\/: /);
        assert.match(await statusText(page), /^Error: Invalid signaling address ftp:.*[^.]\.$/);
    } finally {
        await page.close();
    }
});
