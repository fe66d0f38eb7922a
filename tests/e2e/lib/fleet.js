/**
 * A small fleet of machines on one host, for multi-host tests: each machine is a named network
 * namespace, the networks between them are bridges, and routing decides who reaches whom.
 *
 *     back  10.77.1.0/24 (bridge)   W .1   R1 .11   R2 .12          supervisors listen here
 *     front 10.77.2.0/24 (bridge)   W .1   R1 .11   R2 .12   C .100 browsers, media, TURN
 *
 *   W   the web role (`orchestrator --role web`), its PostgreSQL, and coturn when asked for
 *   R1  a rendering server: `orchestrator --role supervisor`, GL test hosts under Xvfb
 *   R2  another one
 *   C   the viewer's machine: Chromium (launchBrowser's `netns`)
 *
 * `Fleet.create({ renderersOnFront: false })` leaves R1 and R2 off the front network, so C has
 * no route to them at all (media must then be relayed by TURN on W). On the front network
 * R1 and R2 drop all TCP and all UDP outside their instances' ICE port range (iptables), so C
 * reaches only W's web port and R's media: what orchestrator/README.md's deployment opens.
 *
 * Nothing leaves the fleet: every namespace is new, none has a link to the namespace this
 * process runs in (the bridges live in namespaces of their own, `…-back` and `…-front`), no
 * machine has a default route, IPv6 is off everywhere (no link-local chatter, no way around
 * the IPv4 rules), and W does not forward. A fleet is torn down by `close()`, at process exit
 * or on SIGINT/SIGTERM/SIGHUP; one left by a run killed outright (its process is gone) is
 * removed, with whatever still runs in it, by the next `Fleet.create()`.
 *
 * Needs real root (`ip netns add` mounts under /run/netns), iproute2, iptables, Xvfb,
 * PostgreSQL's server binaries and, for TURN, coturn's `turnserver` (scripts/setup-debian.sh).
 */

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { GL_HOST_PATH } from './gl-host.js';
import { needsRealRoot, sh } from './netns.js';
import { freeDisplays, ORCHESTRATOR_PATH } from './orchestrator.js';

const E2E_DIR = fileURLToPath(new URL('../', import.meta.url));

/** Every name this module gives a namespace or temp folder starts with this. */
const PREFIX = 'oswfleet-';
/** `oswfleet-<pid>-<n>-<machine>`: the pid tells a stale fleet (its process gone) from a live one. */
const STALE_NAME = /^oswfleet-(\d+)-/;

export const BACK_NET = '10.77.1';
export const FRONT_NET = '10.77.2';
/** Host numbers on both networks. */
const HOST_NUMBER = { w: 1, r1: 11, r2: 12, c: 100 };
/** The supervisor protocol port and the web origin's port, the products' defaults. */
export const SUPERVISOR_PORT = 4699;
export const WEB_PORT = 4690;
export const TURN_PORT = 3478;
/** The first instance's signaling port (rust-core's endpoint on 127.0.0.1 of its machine). */
export const SIGNALING_BASE_PORT = 4700;
/** The UDP ports instances gather ICE on (rust-core's `OSW_ICE_PORT_MIN`/`MAX`): R's media. */
export const MEDIA_PORTS = Object.freeze({ min: 50000, max: 50999 });

/** Fleets made by this process and not closed yet, for the exit cleanup. */
const liveFleets = new Set();
let fleetsMade = 0;

/** Milliseconds since the module loaded, for progress lines. */
const t0 = Date.now();
/** One progress line, `fleet +12.3s: …`, so a slow or stuck step shows where it is. */
export function progress(message) {
    console.log(`fleet +${((Date.now() - t0) / 1000).toFixed(1)}s: ${message}`);
}

/**
 * Why a fleet cannot be made here, or false. Only the lack of real root is a reason to skip;
 * missing tools are a setup error and fail the test.
 * @returns {string | false}
 */
export function needsFleet() {
    return needsRealRoot('builds machines out of network namespaces');
}

/** A secret of the kind the orchestrator takes (at least 16 of A-Z a-z 0-9 - _), new per run. */
export function newSecret() {
    return randomBytes(24).toString('base64url');
}

