/**
 * Polling for a condition, shared by the browser tests.
 */

/**
 * Waits until `probe()` resolves to something truthy and returns it.
 * @template T
 * @param {() => T | Promise<T>} probe
 * @param {string} what - named in the timeout error
 * @param {{timeoutMs?: number, intervalMs?: number}} [options]
 * @returns {Promise<T>}
 */
export async function waitUntil(probe, what, { timeoutMs = 10000, intervalMs = 100 } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value) {
            return value;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out waiting for ${what}`);
        }
        await new Promise((resolve) => { setTimeout(resolve, intervalMs); });
    }
}
