//! Counters shared by the render thread, GStreamer's threads and the signaling tasks.
//!
//! Counters are atomics so the hot paths never lock; rates (fps, bitrate) are computed from
//! counter deltas when stats are read, over the time since the previous read (at least one
//! second, so frequent readers see stable figures).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::json;

/// Frames count as flowing while the last one left tier 0's encoder at most this long ago.
const FLOWING_WITHIN: Duration = Duration::from_secs(2);

/// Shortest window over which rates are computed.
const RATE_WINDOW: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Labels {
    encoder: String,
    encoder_reason: String,
    codec: String,
    capture: String,
    last_error: String,
    /// `none`, `pulse` or `host`.
    audio: String,
}

struct Rates {
    at: Instant,
    frames_in: u64,
    frames_encoded: u64,
    bytes_out: u64,
    encode_latency_us: u64,
    fps_in: f64,
    fps_out: f64,
    kbps: f64,
    encode_latency_ms: f64,
}

/// All counters of one streamer.
pub struct Stats {
    frames_in: AtomicU64,
    frames_skipped: AtomicU64,
    frames_dropped: AtomicU64,
    frames_encoded: AtomicU64,
    /// Sum over encoded frames of (time the encoder output it − time it was pushed), µs.
    encode_latency_us: AtomicU64,
    bytes_out: AtomicU64,
    input_events: AtomicU64,
    input_refused: AtomicU64,
    width: AtomicU32,
    height: AtomicU32,
    viewers: AtomicUsize,
    viewers_leaving: AtomicUsize,
    /// When tier 0's encoder last put out a frame, µs after `started`.
    last_encoded_us: AtomicU64,
    started: Instant,
    encoder_rebuilds: AtomicU64,
    /// Sample frames (one per channel set) the host handed in with `audio: host`.
    audio_samples_in: AtomicU64,
    /// PCM chunks the host handed in that were not taken (no stream yet, bad format, full).
    audio_dropped: AtomicU64,
    /// Times host PCM drifted from the clock and its timeline was started afresh.
    audio_resyncs: AtomicU64,
    /// Opus packets out of the shared encoder.
    audio_packets: AtomicU64,
    signaling_port: AtomicU32,
    bitrate_target_kbps: u32,
    labels: Mutex<Labels>,
    /// Tiers and peers as the control thread last published them.
    tiers: Mutex<(serde_json::Value, serde_json::Value)>,
    rates: Mutex<Rates>,
}

impl Stats {
    /// New counters for a streamer with this capture path and target bitrate.
    pub fn new(capture: &str, bitrate_target_kbps: u32) -> Self {
        Stats {
            frames_in: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            frames_encoded: AtomicU64::new(0),
            encode_latency_us: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            input_events: AtomicU64::new(0),
            input_refused: AtomicU64::new(0),
            width: AtomicU32::new(0),
            height: AtomicU32::new(0),
            viewers: AtomicUsize::new(0),
            viewers_leaving: AtomicUsize::new(0),
            last_encoded_us: AtomicU64::new(0),
            started: Instant::now(),
            encoder_rebuilds: AtomicU64::new(0),
            audio_samples_in: AtomicU64::new(0),
            audio_dropped: AtomicU64::new(0),
            audio_resyncs: AtomicU64::new(0),
            audio_packets: AtomicU64::new(0),
            signaling_port: AtomicU32::new(0),
            bitrate_target_kbps,
            labels: Mutex::new(Labels {
                capture: capture.to_string(),
                audio: "none".to_string(),
                ..Labels::default()
            }),
            tiers: Mutex::new((json!([]), json!([]))),
            rates: Mutex::new(Rates {
                at: Instant::now(),
                frames_in: 0,
                frames_encoded: 0,
                bytes_out: 0,
                encode_latency_us: 0,
                fps_in: 0.0,
                fps_out: 0.0,
                kbps: 0.0,
                encode_latency_ms: 0.0,
            }),
        }
    }

