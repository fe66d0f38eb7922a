/**
 * The product spread over machines, as it runs in production: a web role with its database
 * on one machine (W), a supervisor on each of two rendering servers (R1, R2), the viewer's
 * Chromium on a fourth (C). Machines are network namespaces and routing decides who reaches
 * whom (lib/fleet.js):
 *
 * Layout 1, media straight from R to C. C and every machine share a front network; the
 * supervisors listen only on the back network (W–R1–R2) and R drops all TCP from the front
 * and all UDP outside its media ports, so C reaches W's web port and R's media, nothing else. Two launches land one on each R (by
 * load), both play in C, and each page's selected ICE pair is C ↔ that R's front address.
 *
 * Layout 2, relayed. C shares a network with W only and has no route to R at all; coturn on
 * W (`use-auth-secret`) relays, and the web role hands the page TURN credentials
 * (`--turn-url`, and `--turn-secret` as ORCHESTRATOR_TURN_SECRET). The page's selected pair
 * is a `relay` candidate of C's, and frames play.
 *
 * Needs real root, and builds its own namespaces, so it runs inside the suite's
 * loopback-only namespace as well as outside it: nothing of the fleet has a link to the
 * namespace this process runs in.
 */

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
    describePage, KEEP_BACKGROUND_PAGES_ALIVE, launchBrowser, launchFromHome, newProductContext, openHome,
    waitForStreamPage,
} from './lib/browser.js';
import {
    BACK_NET, Fleet, FRONT_NET, MEDIA_PORTS, needsFleet, newSecret, progress, selectedCandidatePair,
    SIGNALING_BASE_PORT, SUPERVISOR_PORT, TURN_PORT, WEB_PORT,
} from './lib/fleet.js';
import { freeDisplays } from './lib/orchestrator.js';
import { waitUntil } from './lib/wait.js';

const VIEWPORT = { width: 640, height: 360 };
/** Slots per supervisor: more than one, so where the second launch goes is a real choice. */
const SLOTS = 2;

const skip = needsFleet();

/**
 * Starts the machines' software: PostgreSQL and the web role on W, a supervisor on R1 and R2
 * (their instances gathering ICE on `iceOn` of their machine: 'front' or 'back'), Chromium
 * on C. Returns what the tests use.
 */
async function startFleet(fleet, { iceOn, turn }) {
    const { w, r1, r2, c } = fleet.machines;
    const secret = newSecret();
    const database = await fleet.startPostgres();
    // One display range for both supervisors (they share /tmp/.X11-unix), split in two.
    const displays = freeDisplays(2 * SLOTS);
    const supervisors = [];
    for (const [i, r] of [r1, r2].entries()) {
        supervisors.push(await fleet.startSupervisor(r, {
            secret, iceAddress: r[iceOn], slots: SLOTS, displayBase: displays + i * SLOTS,
        }));
    }
    if (turn) {
        await fleet.startTurn({ secret: turn.secret });
    }
    const web = await fleet.startWeb({
        supervisors: supervisors.map((s) => s.address), secret, database, turn,
    });
    // C's page origin is plain http on a LAN address: Chromium grants the camera permission
    // (without which it gathers no ICE candidate on C's interface) only to a secure context.
    // Layout 1 plays two stream pages in one browser: the one behind must keep rendering.
    const browser = await launchBrowser({
        netns: c.ns,
        extraArgs: [`--unsafely-treat-insecure-origin-as-secure=${web.origin.slice(0, -1)}`,
            ...KEEP_BACKGROUND_PAGES_ALIVE],
    });
    progress('Chromium running in C');
    return { secret, supervisors, web, browser, w, r1, r2, c };
}

/**
 * Presses Launch on a fresh home page; resolves with the instance's stream page once the
 * instance runs (the supervisor says RUNNING: its first frame is out).
 */
async function launch(context, origin, what) {
    const page = await openHome(context, origin);
    const id = await launchFromHome(page);
    try {
        await page.waitForFunction(() => window.__osw?.instance?.status === 'RUNNING', null, { timeout: 45000 });
    } catch (err) {
        const instance = await page.evaluate(() => window.__osw?.instance).catch(() => null);
        throw new Error(`${what}: instance ${id} never ran: ${JSON.stringify(instance)}\n${await describePage(page)}`,
            { cause: err });
    }
    progress(`${what}: instance ${id} runs`);
    return { id, page };
}

