//! The GStreamer pipeline: one source, at most `maxEncoders` encoders (quality tiers), one
//! small pipeline per viewer.
//!
//! ```text
//! readback: appsrc (RGBA) ! videoconvert ! I420 ─────────────────────────┐
//! gl:       appsrc (GLMemory RGBA) ! glcolorconvert ! I420 ! gldownload ─┤ tee ┬ tier 0 ┬ viewer
//!           (NVENC: glcolorconvert ! NV12 GLMemory, no download) ───────┘     │        └ viewer
//!                                                                              └ tier 1 ─ viewer
//! ```
//!
//! Sound, when configured, is a pipeline of its own on the same clock ([`audio`]): one Opus
//! encoder whose packets every viewer pipeline sends beside its video.
//!
//! Tiers ([`tier`]) are chosen by the policy in [`policy`]; viewers ([`peer`]) and tiers are
//! owned by the control thread ([`control`]). The render thread only ever touches `appsrc`
//! and the caps state here, which nothing else locks: a viewer joining or leaving cannot
//! stall it. Input from the host is non-blocking: when the converter still has frames
//! queued, new ones are dropped and counted instead of waiting.

pub mod answer;
mod audio;
mod control;
mod controls;
pub mod encoder;
mod peer;
pub mod policy;
mod tier;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;

use openspace_webrtc_protocol::AppMessage;

use crate::app::AppDesk;
use crate::config::{AudioMode, CaptureMode, StreamerConfig};
use crate::input::EventQueue;
use crate::stats::Stats;
pub use audio::{
    AudioError, MAX_FRAMES_PER_CALL, OPUS_PAYLOAD_TYPE, check_format as check_pcm,
    probe as probe_audio,
};
use control::{Command, ControlSender, Controller};
pub use encoder::{Codec, EncoderPlan};
pub use peer::{PeerMessage, PeerOutbox, TWCC_URI};

/// Frames waiting in front of the converter (beyond the one it is converting) before new
/// ones are dropped. One lets it start the next frame the moment it is done; more would
/// only make every later frame wait longer when it falls behind: for interactive streaming
/// a dropped frame is better than a late one.
const MAX_QUEUED_FRAMES: u64 = 1;

/// A pipeline failure.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// GStreamer itself could not start.
    #[error("GStreamer could not initialise: {0}")]
    Init(String),
    /// A plugin is missing.
    #[error("GStreamer element {0} is not available (is its plugin package installed?)")]
    MissingElement(&'static str),
    /// No encoder can be used.
    #[error("{0}")]
    NoEncoder(String),
    /// Elements did not link or change state.
    #[error("pipeline: {0}")]
    Build(String),
    /// Too many viewers.
    #[error("the stream already has its maximum of {0} viewers")]
    Full(u32),
    /// A viewer's SDP or candidate was refused.
    #[error("{0}")]
    Negotiation(String),
}

impl From<gst::glib::BoolError> for PipelineError {
    fn from(err: gst::glib::BoolError) -> Self {
        PipelineError::Build(err.to_string())
    }
}

impl From<gst::StateChangeError> for PipelineError {
    fn from(err: gst::StateChangeError) -> Self {
        PipelineError::Build(format!("state change failed: {err}"))
    }
}

/// What the host's frame became.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for the encoder.
    Pushed,
    /// The encoder is busy; the frame was dropped (and counted).
    Dropped,
}

/// Initialises GStreamer once per process and registers the statically linked plugins
/// (`rtpgccbwe`, Google Congestion Control, from gst-plugins-rs).
pub fn init() -> Result<(), PipelineError> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    gst::init().map_err(|e| PipelineError::Init(e.to_string()))?;
    REGISTERED
        .get_or_init(|| gstrsrtp::plugin_register_static().map_err(|e| e.to_string()))
        .clone()
        .map_err(|e| PipelineError::Init(format!("registering rtpgccbwe: {e}")))
}

pub(crate) fn make(
    factory: &'static str,
    name: Option<&str>,
) -> Result<gst::Element, PipelineError> {
    let mut builder = gst::ElementFactory::make(factory);
    if let Some(name) = name {
        builder = builder.name(name);
    }
    builder
        .build()
        .map_err(|_| PipelineError::MissingElement(factory))
}

