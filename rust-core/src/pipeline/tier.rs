//! One quality tier: an encoder branch behind the raw-frame tee, and the viewers it feeds.
//!
//! ```text
//! raw tee ─ queue (leaky, 1 frame) ─ videoscale ─ size caps ─ encoder ─ appsink ─┬ viewer A
//!                                                                                └ viewer B
//! ```
//!
//! The appsink hands each encoded frame to every [`Consumer`] (a viewer's own pipeline) on the
//! tier's streaming thread. A consumer mirrors its viewer's pacer: when more than
//! [`MAX_BACKLOG`] of the viewer's estimated rate is still waiting to go out, whole frames are
//! dropped for that viewer only, and it resumes at the next key frame, which its tier is asked
//! for. Packets in the middle of a frame are never dropped.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::encoder::{self, EncoderPlan};
use super::policy::Mitigation;
use super::{Codec, PipelineError, make};
use crate::config::StreamerConfig;
use crate::stats::Stats;

/// A viewer whose link has more than this much of its rate waiting loses whole frames.
const MAX_BACKLOG: Duration = Duration::from_millis(300);
/// Encoded frames queued in a viewer's own `appsrc` before the oldest is dropped there too.
const VIEWER_APPSRC_FRAMES: u64 = 8;

/// A viewer's end of a tier: its `appsrc` and what it has been sent.
pub(super) struct Consumer {
    pub(super) viewer_id: u32,
    appsrc: gst_app::AppSrc,
    state: Mutex<ConsumerState>,
    /// Set by the control thread from the viewer's estimate, bytes per second.
    rate_bytes_per_second: AtomicU64,
    pub(super) frames_sent: AtomicU64,
    pub(super) frames_dropped: AtomicU64,
}

struct ConsumerState {
    /// Waiting for a key frame: after joining, switching tiers or dropping frames.
    needs_key_frame: bool,
    /// Bytes handed over and, by the estimate, not yet sent.
    backlog_bytes: f64,
    /// Size of the last key frame sent: the backlog may exceed the limit by that much, or a
    /// key frame larger than the limit would make the next frames drop and never end.
    last_key_bytes: f64,
    last_offer: Option<Instant>,
}

impl Consumer {
    pub(super) fn new(viewer_id: u32, appsrc: gst_app::AppSrc, estimate_kbps: u32) -> Self {
        let consumer = Consumer {
            viewer_id,
            appsrc,
            state: Mutex::new(ConsumerState {
                needs_key_frame: true,
                backlog_bytes: 0.0,
                last_key_bytes: 0.0,
                last_offer: None,
            }),
            rate_bytes_per_second: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
        };
        consumer.set_estimate(estimate_kbps);
        consumer
    }

    pub(super) fn set_estimate(&self, kbps: u32) {
        self.rate_bytes_per_second
            .store(u64::from(kbps) * 1000 / 8, Ordering::Relaxed);
    }

