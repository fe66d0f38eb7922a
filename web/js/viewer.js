/**
 * Entry of viewer.html: reads the page's query (`?signal=ws://host:4700/`, `?viewOnly=1`),
 * starts the stream and exposes hooks for automated tests on `window.__osw`.
 *
 * @module viewer
 */

import { viewerOptionsFromQuery } from './config.js';
import StreamView from './stream-view.js';

const options = viewerOptionsFromQuery(window.location.search, window.location.hostname);
const view = new StreamView({
    video: document.getElementById('stream'),
    status: document.getElementById('status'),
    stats: document.getElementById('stats'),
    startButton: document.getElementById('start'),
    soundButton: document.getElementById('sound'),
}, options);

/**
 * Test hooks (tests/e2e/lib/browser.js reads them).
 * - `session`: the ViewerSession (`state`, `reason`, `viewerId`, `peerConnection`)
 * - `stats`: the latest stats snapshot, or null
 * - `readStrip()`: decodes the timestamp strip of the frame shown now
 * - `frameClock`: per-frame timings (`samples`, `skipped`, `mismatched`, `clear()`)
 * - `view`: the StreamView (`controller` sends input and fires `input` events)
 */
window.__osw = Object.freeze({
    get session() { return view.session; },
    get stats() { return view.statsOverlay.latest; },
    readStrip: () => view.frameClock.readCurrent(),
    frameClock: view.frameClock,
    view,
});

// Tell the server at once when the tab goes away, instead of it waiting for ICE to time out.
window.addEventListener('pagehide', () => view.close());
view.start();
