/**
 * Show control on the stream page, through the real orchestrator and a real GL test host:
 * the show panel (web/js/show-panel.js) over the `app` data channel (rust-core/SIGNALING.md).
 *
 * The owner launches from the home page and opens the panel (F8): it says the owner has the
 * controls; a script typed in its box runs in the host (`APP script viewer=<id> …` in the
 * instance's output, the reply "ran" on the page), and no key typed into the box reaches the
 * host; a view button moves the host's camera to the view's pose. A share link's page (a
 * second browser context) has no script box, says the owner has the controls, and a
 * `runScript` or `goToView` it sends raw on its `app` channel is refused by rust-core ("only
 * the owner"). The owner hands the controls to the spectator: both pages say so, the
 * spectator's drag turns the camera, the owner's page sends nothing, and input forged on the
 * owner's `input` channel is refused by the instance (`inputRefused`) and moves nothing.
 * Take back: the reverse.
 *
 * Screenshots go to tests/out/show-control/ (or $OSW_SCREENSHOTS). Opens peer connections:
 * runs only inside a loopback-only network namespace.
 */

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import {
    describePage, dragOnVideo, KEEP_BACKGROUND_PAGES_ALIVE, launchBrowser, launchFromHome,
    needsLoopbackNamespace, newProductContext, openHome, waitForStreamPage,
} from './lib/browser.js';
import { Orchestrator } from './lib/orchestrator.js';
import { waitUntil } from './lib/wait.js';

const OUT = process.env.OSW_SCREENSHOTS
    || fileURLToPath(new URL('../out/show-control/', import.meta.url));
const VIEWPORT = { width: 800, height: 450 };
/** Typed key by key: its a, d, s and w would turn the camera if they reached the host. */
const SCRIPT = 'openspace.setPropertyValueSingle("Scene.Earth.Renderable.Enabled", false)';
/** The GL test host's view "Above" (tests/gl-host/src/app_requests.cpp), as it prints it. */
const ABOVE_POSE = 'CAMERA yaw=0.00 pitch=85.00 distance=14.000';
/** GLFW_KEY_A: yaw +5° on the test host. */
const KEY_A = 65;

const skip = needsLoopbackNamespace();
let shots = 0;

async function shot(page, name) {
    mkdirSync(OUT, { recursive: true });
    await page.bringToFront();
    shots += 1;
    await page.screenshot({ path: path.join(OUT, `${String(shots).padStart(2, '0')}-${name}.png`), timeout: 15000 });
}

const eventually = (probe, what, timeoutMs = 15000) => waitUntil(probe, what, { timeoutMs });

/** Waits until `selector`'s text is `expected`; the timeout names what it was instead. */
async function waitForText(page, selector, expected, timeoutMs = 15000) {
    let seen;
    try {
        await waitUntil(async () => {
            seen = (await page.textContent(selector))?.trim();
            return seen === expected;
        }, `${selector} to read "${expected}"`, { timeoutMs });
    } catch (err) {
        throw new Error(`${err.message} (it reads "${seen}")\n${await describePage(page)}`);
    }
}

/**
 * Sends `messages` raw on the page's own `input` channel, past its input capture: what a page
 * that ignored the controls would send.
 */
function forgeInput(page, messages) {
    return page.evaluate((list) => {
        const channel = window.__osw.session.inputChannel;
        if (!channel) {
            throw new Error('no open input channel');
        }
        for (const message of list) {
            channel.send(JSON.stringify(message));
        }
    }, messages);
}

/** A press and a release of A. */
const KEY_A_TAP = [
    { type: 'key', key: KEY_A, action: 1, mods: 0 },
    { type: 'key', key: KEY_A, action: 0, mods: 0 },
];