/// A live `appsrc` that takes timestamped buffers and never blocks its pusher: once it
/// holds `max_buffers`, it drops its oldest. How every viewer is fed, and the host's PCM.
pub(crate) fn leaky_appsrc(name: &str, max_buffers: u64) -> gst_app::AppSrc {
    let appsrc = gst_app::AppSrc::builder()
        .name(name)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(false)
        .build();
    appsrc.set_property_from_str("leaky-type", "downstream");
    appsrc.set_max_buffers(max_buffers);
    appsrc
}

/// `sample` with its buffer stamped at its running time (and no DTS), for a viewer's
/// pipeline: those share the main pipeline's clock and base time, so a buffer keeps its
/// running time across pipelines, and encoders shift timestamps inside their own segment
/// (x264 by 1000 h), so the conversion goes through it. `None` without a buffer.
pub(crate) fn at_running_time(sample: &gst::Sample) -> Option<gst::Sample> {
    let buffer = sample.buffer()?;
    let running = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .and_then(|segment| segment.to_running_time(buffer.pts()));
    let mut out = buffer.copy();
    {
        let out = out.make_mut();
        out.set_pts(running);
        out.set_dts(gst::ClockTime::NONE);
    }
    let mut builder = gst::Sample::builder().buffer(&out);
    let caps = sample.caps_owned();
    if let Some(caps) = &caps {
        builder = builder.caps(caps);
    }
    Some(builder.build())
}

/// Where the pipeline's frames live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameMemory {
    /// RGBA in system memory.
    System,
    /// RGBA textures in GStreamer GL memory.
    Gl,
}

/// A synchronous bus message handler.
pub type BusHook = Box<dyn Fn(&gst::Message) + Send + Sync>;
/// A handler for each frame leaving `appsrc`, on the streaming thread.
pub type FrameHook = Box<dyn Fn(&gst::Buffer) + Send + Sync>;
/// Answers a query arriving at `appsrc`'s output from downstream; true when answered.
pub type QueryHook = Box<dyn Fn(&mut gst::QueryRef) -> bool + Send + Sync>;

/// Capture-specific hooks into the pipeline (the GL path needs both).
#[derive(Default)]
pub struct CaptureHooks {
    /// Sees every bus message synchronously (answers GL context requests).
    pub bus_sync: Option<BusHook>,
    /// Sees every frame as it leaves `appsrc` (waits for the frame's GPU fence).
    pub frame_probe: Option<FrameHook>,
    /// Answers downstream queries at `appsrc` (hands GL elements our GL context).
    pub source_query: Option<QueryHook>,
}

/// The running pipeline.
pub struct Pipeline {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    memory: FrameMemory,
    fps_cap: u32,
    /// The caps state, touched by the render thread only (and by `stop`).
    state: Mutex<State>,
    stats: Arc<Stats>,
    control: ControlSender,
    control_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The shared Opus encoder and its source (`audio` not `none`, and it started).
    audio: Option<Arc<audio::Audio>>,
    audio_mode: AudioMode,
}

struct State {
    /// Size and pixel format of the frames the caps currently describe.
    format: Option<(u32, u32, gst_video::VideoFormat)>,
    /// Pool that recycles system-memory frames (none on the GL path).
    pool: Option<gst::BufferPool>,
}

