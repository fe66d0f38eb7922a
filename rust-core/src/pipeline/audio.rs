//! Sound: one Opus encoder that every viewer shares, in a pipeline of its own.
//!
//! ```text
//! host:  appsrc (S16 PCM) ─┐
//!                          ├ audioconvert ! audioresample ! 48 kHz stereo ! opusenc ! appsink ─┐
//! pulse: pulsesrc ─────────┘                                                                    │
//!          viewer A: appsrc ! rtpopuspay ! webrtcbin (second, send-only transceiver) ◄──────────┤
//!          viewer B: appsrc ! rtpopuspay ! webrtcbin ◄──────────────────────────────────────────┘
//! ```
//!
//! A pipeline of its own, not a branch of the video's: a source that fails (a PulseAudio
//! server that went away) must not stop the video, and `pulsesrc` provides a clock, which
//! in the video's pipeline would become that pipeline's clock. Like every viewer pipeline it
//! uses the video pipeline's clock and base time instead, so an Opus packet's running time
//! and a frame's are on one timeline: each viewer's RTP timestamps and RTCP sender reports
//! then map both streams to the same NTP times, which is what a browser lip-syncs by.
//!
//! Each viewer has its own `appsrc` for sound next to its video one: the encoder's thread
//! hands every packet to every viewer without waiting (leaky queues), so a viewer whose video
//! is behind, or that is stuck, never holds up anyone's sound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use gst_rtp::prelude::*;

use super::{PipelineError, make};
use crate::config::{AudioMode, StreamerConfig};
use crate::stats::Stats;

/// The Opus payload type in every offer (Chromium's own number for it).
pub const OPUS_PAYLOAD_TYPE: u32 = 111;
/// Opus frame: short for low delay (10 ms of sound per packet).
const FRAME_MS: &str = "10";
/// Host PCM is laid end to end with the previous call's while the call comes within this of
/// where that one ended; further off (a stall, a host that stopped and started again), its
/// timeline starts afresh at the call's time.
const GAP: Duration = Duration::from_millis(250);
/// ... and while the calls' average distance from the clock stays within this. A host that
/// hands each frame's sound is early or late by its frame loop's jitter (tens of ms on a busy
/// machine, one frame late and the next early); that averages out, and restarting for it
/// would overlap or gap the sound each time. What does not average out (a host handing too
/// much or too little, an anchor taken at a late moment) restarts the timeline once it
/// passes this, so the sound stays within about this of the picture. This bound is for sound
/// placed ahead of its picture (the calls come later than the sound handed so far lasts);
/// restarting then leaves a gap, which the browser fills.
const DRIFT: Duration = Duration::from_millis(30);
/// The same bound for sound placed behind its picture (the calls come early). Restarting then
/// sets timestamps back over sound already sent, which the browser drops (a tone went with
/// it, under load), and sound late by this much is still within what people accept (late
/// sound is noticed far less than early sound).
const LAG: Duration = Duration::from_millis(80);
/// Weight of each call in that average (about the last twenty calls).
const DRIFT_WEIGHT: f64 = 0.05;
/// Encoded packets waiting in a viewer's `appsrc` before the oldest is dropped (80 ms, for a
/// viewer pipeline's thread kept waiting on a busy machine). Sent in one burst when that
/// thread runs again; a deeper queue (half a second) made the browser's jitter buffer take
/// seconds to play the delay away.
const VIEWER_QUEUE_PACKETS: u64 = 8;
/// The shortest time between two regular RTCP reports of a viewer with sound (RTCP's default
/// is 5 s). A browser lip-syncs from the sender reports' NTP ↔ RTP mapping of each stream and
/// needs two of each before it starts: at 5 s apart the first ten seconds of a stream were
/// out of sync, converging slowly. A report each second costs well under 1 kbit/s.
const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Most sample frames one `submit_audio` call may carry (a second at the highest rate).
pub const MAX_FRAMES_PER_CALL: usize = 192_000;

/// Why host PCM was not taken.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The streamer was not configured with `audio: host`.
    #[error("audio is {0}, not host: configure \"audio\": \"host\" to hand in PCM")]
    NotHost(&'static str),
    /// Rate, channel count or length out of range.
    #[error("{0}")]
    Format(String),
    /// The stream has not started yet (no frame submitted) or is stopping.
    #[error("the stream is not running yet; sound is taken once the first frame is")]
    NotRunning,
}

