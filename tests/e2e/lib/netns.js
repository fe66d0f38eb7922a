/**
 * Shaped network links for browser tests and benchmarks: each viewer in a network namespace
 * of its own, joined to the test's namespace by a veth pair, with a token-bucket rate limit
 * (`tc … tbf`) on the link towards the viewer and random UDP loss (`iptables … statistic`)
 * on the viewer's side.
 *
 *     test's namespace (loopback only: scripts/in-loopback-netns.sh)
 *       streamer on 127.0.0.1, gathering ICE on 10.77.N.1 (OSW_ICE_ADDRESSES)
 *       10.77.N.1/30 ── veth ── 10.77.N.2/30  namespace osw-<pid>-N: Chromium
 *       (tbf here, shaping what the viewer receives)  (iptables INPUT drop here)
 *
 * The page and the signaling endpoint stay on 127.0.0.1; each link forwards them (plain TCP)
 * from its host-side address, where the viewer's Chromium can reach them. Media goes over
 * the veth directly.
 *
 * Nothing leaves: every namespace made here is new, has only its veth and `lo` and no route
 * beyond its /30, and the test's own namespace has only `lo` and the host ends of these veths
 * (forwarding is off in a new namespace). Everything made here is removed by `close()`, and also when the process exits
 * or is terminated without it; a run that was killed outright leaves at most empty namespaces
 * named after its process id, which the next run removes.
 *
 * Needs root (a real one: `ip netns add` mounts under /run/netns), iproute2 and iptables.
 *
 * `startStripClock()` records every frame a viewer shows, at whatever size the stream has
 * (a tier may be downscaled), and `shownOver()` sums up a window of those records.
 */

import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { promisify } from 'node:util';

import { launchBrowser, needsLoopbackNamespace, openViewer, webServer } from './browser.js';

const run = promisify(execFile);

/** Token-bucket queue depth: what the brief for shaped links asks for (tbf `latency`). */
const TBF_LATENCY = '60ms';
/** Token-bucket burst at ordinary rates (16 KiB); faster links get 4 ms worth of bytes. */
const TBF_MIN_BURST_BYTES = 16 * 1024;

const NAME_PREFIX = `osw-${process.pid}-`;

/** Links of every lab this process made and has not closed yet, for the exit cleanup. */
const liveLinks = new Set();

/**
 * Why shaped links cannot be made here, or false. Pairs with needsLoopbackNamespace():
 * `{ skip: needsLoopbackNamespace() || needsNetworkLab() }`. Only the lack of real root is a
 * reason to skip; missing tools (iproute2, iptables) are a setup error and fail the test.
 * @returns {string | false}
 */
export function needsNetworkLab() {
    return needsLoopbackNamespace() || needsRealRoot('shapes links with network namespaces, tc and iptables');
}

/**
 * Why `ip netns add` (which mounts under /run/netns) cannot work here, or false: `what`,
 * followed by what is missing, root or a real one.
 * @param {string} what - what the caller does, for the reason
 * @returns {string | false}
 */
export function needsRealRoot(what) {
    if (process.getuid?.() !== 0) {
        return `${what}: needs root`;
    }
    // Root in a user namespace (unshare -r) cannot mount /run/netns: the identity map over
    // all ids means the initial user namespace.
    const uidMap = readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
    if (uidMap[0] !== '0' || uidMap[1] !== '0' || uidMap[2] !== '4294967295') {
        return `${what}: needs real root, not root in a user namespace`;
    }
    return false;
}

/**
 * Runs `command` with `args` (no shell) and resolves with its stdout; a failure says the
 * command line and its stderr.
 * @param {string} command
 * @param {string[]} args
 * @param {import('node:child_process').ExecFileOptions} [options] - besides a 16 MiB
 *   `maxBuffer`
 * @returns {Promise<string>}
 */
export async function sh(command, args, options = {}) {
    try {
        return (await run(command, args, { maxBuffer: 16 << 20, ...options })).stdout;
    } catch (err) {
        throw new Error(`${command} ${args.join(' ')} failed: ${(err.stderr || err.message).trim()}`,
            { cause: err });
    }
}

function tryRunSync(command, args) {
    try {
        execFileSync(command, args, { stdio: 'ignore' });
    } catch {
        // Already gone.
    }
}

/** Removes a link's namespace (its veth pair, qdisc and rules go with it) synchronously. */
function removeLinkSync(link) {
    tryRunSync('ip', ['netns', 'del', link.ns]);
    tryRunSync('ip', ['link', 'del', link.hostIf]);
}