impl Pipeline {
    /// Builds the pipeline and sets it playing. `memory` says what `push_*` will feed it.
    pub fn new(
        config: &StreamerConfig,
        memory: FrameMemory,
        stats: Arc<Stats>,
        events: Arc<EventQueue>,
        app: Arc<AppDesk>,
        hooks: CaptureHooks,
    ) -> Result<Arc<Self>, PipelineError> {
        let CaptureHooks {
            bus_sync,
            frame_probe,
            source_query,
        } = hooks;
        let capture = if memory == FrameMemory::Gl {
            CaptureMode::Gl
        } else {
            CaptureMode::Readback
        };
        let plan = encoder::plan(config.encoder, capture)?;
        tracing::info!(encoder = plan.factory, reason = %plan.reason, "encoder chosen");
        stats.set_encoder(plan.factory, &plan.reason, plan.codec.name());

        let pipeline = gst::Pipeline::with_name("openspace-webrtc");
        let appsrc = gst_app::AppSrc::builder()
            .name("frames")
            .is_live(true)
            .do_timestamp(true)
            .format(gst::Format::Time)
            .max_buffers(MAX_QUEUED_FRAMES + 1)
            .build();
        let mut chain: Vec<gst::Element> = vec![appsrc.clone().upcast()];
        match memory {
            FrameMemory::System => {
                let convert = make("videoconvert", None)?;
                convert.set_property("n-threads", 2u32);
                let raw = make("capsfilter", None)?;
                // Every software encoder here takes I420.
                raw.set_property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .field("format", "I420")
                        .build(),
                );
                chain.extend([convert, raw]);
            }
            FrameMemory::Gl => {
                let convert = make("glcolorconvert", None)?;
                // NVENC takes NV12 textures; the software encoders all take I420 (vp8enc
                // takes nothing else), so convert to it on the GPU before downloading, once
                // for every tier.
                let format = if plan.takes_gl_memory { "NV12" } else { "I420" };
                let yuv = make("capsfilter", None)?;
                yuv.set_property(
                    "caps",
                    gst::Caps::builder("video/x-raw")
                        .features(["memory:GLMemory"])
                        .field("format", format)
                        .build(),
                );
                chain.extend([convert, yuv]);
                if !plan.takes_gl_memory {
                    chain.push(make("gldownload", None)?);
                }
            }
        }
        let tee = make("tee", Some("tiers"))?;
        tee.set_property("allow-not-linked", true);
        chain.push(tee.clone());