    fn labels(&self) -> std::sync::MutexGuard<'_, Labels> {
        self.labels.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn frame_in(&self) {
        self.frames_in.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn frame_skipped(&self) {
        self.frames_skipped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn frame_dropped(&self) {
        self.frames_dropped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn input_accepted(&self) {
        self.input_events.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn input_refused(&self) {
        self.input_refused.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_size(&self, width: u32, height: u32) {
        self.width.store(width, Ordering::Relaxed);
        self.height.store(height, Ordering::Relaxed);
    }
    pub(crate) fn set_viewers(&self, viewers: usize) {
        self.viewers.store(viewers, Ordering::Relaxed);
    }
    pub(crate) fn encoder_rebuilt(&self) {
        self.encoder_rebuilds.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_audio_mode(&self, mode: &str) {
        self.labels().audio = mode.to_string();
    }
    pub(crate) fn audio_samples(&self, frames: u64) {
        self.audio_samples_in.fetch_add(frames, Ordering::Relaxed);
    }
    pub(crate) fn audio_dropped(&self) {
        self.audio_dropped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn audio_resynced(&self) {
        self.audio_resyncs.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn audio_packet(&self) {
        self.audio_packets.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether frames come out of tier 0's encoder now (one within the last 2 s).
    pub fn frames_flowing(&self) -> bool {
        let last = self.last_encoded_us.load(Ordering::Relaxed);
        last > 0
            && self.started.elapsed().as_micros() as u64 - last <= FLOWING_WITHIN.as_micros() as u64
    }

    pub(crate) fn set_viewers_leaving(&self, leaving: usize) {
        self.viewers_leaving.store(leaving, Ordering::Relaxed);
    }
    pub(crate) fn set_signaling_port(&self, port: u16) {
        self.signaling_port
            .store(u32::from(port), Ordering::Relaxed);
    }
    pub(crate) fn set_encoder(&self, encoder: &str, reason: &str, codec: &str) {
        let mut labels = self.labels();
        labels.encoder = encoder.to_string();
        labels.encoder_reason = reason.to_string();
        labels.codec = codec.to_string();
    }
    pub(crate) fn set_last_error(&self, error: String) {
        self.labels().last_error = error;
    }
    pub(crate) fn set_tiers(&self, tiers: serde_json::Value, peers: serde_json::Value) {
        *self.tiers.lock().unwrap_or_else(|e| e.into_inner()) = (tiers, peers);
    }

    /// Frames the host handed over so far.
    pub fn frames_in(&self) -> u64 {
        self.frames_in.load(Ordering::Relaxed)
    }

    /// Current size of the stream.
    pub fn size(&self) -> (u32, u32) {
        (
            self.width.load(Ordering::Relaxed),
            self.height.load(Ordering::Relaxed),
        )
    }

    /// Counts each tier's encoded bytes at its encoder's output, and, for tier 0 (`primary`),
    /// its frames and how long they took: `fpsOut` and `encodeLatencyMs` describe the stream
    /// the controlling viewer gets, `bitrateKbps` everything encoded.
    pub(crate) fn watch_encoder(
        self: &std::sync::Arc<Self>,
        encoder: &gst::Element,
        primary: bool,
    ) {
        let Some(pad) = encoder.static_pad("src") else {
            return;
        };
        let stats = self.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
                return gst::PadProbeReturn::Ok;
            };
            stats
                .bytes_out
                .fetch_add(buffer.size() as u64, Ordering::Relaxed);
            if !primary {
                return gst::PadProbeReturn::Ok;
            }
            stats.frames_encoded.fetch_add(1, Ordering::Relaxed);
            stats.last_encoded_us.store(
                (stats.started.elapsed().as_micros() as u64).max(1),
                Ordering::Relaxed,
            );
            // Frames are timestamped with the running time at which the host pushed them,
            // so (running time now − the frame's running time) is how long it spent getting
            // encoded. Encoders shift timestamps (x264enc by 1000 h), so the frame's running
            // time comes through the output segment.
            let frame_time = buffer.pts().and_then(|pts| {
                let segment = pad.sticky_event::<gst::event::Segment>(0)?;
                segment
                    .segment()
                    .downcast_ref::<gst::ClockTime>()?
                    .to_running_time(pts)
            });
            let now = pad.parent_element().and_then(|e| e.current_running_time());
            if let (Some(frame_time), Some(now)) = (frame_time, now) {
                let latency = now.saturating_sub(frame_time).useconds();
                stats
                    .encode_latency_us
                    .fetch_add(latency, Ordering::Relaxed);
            }
            gst::PadProbeReturn::Ok
        });
    }

    /// The stats object (fields documented in `SIGNALING.md`).
    pub fn to_json(&self) -> serde_json::Value {
        let frames_in = self.frames_in.load(Ordering::Relaxed);
        let frames_encoded = self.frames_encoded.load(Ordering::Relaxed);
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        let encode_latency_us = self.encode_latency_us.load(Ordering::Relaxed);
        let (fps_in, fps_out, kbps, encode_latency_ms) = {
            let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            let elapsed = rates.at.elapsed();
            if elapsed >= RATE_WINDOW {
                let secs = elapsed.as_secs_f64();
                rates.fps_in = (frames_in - rates.frames_in) as f64 / secs;
                rates.fps_out = (frames_encoded - rates.frames_encoded) as f64 / secs;
                rates.kbps = (bytes_out - rates.bytes_out) as f64 * 8.0 / 1000.0 / secs;
                let encoded = frames_encoded - rates.frames_encoded;
                rates.encode_latency_ms = if encoded > 0 {
                    (encode_latency_us - rates.encode_latency_us) as f64 / encoded as f64 / 1000.0
                } else {
                    0.0
                };
                rates.at = Instant::now();
                rates.frames_in = frames_in;
                rates.frames_encoded = frames_encoded;
                rates.bytes_out = bytes_out;
                rates.encode_latency_us = encode_latency_us;
            }
            (
                rates.fps_in,
                rates.fps_out,
                rates.kbps,
                rates.encode_latency_ms,
            )
        };
        let (tiers, peers) = self.tiers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let labels = self.labels();
        let round = |x: f64| (x * 10.0).round() / 10.0;
        json!({
            "encoder": labels.encoder,
            "encoderReason": labels.encoder_reason,
            "codec": labels.codec,
            "capture": labels.capture,
            "width": self.width.load(Ordering::Relaxed),
            "height": self.height.load(Ordering::Relaxed),
            "viewers": self.viewers.load(Ordering::Relaxed),
            "viewersLeaving": self.viewers_leaving.load(Ordering::Relaxed),
            "framesFlowing": self.frames_flowing(),
            "encoderRebuilds": self.encoder_rebuilds.load(Ordering::Relaxed),
            "framesIn": frames_in,
            "framesSkipped": self.frames_skipped.load(Ordering::Relaxed),
            "framesDropped": self.frames_dropped.load(Ordering::Relaxed),
            "framesEncoded": frames_encoded,
            "fpsIn": round(fps_in),
            "fpsOut": round(fps_out),
            "bitrateKbps": round(kbps),
            // Tier 0's bitrate once congestion control runs, the configured one before.
            "bitrateTargetKbps": tiers
                .get(0)
                .and_then(|tier| tier["targetKbps"].as_u64())
                .unwrap_or(u64::from(self.bitrate_target_kbps)),
            "encodeLatencyMs": round(encode_latency_ms),
            "inputEvents": self.input_events.load(Ordering::Relaxed),
            "inputRefused": self.input_refused.load(Ordering::Relaxed),
            "audio": labels.audio,
            "audioSamplesIn": self.audio_samples_in.load(Ordering::Relaxed),
            "audioDropped": self.audio_dropped.load(Ordering::Relaxed),
            "audioResyncs": self.audio_resyncs.load(Ordering::Relaxed),
            "audioPackets": self.audio_packets.load(Ordering::Relaxed),
            "signalingPort": self.signaling_port.load(Ordering::Relaxed),
            "lastError": labels.last_error,
            "tiers": tiers,
            "peers": peers,
        })
    }
}
