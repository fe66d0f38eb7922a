/**
 * Runs the GL test host (tests/gl-host) for browser tests and benchmarks: its own Xvfb, the
 * host streaming on a free port with ICE pinned to 127.0.0.1, and its stdout line protocol
 * (READY, CAMERA, RESIZE, VIEWER, STATS, FRAMECOST) parsed into events.
 */

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import readline from 'node:readline';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** The host binary: $OSW_GL_HOST, or the Debug build the test command makes. */
export const GL_HOST_PATH = process.env.OSW_GL_HOST || path.join(REPO, 'build/gl-host/osw-gl-host');

let nextDisplay = 40 + (process.pid % 40);

/** Starts an Xvfb on a free display number; resolves once its socket exists. */
async function startXvfb() {
    for (let attempt = 0; attempt < 20; attempt += 1) {
        const display = nextDisplay;
        nextDisplay += 1;
        if (existsSync(`/tmp/.X11-unix/X${display}`)) {
            continue;
        }
        const xvfb = spawn('Xvfb', [`:${display}`, '-screen', '0', '3840x2160x24', '-nolisten', 'tcp'],
            { stdio: 'ignore' });
        for (let i = 0; i < 100; i += 1) {
            if (existsSync(`/tmp/.X11-unix/X${display}`)) {
                return { xvfb, display: `:${display}` };
            }
            if (xvfb.exitCode !== null) {
                break;
            }
            await new Promise((resolve) => { setTimeout(resolve, 50); });
        }
        xvfb.kill();
    }
    throw new Error('could not start Xvfb');
}

/**
 * A running host.
 * @fires GlHost#line - every stdout line: `(kind, rest)`, e.g. `('CAMERA', 'yaw=…')`
 */
export class GlHost extends EventEmitter {
    /** @type {number} */
    port = 0;
    /** The latest `CAMERA` values: `{yaw, pitch, distance}`. */
    camera = null;
    /** Viewer ids that joined and left, in order. */
    joined = [];
    left = [];
    /** Sizes from `RESIZE` lines. */
    resizes = [];
    /** The last `STATS` object. */
    stats = null;
    /** `{median_us, p95_us, samples}` from the exit line. */
    frameCost = null;
    /** Everything the host wrote to stderr (for failure messages). */
    stderr = '';

    #process;
    #xvfb;
    #exited;

    /**
     * @param {string[]} args - host options (e.g. `['--capture', 'gl', '--encoder', 'vp8']`)
     * @param {object} [options]
     * @param {object} [options.env] - extra environment
     */
    static async start(args = [], { env = {} } = {}) {
        if (!existsSync(GL_HOST_PATH)) {
            throw new Error(`no test host at ${GL_HOST_PATH}: build tests/gl-host (see its README) or set OSW_GL_HOST`);
        }
        const host = new GlHost();
        const { xvfb, display } = await startXvfb();
        host.#xvfb = xvfb;
        const child = spawn(GL_HOST_PATH, ['--port', '0', '--ice-address', '127.0.0.1', '--stats-interval', '1', ...args], {
            env: { ...process.env, DISPLAY: display, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
        });
        host.#process = child;
        host.#exited = new Promise((resolve) => { child.once('exit', (code, signal) => resolve({ code, signal })); });
        child.stderr.on('data', (chunk) => { host.stderr = (host.stderr + chunk).slice(-20000); });
        readline.createInterface({ input: child.stdout }).on('line', (line) => host.#parse(line));
        const ready = new Promise((resolve, reject) => {
            host.once('READY', resolve);
            host.#exited.then(({ code }) => reject(new Error(`host exited (${code}) before READY:\n${host.stderr}`)));
        });
        await ready;
        return host;
    }

    #parse(line) {
        const space = line.indexOf(' ');
        const kind = space < 0 ? line : line.slice(0, space);
        const rest = space < 0 ? '' : line.slice(space + 1);
        const fields = () => Object.fromEntries(rest.split(' ').map((kv) => kv.split('=')).map(([k, v]) => [k, Number(v)]));
        switch (kind) {
        case 'READY': this.port = fields().port; break;
        case 'CAMERA': this.camera = fields(); break;
        case 'RESIZE': this.resizes.push(rest); break;
        case 'VIEWER': {
            const [what, id] = rest.split(' ');
            (what === 'joined' ? this.joined : this.left).push(Number(id));
            break;
        }
        case 'STATS': this.stats = JSON.parse(rest); break;
        case 'FRAMECOST': this.frameCost = fields(); break;
        default: break;
        }
        this.emit(kind, rest);
        this.emit('line', kind, rest);
    }

    /** The signaling URL viewers connect to. */
    get signalUrl() {
        return `ws://127.0.0.1:${this.port}/`;
    }

    /** The host's process id (for CPU measurements). */
    get pid() {
        return this.#process.pid;
    }

    /** Waits until `probe(host)` is truthy, failing with the host's stderr tail. */
    async until(probe, what, timeoutMs = 10000) {
        const deadline = Date.now() + timeoutMs;
        while (!probe(this)) {
            if (Date.now() > deadline) {
                throw new Error(`timed out waiting for ${what}\nhost stderr:\n${this.stderr.slice(-3000)}`);
            }
            await new Promise((resolve) => { setTimeout(resolve, 50); });
        }
    }

    /** Stops the host politely (SIGTERM: it frees the streamer and prints FRAMECOST). */
    async stop() {
        if (this.#process.exitCode === null && this.#process.signalCode === null) {
            this.#process.kill('SIGTERM');
        }
        const timer = setTimeout(() => this.#process.kill('SIGKILL'), 5000);
        const result = await this.#exited;
        clearTimeout(timer);
        this.#xvfb.kill();
        return result;
    }
}
