/**
 * Runs the real orchestrator binary for browser tests of the product: both roles in one
 * process by default (the supervisor launching real GL test hosts, the web origin serving
 * `web/`), or one role with `role: 'supervisor' | 'web'`. Instances get
 * `OSW_ICE_ADDRESSES=127.0.0.1` through the orchestrator's instance env, and their own Xvfb.
 */

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import readline from 'node:readline';

import { GL_HOST_PATH } from './gl-host.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** The binary: $OSW_ORCHESTRATOR, or the debug build `cargo build` makes. */
export const ORCHESTRATOR_PATH = process.env.OSW_ORCHESTRATOR
    || path.join(REPO, 'target/debug/orchestrator');

/** The first of `count` X displays that are free, from a range this process picks. */
export function freeDisplays(count) {
    for (let base = 300 + (process.pid % 200) * 4; base < 5000; base += count + 1) {
        const taken = (d) => existsSync(`/tmp/.X11-unix/X${d}`) || existsSync(`/tmp/.X${d}-lock`);
        if (![...Array(count).keys()].some((i) => taken(base + i))) {
            return base;
        }
    }
    throw new Error('no free X display range');
}

/**
 * A running orchestrator.
 */
export class Orchestrator {
    /** The web origin, `http://127.0.0.1:<port>/` (null for a supervisor alone). */
    url = null;
    /** The supervisor's address, `127.0.0.1:<port>` (null for a web role alone). */
    supervisor = null;
    /** Everything it logged (stderr), for failure messages. */
    log = '';

    #child;
    #exited;
    #logDir;

    /**
     * @param {object} options
     * @param {string} options.dir - a folder for its database and logs
     * @param {'both' | 'supervisor' | 'web'} [options.role='both']
     * @param {number} [options.slots=2]
     * @param {number} [options.webPort=0] - fixed when a test restarts it (the session token
     *   lives in localStorage, which belongs to one origin)
     * @param {number} [options.idleTimeout=60] - seconds
     * @param {string} [options.supervisorAddress] - for `role: 'web'`, `127.0.0.1:<port>`
     * @param {string[]} [options.hostArgs] - arguments of every GL test host
     * @param {number} [options.startupDelayS=0] - seconds each host waits before starting:
     *   the test host is ready in a fraction of a second, OpenSpace takes far longer, and a
     *   test of the waiting page needs it to be seen
     * @param {string[]} [options.extraArgs]
     */
    static async start({
        dir, role = 'both', slots = 2, webPort = 0, idleTimeout = 60, supervisorAddress,
        hostArgs = ['--fps', '20', '--stats-interval', '1'], startupDelayS = 0, extraArgs = [],
    }) {
        if (!existsSync(ORCHESTRATOR_PATH)) {
            throw new Error(`no orchestrator at ${ORCHESTRATOR_PATH}: cargo build -p orchestrator`);
        }
        if (role !== 'web' && !existsSync(GL_HOST_PATH)) {
            throw new Error(`no test host at ${GL_HOST_PATH}: build tests/gl-host or set OSW_GL_HOST`);
        }
        const o = new Orchestrator();
        o.#logDir = path.join(dir, 'logs');
        const args = [
            '--role', role,
            '--listen', '127.0.0.1:0',
            '--web-listen', `127.0.0.1:${webPort}`,
            '--database', `sqlite://${path.join(dir, 'product.db')}`,
            '--idle-timeout', String(idleTimeout),
            '--log-dir', o.#logDir,
        ];
        if (role !== 'web') {
            // Arguments go to the program without a shell; a delay needs one, which then
            // becomes the host (`exec`), so signals still reach the host itself. (No `;`:
            // the orchestrator splits --instance-arg values at semicolons.)
            const program = startupDelayS > 0
                ? ['/bin/sh', '-c', `sleep ${startupDelayS} && exec "$0" "$@"`, GL_HOST_PATH]
                : [GL_HOST_PATH];
            args.push(
                '--slots', String(slots),
                '--instance-executable', program[0],
                ...program.slice(1).map((a) => `--instance-arg=${a}`),
                '--instance-env', 'OSW_ICE_ADDRESSES=127.0.0.1',
                '--xvfb', 'always',
                '--xvfb-display-base', String(freeDisplays(slots)),
                '--startup-timeout', '60',
                '--stop-timeout', '5',
                ...hostArgs.map((a) => `--instance-arg=${a}`),
            );
        }
        if (supervisorAddress) {
            args.push('--supervisor', supervisorAddress);
        }
        args.push(...extraArgs);
        const child = spawn(ORCHESTRATOR_PATH, args, {
            env: { ...process.env, ORCHESTRATOR_LOG: 'info,orchestrator=debug' },
            stdio: ['ignore', 'ignore', 'pipe'],
        });
        o.#child = child;
        o.#exited = new Promise((resolve) => {
            child.once('exit', (code, signal) => resolve({ code, signal }));
        });
        const up = new Promise((resolve, reject) => {
            const lines = readline.createInterface({ input: child.stderr });
            lines.on('line', (line) => {
                o.log = `${o.log}${line}\n`.slice(-200000);
                const url = /web origin listening .*url=(\S+)/.exec(line);
                if (url) {
                    o.url = url[1];
                }
                const sup = /supervisor listening address=(\S+)/.exec(line);
                if (sup) {
                    o.supervisor = sup[1];
                }
                if ((role === 'supervisor' && o.supervisor) || (role !== 'supervisor' && o.url)) {
                    resolve();
                }
            });
            o.#exited.then(({ code }) => reject(new Error(`orchestrator exited (${code}):\n${o.log}`)));
        });
        await up;
        return o;
    }

    /** The process id. */
    get pid() {
        return this.#child.pid;
    }

    /** What instance `slot` printed (the GL test host's stdout lines). */
    instanceLog(slot) {
        try {
            return readFileSync(path.join(this.#logDir, `instance-${slot}.log`), 'utf8');
        } catch {
            return '';
        }
    }

    /** The last `STATS` object each running instance printed, by slot. */
    instanceStats() {
        const stats = {};
        let files = [];
        try {
            files = readdirSync(this.#logDir).filter((f) => /^instance-\d+\.log$/.test(f));
        } catch {
            return stats;
        }
        for (const file of files) {
            const slot = Number(/\d+/.exec(file)[0]);
            const lines = this.instanceLog(slot).split('\n').filter((l) => l.startsWith('STATS '));
            if (lines.length > 0) {
                stats[slot] = JSON.parse(lines.at(-1).slice(6));
            }
        }
        return stats;
    }

    /** SIGTERM, and wait for the exit (it stops its instances first). */
    async stop() {
        if (this.#child.exitCode === null && this.#child.signalCode === null) {
            this.#child.kill('SIGTERM');
        }
        const timer = setTimeout(() => this.#child.kill('SIGKILL'), 30000);
        const result = await this.#exited;
        clearTimeout(timer);
        return result;
    }

    /**
     * A suite's teardown: {@link stop}, then delete `dir` (the folder it was started with)
     * if it exited cleanly, or keep it and print where, with the end of its log.
     * @param {string} dir
     */
    async stopAndClean(dir) {
        const { code } = await this.stop();
        if (code === 0) {
            rmSync(dir, { recursive: true, force: true });
        }
        else if (dir) {
            console.log(`orchestrator exited with ${code}; logs kept in ${dir}\n${this.log.slice(-5000)}`);
        }
    }
}