function cleanupAllSync() {
    for (const link of liveLinks) {
        removeLinkSync(link);
    }
    liveLinks.clear();
}

let exitHooks = false;
function installExitHooks() {
    if (exitHooks) {
        return;
    }
    exitHooks = true;
    process.on('exit', cleanupAllSync);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
        process.once(signal, () => {
            cleanupAllSync();
            // Handlers gone: the signal's default action (ending the process) applies now.
            process.kill(process.pid, signal);
        });
    }
}

/** Removes namespaces left by earlier runs of this module whose process is gone. */
function removeStaleNamespaces() {
    if (!existsSync('/run/netns')) {
        return;
    }
    for (const name of readdirSync('/run/netns')) {
        const match = /^osw-(\d+)-\d+$/.exec(name);
        if (match && !existsSync(`/proc/${match[1]}`)) {
            tryRunSync('ip', ['netns', 'del', name]);
        }
    }
}

/**
 * One viewer's link: a namespace and the veth pair into it.
 */
export class Link {
    /** Namespace name (for `ip netns exec`, and launchBrowser's `netns`). */
    ns;
    /** The test side's address on this link: where the streamer gathers ICE for it. */
    hostAddress;
    /** The viewer's only address besides 127.0.0.1 in its namespace. */
    viewerAddress;
    /** Interface names: the host end (in the test's namespace, shaped), the viewer end. */
    hostIf;
    viewerIf;
    /** The current limit in kbit/s (null: unlimited) and loss in percent (0: none). */
    rateKbit = null;
    lossPercent = 0;

    #servers = [];
    #sockets = new Set();
    #webOrigin = null;

    constructor(index) {
        this.ns = `${NAME_PREFIX}${index}`;
        this.hostIf = `osw${process.pid}h${index}`;
        this.viewerIf = `osw${process.pid}v${index}`;
        this.hostAddress = `10.77.${index}.1`;
        this.viewerAddress = `10.77.${index}.2`;
    }

    async create() {
        await sh('ip', ['netns', 'add', this.ns]);
        liveLinks.add(this);
        await sh('ip', ['link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.viewerIf,
            'netns', this.ns]);
        await sh('ip', ['addr', 'add', `${this.hostAddress}/30`, 'dev', this.hostIf]);
        await sh('ip', ['link', 'set', this.hostIf, 'up']);
        await sh('ip', ['-n', this.ns, 'link', 'set', 'lo', 'up']);
        await sh('ip', ['-n', this.ns, 'addr', 'add', `${this.viewerAddress}/30`, 'dev', this.viewerIf]);
        await sh('ip', ['-n', this.ns, 'link', 'set', this.viewerIf, 'up']);
        // No default route: the viewer reaches its own /30 and nothing else, so ICE can only
        // pair it with this link's host-side address. (Chromium still gathers on the veth: the
        // page has the camera permission in a secure context, see openViewerOnLink.)
    }

    /**
     * Limits what the viewer receives to `kbit` kbit/s (token bucket on the host end, as
     * `tc qdisc replace … tbf rate …kbit burst 16kb latency 60ms`); null lifts the limit.
     * Takes effect at once, also mid-stream.
     * @param {number | null} kbit
     */
    async setRate(kbit) {
        if (kbit === null || kbit === undefined) {
            if (this.rateKbit !== null) {
                await sh('tc', ['qdisc', 'del', 'dev', this.hostIf, 'root']);
            }
            this.rateKbit = null;
            return;
        }
        const burst = Math.max(TBF_MIN_BURST_BYTES, Math.ceil((kbit * 1000 / 8) * 0.004));
        await sh('tc', ['qdisc', 'replace', 'dev', this.hostIf, 'root', 'tbf',
            'rate', `${kbit}kbit`, 'burst', String(burst), 'latency', TBF_LATENCY]);
        this.rateKbit = kbit;
    }

    /**
     * Drops `percent` % of the UDP packets the viewer receives, at random (iptables INPUT in
     * the viewer's namespace); 0 stops dropping.
     * @param {number} percent
     */
    async setLoss(percent) {
        await sh('ip', ['netns', 'exec', this.ns, 'iptables', '-w', '-F', 'INPUT']);
        if (percent > 0) {
            await sh('ip', ['netns', 'exec', this.ns, 'iptables', '-w', '-A', 'INPUT', '-p', 'udp',
                '-m', 'statistic', '--mode', 'random', '--probability', String(percent / 100),
                '-j', 'DROP']);
        }
        this.lossPercent = percent;
    }

