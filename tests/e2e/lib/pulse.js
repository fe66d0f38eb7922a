/**
 * A private PulseAudio server for benchmarks and tests that run a host by hand, set up the way
 * the orchestrator's supervisor sets one up per instance with `--audio pulse`
 * (orchestrator/src/instances/pulse.rs): no service, no autospawn, exit-idle off, its socket
 * and state in a folder of its own, one null sink `osw` whose monitor rust-core captures.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** The sink the host plays into; rust-core records `<SINK>.monitor`. */
export const SINK = 'osw';

const canConnect = (socket) => new Promise((resolve) => {
    const client = net.createConnection(socket);
    client.once('connect', () => { client.destroy(); resolve(true); });
    client.once('error', () => resolve(false));
});

/**
 * Starts `pulseaudio` and resolves once its socket answers.
 * @returns {Promise<{server: string, env: object, stop: () => Promise<void>}>} `server` for
 *   PULSE_SERVER; `env` what a host needs to play into it and stream its sink's monitor
 */
export async function startPulse() {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'osw-pulse-'));
    const socket = path.join(dir, 'native');
    const child = spawn('pulseaudio', [
        '--daemonize=no', '--system=false', '--use-pid-file=no', '--exit-idle-time=-1',
        '--disallow-exit', '--disallow-module-loading', '--realtime=no', '--high-priority=no',
        '--log-target=stderr', '-n',
        `--load=module-native-protocol-unix socket=${socket} auth-anonymous=1`,
        `--load=module-null-sink sink_name=${SINK} rate=48000 channels=2`,
    ], {
        env: {
            ...process.env,
            HOME: dir,
            XDG_CONFIG_HOME: path.join(dir, 'config'),
            XDG_RUNTIME_DIR: dir,
            PULSE_RUNTIME_PATH: path.join(dir, 'runtime'),
            PULSE_STATE_PATH: path.join(dir, 'state'),
            DBUS_SESSION_BUS_ADDRESS: '',
            DISPLAY: '',
            PULSE_SERVER: '',
        },
        stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (chunk) => { log = (log + chunk).slice(-4000); });
    const exited = new Promise((resolve) => { child.once('exit', resolve); });
    const stop = async () => {
        if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
        }
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
        rmSync(dir, { recursive: true, force: true });
    };
    for (let i = 0; i < 200; i += 1) {
        if (child.exitCode !== null) {
            break;
        }
        if (existsSync(socket) && await canConnect(socket)) {
            const server = `unix:${socket}`;
            return {
                server,
                env: { PULSE_SERVER: server, OSW_AUDIO: 'pulse', OSW_AUDIO_DEVICE: `${SINK}.monitor` },
                stop,
            };
        }
        await new Promise((resolve) => { setTimeout(resolve, 50); });
    }
    await stop();
    throw new Error(`pulseaudio did not start:\n${log}`);
}