function trySync(command, args) {
    try {
        return execFileSync(command, args, { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
    } catch {
        return '';
    }
}

/** SIGKILLs whatever still runs in namespace `ns`, then deletes it. Synchronous (exit hooks). */
function destroyNamespaceSync(ns) {
    for (const pid of trySync('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean)) {
        try {
            process.kill(Number(pid), 'SIGKILL');
        } catch {
            // Already gone.
        }
    }
    trySync('ip', ['netns', 'del', ns]);
}

let exitHooks = false;
function installExitHooks() {
    if (exitHooks) {
        return;
    }
    exitHooks = true;
    const cleanupAll = () => {
        for (const fleet of liveFleets) {
            fleet.destroySync();
        }
    };
    process.on('exit', cleanupAll);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
        process.once(signal, () => {
            cleanupAll();
            // Handlers gone: the signal's default action (ending the process) applies now.
            process.kill(process.pid, signal);
        });
    }
}

/**
 * Removes what runs of this module left behind when they were killed outright: namespaces
 * (and the processes still in them) and temp folders named after a process that is gone.
 */
function removeStale() {
    const stale = (name) => {
        const match = STALE_NAME.exec(name);
        return match !== null && !existsSync(`/proc/${match[1]}`);
    };
    const namespaces = existsSync('/run/netns') ? readdirSync('/run/netns').filter(stale) : [];
    for (const ns of namespaces) {
        destroyNamespaceSync(ns);
    }
    const dirs = readdirSync(os.tmpdir()).filter(stale);
    for (const dir of dirs) {
        rmSync(path.join(os.tmpdir(), dir), { recursive: true, force: true });
    }
    if (namespaces.length + dirs.length > 0) {
        progress(`removed ${namespaces.length} namespaces and ${dirs.length} folders of earlier runs `
            + '(killed, or failed and kept for their logs)');
    }
}

/**
 * A process running inside a machine's namespace (`ip netns exec`, which execs the program:
 * the child's pid is the program's own).
 */
export class FleetProcess {
    /** stdout and stderr together (the last 200 kB), for failure messages. */
    log = '';
    name;
    #child;
    #exited;

    /**
     * @param {string} ns
     * @param {string} name - for messages
     * @param {string} command
     * @param {string[]} args
     * @param {object} [options]
     * @param {object} [options.env] - added to this process's environment
     * @param {(line: string) => boolean} [options.ready] - resolves start() at the first line
     *   it accepts (default: at once)
     * @param {number} [options.timeoutMs=30000]
     */
    static async start(ns, name, command, args, { env = {}, ready, timeoutMs = 30000 } = {}) {
        const p = new FleetProcess();
        p.name = name;
        const child = spawn('ip', ['netns', 'exec', ns, command, ...args], {
            env: { ...process.env, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        p.#child = child;
        p.#exited = new Promise((resolve) => {
            child.once('exit', (code, signal) => resolve({ code, signal }));
        });
        let resolveReady;
        const isReady = new Promise((resolve) => { resolveReady = resolve; });
        for (const stream of [child.stdout, child.stderr]) {
            readline.createInterface({ input: stream }).on('line', (line) => {
                p.log = `${p.log}${line}\n`.slice(-200000);
                if (ready?.(line)) {
                    resolveReady();
                }
            });
        }
        if (!ready) {
            resolveReady();
        }
        let timer;
        const outcome = await Promise.race([
            isReady.then(() => 'ready'),
            p.#exited.then(({ code, signal }) => `exited (${code ?? signal})`),
            new Promise((resolve) => { timer = setTimeout(() => resolve(`not ready within ${timeoutMs} ms`), timeoutMs); }),
        ]);
        clearTimeout(timer);
        if (outcome !== 'ready') {
            child.kill('SIGKILL');
            // The start of the output says why (a Rust backtrace may follow it).
            const shown = p.log.length > 6000 ? `${p.log.slice(0, 3000)}\n…\n${p.log.slice(-3000)}` : p.log;
            throw new Error(`${name} in ${ns}: ${outcome}\n${shown}`);
        }
        return p;
    }

    get pid() {
        return this.#child.pid;
    }

    get running() {
        return this.#child.exitCode === null && this.#child.signalCode === null;
    }

    /** SIGTERM, SIGKILL after `graceMs`; resolves with how it ended. */
    async stop(graceMs = 15000) {
        if (this.running) {
            this.#child.kill('SIGTERM');
        }
        const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
        const result = await this.#exited;
        clearTimeout(timer);
        return result;
    }
}

/** One machine: its namespace and its addresses (null off a network). */
class Machine {
    constructor(key, ns) {
        this.key = key;
        this.ns = ns;
        this.back = null;
        this.front = null;
    }
}

/**
 * The machines W, R1, R2 and C, their networks and what runs on them.
 */
export class Fleet {
    /** @type {{w: Machine, r1: Machine, r2: Machine, c: Machine}} */
    machines;
    /** Whether R1 and R2 are on the front network (reachable by C for media). */
    renderersOnFront;
    /** A temp folder for logs, databases and configuration; removed by close() unless kept. */
    dir;
    /** The namespaces, machines' and switches', in creation order. */
    #namespaces = [];
    #processes = [];
    #base;
    #pgDir = null;
    #pgBin = null;
    #closed = false;

    /**
     * Builds the namespaces and networks (nothing runs in them yet).
     * @param {{renderersOnFront?: boolean}} [options]
     */
    static async create({ renderersOnFront = true } = {}) {
        const reason = needsFleet();
        if (reason) {
            throw new Error(reason);
        }
        installExitHooks();
        removeStale();
        const fleet = new Fleet();
        fleetsMade += 1;
        const base = `${PREFIX}${process.pid}-${fleetsMade}`;
        fleet.#base = base;
        fleet.renderersOnFront = renderersOnFront;
        fleet.dir = mkdtempSync(path.join(os.tmpdir(), `${base}-`));
        fleet.machines = Object.fromEntries(['w', 'r1', 'r2', 'c']
            .map((key) => [key, new Machine(key, `${base}-${key}`)]));
        liveFleets.add(fleet);
        try {
            await fleet.#build(base);
        } catch (err) {
            await fleet.close();
            throw err;
        }
        return fleet;
    }

    async #addNamespace(ns) {
        await sh('ip', ['netns', 'add', ns]);
        this.#namespaces.push(ns);
        // Before any interface arrives: no IPv6 (so no link-local addresses, router
        // solicitations or paths around the IPv4 firewall), no forwarding.
        await sh('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w',
            'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1',
            'net.ipv4.ip_forward=0']);
        await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }

    async #build(base) {
        const { w, r1, r2, c } = this.machines;
        for (const m of Object.values(this.machines)) {
            await this.#addNamespace(m.ns);
        }
        const networks = [
            { name: 'back', net: BACK_NET, members: [w, r1, r2] },
            { name: 'front', net: FRONT_NET, members: this.renderersOnFront ? [c, w, r1, r2] : [c, w] },
        ];
        for (const { name, net, members } of networks) {
            // The switch: a bridge in a namespace of its own, so no interface of the fleet is
            // ever in the namespace this process runs in.
            const sw = `${base}-${name}`;
            await this.#addNamespace(sw);
            await sh('ip', ['-n', sw, 'link', 'add', 'name', 'br0', 'type', 'bridge']);
            await sh('ip', ['-n', sw, 'link', 'set', 'dev', 'br0', 'up']);
            for (const m of members) {
                // One cable: the machine's end is named after the network, the switch's after
                // the machine.
                const address = `${net}.${HOST_NUMBER[m.key]}`;
                await sh('ip', ['-n', sw, 'link', 'add', 'name', m.key, 'type', 'veth', 'peer', 'name', name,
                    'netns', m.ns]);
                await sh('ip', ['-n', sw, 'link', 'set', 'dev', m.key, 'master', 'br0', 'up']);
                await sh('ip', ['-n', m.ns, 'addr', 'add', `${address}/24`, 'dev', name]);
                await sh('ip', ['-n', m.ns, 'link', 'set', 'dev', name, 'up']);
                m[name] = address;
            }
        }
        if (this.renderersOnFront) {
            for (const r of [r1, r2]) {
                // C may send R media, nothing else: no TCP at all (no supervisor, no signaling
                // port, whatever would listen on the front address), UDP only to the ICE range.
                const front = ['-A', 'INPUT', '-s', `${FRONT_NET}.0/24`];
                await this.iptables(r, [...front, '-p', 'tcp', '-j', 'DROP']);
                await this.iptables(r, [...front, '-p', 'udp', '!', '--dport',
                    `${MEDIA_PORTS.min}:${MEDIA_PORTS.max}`, '-j', 'DROP']);
            }
        }
        progress(`machines up: W ${w.back}/${w.front}, R1 ${r1.back}${r1.front ? `/${r1.front}` : ''}, `
            + `R2 ${r2.back}${r2.front ? `/${r2.front}` : ''}, C ${c.front}`
            + `${this.renderersOnFront ? '' : ' (R off the front network)'}`);
    }

    /** `iptables -w <args>` in a machine. */
    iptables(machine, args) {
        return sh('ip', ['netns', 'exec', machine.ns, 'iptables', '-w', ...args]);
    }

    /** Packets the front-network TCP drop rule of R (`machine`) has dropped so far. */
    async tcpDrops(machine) {
        const out = await this.iptables(machine, ['-L', 'INPUT', '-v', '-n', '-x']);
        // `pkts bytes target prot opt in out source destination`; prot is `tcp`, or `6` with
        // some iptables builds.
        const rule = out.split('\n').map((l) => l.trim().split(/\s+/))
            .find((f) => f[2] === 'DROP' && ['tcp', '6'].includes(f[3]) && f[7] === `${FRONT_NET}.0/24`);
        return rule ? Number(rule[0]) : null;
    }

    /** A machine's routes (main table), as `ip -j route` objects. */
    async routes(machine) {
        return JSON.parse(await sh('ip', ['-j', '-n', machine.ns, 'route', 'show']));
    }

    /** Runs a command in a machine and returns its stdout. */
    exec(machine, command, args, options) {
        return sh('ip', ['netns', 'exec', machine.ns, command, ...args], options);
    }

    /**
     * Tries a TCP connection from `machine` to `host:port`.
     * @returns {Promise<{connected: boolean, error: string | null, ms: number}>} `error`:
     *   `timeout` (nothing answered: dropped), `ECONNREFUSED`, `ENETUNREACH`, …
     */
    async tcpProbe(machine, host, port, timeoutMs = 1500) {
        const script = `
            const net = require('node:net');
            const started = Date.now();
            const done = (connected, error) => {
                console.log(JSON.stringify({ connected, error, ms: Date.now() - started }));
                process.exit(0);
            };
            const socket = net.connect({ host: ${JSON.stringify(host)}, port: ${port} });
            socket.setTimeout(${timeoutMs}, () => done(false, 'timeout'));
            socket.once('connect', () => done(true, null));
            socket.once('error', (err) => done(false, err.code || err.message));`;
        return JSON.parse(await this.exec(machine, process.execPath, ['-e', script]));
    }

    /**
     * Asks a supervisor `SERVER_STATUS` from `machine`, presenting `secret` (null: none) the
     * way the web role does, as `Authorization: Bearer`.
     * @returns {Promise<object>} the reply, or `{refused: "<why>"}` when the upgrade failed
     */
    async serverStatus(machine, address, secret) {
        const script = `
            const WebSocket = require('ws');
            const secret = process.env.FLEET_SECRET;
            const ws = new WebSocket(${JSON.stringify(`ws://${address}/`)}, {
                handshakeTimeout: 3000,
                headers: secret ? { Authorization: 'Bearer ' + secret } : {},
            });
            const done = (value) => { console.log(JSON.stringify(value)); process.exit(0); };
            ws.on('open', () => ws.send(JSON.stringify({ command: 'SERVER_STATUS' })));
            ws.on('message', (data) => done(JSON.parse(data.toString())));
            ws.on('unexpected-response', (req, res) => done({ refused: 'HTTP ' + res.statusCode }));
            ws.on('error', (err) => done({ refused: err.code || err.message }));`;
        // cwd: `ws` is one of the e2e tests' own packages. The secret by environment, not on a
        // command line.
        return JSON.parse(await this.exec(machine, process.execPath, ['-e', script], {
            cwd: E2E_DIR, env: { ...process.env, FLEET_SECRET: secret ?? '' },
        }));
    }

    /** Starts `command` in `machine`; stopped (and waited for) by close(). */
    async spawn(machine, name, command, args, options) {
        const p = await FleetProcess.start(machine.ns, name, command, args, options);
        this.#processes.push(p);
        return p;
    }

    /**
     * A private PostgreSQL cluster in W, listening on a unix socket only (no TCP at all), the
     * way scripts/with-postgres.sh makes one: trust auth, fsync off, run as `postgres`.
     * @returns {Promise<string>} the database URL for the web role
     */
    async startPostgres() {
        const bin = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(a) - Number(b))
            .map((v) => `/usr/lib/postgresql/${v}/bin`).filter((b) => existsSync(`${b}/initdb`)).at(-1);
        if (!bin) {
            throw new Error('no PostgreSQL server binaries (apt-get install postgresql)');
        }
        this.#pgBin = bin;
        // Its own folder, owned by `postgres` (initdb refuses root; the fleet's folder is 0700).
        this.#pgDir = mkdtempSync(path.join(os.tmpdir(), `${this.#base}-pg-`));
        const pwd = trySync('getent', ['passwd', 'postgres']).split(':');
        chownSync(this.#pgDir, Number(pwd[2]), Number(pwd[3]));
        const asPostgres = (command, args) => this.exec(this.machines.w, 'runuser',
            ['-u', 'postgres', '--', `${bin}/${command}`, ...args]);
        await asPostgres('initdb', ['-D', `${this.#pgDir}/data`, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
        await asPostgres('pg_ctl', ['-D', `${this.#pgDir}/data`, '-l', `${this.#pgDir}/server.log`, '-w', '-o',
            `-c listen_addresses='' -c unix_socket_directories=${this.#pgDir} -c fsync=off -c max_connections=50`,
            'start']);
        progress(`PostgreSQL in W on the unix socket in ${this.#pgDir}`);
        return `postgres://postgres@${encodeURIComponent(this.#pgDir)}/postgres`;
    }

    /** Rows of a query on W's PostgreSQL, each an array of strings. */
    async sql(query) {
        const out = await this.exec(this.machines.w, `${this.#pgBin}/psql`,
            ['-h', this.#pgDir, '-U', 'postgres', '-d', 'postgres', '-AtX', '-F', '\t', '-c', query]);
        return out.split('\n').filter(Boolean).map((line) => line.split('\t'));
    }

    /**
     * A supervisor on rendering server `machine`, listening on its back address only, with
     * GL test hosts under their own Xvfb (as lib/orchestrator.js runs them) gathering ICE on
     * `iceAddress` alone, on UDP ports of {@link MEDIA_PORTS}.
     * @returns {Promise<FleetProcess & {address: string, logDir: string, instanceLog: Function}>}
     */
    async startSupervisor(machine, { secret, iceAddress, slots = 2, displayBase }) {
        if (!existsSync(ORCHESTRATOR_PATH)) {
            throw new Error(`no orchestrator at ${ORCHESTRATOR_PATH}: cargo build -p orchestrator`);
        }
        if (!existsSync(GL_HOST_PATH)) {
            throw new Error(`no test host at ${GL_HOST_PATH}: build tests/gl-host or set OSW_GL_HOST`);
        }
        const logDir = path.join(this.dir, machine.key);
        const address = `${machine.back}:${SUPERVISOR_PORT}`;
        const hostArgs = ['--fps', '20', '--stats-interval', '1'];
        const p = await this.spawn(machine, `supervisor ${machine.key.toUpperCase()}`, ORCHESTRATOR_PATH, [
            '--role', 'supervisor',
            '--listen', address,
            '--slots', String(slots),
            '--instance-executable', GL_HOST_PATH,
            ...hostArgs.map((a) => `--instance-arg=${a}`),
            '--instance-env', `OSW_ICE_ADDRESSES=${iceAddress}`,
            '--instance-env', `OSW_ICE_PORT_MIN=${MEDIA_PORTS.min}`,
            '--instance-env', `OSW_ICE_PORT_MAX=${MEDIA_PORTS.max}`,
            '--xvfb', 'always',
            '--xvfb-display-base', String(displayBase ?? freeDisplays(slots)),
            '--startup-timeout', '60',
            '--stop-timeout', '5',
            '--log-dir', logDir,
        ], {
            // The secret by environment, as the orchestrator's README prefers (not in `ps`).
            env: { ORCHESTRATOR_SUPERVISOR_SECRET: secret, ORCHESTRATOR_LOG: 'info,orchestrator=debug' },
            ready: (line) => line.includes('supervisor listening'),
        });
        p.address = address;
        p.logDir = logDir;
        p.instanceLog = (slot) => {
            try {
                return readFileSync(path.join(logDir, `instance-${slot}.log`), 'utf8');
            } catch {
                return '';
            }
        };
        progress(`supervisor on ${machine.key.toUpperCase()} listening on ${address}, ICE on ${iceAddress}`);
        return p;
    }

    /**
     * The web role on W: the origin on W's front address, the given supervisors, `database`.
     * @param {object} options
     * @param {string[]} options.supervisors - `HOST:PORT` of each
     * @param {string} options.secret - the supervisors' secret
     * @param {string} options.database
     * @param {{url: string, secret: string}} [options.turn] - `--turn-url` and `--turn-secret`
     *   (coturn's static-auth-secret)
     * @returns {Promise<FleetProcess & {origin: string}>}
     */
    async startWeb({ supervisors, secret, database, turn }) {
        const w = this.machines.w;
        const args = [
            '--role', 'web',
            '--web-listen', `${w.front}:${WEB_PORT}`,
            '--database', database,
            '--idle-timeout', '120',
            '--log-dir', path.join(this.dir, 'w'),
            ...supervisors.flatMap((s) => ['--supervisor', s]),
        ];
        // Secrets by environment (`--supervisor-secret`, `--turn-secret`), as the orchestrator's
        // README prefers: a command line is readable by every user.
        const env = { ORCHESTRATOR_SUPERVISOR_SECRET: secret, ORCHESTRATOR_LOG: 'info,orchestrator=debug' };
        if (turn) {
            args.push('--turn-url', turn.url);
            env.ORCHESTRATOR_TURN_SECRET = turn.secret;
        }
        const p = await this.spawn(w, 'web role W', ORCHESTRATOR_PATH, args, {
            env,
            ready: (line) => line.includes('web origin listening'),
        });
        p.origin = `http://${w.front}:${WEB_PORT}/`;
        progress(`web role on W at ${p.origin} for ${supervisors.join(', ')}${turn ? `, TURN ${turn.url}` : ''}`);
        return p;
    }

    /**
     * coturn on W: TURN over UDP on W's front and back addresses, relaying from W's back
     * address (which R reaches), short-term credentials from `secret` (`use-auth-secret`, what
     * the web role hands browsers). No TLS, no CLI, no database of its own outside the fleet.
     * @returns {Promise<FleetProcess>}
     */
    async startTurn({ secret, realm = 'fleet.osw.test' }) {
        const w = this.machines.w;
        const config = path.join(this.dir, 'turnserver.conf');
        writeFileSync(config, [
            `listening-port=${TURN_PORT}`,
            `listening-ip=${w.front}`,
            `listening-ip=${w.back}`,
            `relay-ip=${w.back}`,
            'use-auth-secret',
            `static-auth-secret=${secret}`,
            `realm=${realm}`,
            'fingerprint',
            'no-tls',
            'no-dtls',
            'no-cli',
            'no-tcp-relay',
            'no-multicast-peers',
            // Its user database (unused with use-auth-secret, but always opened) in the fleet's
            // folder, not /var/lib/turn.
            `userdb=${path.join(this.dir, 'turndb')}`,
            `pidfile=${path.join(this.dir, 'turnserver.pid')}`,
            'log-file=stdout',
            'simple-log',
            '',
        ].join('\n'), { mode: 0o600 });
        const p = await this.spawn(w, 'turnserver W', 'turnserver', ['-c', config]);
        // coturn's log does not say when its listeners are bound (that depends on its engine):
        // ask the kernel instead.
        const bound = async () => {
            const out = await this.exec(w, 'ss', ['-Hlun']);
            return [w.front, w.back].every((a) => out.includes(`${a}:${TURN_PORT}`));
        };
        for (let waited = 0; !(await bound()); waited += 100) {
            if (!p.running || waited > 10000) {
                throw new Error(`coturn did not listen on ${w.front}:${TURN_PORT} and ${w.back}:${TURN_PORT}\n`
                    + `${p.log.slice(-3000)}`);
            }
            await new Promise((resolve) => { setTimeout(resolve, 100); });
        }
        progress(`coturn on W: ${w.front}:${TURN_PORT} and ${w.back}:${TURN_PORT}, relaying from ${w.back}`);
        return p;
    }

    /**
     * Stops everything in the fleet (its processes in reverse order of start, PostgreSQL),
     * kills what is still left in its namespaces, and deletes them. Safe to call twice.
     * @param {{keepDir?: boolean}} [options] - keep the folder (logs) for a failed run
     */
    async close({ keepDir = false } = {}) {
        if (this.#closed) {
            return;
        }
        this.#closed = true;
        for (const p of this.#processes.reverse()) {
            const { code, signal } = await p.stop();
            if (code !== 0 && signal !== 'SIGTERM') {
                progress(`${p.name} ended with ${code ?? signal}`);
            }
        }
        if (this.#pgDir) {
            await this.exec(this.machines.w, 'runuser', ['-u', 'postgres', '--', `${this.#pgBin}/pg_ctl`,
                '-D', `${this.#pgDir}/data`, '-m', 'fast', '-w', 'stop']).catch(() => {});
        }
        for (const ns of this.#namespaces) {
            const left = trySync('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean);
            if (left.length > 0) {
                progress(`killing what was left in ${ns}: ${left.join(' ')}`);
            }
        }
        this.destroySync({ keepDir });
        progress(keepDir ? `fleet torn down; its logs are in ${this.dir}` : 'fleet torn down');
    }

    /** The synchronous part of close(), also the exit hook's: kill, delete, remove. */
    destroySync({ keepDir = false } = {}) {
        for (const ns of this.#namespaces) {
            destroyNamespaceSync(ns);
        }
        this.#namespaces = [];
        if (this.#pgDir) {
            rmSync(this.#pgDir, { recursive: true, force: true });
        }
        if (!keepDir) {
            rmSync(this.dir, { recursive: true, force: true });
        }
        liveFleets.delete(this);
    }

    /** Every process's log, for a failure message. */
    logs(tail = 3000) {
        return this.#processes.map((p) => `--- ${p.name}\n${p.log.slice(-tail)}`).join('\n');
    }
}

/**
 * The page's selected ICE candidate pair (RTCPeerConnection.getStats(): the transport's
 * `selectedCandidatePairId`, or the nominated succeeded pair), or null before there is one.
 * The stream page keeps its connection at `window.__osw.session.peerConnection`.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<{local: object, remote: object, state: string, bytesReceived: number} | null>}
 *   `local`/`remote`: `{address, port, protocol, candidateType, relayProtocol, url}`
 */
export function selectedCandidatePair(page) {
    return page.evaluate(async () => {
        const pc = window.__osw?.session?.peerConnection;
        if (!pc) {
            return null;
        }
        const stats = [...(await pc.getStats()).values()];
        const byId = new Map(stats.map((s) => [s.id, s]));
        const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
        const pair = transport
            ? byId.get(transport.selectedCandidatePairId)
            : stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
        if (!pair) {
            return null;
        }
        const describe = (c) => c && {
            address: c.address ?? c.ip,
            port: c.port,
            protocol: c.protocol,
            candidateType: c.candidateType,
            relayProtocol: c.relayProtocol ?? null,
            url: c.url ?? null,
        };
        return {
            local: describe(byId.get(pair.localCandidateId)),
            remote: describe(byId.get(pair.remoteCandidateId)),
            state: pair.state,
            bytesReceived: pair.bytesReceived,
        };
    });
}