    /** UDP packets dropped on purpose so far (the rule's counter). */
    async droppedPackets() {
        const out = await sh('ip', ['netns', 'exec', this.ns, 'iptables', '-w', '-L', 'INPUT', '-v', '-n', '-x']);
        const rule = out.split('\n').find((line) => line.includes('DROP') && line.includes('statistic'));
        return rule ? Number(rule.trim().split(/\s+/)[0]) : 0;
    }

    /** Bytes sent towards the viewer so far (the host end's counter): what crossed the link. */
    async bytesToViewer() {
        const [info] = JSON.parse(await sh('ip', ['-j', '-s', 'link', 'show', 'dev', this.hostIf]));
        return info.stats64?.tx?.bytes ?? info.stats?.tx?.bytes ?? 0;
    }

    /**
     * Forwards TCP from this link's host-side address to `127.0.0.1:targetPort` (the page's
     * server, the streamer's signaling endpoint), so the viewer's namespace can reach them.
     * @param {number} targetPort
     * @returns {Promise<number>} the port on {@link Link#hostAddress}
     */
    async forward(targetPort) {
        const sockets = this.#sockets;
        const server = net.createServer((client) => {
            const upstream = net.connect(targetPort, '127.0.0.1');
            sockets.add(client);
            sockets.add(upstream);
            client.pipe(upstream);
            upstream.pipe(client);
            const end = () => {
                client.destroy();
                upstream.destroy();
                sockets.delete(client);
                sockets.delete(upstream);
            };
            client.on('error', end);
            upstream.on('error', end);
            client.on('close', end);
            upstream.on('close', end);
        });
        await new Promise((resolve, reject) => {
            server.once('error', reject);
            server.listen(0, this.hostAddress, resolve);
        });
        server.unref();
        this.#servers.push(server);
        return server.address().port;
    }

    /**
     * Where the viewer's namespace loads the page from: web/ (the shared static server)
     * forwarded to this link's host-side address, made on first use.
     * @returns {Promise<string>} e.g. `http://10.77.1.1:40123`
     */
    webOrigin() {
        this.#webOrigin ??= webServer().then((web) => this.forward(web.port))
            .then((port) => `http://${this.hostAddress}:${port}`);
        return this.#webOrigin;
    }

    /** Stops forwarding and removes the namespace, its veth pair, qdisc and rules. */
    async close() {
        for (const server of this.#servers.splice(0)) {
            server.close();
        }
        for (const socket of this.#sockets) {
            socket.destroy();
        }
        this.#sockets.clear();
        if (!liveLinks.has(this)) {
            return;
        }
        liveLinks.delete(this);
        await run('ip', ['netns', 'del', this.ns]).catch(() => {});
        // The host end goes with its peer; this only matters if the namespace was half made.
        await run('ip', ['link', 'del', this.hostIf]).catch(() => {});
    }
}

/**
 * The links of one test or benchmark run.
 */
export class NetworkLab {
    /** @type {Link[]} */
    links = [];
    #next = 1;

    /** A lab with no links yet. Throws where {@link needsNetworkLab} gives a reason. */
    static create() {
        const reason = needsNetworkLab();
        if (reason) {
            throw new Error(reason);
        }
        installExitHooks();
        removeStaleNamespaces();
        return new NetworkLab();
    }

    /**
     * A new viewer link, optionally shaped at once.
     * @param {{rateKbit?: number | null, lossPercent?: number}} [options]
     * @returns {Promise<Link>}
     */
    async addLink({ rateKbit = null, lossPercent = 0 } = {}) {
        const index = this.#next;
        if (index > 250) {
            throw new Error('too many links');
        }
        this.#next += 1;
        const link = new Link(index);
        this.links.push(link);
        await link.create();
        await link.setRate(rateKbit);
        if (lossPercent > 0) {
            await link.setLoss(lossPercent);
        }
        return link;
    }

    /** The host-side addresses of every link: the streamer's `OSW_ICE_ADDRESSES`. */
    get iceAddresses() {
        return this.links.map((link) => link.hostAddress).join(',');
    }

    /** Removes every link. Safe to call twice. */
    async close() {
        await Promise.all(this.links.map((link) => link.close()));
    }
}