/// Checks the factories sound needs, so a missing plugin fails the streamer's creation
/// rather than its first frame.
pub fn probe(config: &StreamerConfig) -> Result<(), PipelineError> {
    let source = match config.audio {
        AudioMode::None => return Ok(()),
        AudioMode::Pulse => "pulsesrc",
        AudioMode::Host => "appsrc",
    };
    for factory in [
        source,
        "audioconvert",
        "audioresample",
        "opusenc",
        "rtpopuspay",
    ] {
        if gst::ElementFactory::find(factory).is_none() {
            return Err(PipelineError::MissingElement(factory));
        }
    }
    Ok(())
}

/// The caps of the Opus RTP stream as each viewer's offer names it.
pub fn rtp_caps() -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("clock-rate", 48_000i32)
        .field("encoding-params", "2")
        .field("payload", OPUS_PAYLOAD_TYPE as i32)
        .field("minptime", "10")
        .field("extmap-1", super::TWCC_URI)
        .field("rtcp-fb-transport-cc", true)
        .build()
}

/// Where host PCM lands on the running-time timeline.
#[derive(Debug, Default)]
struct Timeline {
    /// Rate and channels of the last call.
    format: Option<(u32, u32)>,
    /// Where the last call's samples end.
    next: Option<gst::ClockTime>,
    /// The average of (call time − where it was placed), ns: how far the sound runs from
    /// the clock.
    drift_ns: f64,
}

impl Timeline {
    /// Places `duration` of sound handed in at running time `now`: end to end with the
    /// previous call (the host hands real-time amounts) while the call is within [`GAP`] of
    /// where that one ended and their average distance stays within [`DRIFT`] (sound ahead
    /// of its picture) and [`LAG`] (behind it); else at `now`. Returns its timestamp and
    /// whether it is a discontinuity.
    fn place(
        &mut self,
        now: gst::ClockTime,
        format: (u32, u32),
        duration: gst::ClockTime,
    ) -> (gst::ClockTime, bool) {
        let continued = match self.next {
            Some(next) if self.format == Some(format) => {
                let error = now.nseconds() as f64 - next.nseconds() as f64;
                self.drift_ns = self.drift_ns * (1.0 - DRIFT_WEIGHT) + error * DRIFT_WEIGHT;
                tracing::trace!(
                    error_ms = error / 1e6,
                    drift_ms = self.drift_ns / 1e6,
                    "host audio timing"
                );
                let within = error.abs() <= GAP.as_nanos() as f64
                    && self.drift_ns <= DRIFT.as_nanos() as f64
                    && self.drift_ns >= -(LAG.as_nanos() as f64);
                if !within {
                    tracing::debug!(
                        error_ms = error / 1e6,
                        drift_ms = self.drift_ns / 1e6,
                        "host audio timeline restarted"
                    );
                }
                within.then_some(next)
            }
            _ => None,
        };
        let pts = continued.unwrap_or(now);
        if continued.is_none() {
            self.drift_ns = 0.0;
        }
        self.format = Some(format);
        self.next = Some(pts + duration);
        (pts, continued.is_none())
    }
}

/// The host's PCM input (`audio: host`).
struct HostInput {
    appsrc: gst_app::AppSrc,
    timeline: Mutex<Timeline>,
}

/// What the encoder's thread shares with the viewers.
#[derive(Default)]
pub(super) struct Fanout {
    consumers: Mutex<Vec<Arc<Consumer>>>,
}