        pipeline.add_many(&chain)?;
        gst::Element::link_many(&chain)?;
        if let (Some(answer), Some(pad)) = (source_query, appsrc.static_pad("src")) {
            pad.add_probe(gst::PadProbeType::QUERY_UPSTREAM, move |_, info| {
                if let Some(query) = info.query_mut()
                    && answer(query)
                {
                    return gst::PadProbeReturn::Handled;
                }
                gst::PadProbeReturn::Ok
            });
        }
        if let (Some(probe), Some(pad)) = (frame_probe, appsrc.static_pad("src")) {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
                    probe(buffer);
                }
                gst::PadProbeReturn::Ok
            });
        }

        let (control, commands) = control::channel();
        if let Some(bus) = pipeline.bus() {
            let stats = stats.clone();
            let control = control.clone();
            bus.set_sync_handler(move |_, message| {
                if let Some(handler) = &bus_sync {
                    handler(message);
                }
                match message.view() {
                    gst::MessageView::Error(err) => {
                        let text = format!(
                            "{} (from {})",
                            err.error(),
                            message
                                .src()
                                .map(|s| s.path_string().to_string())
                                .unwrap_or_default()
                        );
                        tracing::error!(error = %text, debug = ?err.debug(), "pipeline error");
                        stats.set_last_error(text);
                        // A tier's element failed (an encoder that would not take its input):
                        // the control thread rebuilds that tier; the others never stopped.
                        if let Some(tier) = message.src().and_then(|src| tier::tier_of(&src.name()))
                        {
                            control.notify(Command::TierFailed { tier });
                        }
                    }
                    gst::MessageView::Warning(warn) => {
                        tracing::warn!(warning = %warn.error(), "pipeline warning");
                    }
                    _ => {}
                }
                gst::BusSyncReply::Drop
            });
        }

        // webrtcbin's RTP sink syncs to the clock, so packets would wait for the pipeline's
        // reported latency (the encoders report a frame or more). Frames are timestamped when
        // pushed and leave as soon as they are encoded: there is nothing to wait for.
        pipeline.set_latency(Some(gst::ClockTime::ZERO));
        let tier0 = tier::Tier::new(0, &pipeline, &tee, &plan, config, &stats)?;
        pipeline.set_state(gst::State::Playing)?;
        // Sound runs on the video's clock and base time, which exist once it plays. A sound
        // source that cannot start costs the sound, never the picture.
        let audio =
            match audio::Audio::start(config, pipeline.clock(), pipeline.base_time(), &stats) {
                Ok(audio) => audio.map(Arc::new),
                Err(err) => {
                    tracing::error!(%err, "the stream goes on without sound");
                    stats.set_last_error(format!("audio: {err}"));
                    None
                }
            };
        let controller = Controller {
            pipeline: pipeline.clone(),
            tee,
            plan,
            config: config.clone(),
            stats: stats.clone(),
            events,
            app,
            controls: controls::Controls::default(),
            sender: control.clone(),
            tiers: vec![tier0],
            peers: HashMap::new(),
            retiring: Vec::new(),
            assignment: HashMap::new(),
            dirty: false,
            last_plan: Instant::now(),
            source_rate: control::SourceRate::new(),
            audio: audio.clone(),
        };
        let control_thread = std::thread::Builder::new()
            .name("osw-control".into())
            .spawn(move || controller.run(commands))
            .map_err(|e| PipelineError::Build(format!("cannot start the control thread: {e}")))?;
        Ok(Arc::new(Pipeline {
            pipeline,
            appsrc,
            memory,
            fps_cap: config.fps_cap,
            state: Mutex::new(State {
                format: None,
                pool: None,
            }),
            stats,
            control,
            control_thread: Mutex::new(Some(control_thread)),
            audio,
            audio_mode: config.audio,
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the encoder queue is full (the next frame would be dropped). Lets the capture
    /// skip GPU work for a frame that would be thrown away.
    pub fn is_busy(&self) -> bool {
        self.appsrc.current_level_buffers() >= MAX_QUEUED_FRAMES
    }

    /// Sets caps for a new frame size or format; a size change renegotiates the encoder
    /// (the stream's resolution changes, viewers' decoders follow from the next key frame).
    fn ensure_caps(
        &self,
        state: &mut State,
        format: gst_video::VideoFormat,
        width: u32,
        height: u32,
        gl_caps: Option<gst::Caps>,
    ) {
        if state.format == Some((width, height, format)) {
            return;
        }
        let caps = gl_caps.unwrap_or_else(|| {
            // A fixed rate, not 0/1: with a variable rate x264 holds every frame until the
            // next one arrives (to learn its duration), a whole frame of latency.
            gst_video::VideoInfo::builder(format, width, height)
                .fps(gst::Fraction::new(self.fps_cap as i32, 1))
                .build()
                .ok()
                .and_then(|info| info.to_caps().ok())
                .unwrap_or_else(gst::Caps::new_any)
        });
        tracing::info!(width, height, %caps, "stream size");
        self.appsrc.set_caps(Some(&caps));
        if let Some(old) = state.pool.take() {
            let _ = old.set_active(false);
        }
        if self.memory == FrameMemory::System {
            let pool = gst::BufferPool::new();
            let mut config = pool.config();
            config.set_params(Some(&caps), width * height * 4, 2, 8);
            if pool.set_config(config).is_ok() && pool.set_active(true).is_ok() {
                state.pool = Some(pool);
            }
        }
        state.format = Some((width, height, format));
        self.stats.set_size(width, height);
    }

    /// Pushes one frame in system memory; `fill` writes its rows top-down into the given
    /// buffer of `height` rows × `width * 4` bytes. `format` is a 4-byte format (RGBA from
    /// hosts' pixels, BGRA from GL readback, which is the fast path of most drivers).
    pub fn push_system(
        &self,
        format: gst_video::VideoFormat,
        width: u32,
        height: u32,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<PushOutcome, PipelineError> {
        if self.is_busy() {
            return Ok(PushOutcome::Dropped);
        }
        let mut buffer = {
            let mut state = self.state();
            self.ensure_caps(&mut state, format, width, height, None);
            let acquired = state.pool.as_ref().map(|pool| {
                let params =
                    gst::BufferPoolAcquireParams::with_flags(gst::BufferPoolAcquireFlags::DONTWAIT);
                pool.acquire_buffer(Some(&params))
            });
            match acquired {
                Some(Ok(buffer)) => buffer,
                // Every pooled buffer is still inside the pipeline: the encoder is behind.
                Some(Err(_)) => return Ok(PushOutcome::Dropped),
                None => gst::Buffer::with_size((width * height * 4) as usize)?,
            }
        };
        {
            let buffer = buffer.make_mut();
            let mut map = buffer
                .map_writable()
                .map_err(|_| PipelineError::Build("cannot map a frame buffer".into()))?;
            fill(map.as_mut_slice());
        }
        self.push(buffer)
    }

    /// Pushes one frame whose memory is a GL texture of the pipeline's GL context.
    pub fn push_gl(
        &self,
        buffer: gst::Buffer,
        caps: gst::Caps,
        width: u32,
        height: u32,
    ) -> Result<PushOutcome, PipelineError> {
        {
            let mut state = self.state();
            self.ensure_caps(
                &mut state,
                gst_video::VideoFormat::Rgba,
                width,
                height,
                Some(caps),
            );
        }
        self.push(buffer)
    }

    fn push(&self, buffer: gst::Buffer) -> Result<PushOutcome, PipelineError> {
        match self.appsrc.push_buffer(buffer) {
            Ok(_) => Ok(PushOutcome::Pushed),
            Err(gst::FlowError::Flushing) => Ok(PushOutcome::Dropped),
            Err(err) => Err(PipelineError::Build(format!("pushing a frame: {err:?}"))),
        }
    }

    /// Takes `frames` sample frames of interleaved 16-bit PCM from the host (`audio: host`),
    /// timestamped now: they play with the frame submitted next. Never waits.
    pub fn push_audio(
        &self,
        pcm: &[i16],
        frames: usize,
        rate: u32,
        channels: u32,
    ) -> Result<(), AudioError> {
        match &self.audio {
            Some(audio) => audio.push_pcm(pcm, frames, rate, channels),
            // Configured, but it would not start (see lastError).
            None if self.audio_mode == AudioMode::Host => Err(AudioError::NotRunning),
            None => Err(AudioError::NotHost(self.audio_mode.name())),
        }
    }

    /// Asks every tier for a key frame (within each tier's rate limit).
    pub fn request_key_frame(&self) {
        self.control.notify(Command::KeyFrame { viewer_id: None });
    }

    /// Adds a viewer. Returns at once: the control thread creates its peer, and the offer,
    /// ICE candidates or a failure arrive on `outbox`.
    pub fn add_viewer(
        &self,
        viewer_id: u32,
        view_only: bool,
        outbox: PeerOutbox,
    ) -> Result<(), PipelineError> {
        self.control.send(Command::Join {
            viewer_id,
            view_only,
            outbox,
        })
    }

    /// Applies the viewer's SDP answer (on the control thread; a refusal arrives on the
    /// viewer's outbox).
    pub fn set_answer(&self, viewer_id: u32, sdp: &str) -> Result<(), PipelineError> {
        self.control.send(Command::Answer {
            viewer_id,
            sdp: sdp.to_string(),
        })
    }

    /// Adds the viewer's ICE candidate.
    pub fn add_ice(
        &self,
        viewer_id: u32,
        m_line: u32,
        candidate: &str,
    ) -> Result<(), PipelineError> {
        self.control.send(Command::Ice {
            viewer_id,
            m_line,
            candidate: candidate.to_string(),
        })
    }

    /// Sends `message` on viewer `viewer_id`'s `app` channel (a host's answer).
    pub fn send_app(&self, viewer_id: u32, message: AppMessage) {
        self.control.notify(Command::AppSend {
            viewer_id: Some(viewer_id),
            message,
        });
    }

    /// Sends `message` on every viewer's `app` channel (a host's status).
    pub fn broadcast_app(&self, message: AppMessage) {
        self.control.notify(Command::AppSend {
            viewer_id: None,
            message,
        });
    }

    /// Removes a viewer and frees everything it held. Unknown ids are ignored. Should the
    /// command be lost, the control thread still frees the viewer once its session is gone.
    pub fn remove_viewer(&self, viewer_id: u32) {
        self.control.notify(Command::Leave { viewer_id });
    }

    /// Makes tier 0's encoder report an error, as a failing encoder does, to exercise the
    /// recovery. For tests only.
    #[doc(hidden)]
    pub fn inject_encoder_error(&self) {
        self.control.notify(Command::InjectEncoderError);
    }

    /// Elements in the main pipeline and every viewer's: tests check that leaving viewers
    /// free theirs. Waits for the control thread (at most a second).
    pub fn element_count(&self) -> usize {
        let (reply, count) = std::sync::mpsc::channel();
        if self.control.send(Command::ElementCount(reply)).is_err() {
            return self.pipeline.children().len();
        }
        count
            .recv_timeout(std::time::Duration::from_secs(1))
            .unwrap_or_else(|_| self.pipeline.children().len())
    }

    /// Stops everything: the control thread frees every viewer and tier, then the pipeline
    /// stops.
    pub fn stop(&self) {
        let _ = self.control.send(Command::Stop);
        let thread = self
            .control_thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        // Every viewer is gone: no one takes sound any more.
        if let Some(audio) = &self.audio {
            audio.stop();
        }
        let _ = self.appsrc.end_of_stream();
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            bus.unset_sync_handler();
        }
        if let Some(pool) = self.state().pool.take() {
            let _ = pool.set_active(false);
        }
    }
}