/**
 * Headless Chromium inside `link`'s namespace ({@link launchBrowser} with `netns`), for
 * {@link openViewerOnLink}. The page's origin there counts as a secure context, as 127.0.0.1
 * does (the camera permission that lets Chromium gather on every interface is only granted to
 * one).
 * @param {Link} link
 * @param {{extraArgs?: string[]}} [options]
 * @returns {Promise<import('playwright-core').Browser>}
 */
export async function launchBrowserOnLink(link, { extraArgs = [] } = {}) {
    const origin = await link.webOrigin();
    return launchBrowser({
        netns: link.ns,
        extraArgs: [`--unsafely-treat-insecure-origin-as-secure=${origin}`, ...extraArgs],
    });
}

/**
 * The viewer page in headless Chromium inside `link`'s namespace, joined to the streamer
 * listening on `127.0.0.1:signalPort` (the page and the endpoint both reached through the
 * link).
 *
 * @param {Link} link
 * @param {number} signalPort - the streamer's signaling port on 127.0.0.1
 * @param {object} [options]
 * @param {boolean} [options.viewOnly=false]
 * @param {import('playwright-core').Browser} [options.browser] - one from
 *   {@link launchBrowserOnLink} for this link (default: a new one)
 * @param {number} [options.sourceHeight] - the host's frame height: starts a
 *   {@link startStripClock} for it as soon as the page is open
 * @returns {Promise<{browser: import('playwright-core').Browser,
 *   page: import('playwright-core').Page}>} close the browser when done
 */
export async function openViewerOnLink(link, signalPort, { viewOnly = false, browser, sourceHeight } = {}) {
    const ours = !browser;
    const chromium = browser ?? await launchBrowserOnLink(link);
    try {
        const origin = await link.webOrigin();
        const signalForward = await link.forward(signalPort);
        const page = await chromium.newPage();
        await openViewer(page, `ws://${link.hostAddress}:${signalForward}/`, { viewOnly, baseUrl: `${origin}/` });
        if (sourceHeight) {
            await startStripClock(page, { sourceHeight });
        }
        return { browser: chromium, page };
    } catch (err) {
        if (ours) {
            await chromium.close().catch(() => {});
        }
        throw err;
    }
}

/**
 * Starts recording every frame the viewer page shows, like the page's own frame clock
 * (web/js/frame-clock.js) but at any stream size: the page's clock reads the strip at the
 * host's pixel rows, so it reads nothing once a congestion-controlled tier sends the picture
 * downscaled (the strip is 16 rows at the host's size, 8 at half of it). This one reads the
 * strip's middle row scaled to the stream's height, with the page's own decoder
 * (web/js/timestamp-strip.js). Read the records with {@link stripSamples}.
 *
 * Like the page's clock, it leaves out frames whose strip does not decode to within a day of
 * now (`skipped`) and frames drawn a frame late (`mismatched`: the video element already
 * showed a newer frame than the callback's timings describe).
 *
 * @param {import('playwright-core').Page} page - the viewer page, open
 * @param {{sourceHeight: number}} options - the host's frame height (the strip's 16 rows are
 *   rows of it)
 */
export async function startStripClock(page, { sourceHeight }) {
    await page.evaluate(async (height) => {
        const strip = await import('./js/timestamp-strip.js');
        const decode = strip.default;
        const video = document.getElementById('stream');
        const width = 512;
        const canvas = document.createElement('canvas');
        canvas.width = width;
        canvas.height = 1;
        const context = canvas.getContext('2d', { willReadFrequently: true });
        context.imageSmoothingEnabled = false;
        const clock = { samples: [], skipped: 0, mismatched: 0 };
        window.__oswStripClock = clock;
        const onFrame = (now, metadata) => {
            video.requestVideoFrameCallback(onFrame);
            if (video.videoWidth === 0) {
                return;
            }
            const wallNow = Date.now();
            const toWall = (t) => wallNow + (t - performance.now());
            const row = Math.min(video.videoHeight - 1,
                Math.floor(((strip.SAMPLE_ROW + 0.5) * video.videoHeight) / height));
            context.drawImage(video, 0, row, video.videoWidth, 1, 0, 0, width, 1);
            const decoded = decode(context.getImageData(0, 0, width, 1).data, width);
            if (!decoded || Math.abs(decoded.renderedMs - wallNow) > 24 * 60 * 60 * 1000) {
                clock.skipped += 1;
                return;
            }
            const presentedMs = toWall(metadata.expectedDisplayTime);
            if (presentedMs < decoded.renderedMs) {
                clock.mismatched += 1;
                return;
            }
            if (decoded.frame === clock.samples.at(-1)?.frame) {
                clock.samples.pop();
                clock.mismatched += 1;
            }
            clock.samples.push({
                frame: decoded.frame,
                renderedMs: decoded.renderedMs,
                presentedMs,
                latencyMs: presentedMs - decoded.renderedMs,
                presentedFrames: metadata.presentedFrames,
                width: video.videoWidth,
                height: video.videoHeight,
            });
            if (clock.samples.length > 36000) {
                clock.samples.shift();
            }
        };
        video.requestVideoFrameCallback(onFrame);
    }, sourceHeight);
}

