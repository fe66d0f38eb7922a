/**
 * What every benchmark driver shares: its command-line options and the network rule.
 */

import { needsLoopbackNamespace } from '../e2e/lib/browser.js';

/** The value after `--name` on the command line, or `fallback`. */
export function option(name, fallback) {
    const args = process.argv.slice(2);
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : fallback;
}

/** Exits with a message unless this process is in a loopback-only network namespace. */
export function requireLoopbackNamespace(benchmark) {
    const reason = needsLoopbackNamespace();
    if (reason) {
        console.error(`${benchmark} benchmark ${reason}`);
        process.exit(2);
    }
}

export const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });
