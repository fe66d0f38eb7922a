/**
 * A static file server on 127.0.0.1 for browser tests: pages must come over http (ES
 * modules do not load from file://), and the orchestrator is not needed to test a page.
 */

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's `web/` folder. */
export const WEB_ROOT = fileURLToPath(new URL('../../../web/', import.meta.url));

const TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.mjs': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.json': 'application/json',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.ico': 'image/x-icon',
    '.woff2': 'font/woff2',
};

/**
 * Serves a folder on 127.0.0.1 at an ephemeral port.
 *
 * @param {string} [root=WEB_ROOT]
 * @returns {Promise<{url: string, port: number, server: import('node:http').Server,
 *   close: () => Promise<void>}>} `url` ends with a slash: `new URL('viewer.html', url)`
 */
export async function serveStatic(root = WEB_ROOT) {
    const base = path.resolve(root);
    const server = createServer(async (req, res) => {
        const send = (status, text) => {
            res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
            res.end(text);
        };
        if (req.method !== 'GET' && req.method !== 'HEAD') {
            send(405, 'method not allowed');
            return;
        }
        let file;
        try {
            const { pathname } = new URL(req.url, 'http://127.0.0.1');
            file = path.join(base, decodeURIComponent(pathname));
        } catch {
            send(400, 'bad request');
            return;
        }
        // path.join normalised any `..`; whatever still points outside the root is refused.
        if (file !== base && !file.startsWith(base + path.sep)) {
            send(403, 'forbidden');
            return;
        }
        try {
            const info = await stat(file);
            if (info.isDirectory()) {
                file = path.join(file, 'index.html');
                await stat(file);
            }
        } catch {
            send(404, 'not found');
            return;
        }
        res.writeHead(200, {
            'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
            // Tests edit and reload pages; a cached module would hide the change.
            'Cache-Control': 'no-store',
        });
        if (req.method === 'HEAD') {
            res.end();
            return;
        }
        createReadStream(file).on('error', () => res.destroy()).pipe(res);
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
    });
    const { port } = server.address();
    return {
        url: `http://127.0.0.1:${port}/`,
        port,
        server,
        close: () => new Promise((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
        }),
    };
}