/**
 * What {@link startStripClock} recorded: one `{frame, renderedMs, presentedMs, latencyMs,
 * presentedFrames, width, height}` per frame shown, oldest first, and the counts of frames
 * left out.
 * @param {import('playwright-core').Page} page
 * @param {{clear?: boolean}} [options] - forget the records after reading them
 * @returns {Promise<{samples: object[], skipped: number, mismatched: number}>}
 */
export function stripSamples(page, { clear = false } = {}) {
    return page.evaluate((forget) => {
        const clock = window.__oswStripClock;
        const { samples, skipped, mismatched } = clock;
        if (forget) {
            clock.samples = [];
            clock.skipped = 0;
            clock.mismatched = 0;
        }
        return { samples, skipped, mismatched };
    }, clear);
}

/** A gap longer than this without a new frame presented is a freeze. */
export const FREEZE_MS = 200;

/**
 * What a viewer showed over the wall-clock window [fromMs, toMs], from the records of
 * {@link stripSamples} (or the page's own `frameSamples(page)`), which must cover the window.
 *
 * Frames shown per second is the smaller of two rates over the window: frames Chromium
 * presented (the callback's `presentedFrames`; the callback itself may skip a frame when two
 * are presented within one of the page's own frames, so counting samples would undercount),
 * and how far the timestamp strip's frame counter advanced (the picture moves on at that
 * rate), both counted from the last frame shown before the window where the samples have one. A freeze is a gap of more than {@link FREEZE_MS} in which nothing new was presented,
 * the window's edges included.
 *
 * @param {object[]} samples
 * @param {number} fromMs
 * @param {number} toMs
 * @returns {{size: string | null, fps: number, presentedFps: number, stripFps: number,
 *   distinctFrames: number, freezes: number, longestFreezeMs: number, latenciesMs: number[]}}
 *   `size`: the stream's size at the window's last frame (stripSamples records only)
 */
export function shownOver(samples, fromMs, toMs) {
    const inside = samples.filter((s) => s.presentedMs >= fromMs && s.presentedMs <= toMs);
    const seconds = (toMs - fromMs) / 1000;
    // Counted from the last frame before the window where there is one (what was on screen
    // when it began), else from the window's first.
    const before = samples.filter((s) => s.presentedMs < fromMs).at(-1);
    const first = before ?? inside[0];
    const last = inside.at(-1);
    let presentedFps = 0;
    let stripFps = 0;
    if (first && last && last !== first) {
        presentedFps = (last.presentedFrames - first.presentedFrames) / seconds;
        stripFps = ((last.frame - first.frame + 65536) % 65536) / seconds;
    }
    let freezes = 0;
    let longest = 0;
    const edges = [{ presentedMs: fromMs, presentedFrames: null }, ...inside,
        { presentedMs: toMs, presentedFrames: null }];
    for (let i = 1; i < edges.length; i += 1) {
        const gap = edges[i].presentedMs - edges[i - 1].presentedMs;
        const a = edges[i - 1].presentedFrames;
        const b = edges[i].presentedFrames;
        // More than one frame presented in between: the page missed callbacks, the video did
        // not stop.
        const presentedBetween = a !== null && b !== null && b - a > 1;
        if (gap > FREEZE_MS && !presentedBetween) {
            freezes += 1;
            longest = Math.max(longest, gap);
        }
    }
    return {
        size: last?.width ? `${last.width}x${last.height}` : null,
        fps: Math.min(presentedFps, stripFps),
        presentedFps,
        stripFps,
        distinctFrames: new Set(inside.map((s) => s.frame)).size,
        freezes,
        longestFreezeMs: Math.round(longest),
        latenciesMs: inside.map((s) => s.latencyMs),
    };
}