impl Fanout {
    fn consumers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Consumer>>> {
        self.consumers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remove(&self, viewer_id: u32) {
        self.consumers().retain(|c| c.viewer_id != viewer_id);
    }
}

/// A viewer's end of the encoder.
struct Consumer {
    viewer_id: u32,
    appsrc: gst_app::AppSrc,
    /// Set while the viewer's peer connection is connected: before that nothing can go out
    /// (webrtcbin holds a section's input until negotiated, then drops it until DTLS is up),
    /// and what waited would reach the browser in one stale burst, which its jitter buffer
    /// takes seconds to play away.
    live: std::sync::atomic::AtomicBool,
    packets_sent: AtomicU64,
}

/// The running sound pipeline.
pub(crate) struct Audio {
    pipeline: gst::Pipeline,
    mode: AudioMode,
    host: Option<HostInput>,
    fanout: Arc<Fanout>,
    stats: Arc<Stats>,
    clock: Option<gst::Clock>,
    base_time: Option<gst::ClockTime>,
}

impl Audio {
    /// Starts the sound pipeline for `config.audio` on the video pipeline's `clock` and
    /// `base_time`; `None` with `audio: none`.
    pub(crate) fn start(
        config: &StreamerConfig,
        clock: Option<gst::Clock>,
        base_time: Option<gst::ClockTime>,
        stats: &Arc<Stats>,
    ) -> Result<Option<Audio>, PipelineError> {
        let (source, host) = match config.audio {
            AudioMode::None => return Ok(None),
            AudioMode::Host => {
                // Never blocks the host: a full queue drops its oldest chunk.
                let appsrc = super::leaky_appsrc("pcm", 64);
                let host = HostInput {
                    appsrc: appsrc.clone(),
                    timeline: Mutex::new(Timeline::default()),
                };
                (appsrc.upcast::<gst::Element>(), Some(host))
            }
            AudioMode::Pulse => {
                let src = make("pulsesrc", Some("pulse"))?;
                if !config.audio_device.is_empty() {
                    src.set_property("device", &config.audio_device);
                }
                // 10 ms fragments; room for 100 ms should the encoder's thread be late.
                src.set_property("latency-time", 10_000i64);
                src.set_property("buffer-time", 100_000i64);
                src.set_property("client-name", "OpenSpace WebRTC");
                (src, None)
            }
        };
        let pipeline = gst::Pipeline::with_name("openspace-webrtc-audio");
        let convert = make("audioconvert", None)?;
        let resample = make("audioresample", None)?;
        let raw = make("capsfilter", None)?;
        raw.set_property(
            "caps",
            gst::Caps::builder("audio/x-raw")
                .field("rate", 48_000i32)
                .field("channels", 2i32)
                .build(),
        );
        let encoder = make("opusenc", Some("opus"))?;
        encoder.set_property("bitrate", (config.audio_bitrate_kbps * 1000) as i32);
        encoder.set_property_from_str("frame-size", FRAME_MS);
        // CELT only: the least algorithmic delay Opus has (no SILK look-ahead).
        encoder.set_property_from_str("audio-type", "restricted-lowdelay");
        // Synced to the clock: a host that hands a frame's worth of sound at once (33 ms at
        // 30 fps) would otherwise send three packets in one burst, and a browser's jitter
        // buffer answers bursts with a deeper buffer (measured: a 130 ms target instead of
        // about 40). Each packet leaves at its own time instead; the first of a call's
        // packets is due at once, the others carry sound that is not due yet anyway.
        let sink = gst_app::AppSink::builder()
            .name("opus-out")
            .sync(true)
            .async_(false)
            .enable_last_sample(false)
            .max_buffers(20)
            .drop(true)
            .build();
        let chain = [
            source,
            convert,
            resample,
            raw,
            encoder,
            sink.clone().upcast(),
        ];
        pipeline.add_many(&chain)?;
        gst::Element::link_many(&chain)?;

        let fanout = Arc::new(Fanout::default());
        {
            let fanout = fanout.clone();
            let stats = stats.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Flushing)?;
                        stats.audio_packet();
                        fan_out(&fanout, &sample);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        if let Some(bus) = pipeline.bus() {
            let stats = stats.clone();
            bus.set_sync_handler(move |_, message| {
                match message.view() {
                    gst::MessageView::Error(err) => {
                        // Only the sound stops; the video goes on.
                        tracing::error!(error = %err.error(), debug = ?err.debug(), "audio pipeline error: the stream goes on without sound");
                        stats.set_last_error(format!("audio: {}", err.error()));
                    }
                    gst::MessageView::Warning(warn) => {
                        tracing::warn!(warning = %warn.error(), "audio pipeline warning");
                    }
                    _ => {}
                }
                gst::BusSyncReply::Drop
            });
        }
        if let Some(clock) = &clock {
            pipeline.use_clock(Some(clock));
        }
        if let Some(base_time) = base_time {
            pipeline.set_start_time(gst::ClockTime::NONE);
            pipeline.set_base_time(base_time);
        }
        // As for video: packets leave as soon as they are encoded.
        pipeline.set_latency(Some(gst::ClockTime::ZERO));
        if let Err(err) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(PipelineError::Build(format!(
                "the {} audio source would not start: {err}",
                config.audio.name()
            )));
        }
        tracing::info!(
            mode = config.audio.name(),
            device = %config.audio_device,
            kbps = config.audio_bitrate_kbps,
            "audio started (Opus, {FRAME_MS} ms frames)"
        );
        Ok(Some(Audio {
            pipeline,
            mode: config.audio,
            host,
            fanout,
            stats: stats.clone(),
            clock,
            base_time,
        }))
    }