    /// The viewer switched tiers: the new tier's delta frames are useless until its next key
    /// frame.
    pub(super) fn restart(&self) {
        self.state().needs_key_frame = true;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ConsumerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers one encoded frame; returns true when this viewer needs a key frame asked for.
    fn offer(&self, sample: &gst::Sample, size: usize, key: bool) -> bool {
        let rate = self.rate_bytes_per_second.load(Ordering::Relaxed) as f64;
        let queued = self.appsrc.current_level_buffers();
        let admit = self.state().admit(Instant::now(), rate, size, key, queued);
        match admit {
            Admit::Send => {
                if self.appsrc.push_sample(sample).is_ok() {
                    self.frames_sent.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
            Admit::Drop { ask_key_frame } => {
                self.frames_dropped.fetch_add(1, Ordering::Relaxed);
                ask_key_frame
            }
        }
    }
}

/// What becomes of one frame offered to a viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    Send,
    Drop { ask_key_frame: bool },
}

impl ConsumerState {
    /// Mirrors the viewer's pacer: the backlog drains at `rate` bytes a second. A viewer more
    /// than [`MAX_BACKLOG`] behind loses whole frames until it has caught up, then resumes
    /// at a key frame, which is asked for when it starts waiting and whenever one had to be
    /// dropped too.
    fn admit(&mut self, now: Instant, rate: f64, size: usize, key: bool, queued: u64) -> Admit {
        if let Some(last) = self.last_offer {
            let drained = rate * now.duration_since(last).as_secs_f64();
            self.backlog_bytes = (self.backlog_bytes - drained).max(0.0);
        }
        self.last_offer = Some(now);
        // A frame is taken whenever the backlog is below the limit, so a key frame larger
        // than the limit still goes out once the link has caught up.
        let limit = rate * MAX_BACKLOG.as_secs_f64() + self.last_key_bytes;
        let behind = self.backlog_bytes > limit || queued >= VIEWER_APPSRC_FRAMES;
        if behind {
            let newly = !self.needs_key_frame;
            self.needs_key_frame = true;
            return Admit::Drop {
                ask_key_frame: newly || key,
            };
        }
        if self.needs_key_frame && !key {
            return Admit::Drop {
                ask_key_frame: false,
            };
        }
        self.needs_key_frame = false;
        self.backlog_bytes += size as f64;
        if key {
            self.last_key_bytes = size as f64;
        }
        Admit::Send
    }
}

/// What the tier's streaming thread shares with the control thread.
#[derive(Default)]
struct Fanout {
    consumers: Mutex<Vec<Arc<Consumer>>>,
    /// Some consumer dropped frames and waits for a key frame.
    key_frame_wanted: AtomicBool,
    /// Keep one frame in this many (frame-rate mitigation).
    fps_divisor: AtomicU32,
    frames_seen: AtomicU64,
}

impl Fanout {
    fn consumers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Consumer>>> {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// At most one key frame per interval; a request inside the interval is kept and served when
/// it ends, so no viewer waits longer than the interval.
struct KeyFrameLimiter {
    interval: Duration,
    last: Option<Instant>,
    pending: bool,
}

impl KeyFrameLimiter {
    /// Whether a key frame should be asked for now.
    fn request(&mut self, now: Instant) -> bool {
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.interval)
        {
            self.pending = true;
            return false;
        }
        self.last = Some(now);
        self.pending = false;
        true
    }

    fn tick(&mut self, now: Instant) -> bool {
        self.pending && self.request(now)
    }
}

/// One encoder branch.
pub(super) struct Tier {
    pub(super) id: usize,
    elements: Vec<gst::Element>,
    encoder: gst::Element,
    size_filter: Option<gst::Element>,
    tee_pad: gst::Pad,
    fanout: Arc<Fanout>,
    plan: EncoderPlan,
    fps_cap: u32,
    key_frames: KeyFrameLimiter,
    pub(super) key_frames_sent: u64,
    pub(super) kbps: u32,
    pub(super) mitigation: Option<Mitigation>,
}

impl Tier {
    /// Builds tier `id` behind `tee` and starts it.
    pub(super) fn new(
        id: usize,
        pipeline: &gst::Pipeline,
        tee: &gst::Element,
        plan: &EncoderPlan,
        config: &StreamerConfig,
        stats: &Arc<Stats>,
    ) -> Result<Self, PipelineError> {
        let queue = make("queue", Some(&format!("tier-{id}-queue")))?;
        // One raw frame at most: a tier whose encoder is behind drops frames before encoding,
        // never delays them, and never holds up the other tiers.
        queue.set_property("max-size-buffers", 1u32);
        queue.set_property("max-size-bytes", 0u32);
        queue.set_property("max-size-time", 0u64);
        queue.set_property_from_str("leaky", "downstream");
        let mut elements = vec![queue.clone()];
        // NVENC takes GL memory and cannot be scaled here; it lowers the frame rate only.
        let size_filter = if plan.takes_gl_memory {
            None
        } else {
            let scale = make("videoscale", Some(&format!("tier-{id}-scale")))?;
            let filter = make("capsfilter", Some(&format!("tier-{id}-size")))?;
            elements.extend([scale, filter.clone()]);
            Some(filter)
        };
        let encoder = encoder::make_encoder(plan, config, &format!("tier-{id}-encoder"))?;
        elements.push(encoder.clone());
        if plan.codec == Codec::H264 {
            let profile = make("capsfilter", Some(&format!("tier-{id}-profile")))?;
            profile.set_property(
                "caps",
                gst::Caps::builder("video/x-h264")
                    .field("profile", "constrained-baseline")
                    .field("stream-format", "byte-stream")
                    .field("alignment", "au")
                    .build(),
            );
            elements.push(profile);
        }
        let sink = gst_app::AppSink::builder()
            .name(format!("tier-{id}-out"))
            .sync(false)
            .async_(false)
            .enable_last_sample(false)
            .max_buffers(2)
            .drop(true)
            .build();
        elements.push(sink.clone().upcast());

        let fanout = Arc::new(Fanout {
            fps_divisor: AtomicU32::new(1),
            ..Fanout::default()
        });
        let out = fanout.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                    fan_out(&out, &sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        if let Some(pad) = queue.static_pad("sink") {
            let fanout = fanout.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let divisor = u64::from(fanout.fps_divisor.load(Ordering::Relaxed).max(1));
                let n = fanout.frames_seen.fetch_add(1, Ordering::Relaxed);
                if n.is_multiple_of(divisor) {
                    gst::PadProbeReturn::Ok
                } else {
                    gst::PadProbeReturn::Drop
                }
            });
        }
        {
            let stats = stats.clone();
            queue.connect("overrun", false, move |_| {
                stats.frame_dropped();
                None
            });
        }
        stats.watch_encoder(&encoder, id == 0);

        pipeline.add_many(&elements)?;
        gst::Element::link_many(&elements)?;
        for element in &elements {
            element.sync_state_with_parent()?;
        }
        let tee_pad = tee
            .request_pad_simple("src_%u")
            .ok_or_else(|| PipelineError::Build("tee gave no pad".into()))?;
        let queue_sink = queue
            .static_pad("sink")
            .ok_or_else(|| PipelineError::Build("queue has no sink pad".into()))?;
        tee_pad
            .link(&queue_sink)
            .map_err(|e| PipelineError::Build(format!("tee → tier {id}: {e:?}")))?;
        tracing::info!(tier = id, encoder = plan.factory, "tier started");
        Ok(Tier {
            id,
            elements,
            encoder,
            size_filter,
            tee_pad,
            fanout,
            plan: plan.clone(),
            fps_cap: config.fps_cap,
            key_frames: KeyFrameLimiter {
                interval: Duration::from_millis(u64::from(config.key_frame_min_interval_ms)),
                last: None,
                pending: false,
            },
            key_frames_sent: 0,
            kbps: config.start_bitrate_kbps,
            mitigation: None,
        })
    }

    pub(super) fn attach(&mut self, consumer: Arc<Consumer>) {
        consumer.restart();
        self.fanout.consumers().push(consumer);
        self.request_key_frame();
    }

    pub(super) fn detach(&mut self, viewer_id: u32) -> Option<Arc<Consumer>> {
        let mut consumers = self.fanout.consumers();
        let index = consumers.iter().position(|c| c.viewer_id == viewer_id)?;
        Some(consumers.remove(index))
    }

    /// Takes every consumer off this tier (to move them to its replacement).
    pub(super) fn detach_all(&mut self) -> Vec<Arc<Consumer>> {
        std::mem::take(&mut *self.fanout.consumers())
    }

    /// Posts an error from the encoder, as a failing encoder does (tests of the recovery).
    pub(super) fn inject_encoder_error(&self) {
        let message =
            gst::message::Error::builder(gst::CoreError::Failed, "injected encoder failure")
                .src(&self.encoder)
                .build();
        let _ = self.encoder.post_message(message);
    }

    pub(super) fn viewer_ids(&self) -> Vec<u32> {
        self.fanout
            .consumers()
            .iter()
            .map(|c| c.viewer_id)
            .collect()
    }

    /// Asks the encoder for a key frame, at most once per `keyFrameMinIntervalMs`.
    pub(super) fn request_key_frame(&mut self) {
        if self.key_frames.request(Instant::now()) {
            self.force_key_frame();
        }
    }

    /// Serves a key frame request kept back by the limit, and one that a viewer's consumer
    /// raised on the streaming thread.
    pub(super) fn tick(&mut self) {
        if self.fanout.key_frame_wanted.swap(false, Ordering::Relaxed) {
            self.request_key_frame();
        }
        if self.key_frames.tick(Instant::now()) {
            self.force_key_frame();
        }
    }

    fn force_key_frame(&mut self) {
        self.key_frames_sent += 1;
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if let Some(src) = self.encoder.static_pad("src")
            && !src.send_event(event)
        {
            tracing::debug!(tier = self.id, "key frame request not handled");
        }
    }

    /// Sets the tier's bitrate and, for the source's current size and frame rate (0: not
    /// measured yet, `fpsCap` is assumed), its mitigation.
    pub(super) fn apply(&mut self, kbps: u32, source: (u32, u32), source_fps: u32) {
        let (width, height) = source;
        if width == 0 || height == 0 {
            return;
        }
        let fps = match source_fps {
            0 => self.fps_cap,
            measured => measured.min(self.fps_cap),
        };
        let mitigation = super::policy::mitigation(kbps, width, height, fps, self.mitigation);
        let mitigation = match self.size_filter {
            Some(_) => mitigation,
            // No scaler on this path: only the frame-rate half of the mitigation applies.
            None => Mitigation {
                width,
                height,
                ..mitigation
            },
        };
        if self.mitigation != Some(mitigation) {
            tracing::info!(
                tier = self.id,
                kbps,
                width = mitigation.width,
                height = mitigation.height,
                fps_divisor = mitigation.fps_divisor,
                "tier picture"
            );
            if let Some(filter) = &self.size_filter {
                let caps = if (mitigation.width, mitigation.height) == (width, height) {
                    gst::Caps::new_empty_simple("video/x-raw")
                } else {
                    gst::Caps::builder("video/x-raw")
                        .field("width", mitigation.width as i32)
                        .field("height", mitigation.height as i32)
                        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                        .build()
                };
                filter.set_property("caps", caps);
            }
            self.fanout
                .fps_divisor
                .store(mitigation.fps_divisor, Ordering::Relaxed);
            self.mitigation = Some(mitigation);
        }
        // Constant-rate H.264 encoders budget each frame from the caps' frame rate, so with
        // half the frames they would spend half the bitrate; VP8 budgets from timestamps.
        let encoder_kbps = if self.plan.codec == Codec::H264 {
            kbps.saturating_mul(mitigation.fps_divisor)
        } else {
            kbps
        };
        let changed = self.kbps.abs_diff(kbps) * 20 > self.kbps.max(1);
        if changed {
            encoder::set_bitrate(&self.encoder, self.plan.factory, encoder_kbps);
        }
        self.kbps = kbps;
    }

    /// The tier in stats.
    pub(super) fn to_json(&self, source: (u32, u32)) -> serde_json::Value {
        let mitigation = self
            .mitigation
            .unwrap_or_else(|| Mitigation::none(source.0, source.1));
        serde_json::json!({
            "id": self.id,
            "targetKbps": self.kbps,
            "width": mitigation.width,
            "height": mitigation.height,
            "fps": self.fps_cap / mitigation.fps_divisor.max(1),
            "mitigation": mitigation.label(source.0, source.1),
            "viewers": self.viewer_ids(),
            "keyFrames": self.key_frames_sent,
        })
    }

    /// Unlinks the tier from the tee and frees its elements.
    pub(super) fn remove(self, pipeline: &gst::Pipeline, tee: &gst::Element) {
        tee.release_request_pad(&self.tee_pad);
        for element in &self.elements {
            let _ = element.set_state(gst::State::Null);
        }
        let _ = pipeline.remove_many(&self.elements);
        tracing::info!(tier = self.id, "tier stopped");
    }
}

/// The tier an element belongs to, from its name (`tier-<id>-…`).
pub(super) fn tier_of(element_name: &str) -> Option<usize> {
    element_name
        .strip_prefix("tier-")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Hands one encoded frame to every viewer of the tier (the tier's streaming thread).
fn fan_out(fanout: &Fanout, sample: &gst::Sample) {
    let Some(sample) = super::at_running_time(sample) else {
        return;
    };
    let Some(buffer) = sample.buffer() else {
        return;
    };
    let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
    let size = buffer.size();
    let mut wanted = false;
    for consumer in fanout.consumers().iter() {
        wanted |= consumer.offer(&sample, size, key);
    }
    if wanted {
        fanout.key_frame_wanted.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_behind_loses_whole_frames_and_resumes_at_a_key_frame() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut state = ConsumerState {
            needs_key_frame: true,
            backlog_bytes: 0.0,
            last_key_bytes: 0.0,
            last_offer: None,
        };
        // Nothing before the first key frame.
        assert_eq!(
            state.admit(at(0), 100_000.0, 5_000, false, 0),
            Admit::Drop {
                ask_key_frame: false
            }
        );
        assert_eq!(state.admit(at(33), 100_000.0, 40_000, true, 0), Admit::Send);
        // 30 kB frames at 30 fps on a 100 kB/s link: the backlog grows by ~27 kB a frame and
        // passes 300 ms (30 kB) of the rate plus the key frame; from then on whole frames are
        // dropped.
        let mut sent = 1;
        let mut first_drop = None;
        for n in 2..20u64 {
            match state.admit(at(n * 33), 100_000.0, 30_000, false, 0) {
                Admit::Send => sent += 1,
                Admit::Drop { ask_key_frame } => {
                    if first_drop.is_none() {
                        assert!(ask_key_frame, "the first drop asks for a key frame");
                        first_drop = Some(n);
                    } else {
                        assert!(!ask_key_frame);
                    }
                }
            }
        }
        assert!(first_drop.is_some() && sent < 5, "sent {sent}");
        // Caught up (the backlog drained), a delta frame is still useless…
        assert_eq!(
            state.admit(at(3000), 100_000.0, 3_000, false, 0),
            Admit::Drop {
                ask_key_frame: false
            }
        );
        // …and the key frame resumes the stream; the frames after it go out although the key
        // frame alone is more than 300 ms of the rate.
        assert_eq!(
            state.admit(at(3033), 100_000.0, 40_000, true, 0),
            Admit::Send
        );
        assert_eq!(
            state.admit(at(3066), 100_000.0, 3_000, false, 0),
            Admit::Send
        );
        // A key frame that arrives while still behind is dropped, and asked for again.
        state.backlog_bytes = 1e9;
        assert_eq!(
            state.admit(at(3100), 100_000.0, 40_000, true, 0),
            Admit::Drop {
                ask_key_frame: true
            }
        );
    }

    #[test]
    fn elements_name_their_tier() {
        assert_eq!(tier_of("tier-0-encoder"), Some(0));
        assert_eq!(tier_of("tier-12-queue"), Some(12));
        assert_eq!(tier_of("videoconvert0"), None);
        assert_eq!(tier_of("tier-x-encoder"), None);
    }

    #[test]
    fn key_frames_are_limited_but_never_lost() {
        let start = Instant::now();
        let mut limiter = KeyFrameLimiter {
            interval: Duration::from_millis(500),
            last: None,
            pending: false,
        };
        assert!(limiter.request(start));
        assert!(!limiter.request(start + Duration::from_millis(100)));
        assert!(!limiter.request(start + Duration::from_millis(200)));
        assert!(!limiter.tick(start + Duration::from_millis(400)));
        // The kept-back requests become one key frame when the interval ends.
        assert!(limiter.tick(start + Duration::from_millis(500)));
        assert!(!limiter.tick(start + Duration::from_millis(600)));
    }
}