/** Waits until the stream page plays its video (which has come from R to C). */
async function play({ id, page }, what) {
    const { videoWidth, videoHeight } = await waitForStreamPage(page, { timeoutMs: 30000, playingTimeoutMs: 30000 })
        .catch((err) => { throw new Error(`${what}, instance ${id}: ${err.message}`, { cause: err }); });
    progress(`${what}: instance ${id} plays in C, ${videoWidth}x${videoHeight}`);
}

/** The page's selected candidate pair, once ICE has settled on one. */
function settledPair(page, what) {
    return waitUntil(async () => {
        const pair = await selectedCandidatePair(page);
        return pair?.local && pair?.remote && pair.bytesReceived > 0 ? pair : null;
    }, `${what}: a selected ICE candidate pair that carried media`, { timeoutMs: 10000 });
}

/** Where the web role placed each instance: its server's address (`servers.ip_address`), by id. */
async function placements(fleet) {
    const rows = await fleet.sql('SELECT i.instance_id, s.ip_address, s.port, i.status FROM instances i '
        + 'JOIN servers s ON s.server_id = i.server_id');
    return new Map(rows.map(([id, ip, port, status]) => [id, { ip, port: Number(port), status }]));
}

/** How the media went, for failure messages and the log: `local ↔ remote`. */
function describePair(pair) {
    const side = (c) => `${c.candidateType} ${c.protocol} ${c.address}:${c.port}`;
    return `${side(pair.local)} ↔ ${side(pair.remote)}`;
}

/**
 * Wraps a test body so that the layout's first failure carries every fleet process's log (and
 * the fleet's folder is kept); later ones, often its consequences, stay short.
 */
function withLogs(state, body) {
    return async (t) => {
        try {
            await body(t);
        } catch (err) {
            if (!state.failed) {
                err.message = `${err.message}\n\nfleet logs:\n${state.fleet?.logs() ?? '(no fleet)'}`;
            }
            state.failed = true;
            throw err;
        }
    };
}

/** C's routing table: one route, the front network, and nothing else (no default route). */
async function assertOnlyFrontRoute(fleet, c) {
    const routes = (await fleet.routes(c)).map((r) => `${r.dst} dev ${r.dev}`);
    assert.deepEqual(routes, [`${FRONT_NET}.0/24 dev front`], `C's routes: ${routes.join('; ')}`);
}