    /// The running time now, on the video's timeline.
    fn now(&self) -> Option<gst::ClockTime> {
        let (clock, base) = (self.clock.as_ref()?, self.base_time?);
        Some(clock.time().saturating_sub(base))
    }

    /// Takes `frames` sample frames of interleaved signed 16-bit PCM handed in by the host
    /// now: they start with the video frame it submits next. Never waits.
    pub(crate) fn push_pcm(
        &self,
        pcm: &[i16],
        frames: usize,
        rate: u32,
        channels: u32,
    ) -> Result<(), AudioError> {
        let Some(host) = &self.host else {
            return Err(AudioError::NotHost(self.mode.name()));
        };
        check_format(pcm.len(), frames, rate, channels)?;
        let now = self.now().ok_or(AudioError::NotRunning)?;
        let duration = gst::ClockTime::from_nseconds(
            (frames as u64).saturating_mul(1_000_000_000) / u64::from(rate),
        );
        let format = (rate, channels);
        let (pts, discont, format_changed) = {
            let mut timeline = host.timeline.lock().unwrap_or_else(|e| e.into_inner());
            let changed = timeline.format != Some(format);
            let (pts, discont) = timeline.place(now, format, duration);
            (pts, discont, changed)
        };
        // The first call starts the timeline: its format is new, so it is no resync either.
        if discont && !format_changed {
            self.stats.audio_resynced();
            tracing::debug!(
                ?pts,
                "host audio drifted from the clock: timeline restarted"
            );
        }
        if format_changed {
            host.appsrc.set_caps(Some(
                &gst::Caps::builder("audio/x-raw")
                    .field("format", "S16LE")
                    .field("layout", "interleaved")
                    .field("rate", rate as i32)
                    .field("channels", channels as i32)
                    .build(),
            ));
        }
        let mut bytes = Vec::with_capacity(pcm.len() * 2);
        for sample in pcm {
            bytes.extend_from_slice(&sample.to_le_bytes());
        }
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        {
            let buffer = buffer.get_mut().ok_or(AudioError::NotRunning)?;
            buffer.set_pts(pts);
            buffer.set_duration(duration);
            if discont {
                buffer.set_flags(gst::BufferFlags::DISCONT);
            }
        }
        match host.appsrc.push_buffer(buffer) {
            Ok(_) => {
                self.stats.audio_samples(frames as u64);
                Ok(())
            }
            Err(_) => Err(AudioError::NotRunning),
        }
    }

    /// What viewers attach to.
    pub(super) fn fanout(&self) -> Arc<Fanout> {
        self.fanout.clone()
    }

