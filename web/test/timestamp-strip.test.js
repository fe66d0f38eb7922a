import assert from 'node:assert/strict';
import { test } from 'node:test';

import decodeTimestampStrip, { SAMPLE_ROW, STRIP_BLOCKS, STRIP_ROWS } from '../js/timestamp-strip.js';

/** The 64 bits the test host stamps: 48 bits of ms, then 16 bits of frame counter. */
function bits(renderedMs, frame) {
    const out = [];
    let ms = renderedMs;
    const timeBits = [];
    for (let i = 0; i < 48; i += 1) {
        timeBits.unshift(ms % 2);
        ms = Math.floor(ms / 2);
    }
    out.push(...timeBits);
    for (let i = 15; i >= 0; i -= 1) {
        out.push((frame >> i) & 1);
    }
    return out;
}

/** One RGBA row of a strip `width` pixels wide, as the host draws it. */
function encodeRow(renderedMs, frame, width) {
    const row = new Uint8ClampedArray(width * 4);
    const b = bits(renderedMs, frame);
    for (let x = 0; x < width; x += 1) {
        const block = Math.floor((x * STRIP_BLOCKS) / width);
        const v = b[block] ? 255 : 0;
        row.set([v, v, v, 255], x * 4);
    }
    return row;
}

/** Box-filter scaling of a row, as a browser does when it draws a video smaller or larger. */
function resample(row, from, to) {
    const out = new Uint8ClampedArray(to * 4);
    for (let x = 0; x < to; x += 1) {
        const start = (x * from) / to;
        const end = ((x + 1) * from) / to;
        for (let c = 0; c < 4; c += 1) {
            let sum = 0;
            let weight = 0;
            for (let s = Math.floor(start); s < Math.ceil(end); s += 1) {
                const w = Math.min(end, s + 1) - Math.max(start, s);
                sum += row[s * 4 + c] * w;
                weight += w;
            }
            out[x * 4 + c] = sum / weight;
        }
    }
    return out;
}

/** A 5-tap blur, like the encoder's smearing across block edges. */
function blur(row, width) {
    const out = new Uint8ClampedArray(row.length);
    for (let x = 0; x < width; x += 1) {
        for (let c = 0; c < 4; c += 1) {
            let sum = 0;
            for (let k = -2; k <= 2; k += 1) {
                const xs = Math.min(Math.max(x + k, 0), width - 1);
                sum += row[xs * 4 + c];
            }
            out[x * 4 + c] = sum / 5;
        }
    }
    return out;
}

const NOW = 1767225600123; // 2026-01-01T00:00:00.123Z

test('the strip geometry matches the host: 16 rows, 64 blocks, sampled in row 8', () => {
    assert.equal(STRIP_ROWS, 16);
    assert.equal(STRIP_BLOCKS, 64);
    assert.equal(SAMPLE_ROW, 8);
});

test('decodes time and frame counter at 1280 pixels', () => {
    assert.deepEqual(decodeTimestampStrip(encodeRow(NOW, 4242, 1280), 1280), { renderedMs: NOW, frame: 4242 });
});

test('uses all 48 time bits and all 16 counter bits', () => {
    const maxMs = 2 ** 48 - 1;
    assert.deepEqual(decodeTimestampStrip(encodeRow(maxMs, 65535, 640), 640), { renderedMs: maxMs, frame: 65535 });
    assert.deepEqual(decodeTimestampStrip(encodeRow(0, 0, 640), 640), { renderedMs: 0, frame: 0 });
    // A single low bit in each field: catches off-by-one in the split.
    assert.deepEqual(decodeTimestampStrip(encodeRow(1, 1, 640), 640), { renderedMs: 1, frame: 1 });
    assert.deepEqual(decodeTimestampStrip(encodeRow(2 ** 47, 2 ** 15, 640), 640), { renderedMs: 2 ** 47, frame: 2 ** 15 });
});

test('widths that are not a multiple of 64', () => {
    for (const width of [128, 200, 333, 1366, 1919]) {
        assert.deepEqual(decodeTimestampStrip(encodeRow(NOW, 77, width), width), { renderedMs: NOW, frame: 77 }, `width ${width}`);
    }
});

test('survives scaling to the displayed size and back, and blur across block edges', () => {
    const source = encodeRow(NOW, 31337, 1280);
    const shrunk = blur(resample(source, 1280, 512), 512);
    assert.deepEqual(decodeTimestampStrip(shrunk, 512), { renderedMs: NOW, frame: 31337 });
    const odd = blur(resample(encodeRow(NOW, 12, 1920), 1920, 700), 700);
    assert.deepEqual(decodeTimestampStrip(odd, 700), { renderedMs: NOW, frame: 12 });
    const enlarged = blur(resample(encodeRow(NOW, 9, 320), 320, 1000), 1000);
    assert.deepEqual(decodeTimestampStrip(enlarged, 1000), { renderedMs: NOW, frame: 9 });
});

test('grey levels either side of the threshold, and tinted colours', () => {
    const row = encodeRow(NOW, 500, 640);
    // Compression noise: whites down to 140, blacks up to 110, with a chroma shift.
    for (let i = 0; i < row.length; i += 4) {
        const white = row[i] === 255;
        row[i] = white ? 150 : 100;
        row[i + 1] = white ? 140 : 110;
        row[i + 2] = white ? 160 : 90;
    }
    assert.deepEqual(decodeTimestampStrip(row, 640), { renderedMs: NOW, frame: 500 });
});

test('a row under two pixels a block, or shorter than its width, is refused', () => {
    assert.equal(decodeTimestampStrip(new Uint8ClampedArray(127 * 4), 127), null);
    assert.equal(decodeTimestampStrip(new Uint8ClampedArray(10), 640), null);
});
