import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatStats, summarizeStats } from '../js/stats-overlay.js';

/** A made-up getStats() report: the entries Chromium gives for a receive-only video. */
function report({ t, frames, bytes, jbDelay, jbCount, decodeTime, fps, rtt = 0.004, dropped = 0 }) {
    return [
        { id: 'T01', type: 'transport', timestamp: t, selectedCandidatePairId: 'CP1' },
        { id: 'CP0', type: 'candidate-pair', timestamp: t, nominated: false, state: 'waiting', currentRoundTripTime: 9 },
        { id: 'CP1', type: 'candidate-pair', timestamp: t, nominated: true, state: 'succeeded', currentRoundTripTime: rtt },
        { id: 'COT01_96', type: 'codec', timestamp: t, mimeType: 'video/H264' },
        {
            id: 'IT01V', type: 'inbound-rtp', kind: 'video', timestamp: t, codecId: 'COT01_96',
            framesDecoded: frames, framesDropped: dropped, bytesReceived: bytes, packetsLost: 2,
            jitterBufferDelay: jbDelay, jitterBufferEmittedCount: jbCount, totalDecodeTime: decodeTime,
            frameWidth: 1280, frameHeight: 720, framesPerSecond: fps,
        },
    ];
}

test('no inbound video yet gives null', () => {
    assert.equal(summarizeStats([{ id: 'T01', type: 'transport', timestamp: 1 }], null), null);
});

test('the first report gives averages since the start and no bitrate', () => {
    const s = summarizeStats(report({ t: 1000, frames: 30, bytes: 300000, jbDelay: 0.6, jbCount: 30, decodeTime: 0.09, fps: 30 }), null);
    assert.equal(s.codec, 'H264');
    assert.equal(s.width, 1280);
    assert.equal(s.fps, 30);
    assert.equal(s.bitrateKbps, null);
    assert.ok(Math.abs(s.jitterBufferMs - 20) < 1e-9);
    assert.ok(Math.abs(s.decodeMsPerFrame - 3) < 1e-9);
    assert.equal(s.rttMs, 4);
    assert.equal(s.packetsLost, 2);
});

test('later reports give rates over the interval', () => {
    const first = summarizeStats(report({ t: 1000, frames: 30, bytes: 300000, jbDelay: 0.6, jbCount: 30, decodeTime: 0.09 }), null);
    const second = summarizeStats(report({ t: 2000, frames: 60, bytes: 600000, jbDelay: 0.9, jbCount: 60, decodeTime: 0.15, dropped: 1 }), first);
    // 300 000 bytes in one second = 2400 kbit/s.
    assert.equal(second.bitrateKbps, 2400);
    // No framesPerSecond in the report: counted from frames decoded.
    assert.equal(second.fps, 30);
    assert.ok(Math.abs(second.jitterBufferMs - 10) < 1e-9);
    assert.ok(Math.abs(second.decodeMsPerFrame - 2) < 1e-9);
    assert.equal(second.framesDropped, 1);
});

test('a stalled stream gives null averages, not NaN', () => {
    const first = summarizeStats(report({ t: 1000, frames: 30, bytes: 1000, jbDelay: 0.6, jbCount: 30, decodeTime: 0.09 }), null);
    const stalled = summarizeStats(report({ t: 2000, frames: 30, bytes: 1000, jbDelay: 0.6, jbCount: 30, decodeTime: 0.09 }), first);
    assert.equal(stalled.fps, 0);
    assert.equal(stalled.bitrateKbps, 0);
    assert.equal(stalled.jitterBufferMs, null);
    assert.equal(stalled.decodeMsPerFrame, null);
});

test('without a selected pair id, the nominated succeeded pair gives the round trip', () => {
    const stats = report({ t: 1, frames: 1, bytes: 1, jbDelay: 0, jbCount: 1, decodeTime: 0 })
        .map((s) => (s.type === 'transport' ? { id: s.id, type: s.type, timestamp: 1 } : s));
    assert.equal(summarizeStats(stats, null).rttMs, 4);
});

test('the overlay text names every number', () => {
    const first = summarizeStats(report({ t: 1000, frames: 30, bytes: 0, jbDelay: 0.6, jbCount: 30, decodeTime: 0.09, fps: 29.97 }), null);
    const text = formatStats(first);
    assert.match(text, /H264 1280×720/);
    assert.match(text, /30\.0 fps/);
    assert.match(text, /– kbit\/s/);
    assert.match(text, /rtt 4\.0 ms/);
    assert.match(text, /jitter buffer 20\.0 ms/);
    assert.match(text, /decode 3\.0 ms\/frame/);
    assert.match(text, /30 decoded, 0 dropped/);
    assert.equal(formatStats(null), 'waiting for video…');
});