    /// Stops the sound pipeline.
    pub(crate) fn stop(&self) {
        self.fanout.consumers().clear();
        if let Some(host) = &self.host {
            let _ = host.appsrc.end_of_stream();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
    }
}

/// Checks one call's PCM: 1 or 2 channels, 8–192 kHz, `frames × channels` samples, at most
/// [`MAX_FRAMES_PER_CALL`] frames.
pub fn check_format(
    samples: usize,
    frames: usize,
    rate: u32,
    channels: u32,
) -> Result<(), AudioError> {
    if !(1..=2).contains(&channels) {
        return Err(AudioError::Format(format!(
            "{channels} channels: 1 (mono) or 2 (stereo, interleaved) are taken"
        )));
    }
    if !(8_000..=192_000).contains(&rate) {
        return Err(AudioError::Format(format!(
            "a rate of {rate} Hz: 8000..=192000 is taken"
        )));
    }
    if frames == 0 || frames > MAX_FRAMES_PER_CALL {
        return Err(AudioError::Format(format!(
            "{frames} sample frames: 1..={MAX_FRAMES_PER_CALL} a call"
        )));
    }
    if Some(samples) != frames.checked_mul(channels as usize) {
        return Err(AudioError::Format(format!(
            "{samples} samples for {frames} frames of {channels} channels"
        )));
    }
    Ok(())
}

/// Hands one Opus packet to every viewer (the encoder's streaming thread). The packet keeps
/// its running time: viewers' pipelines share the clock and base time.
fn fan_out(fanout: &Fanout, sample: &gst::Sample) {
    let Some(sample) = super::at_running_time(sample) else {
        return;
    };
    for consumer in fanout.consumers().iter() {
        if !consumer.live.load(Ordering::Relaxed) {
            continue;
        }
        // A leaky appsrc: this never waits, whatever the viewer's state.
        if consumer.appsrc.push_sample(&sample).is_ok() {
            consumer.packets_sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sets [`SENDER_REPORT_INTERVAL`] on every RTP session of `webrtcbin`'s rtpbin as it makes
/// one (webrtcbin makes them while negotiating).
fn report_often(webrtcbin: &gst::Element) {
    let Some(rtpbin) = webrtcbin
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("rtpbin"))
        .and_then(|rtpbin| rtpbin.downcast::<gst::Bin>().ok())
    else {
        tracing::debug!("webrtcbin has no rtpbin: RTCP reports at the default interval");
        return;
    };
    let set = |element: &gst::Element| {
        if element.find_property("rtcp-min-interval").is_some() {
            element.set_property(
                "rtcp-min-interval",
                SENDER_REPORT_INTERVAL.as_nanos() as u64,
            );
        }
    };
    for element in rtpbin.children() {
        set(&element);
    }
    rtpbin.connect_element_added(move |_, element| set(element));
}

/// A viewer's sound: `appsrc → rtpopuspay →` a second, send-only transceiver of its
/// `webrtcbin`. Dropping it takes the viewer off the encoder.
pub(super) struct ViewerAudio {
    consumer: Arc<Consumer>,
    fanout: Arc<Fanout>,
}

impl ViewerAudio {
    /// Adds the sound branch to a viewer's pipeline, after its video (so the offer's audio
    /// section follows the video one) and before its data channel and offer.
    pub(super) fn add(
        audio: &Audio,
        pipeline: &gst::Pipeline,
        webrtcbin: &gst::Element,
        viewer_id: u32,
    ) -> Result<ViewerAudio, PipelineError> {
        let appsrc = super::leaky_appsrc("audio", VIEWER_QUEUE_PACKETS);
        let pay = make("rtpopuspay", Some("audio-pay"))?;
        pay.set_property("pt", OPUS_PAYLOAD_TYPE);
        let ssrc = super::peer::new_ssrc();
        pay.set_property("ssrc", ssrc);
        pay.set_property("mtu", 1200u32);
        // Audio packets carry transport-wide sequence numbers too, so congestion control
        // sees every byte on the link (webrtcbin's session numbers them across streams).
        match gst_rtp::RTPHeaderExtension::create_from_uri(super::TWCC_URI) {
            Some(extension) => {
                extension.set_id(super::peer::TWCC_ID);
                pay.emit_by_name::<()>("add-extension", &[&extension]);
            }
            None => tracing::debug!("no TWCC header extension for audio"),
        }
        pipeline.add_many([appsrc.upcast_ref(), &pay])?;
        appsrc.link(&pay)?;
        let sink = webrtcbin
            .request_pad_simple("sink_%u")
            .ok_or_else(|| PipelineError::Build("webrtcbin gave no audio sink pad".into()))?;
        let src = pay
            .static_pad("src")
            .ok_or_else(|| PipelineError::Build("rtpopuspay has no src pad".into()))?;
        src.link(&sink)
            .map_err(|e| PipelineError::Build(format!("rtpopuspay → webrtcbin: {e:?}")))?;
        let transceiver = sink.property::<gst_webrtc::WebRTCRTPTransceiver>("transceiver");
        transceiver.set_property(
            "direction",
            gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly,
        );
        // The same msid stream as the video section: the browser's unit of lip sync.
        transceiver.set_property(
            "codec-preferences",
            super::peer::with_ssrc(rtp_caps(), ssrc),
        );
        report_often(webrtcbin);
        let consumer = Arc::new(Consumer {
            viewer_id,
            appsrc,
            live: std::sync::atomic::AtomicBool::new(false),
            packets_sent: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&consumer);
        webrtcbin.connect_notify(Some("connection-state"), move |bin, _| {
            let state = bin.property::<gst_webrtc::WebRTCPeerConnectionState>("connection-state");
            if let Some(consumer) = weak.upgrade() {
                consumer.live.store(
                    state == gst_webrtc::WebRTCPeerConnectionState::Connected,
                    Ordering::Relaxed,
                );
            }
        });
        let fanout = audio.fanout();
        fanout.consumers().push(consumer.clone());
        Ok(ViewerAudio { consumer, fanout })
    }

    /// Opus packets handed to this viewer.
    pub(super) fn packets_sent(&self) -> u64 {
        self.consumer.packets_sent.load(Ordering::Relaxed)
    }
}

impl Drop for ViewerAudio {
    fn drop(&mut self) {
        self.fanout.remove(self.consumer.viewer_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(n)
    }

    #[test]
    fn host_pcm_is_laid_end_to_end_while_it_keeps_up_with_the_clock() {
        let mut timeline = Timeline::default();
        let stereo = (48_000, 2);
        // The first call starts at its time.
        assert_eq!(timeline.place(ms(1000), stereo, ms(30)), (ms(1000), true));
        // A frame loop's jitter, a frame 45 ms late and the next one early: end to end.
        assert_eq!(timeline.place(ms(1032), stereo, ms(30)), (ms(1030), false));
        assert_eq!(timeline.place(ms(1105), stereo, ms(30)), (ms(1060), false));
        assert_eq!(timeline.place(ms(1090), stereo, ms(75)), (ms(1090), false));
        assert_eq!(timeline.place(ms(1120), stereo, ms(30)), (ms(1165), false));
        // A stall (a gap of 300 ms): afresh at the call's time.
        assert_eq!(timeline.place(ms(1495), stereo, ms(30)), (ms(1495), true));
        // A host that hands a tenth too much: end to end until the sound runs 80 ms behind
        // on average (the average lags: by then it is further), then back to the clock.
        let mut at = 1525;
        let mut restarted = 0;
        for _ in 0..80 {
            let (pts, restart) = timeline.place(ms(at), stereo, ms(33));
            assert!(pts.nseconds().abs_diff(ms(at).nseconds()) <= ms(160).nseconds());
            restarted += u32::from(restart);
            at += 30;
        }
        assert!((1..=4).contains(&restarted), "{restarted}");
        // One that hands a tenth too little (after a pause): its sound would lead, restarted
        // at 30 ms.
        at += 600;
        assert!(timeline.place(ms(at), stereo, ms(27)).1);
        at += 30;
        let mut restarted = 0;
        for _ in 0..80 {
            let (pts, restart) = timeline.place(ms(at), stereo, ms(27));
            assert!(pts.nseconds().abs_diff(ms(at).nseconds()) <= ms(80).nseconds());
            restarted += u32::from(restart);
            at += 30;
        }
        assert!((2..=8).contains(&restarted), "{restarted}");
        // Another format starts afresh.
        let (pts, restart) = timeline.place(ms(at), (44_100, 1), ms(10));
        assert_eq!((pts, restart), (ms(at), true));
    }

    #[test]
    fn pcm_formats_outside_the_range_are_refused() {
        assert!(check_format(960, 480, 48_000, 2).is_ok());
        assert!(check_format(480, 480, 8_000, 1).is_ok());
        for (samples, frames, rate, channels) in [
            (960, 480, 48_000, 3),
            (960, 480, 48_000, 0),
            (960, 480, 4_000, 2),
            (960, 480, 400_000, 2),
            (0, 0, 48_000, 2),
            (959, 480, 48_000, 2),
            (
                (MAX_FRAMES_PER_CALL + 1) * 2,
                MAX_FRAMES_PER_CALL + 1,
                48_000,
                2,
            ),
        ] {
            assert!(
                check_format(samples, frames, rate, channels).is_err(),
                "{samples} {frames} {rate} {channels}"
            );
        }
    }
}
