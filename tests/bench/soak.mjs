/**
 * The memory soak's driver (run through tests/bench/soak). A viewer joins, watches ~15 s and
 * leaves, over and over, with a second viewer present every other round; the host's RSS is
 * read from /proc every 5 s. Growth is the least-squares slope of RSS over time after the
 * first minute (allocators and GStreamer's pools settle in that minute).
 */

import { readFileSync } from 'node:fs';
import os from 'node:os';

import { launchBrowser, openViewer, waitForPlaying } from '../e2e/lib/browser.js';
import { GlHost } from '../e2e/lib/gl-host.js';
import { option, requireLoopbackNamespace, sleep } from './common.mjs';

const MINUTES = Number(option('--minutes', '5'));
const CAPTURE = option('--capture', 'readback');
const ENCODER = option('--encoder', 'x264');

requireLoopbackNamespace('soak');

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

function slopeKiBPerMinute(points) {
    const n = points.length;
    const mx = points.reduce((a, p) => a + p.t, 0) / n;
    const my = points.reduce((a, p) => a + p.rss, 0) / n;
    const num = points.reduce((a, p) => a + (p.t - mx) * (p.rss - my), 0);
    const den = points.reduce((a, p) => a + (p.t - mx) ** 2, 0);
    return den === 0 ? 0 : (num / den) * 60;
}

const host = await GlHost.start(['--width', '1280', '--height', '720', '--fps', '30', '--capture', CAPTURE, '--encoder', ENCODER]);
const browser = await launchBrowser();
const started = Date.now();
const samples = [];
let rounds = 0;
const sampler = setInterval(() => {
    samples.push({ t: (Date.now() - started) / 1000, rss: rssKiB(host.pid) });
}, 5000);
try {
    while (Date.now() - started < MINUTES * 60_000) {
        const pages = [await browser.newPage()];
        if (rounds % 2 === 1) {
            pages.push(await browser.newPage());
        }
        for (const page of pages) {
            await openViewer(page, host.signalUrl);
            await waitForPlaying(page);
        }
        await sleep(15_000);
        for (const page of pages) {
            await page.close();
        }
        rounds += 1;
        await sleep(2_000);
    }
}
finally {
    clearInterval(sampler);
    await browser.close();
}
const joined = host.joined.length;
const left = host.left.length;
await host.stop();

const settled = samples.filter((s) => s.t >= 60);
const first = settled[0]?.rss ?? samples[0].rss;
const last = samples.at(-1).rss;
const result = {
    machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    minutes: MINUTES,
    capture: CAPTURE,
    encoder: ENCODER,
    viewersJoined: joined,
    viewersLeft: left,
    rssAfterOneMinuteKiB: first,
    rssEndKiB: last,
    rssMaxKiB: Math.max(...samples.map((s) => s.rss)),
    growthKiBPerMinute: Number(slopeKiBPerMinute(settled.length > 2 ? settled : samples).toFixed(1)),
};
console.log(`soak: ${joined} viewers joined and ${left} left over ${MINUTES} min; RSS ${first} KiB after 1 min, `
    + `${last} KiB at the end (max ${result.rssMaxKiB}); trend ${result.growthKiBPerMinute} KiB/min`);
console.log(JSON.stringify(result));
