/**
 * OpenSpace's own JSON API through the orchestrator's single origin, in a browser: the
 * owner's stream page, while its video plays, runs a Lua call through
 * `/api/instances/<uuid>/openspace` with web/js/openspace-api.js and shows the reply, which
 * comes from the GL test host's stand-in of the API (tests/gl-host/README.md) and names the
 * script; the host logs the script it was asked to run. A share link's page is refused.
 *
 * The real orchestrator binary (both roles) launches a real GL test host. Screenshots go to
 * tests/out/openspace-api/ (or $OSW_SCREENSHOTS). The stream page opens a peer connection:
 * runs only inside a loopback-only network namespace.
 */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import {
    launchBrowser, needsLoopbackNamespace, newProductContext, waitForStreamPage,
} from './lib/browser.js';
import { Orchestrator } from './lib/orchestrator.js';
import { waitUntil } from './lib/wait.js';

const OUT = process.env.OSW_SCREENSHOTS
    || fileURLToPath(new URL('../out/openspace-api/', import.meta.url));
const VIEWPORT = { width: 640, height: 360 };
const SCRIPT = 'return openspace.webrtc.status()';

const skip = needsLoopbackNamespace();

/** A browser context of the product at this test's viewport (lib/browser.js). */
const newContext = (browser, origin) => newProductContext(browser, origin, VIEWPORT);

/**
 * In `page` (a stream page of this origin): connects to the instance's OpenSpace API with
 * `token` (the session's when null), runs `script`, shows the reply in an `<output
 * id="lua-reply">` over the video and returns `{values}`, or `{error}` with the message when
 * the connection or the call failed.
 */
function runLuaInPage(page, script, token = null) {
    return page.evaluate(async ({ script, token }) => {
        const { default: OpenSpaceApi, openSpaceApiUrl } = await import('/js/openspace-api.js');
        const { SESSION_KEY, instanceIdFromPath } = await import('/js/product-api.js');
        const id = instanceIdFromPath(location.pathname);
        const api = new OpenSpaceApi(openSpaceApiUrl(location, id, token ?? localStorage.getItem(SESSION_KEY)));
        const out = document.createElement('output');
        out.id = 'lua-reply';
        // Set through the CSSOM: the origin's CSP allows no inline style attribute.
        Object.assign(out.style, {
            position: 'fixed', left: '8px', bottom: '8px', zIndex: 10, padding: '4px 8px',
            background: '#000c', color: '#fff', font: '14px monospace',
        });
        document.body.append(out);
        try {
            await api.connect();
            const values = await api.runLua(script);
            out.textContent = `${script} → ${JSON.stringify(values)}`;
            return { values };
        } catch (err) {
            out.textContent = `${script} → ${err.message}`;
            return { error: err.message };
        } finally {
            api.close();
        }
    }, { script, token });
}

describe('OpenSpace\'s JSON API through the orchestrator', { skip }, () => {
    let dir;
    let orchestrator;
    let browser;
    let origin;
    let owner;
    let instanceId;

    before(async () => {
        rmSync(OUT, { recursive: true, force: true });
        mkdirSync(OUT, { recursive: true });
        dir = mkdtempSync(path.join(os.tmpdir(), 'osw-openspace-api-'));
        orchestrator = await Orchestrator.start({ dir, slots: 1 });
        origin = orchestrator.url;
        browser = await launchBrowser();
    });

    after(async () => {
        await browser?.close();
        await orchestrator?.stopAndClean(dir);
    });

    test('the owner\'s stream page runs a Lua call while it plays and shows the reply', async () => {
        const context = await newContext(browser, origin);
        owner = await context.newPage();
        await owner.goto(origin);
        await owner.waitForFunction(() => window.__oswHome !== undefined);
        await owner.evaluate(() => window.__oswHome.ready);
        await owner.click('#launch');
        await owner.waitForURL(/\/stream\/[0-9a-f-]{36}$/, { timeout: 30000 });
        instanceId = new URL(owner.url()).pathname.split('/').pop();
        await waitForStreamPage(owner, { timeoutMs: 60000 });

        const reply = await runLuaInPage(owner, SCRIPT);
        assert.deepEqual(reply, { values: [`osw-gl-host ran: ${SCRIPT}`] });
        assert.equal(await owner.textContent('#lua-reply'),
            `${SCRIPT} → ${JSON.stringify([`osw-gl-host ran: ${SCRIPT}`])}`);
        // The script reached the instance itself, which logged it.
        await waitUntil(() => orchestrator.instanceLog(0).includes(`api: ran ${SCRIPT}\n`),
            'the host\'s "api: ran" line', { timeoutMs: 10000 });
        // The video played on through the call, from the same origin and token.
        assert.equal(await owner.evaluate(() => window.__osw.phase), 'streaming');
        await owner.screenshot({ path: path.join(OUT, '01-owner-lua-reply.png') });

        // The page learnt no address or port of the instance: its API port (4682 + slot) is
        // nowhere in what it holds.
        const held = await owner.evaluate(() => JSON.stringify({ ...localStorage }) + document.documentElement.outerHTML);
        assert.ok(!held.includes(':4682'), 'the page holds the instance\'s API port');
    });

    test('a share link\'s page is refused the API', async () => {
        const { url } = await owner.evaluate(async (id) => {
            const { SESSION_KEY } = await import('/js/product-api.js');
            const response = await fetch(`/api/instances/${id}/share`, {
                method: 'POST',
                headers: { Authorization: `Bearer ${localStorage.getItem(SESSION_KEY)}` },
            });
            return response.json();
        }, instanceId);
        const context = await newContext(browser, origin);
        const spectator = await context.newPage();
        await spectator.goto(new URL(url, origin).href);
        await spectator.waitForFunction(() => window.__osw?.access === 'viewer', null, { timeout: 30000 });
        const shareToken = await spectator.evaluate(async () => {
            const { shareTokenFromHash } = await import('/js/product-api.js');
            return shareTokenFromHash(location.hash);
        });
        assert.ok(shareToken, 'the share link carries a token');
        const before = orchestrator.instanceLog(0).split('\n').filter((l) => l.startsWith('api: ran ')).length;
        const reply = await runLuaInPage(spectator, 'return "a spectator was here"', shareToken);
        assert.match(reply.error ?? '', /refused the connection/, JSON.stringify(reply));
        await spectator.screenshot({ path: path.join(OUT, '02-spectator-refused.png') });
        // Nothing reached the instance.
        const afterwards = orchestrator.instanceLog(0).split('\n').filter((l) => l.startsWith('api: ran ')).length;
        assert.equal(afterwards, before);
        await context.close();
    });
});