describe('the product on a fleet: web role W, rendering servers R1 and R2, viewer C', { skip }, () => {
    describe('layout 1: C reaches only W\'s web port and R\'s media; media straight from R to C', () => {
        const state = { fleet: null, failed: false };
        let f;
        let context;
        /** The two instances, `{id, page}`, in launch order. */
        const launched = [];

        before(withLogs(state, async () => {
            state.fleet = await Fleet.create({ renderersOnFront: true });
            f = await startFleet(state.fleet, { iceOn: 'front' });
            context = await newProductContext(f.browser, f.web.origin, VIEWPORT);
        }));

        after(async () => {
            await f?.browser.close().catch(() => {});
            await state.fleet?.close({ keepDir: state.failed });
        });

        test('the supervisors answer on the back network, to the secret only', withLogs(state, async () => {
            const { fleet } = state;
            for (const s of f.supervisors) {
                const status = await fleet.serverStatus(f.w, s.address, f.secret);
                assert.deepEqual([status.error, status.running, status.total], ['none', 0, SLOTS],
                    `SERVER_STATUS from W to ${s.address}: ${JSON.stringify(status)}`);
                const anonymous = await fleet.serverStatus(f.w, s.address, null);
                assert.deepEqual(anonymous, { refused: 'HTTP 401' }, `without the secret: ${JSON.stringify(anonymous)}`);
            }
            // The web role registered both; what it learned of them is read from its database.
            const servers = (await fleet.sql('SELECT ip_address, port FROM servers ORDER BY ip_address'))
                .map(([ip, port]) => `${ip}:${port}`);
            assert.deepEqual(servers, f.supervisors.map((s) => s.address));
        }));

        test('two launches from C land one on each R, chosen by load', withLogs(state, async () => {
            const { fleet } = state;
            for (const what of ['first launch', 'second launch']) {
                launched.push(await launch(context, f.web.origin, what));
            }
            // Both supervisors say they run one instance each (the web role chose by load) …
            for (const s of f.supervisors) {
                const status = await fleet.serverStatus(f.w, s.address, f.secret);
                assert.equal(status.running, 1, `${s.address} runs ${status.running} instances: ${JSON.stringify(status)}`);
            }
            // … and the web role's database agrees on which one runs where.
            const placed = await placements(fleet);
            const hosts = launched.map(({ id }) => placed.get(id)?.ip);
            assert.deepEqual([...hosts].sort(), [f.r1.back, f.r2.back],
                `instances placed on ${hosts.join(', ')}`);
            progress(`placed: ${launched.map(({ id }, i) => `${id} on ${hosts[i]}`).join(', ')}`);
        }));

        test('both play in C', withLogs(state, async () => {
            assert.equal(launched.length, 2, 'needs the two instances of the test before');
            for (const [i, l] of launched.entries()) {
                await play(l, `launch ${i + 1}`);
            }
        }));

        test('each page\'s media comes straight from its R\'s front address to C', withLogs(state, async () => {
            const { fleet } = state;
            assert.equal(launched.length, 2, 'needs the two instances of the tests before');
            const placed = await placements(fleet);
            const byBack = new Map([f.r1, f.r2].map((r) => [r.back, r]));
            for (const { id, page } of launched) {
                const pair = await settledPair(page, id);
                const r = byBack.get(placed.get(id).ip);
                progress(`${id} on ${r.key.toUpperCase()}: ${describePair(pair)}, ${pair.bytesReceived} bytes`);
                assert.equal(pair.remote.address, r.front, `remote candidate: ${describePair(pair)}`);
                // On a port of the range R's firewall lets in (rust-core's icePortMin/Max).
                assert.ok(pair.remote.port >= MEDIA_PORTS.min && pair.remote.port <= MEDIA_PORTS.max,
                    `remote port outside ${MEDIA_PORTS.min}-${MEDIA_PORTS.max}: ${describePair(pair)}`);
                assert.equal(pair.local.address, f.c.front, `local candidate: ${describePair(pair)}`);
                assert.equal(pair.local.protocol, 'udp');
                assert.equal(pair.local.candidateType, 'host', `no relay in this layout: ${describePair(pair)}`);
            }
            // And each R streams to exactly one viewer now (joins less leaves in its instance's
            // log: a page that reconnected joined twice and left once).
            for (const [i, s] of f.supervisors.entries()) {
                const lines = [...Array(SLOTS).keys()].map((slot) => s.instanceLog(slot)).join('').split('\n');
                const count = (what) => lines.filter((l) => l.startsWith(`VIEWER ${what} `)).length;
                assert.equal(count('joined') - count('left'), 1, `viewers on R${i + 1}`);
            }
        }));

        test('C cannot open TCP to R: not the supervisor port, not the signaling port', withLogs(state, async () => {
            const { fleet } = state;
            await assertOnlyFrontRoute(fleet, f.c);
            const dropsBefore = await Promise.all([f.r1, f.r2].map((r) => fleet.tcpDrops(r)));
            const probes = [
                // What C may reach: the web origin (the control case: probing works).
                { from: f.c, host: f.w.front, port: WEB_PORT, expect: true },
            ];
            for (const r of [f.r1, f.r2]) {
                probes.push(
                    // The ports exist: the supervisor from W over the back network, the instance's
                    // signaling endpoint on R's own loopback.
                    { from: f.w, host: r.back, port: SUPERVISOR_PORT, expect: true },
                    { from: r, host: '127.0.0.1', port: SIGNALING_BASE_PORT, expect: true },
                    // C gets to neither: dropped on R's front address, no route to its back one.
                    { from: f.c, host: r.front, port: SUPERVISOR_PORT, expect: false },
                    { from: f.c, host: r.front, port: SIGNALING_BASE_PORT, expect: false },
                    { from: f.c, host: r.back, port: SUPERVISOR_PORT, expect: false },
                    { from: f.c, host: r.back, port: SIGNALING_BASE_PORT, expect: false },
                );
            }
            const results = await Promise.all(probes.map((p) => fleet.tcpProbe(p.from, p.host, p.port)));
            for (const [i, p] of probes.entries()) {
                const { connected, error } = results[i];
                const line = `${p.from.key.toUpperCase()} → ${p.host}:${p.port}: ${connected ? 'connected' : error}`;
                progress(line);
                assert.equal(connected, p.expect, line);
            }
            // The front-address attempts died at R's firewall (dropped, so no answer at all), not
            // for want of a listener.
            for (const [i, r] of [f.r1, f.r2].entries()) {
                const drops = await fleet.tcpDrops(r);
                assert.ok(drops > dropsBefore[i], `R${i + 1}'s front TCP drop rule counted ${dropsBefore[i]} → ${drops}`);
            }
            for (const [i, p] of probes.entries()) {
                if (p.from === f.c && p.host !== f.w.front) {
                    const expected = p.host.startsWith(BACK_NET) ? 'ENETUNREACH' : 'timeout';
                    assert.equal(results[i].error, expected, `C → ${p.host}:${p.port}`);
                }
            }
        }));
    });

    describe('layout 2: C has no route to R; coturn on W relays the media', () => {
        const state = { fleet: null, failed: false };
        let f;
        let turn;

        before(withLogs(state, async () => {
            state.fleet = await Fleet.create({ renderersOnFront: false });
            const { w } = state.fleet.machines;
            turn = { url: `turn:${w.front}:${TURN_PORT}?transport=udp`, secret: newSecret() };
            f = await startFleet(state.fleet, { iceOn: 'back', turn });
        }));

        after(async () => {
            await f?.browser.close().catch(() => {});
            await state.fleet?.close({ keepDir: state.failed });
        });

        test('C reaches nothing of R', withLogs(state, async () => {
            const { fleet } = state;
            await assertOnlyFrontRoute(fleet, f.c);
            for (const r of [f.r1, f.r2]) {
                assert.equal(r.front, null, `${r.key} is on the front network`);
                const probe = await fleet.tcpProbe(f.c, r.back, SUPERVISOR_PORT);
                assert.deepEqual([probe.connected, probe.error], [false, 'ENETUNREACH'],
                    `C → ${r.back}:${SUPERVISOR_PORT}`);
            }
        }));

        test('a launch from C plays through the TURN relay on W', withLogs(state, async () => {
            const { fleet } = state;
            const context = await newProductContext(f.browser, f.web.origin, VIEWPORT);
            const { id, page } = await launch(context, f.web.origin, 'relayed launch');
            await play({ id, page }, 'relayed launch');
            // The page was given the TURN server the web role was told of, with credentials.
            const servers = await page.evaluate(() => window.__osw.session.peerConnection.getConfiguration().iceServers);
            const given = servers.find((s) => [s.urls].flat().includes(turn.url));
            assert.ok(given, `the page's ICE servers: ${JSON.stringify(servers)}`);
            assert.ok(given.username && given.credential, 'TURN credentials given to the page');

            const pair = await settledPair(page, id);
            const placed = (await placements(fleet)).get(id);
            progress(`${id} on ${placed.ip}: ${describePair(pair)}, ${pair.bytesReceived} bytes`);
            assert.equal(pair.local.candidateType, 'relay', `C's side of the pair: ${describePair(pair)}`);
            // The relayed address is coturn's on the back network (relay-ip), the far end the
            // instance on the R that runs it.
            assert.equal(pair.local.address, f.w.back, `relayed from: ${describePair(pair)}`);
            assert.equal(pair.remote.address, placed.ip, `the far end: ${describePair(pair)}`);
            // Frames keep coming through the relay: the picture moves on, and more bytes arrive.
            const before = await page.evaluate(() => document.getElementById('stream').currentTime);
            await waitUntil(async () => (await selectedCandidatePair(page))?.bytesReceived > pair.bytesReceived
                && await page.evaluate((t) => document.getElementById('stream').currentTime > t + 1, before),
            'more relayed frames', { timeoutMs: 10000 });
        }));
    });
});