describe('show control on the stream page, through the orchestrator', { skip }, () => {
    let dir;
    let orchestrator;
    let browser;
    let origin;
    let owner;
    let ownerId;
    let spectator;
    let spectatorId;

    const log = () => orchestrator.instanceLog(0);
    const lines = (prefix) => log().split('\n').filter((l) => l.startsWith(prefix));
    const cameraLines = () => lines('CAMERA ');
    const stats = () => orchestrator.instanceStats()[0] ?? {};

    /** Waits for two more STATS lines: the host ran on for a full stats interval since now. */
    async function hostRanOn() {
        const count = lines('STATS ').length;
        await eventually(() => lines('STATS ').length >= count + 2, 'two more STATS lines');
    }

    /**
     * Waits until the host printed no CAMERA line over a whole stats interval: a drag's last
     * events may still be on their way when the first of its lines appears.
     */
    async function cameraSettled() {
        for (;;) {
            const count = cameraLines().length;
            await hostRanOn();
            if (cameraLines().length === count) {
                return;
            }
        }
    }

    /**
     * `steer` holds the controls and `idle` does not: a drag on `steer`'s video turns the
     * camera; `idle`'s page captures nothing, its drag moves nothing, and what it forges on
     * its input channel is refused by the instance.
     */
    async function checkSteering(steer, idle) {
        await eventually(() => steer.evaluate(() => window.__osw.view?.controller != null),
            'input capture on the holder\'s page');
        await eventually(() => idle.evaluate(() => window.__osw.view?.controller === null),
            'no input capture on the other page');

        const before = cameraLines();
        await steer.bringToFront();
        await dragOnVideo(steer, 120, 40);
        await eventually(() => cameraLines().length > before.length, 'a CAMERA line after the holder\'s drag');
        assert.notEqual(cameraLines().at(-1), before.at(-1), 'the camera moved');
        await cameraSettled();

        const still = cameraLines();
        const refused = stats().inputRefused ?? 0;
        await idle.bringToFront();
        await dragOnVideo(idle, -150, 60);
        await forgeInput(idle, KEY_A_TAP);
        await eventually(() => (stats().inputRefused ?? 0) >= refused + KEY_A_TAP.length,
            `inputRefused to grow by ${KEY_A_TAP.length} (from ${refused})`);
        await hostRanOn();
        assert.deepEqual(cameraLines(), still, 'neither the drag nor the forged key moved the camera');
    }

    before(async () => {
        rmSync(OUT, { recursive: true, force: true });
        dir = mkdtempSync(path.join(os.tmpdir(), 'osw-show-control-'));
        orchestrator = await Orchestrator.start({ dir, slots: 1 });
        origin = orchestrator.url;
        browser = await launchBrowser({ extraArgs: KEEP_BACKGROUND_PAGES_ALIVE });
    });

    after(async () => {
        await browser?.close();
        await orchestrator?.stopAndClean(dir);
    });

    test('the owner\'s panel: a script runs in the host, a view moves its camera', async () => {
        const home = await openHome(await newProductContext(browser, origin, VIEWPORT), origin);
        await launchFromHome(home);
        owner = home;
        await waitForStreamPage(owner, { timeoutMs: 60000 });
        ownerId = await owner.evaluate(() => window.__osw.session.viewerId);
        assert.ok(Number.isInteger(ownerId), `viewer id ${ownerId}`);

        assert.equal(await owner.isVisible('#show-panel'), false, 'the panel starts hidden');
        const inputBefore = stats().inputEvents ?? 0;
        await owner.keyboard.press('F8');
        await owner.waitForSelector('#show-panel:not([hidden])');
        assert.equal(await owner.getAttribute('#toggle-show', 'aria-expanded'), 'true');
        await waitForText(owner, '#controls-line', 'You have the controls');
        await eventually(async () => (await owner.locator('#view-buttons button').allTextContents()).join() === 'Home,Above,Side',
            'the host\'s views as buttons');
        await shot(owner, 'owner-panel');

        // (a) A script typed into the box runs in the host.
        const before = cameraLines();
        await owner.locator('#script').pressSequentially(SCRIPT);
        await owner.click('#run-script');
        await waitForText(owner, '#script-reply', 'Script: ran');
        assert.equal(await owner.getAttribute('#script-reply', 'data-kind'), 'ok');
        await eventually(() => log().includes(`APP script viewer=${ownerId} ${SCRIPT}\n`),
            'the host\'s APP script line');
        await shot(owner, 'owner-script-ran');
        // Neither F8 nor the keys typed into the box reached the host.
        await hostRanOn();
        assert.deepEqual(cameraLines(), before, 'no CAMERA line from typing');
        assert.equal(stats().inputEvents ?? 0, inputBefore, 'no input event from F8 or the script box');

        // (b) A view button moves the host's camera to the view's pose.
        await owner.getByRole('button', { name: 'Above', exact: true }).click();
        await waitForText(owner, '#view-reply', 'Above: done');
        await eventually(() => cameraLines().at(-1)?.startsWith(ABOVE_POSE), `${ABOVE_POSE} as the last CAMERA line`);
        assert.match(log(), new RegExp(`APP view viewer=${ownerId} Above\n`));
        await shot(owner, 'owner-view-above');
    });

    test('a share link\'s panel: who has the controls, no script box; its requests are refused', async () => {
        await owner.click('#share');
        await owner.waitForSelector('#share-box:not([hidden])');
        const link = await owner.inputValue('#share-url');
        await owner.click('#share-close');

        spectator = await (await newProductContext(browser, origin, VIEWPORT)).newPage();
        await spectator.goto(link);
        await waitForStreamPage(spectator, { timeoutMs: 60000 });
        spectatorId = await spectator.evaluate(() => window.__osw.session.viewerId);
        assert.ok(Number.isInteger(spectatorId) && spectatorId !== ownerId, `viewer id ${spectatorId}`);

        await spectator.click('#toggle-show');
        await spectator.waitForSelector('#show-panel:not([hidden])');
        await waitForText(spectator, '#controls-line', 'The owner has the controls');
        assert.equal(await spectator.locator('#script').count(), 0, 'no script box');
        assert.equal(await spectator.locator('#view-buttons, .hand-over, #take-back').count(), 0,
            'no views, no handing over');
        assert.equal(await spectator.textContent('#role'), 'View only');
        await shot(spectator, 'spectator-panel');

        // Sent raw on the spectator's app channel, a request is refused by rust-core itself.
        const replies = await spectator.evaluate((script) => {
            const channel = window.__osw.session.appChannel;
            if (!channel) {
                throw new Error('no open app channel');
            }
            const ask = (request) => new Promise((resolve, reject) => {
                const timer = setTimeout(() => reject(new Error(`no reply to ${request.type} in 10 s`)), 10000);
                channel.addEventListener('message', function onMessage({ data }) {
                    const message = JSON.parse(data);
                    if (message.type === 'reply' && message.id === request.id) {
                        clearTimeout(timer);
                        channel.removeEventListener('message', onMessage);
                        resolve(message);
                    }
                });
                channel.send(JSON.stringify(request));
            });
            return Promise.all([
                ask({ type: 'runScript', id: 9001, script }),
                ask({ type: 'goToView', id: 9002, view: 'Side' }),
            ]);
        }, SCRIPT);
        for (const reply of replies) {
            assert.equal(reply.ok, false, JSON.stringify(reply));
            assert.match(reply.message, /only the owner/);
        }
        assert.ok(!log().includes(`APP script viewer=${spectatorId} `), 'no script reached the host');
        assert.ok(!log().includes(`APP view viewer=${spectatorId} `), 'no view reached the host');

        // The owner's panel lists the spectator, with a button to hand it the controls.
        await owner.bringToFront();
        await eventually(async () => (await owner.locator('#spectator-list li').allTextContents())
            .some((t) => t.startsWith(`Spectator ${spectatorId}`)), 'the spectator in the owner\'s list');
    });

    test('handing over: the spectator steers, the owner does not; take back reverses it', async () => {
        await owner.bringToFront();
        await owner.getByRole('button', { name: `Hand the controls over to Spectator ${spectatorId}` }).click();
        await waitForText(owner, '#controls-line', `Spectator ${spectatorId} has the controls`);
        await waitForText(spectator, '#controls-line', 'You have the controls');
        await waitForText(spectator, '#role', 'You have the controls');
        assert.ok(await owner.isVisible('#take-back'), 'the owner may take them back');
        await eventually(() => log().includes(`CONTROLS ${spectatorId}\n`), 'the host\'s CONTROLS line');
        await eventually(() => stats().peers?.find((p) => p.controls)?.viewerId === spectatorId,
            'the instance\'s stats to mark the spectator as the holder');
        await shot(owner, 'owner-handed-over');
        await shot(spectator, 'spectator-holds');

        await checkSteering(spectator, owner);

        await owner.bringToFront();
        await owner.click('#take-back');
        await waitForText(owner, '#controls-line', 'You have the controls');
        await waitForText(spectator, '#controls-line', 'The owner has the controls');
        await waitForText(spectator, '#role', 'View only');
        assert.equal(await owner.isVisible('#take-back'), false);
        await eventually(() => lines('CONTROLS ').at(-1) === `CONTROLS ${ownerId}`, 'CONTROLS back to the owner');
        await shot(owner, 'owner-took-back');

        await checkSteering(owner, spectator);
    });
});
