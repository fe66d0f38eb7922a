//! The streamer: one host window's frames, pipeline, signaling endpoint and event queue.
//!
//! Threads: the host's render thread calls [`Streamer::submit`] and [`Streamer::poll_event`];
//! GStreamer runs the encoder and the peers on its own threads; a small tokio runtime owned
//! by the streamer runs the signaling endpoint. The render thread never waits for any of them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use openspace_webrtc_protocol::tickets::{TicketBook, TicketError};
use openspace_webrtc_protocol::{ControlReply, ControlRequest, ViewerRole};
use tokio::sync::{broadcast, mpsc, watch};

use crate::app::{AppDesk, AppError, HostRequest};
use crate::config::{AudioMode, CaptureMode, StreamerConfig};
use crate::ffi::OswResult;
use crate::gl::readback::{Queued, ReadbackRing};
use crate::gl::share::GlShare;
use crate::gl::{GlError, GlFns, GlLoader, GlSource};
use crate::input::{Event, EventQueue, InputError, check_size};
use crate::pipeline::{
    AudioError, CaptureHooks, FrameMemory, PeerMessage, Pipeline, PipelineError, PushOutcome,
};
use crate::signaling::{self, Engine, SignalingError};
use crate::stats::Stats;

/// Where a submitted frame is.
#[derive(Debug, Clone, Copy)]
pub enum FrameSource<'a> {
    /// The host's currently bound read framebuffer.
    ReadFramebuffer,
    /// A host texture.
    Texture(u32),
    /// RGBA rows in system memory, top row first.
    Pixels {
        /// The pixels.
        data: &'a [u8],
        /// Bytes from one row to the next.
        stride: usize,
    },
}

/// What became of a submitted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Taken (it may leave in this call or a later one).
    Accepted,
    /// Not needed: frames arrive faster than `fpsCap`.
    SkippedByFpsCap,
    /// The encoder or the GPU copy ring was busy; dropped and counted.
    Dropped,
}

/// A streamer failure.
#[derive(Debug, thiserror::Error)]
pub enum StreamerError {
    /// GL failed in a capture path.
    #[error(transparent)]
    Gl(#[from] GlError),
    /// GStreamer failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The signaling endpoint failed.
    #[error(transparent)]
    Signaling(#[from] SignalingError),
    /// A bad argument from the host.
    #[error("{0}")]
    InvalidArgument(String),
    /// The async runtime could not start.
    #[error("cannot start the signaling runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<InputError> for StreamerError {
    fn from(err: InputError) -> Self {
        StreamerError::InvalidArgument(err.to_string())
    }
}

impl StreamerError {
    /// The C result code for this error.
    pub fn result_code(&self) -> OswResult {
        match self {
            StreamerError::Gl(_) => OswResult::GlError,
            StreamerError::Pipeline(_) => OswResult::PipelineError,
            StreamerError::Signaling(_) | StreamerError::Runtime(_) => OswResult::SignalingError,
            StreamerError::InvalidArgument(_) => OswResult::InvalidArgument,
        }
    }
}

/// Skips frames that arrive faster than the fps cap, tolerating a quarter interval of
/// jitter so a host rendering at exactly the cap never loses frames.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next_due: Option<Instant>,
}

impl Pacer {
    fn new(fps_cap: u32) -> Self {
        Pacer {
            interval: Duration::from_secs(1) / fps_cap.max(1),
            next_due: None,
        }
    }

    fn admit(&mut self, now: Instant) -> bool {
        let tolerance = self.interval / 4;
        if let Some(due) = self.next_due {
            if now + tolerance < due {
                return false;
            }
            // Catch up after a stall instead of bursting to make up for lost time.
            self.next_due = Some(if now > due + self.interval {
                now + self.interval
            } else {
                due + self.interval
            });
        } else {
            self.next_due = Some(now + self.interval);
        }
        true
    }
}

/// State shared with the signaling tasks and GStreamer's threads.
struct Shared {
    config: StreamerConfig,
    events: Arc<EventQueue>,
    stats: Arc<Stats>,
    /// Set once, by the render thread's first frame; read without a lock by everyone.
    pipeline: OnceLock<Arc<Pipeline>>,
    ready: watch::Sender<bool>,
    next_viewer_id: AtomicU32,
    /// Owners' requests for the host and the host's status (the `app` channel).
    app: Arc<AppDesk>,
    /// The join tickets the control client issued. A leaf lock: held only to issue or redeem.
    tickets: Mutex<TicketBook>,
}

impl Shared {
    fn pipeline(&self) -> Option<&Arc<Pipeline>> {
        self.pipeline.get()
    }
}

impl Engine for Shared {
    fn ready_watch(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    fn next_viewer_id(&self) -> u32 {
        self.next_viewer_id.fetch_add(1, Ordering::Relaxed)
    }

    fn join(
        &self,
        viewer_id: u32,
        view_only: bool,
        outbox: mpsc::UnboundedSender<PeerMessage>,
    ) -> Result<(), String> {
        let pipeline = self.pipeline().ok_or("the stream is not running")?;
        // Queued for the control thread, which announces the viewer to the host once its
        // peer exists; nothing here waits for GStreamer.
        pipeline
            .add_viewer(viewer_id, view_only, outbox)
            .map_err(|e| e.to_string())
    }

    fn answer(&self, viewer_id: u32, sdp: &str) -> Result<(), String> {
        let pipeline = self.pipeline().ok_or("the stream is not running")?;
        pipeline
            .set_answer(viewer_id, sdp)
            .map_err(|e| e.to_string())
    }

    fn ice(&self, viewer_id: u32, m_line: u32, candidate: &str) -> Result<(), String> {
        let pipeline = self.pipeline().ok_or("the stream is not running")?;
        pipeline
            .add_ice(viewer_id, m_line, candidate)
            .map_err(|e| e.to_string())
    }

    fn leave(&self, viewer_id: u32) {
        if let Some(pipeline) = self.pipeline() {
            pipeline.remove_viewer(viewer_id);
        }
    }

    fn redeem_ticket(&self, ticket: &str) -> Result<ViewerRole, TicketError> {
        self.ticket_book().redeem(ticket, Instant::now())
    }

    fn control(&self, request: &ControlRequest) -> ControlReply {
        match request {
            ControlRequest::IssueTicket { role } => {
                self.ticket_book().answer_issue(*role, Instant::now())
            }
            ControlRequest::Ready => {
                let (width, height) = self.stats.size();
                ControlReply::Ready {
                    ready: *self.ready.borrow(),
                    width,
                    height,
                    frames_flowing: self.stats.frames_flowing(),
                }
            }
            ControlRequest::GetStats => ControlReply::Stats {
                stats: self.stats_json(),
            },
            ControlRequest::Resize { width, height } => {
                match openspace_webrtc_protocol::fit_stream_size(
                    *width,
                    *height,
                    self.config.stream_limit(),
                ) {
                    Ok((width, height)) => {
                        self.events.push(Event::Resize {
                            viewer_id: 0,
                            width,
                            height,
                        });
                        ControlReply::Ok {
                            request: "resize".into(),
                        }
                    }
                    Err(err) => ControlReply::Error {
                        message: err.to_string(),
                    },
                }
            }
            ControlRequest::KeyFrame => match self.pipeline() {
                Some(pipeline) => {
                    pipeline.request_key_frame();
                    ControlReply::Ok {
                        request: "keyFrame".into(),
                    }
                }
                None => ControlReply::Error {
                    message: "the stream is not running yet".into(),
                },
            },
            ControlRequest::Hello { .. } => ControlReply::Error {
                message: "already authenticated".into(),
            },
        }
    }

    fn control_secret(&self) -> &str {
        &self.config.control_secret
    }

    fn stream_limit(&self) -> openspace_webrtc_protocol::StreamLimit {
        self.config.stream_limit()
    }
}

impl Shared {
    fn ticket_book(&self) -> std::sync::MutexGuard<'_, TicketBook> {
        // The book is valid after any panic (every change is one insert or flag).
        self.tickets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stats_json(&self) -> serde_json::Value {
        let mut stats = self.stats.to_json();
        stats["eventsDropped"] = self.events.dropped().into();
        stats
    }
}

/// The thread-safe part of a streamer: stats, the event queue and the signaling port. It is
/// `Send + Sync` by construction (checked below), which is what lets the C ABI hand it to any
/// thread while the render thread owns the [`Streamer`] itself.
#[derive(Clone)]
pub struct StreamerView {
    shared: Arc<Shared>,
    signaling_port: u16,
}

impl StreamerView {
    /// Stats as JSON.
    pub fn stats(&self) -> serde_json::Value {
        self.shared.stats_json()
    }

    /// The oldest queued event.
    pub fn poll_event(&self) -> Option<Event> {
        self.shared.events.pop()
    }

    /// Makes the encoder report an error, as a failing one does. For tests of the recovery.
    #[doc(hidden)]
    pub fn inject_encoder_error(&self) {
        if let Some(pipeline) = self.shared.pipeline() {
            pipeline.inject_encoder_error();
        }
    }

    /// The port the signaling endpoint listens on.
    pub fn signaling_port(&self) -> u16 {
        self.signaling_port
    }

    /// The next owner's request on the `app` channel, if one waits; `Err(n)` when its text
    /// needs `n` bytes (with the NUL) and `capacity` is less (it stays first in line).
    pub fn poll_app_request(&self, capacity: usize) -> Result<Option<HostRequest>, usize> {
        self.shared.app.take(capacity)
    }

    /// The host's answer to app request `request_id`, sent to the viewer who asked.
    pub fn reply_app_request(
        &self,
        request_id: u64,
        ok: bool,
        message: Option<String>,
    ) -> Result<(), AppError> {
        let (viewer_id, reply) = self.shared.app.answer(request_id, ok, message)?;
        if let Some(pipeline) = self.shared.pipeline() {
            pipeline.send_app(viewer_id, reply);
        }
        Ok(())
    }

    /// Takes `frames` sample frames of interleaved signed 16-bit PCM (`audio: host`): they
    /// start now, with the frame the host submits next. Any thread, never waits. `Dropped`
    /// before the first frame (the stream has not started) and while it stops.
    pub fn submit_audio(
        &self,
        pcm: &[i16],
        frames: usize,
        rate: u32,
        channels: u32,
    ) -> Result<SubmitOutcome, StreamerError> {
        let stats = &self.shared.stats;
        let refuse = |err: AudioError| {
            stats.audio_dropped();
            Err(StreamerError::InvalidArgument(err.to_string()))
        };
        if self.shared.config.audio != AudioMode::Host {
            return refuse(AudioError::NotHost(self.shared.config.audio.name()));
        }
        if let Err(err) = crate::pipeline::check_pcm(pcm.len(), frames, rate, channels) {
            return refuse(err);
        }
        let Some(pipeline) = self.shared.pipeline() else {
            stats.audio_dropped();
            return Ok(SubmitOutcome::Dropped);
        };
        match pipeline.push_audio(pcm, frames, rate, channels) {
            Ok(()) => Ok(SubmitOutcome::Accepted),
            Err(AudioError::NotRunning) => {
                stats.audio_dropped();
                Ok(SubmitOutcome::Dropped)
            }
            Err(err) => refuse(err),
        }
    }

    /// Publishes the host's status (a JSON object) to every page, now and as each joins.
    pub fn publish_app_status(&self, json: &str) -> Result<(), AppError> {
        let message = self.shared.app.publish_status(json)?;
        if let Some(pipeline) = self.shared.pipeline() {
            pipeline.broadcast_app(message);
        }
        Ok(())
    }
}

const _: () = {
    const fn thread_safe<T: Send + Sync>() {}
    thread_safe::<StreamerView>();
};

/// How frames leave the host's context; lives on the render thread.
enum Capture {
    /// Nothing set up yet (first GL frame not seen).
    None,
    Readback(ReadbackRing),
    Gl(GlShare),
}

/// One streaming engine.
pub struct Streamer {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: broadcast::Sender<()>,
    server: Option<tokio::task::JoinHandle<()>>,
    local_addr: SocketAddr,
    loader: Option<GlLoader>,
    capture: Capture,
    pacer: Pacer,
}

impl Streamer {
    /// Starts the signaling endpoint; the pipeline starts with the first frame.
    pub fn new(config: StreamerConfig, loader: Option<GlLoader>) -> Result<Self, StreamerError> {
        init_logging();
        crate::pipeline::init()?;
        let capture_name = match config.capture {
            CaptureMode::Gl => "gl",
            CaptureMode::Readback => "readback",
        };
        // Probe now so a missing encoder fails creation, not the first frame.
        crate::pipeline::encoder::plan(config.encoder, config.capture)?;
        crate::pipeline::probe_audio(&config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("osw-signaling")
            .enable_all()
            .build()
            .map_err(StreamerError::Runtime)?;
        let address = SocketAddr::new(config.listen_address, config.listen_port);
        let listener = runtime.block_on(signaling::bind(address))?;
        let local_addr = listener.local_addr().map_err(StreamerError::Runtime)?;
        let stats = Arc::new(Stats::new(capture_name, config.bitrate_kbps));
        stats.set_signaling_port(local_addr.port());
        stats.set_audio_mode(config.audio.name());
        let (ready, _) = watch::channel(false);
        let pacer = Pacer::new(config.fps_cap);
        let shared = Arc::new(Shared {
            config,
            events: Arc::new(EventQueue::default()),
            stats,
            pipeline: OnceLock::new(),
            ready,
            next_viewer_id: AtomicU32::new(1),
            tickets: Mutex::new(TicketBook::new()),
            app: Arc::new(AppDesk::default()),
        });
        let (shutdown, _) = broadcast::channel(1);
        let server = runtime.spawn(signaling::serve(listener, shared.clone(), shutdown.clone()));
        tracing::info!(address = %local_addr, "signaling endpoint listening");
        Ok(Streamer {
            shared,
            runtime: Some(runtime),
            shutdown,
            server: Some(server),
            local_addr,
            loader,
            capture: Capture::None,
            pacer,
        })
    }

    /// The port the signaling endpoint listens on.
    pub fn signaling_port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The part of this streamer that any thread may use while the render thread submits.
    pub fn view(&self) -> StreamerView {
        StreamerView {
            shared: self.shared.clone(),
            signaling_port: self.local_addr.port(),
        }
    }

    /// Stats as JSON.
    pub fn stats(&self) -> serde_json::Value {
        self.shared.stats_json()
    }

    /// Elements in the pipeline (0 before the first frame). For leak tests.
    #[doc(hidden)]
    pub fn pipeline_element_count(&self) -> usize {
        self.shared.pipeline().map_or(0, |p| p.element_count())
    }

    /// The oldest queued event.
    pub fn poll_event(&self) -> Option<Event> {
        self.shared.events.pop()
    }

    fn pipeline_for(&mut self, memory: FrameMemory) -> Result<Arc<Pipeline>, StreamerError> {
        if let Some(pipeline) = self.shared.pipeline() {
            return Ok(pipeline.clone());
        }
        let hooks = match &self.capture {
            Capture::Gl(share) => CaptureHooks {
                bus_sync: Some(share.context_answerer()),
                frame_probe: Some(Box::new(share.fence_waiter())),
                source_query: Some(share.local_context_answerer()),
            },
            _ => CaptureHooks::default(),
        };
        let pipeline = Pipeline::new(
            &self.shared.config,
            memory,
            self.shared.stats.clone(),
            self.shared.events.clone(),
            self.shared.app.clone(),
            hooks,
        )?;
        // Only the render thread sets it, so it is empty here.
        let _ = self.shared.pipeline.set(pipeline.clone());
        Ok(pipeline)
    }

    fn gl_fns(&self) -> Result<GlFns, StreamerError> {
        let loader = self.loader.as_ref().ok_or(GlError::NoLoader)?;
        Ok(GlFns::load(loader)?)
    }

    /// Takes one frame. See the C ABI's `osw_streamer_submit_*` for the threading contract.
    pub fn submit(
        &mut self,
        source: FrameSource<'_>,
        width: u32,
        height: u32,
    ) -> Result<SubmitOutcome, StreamerError> {
        check_size(width, height)?;
        // 4:2:0 encoders take even sides only (x264 failed for good on 641×361): an odd
        // frame loses its last column or row.
        let (width, height) = (width & !1, height & !1);
        let min = openspace_webrtc_protocol::MIN_STREAM_SIDE;
        if width < min || height < min {
            return Err(StreamerError::InvalidArgument(format!(
                "a frame must be at least {min}x{min} pixels"
            )));
        }
        let stats = self.shared.stats.clone();
        stats.frame_in();
        if !self.pacer.admit(Instant::now()) {
            stats.frame_skipped();
            return Ok(SubmitOutcome::SkippedByFpsCap);
        }
        let outcome = match source {
            FrameSource::Pixels { data, stride } => {
                if self.shared.config.capture == CaptureMode::Gl {
                    return Err(StreamerError::InvalidArgument(
                        "capture mode gl takes GL frames; submit pixels only with capture readback"
                            .into(),
                    ));
                }
                let pipeline = self.pipeline_for(FrameMemory::System)?;
                let row = width as usize * 4;
                pipeline.push_system(gst_video::VideoFormat::Rgba, width, height, |out| {
                    for (dst, src) in out.chunks_exact_mut(row).zip(data.chunks(stride)) {
                        dst.copy_from_slice(&src[..row]);
                    }
                })?
            }
            FrameSource::ReadFramebuffer | FrameSource::Texture(_) => {
                let gl_source = match source {
                    FrameSource::Texture(texture) => GlSource::Texture(texture),
                    _ => GlSource::ReadFramebuffer,
                };
                self.submit_gl(gl_source, width, height)?
            }
        };
        if outcome == PushOutcome::Dropped {
            stats.frame_dropped();
            return Ok(SubmitOutcome::Dropped);
        }
        if !*self.shared.ready.borrow() {
            tracing::info!(width, height, "first frame: stream ready");
            self.shared.ready.send_replace(true);
        }
        Ok(SubmitOutcome::Accepted)
    }

    fn submit_gl(
        &mut self,
        source: GlSource,
        width: u32,
        height: u32,
    ) -> Result<PushOutcome, StreamerError> {
        if matches!(self.capture, Capture::None) {
            let fns = self.gl_fns()?;
            self.capture = match self.shared.config.capture {
                CaptureMode::Readback => Capture::Readback(ReadbackRing::new(fns)?),
                CaptureMode::Gl => Capture::Gl(GlShare::new(fns, self.shared.config.fps_cap)?),
            };
        }
        let memory = if matches!(self.capture, Capture::Gl(_)) {
            FrameMemory::Gl
        } else {
            FrameMemory::System
        };
        let pipeline = self.pipeline_for(memory)?;
        if pipeline.is_busy() {
            // Skip the GPU copy of a frame the encoder has no room for.
            return Ok(PushOutcome::Dropped);
        }
        match &mut self.capture {
            Capture::Readback(ring) => {
                let mut outcome = Ok(PushOutcome::Pushed);
                let queued = ring.capture(source, width, height, &mut |frame| {
                    let row = frame.width as usize * 4;
                    let pushed = pipeline.push_system(
                        gst_video::VideoFormat::Bgra,
                        frame.width,
                        frame.height,
                        |out| {
                            for (dst, src) in out.chunks_exact_mut(row).zip(frame.rows_top_down()) {
                                dst.copy_from_slice(src);
                            }
                        },
                    );
                    if let Ok(PushOutcome::Dropped) = pushed {
                        self.shared.stats.frame_dropped();
                    }
                    if let Err(err) = pushed {
                        outcome = Err(err);
                    }
                })?;
                outcome?;
                Ok(if queued == Queued::RingFull {
                    PushOutcome::Dropped
                } else {
                    PushOutcome::Pushed
                })
            }
            Capture::Gl(share) => match share.capture(source, width, height)? {
                Some((buffer, caps)) => Ok(pipeline.push_gl(buffer, caps, width, height)?),
                None => Ok(PushOutcome::Dropped),
            },
            Capture::None => Ok(PushOutcome::Dropped),
        }
    }

    /// Says bye to every viewer, stops the pipeline and the runtime, and frees GL objects
    /// (the host's context must be current if GL frames were submitted).
    pub fn shutdown(mut self) {
        let _ = self.shutdown.send(());
        if let (Some(runtime), Some(server)) = (self.runtime.as_ref(), self.server.take()) {
            // Connections say bye and end; bounded so a stuck client cannot hold up the host.
            let _ = runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(2), server).await });
        }
        if let Some(pipeline) = self.shared.pipeline() {
            pipeline.stop();
        }
        match &mut self.capture {
            Capture::Readback(ring) => ring.destroy(),
            Capture::Gl(share) => share.destroy(),
            Capture::None => {}
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        tracing::info!("streamer stopped");
    }
}

/// Sends `tracing` output to stderr once per process, filtered by `OSW_LOG` (default `info`).
fn init_logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("OSW_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_keeps_every_frame_at_the_cap_and_half_at_twice_the_cap() {
        let start = Instant::now();
        let mut at_cap = Pacer::new(30);
        let kept = (0..300)
            .filter(|i| {
                // ±3 ms of jitter around a 33.3 ms cadence.
                let jitter = if i % 2 == 0 { 3 } else { -3 };
                let t =
                    start + Duration::from_micros((i * 33_333) as u64) + Duration::from_millis(10);
                let t = if jitter > 0 {
                    t + Duration::from_millis(3)
                } else {
                    t - Duration::from_millis(3)
                };
                at_cap.admit(t)
            })
            .count();
        assert_eq!(kept, 300);
        let mut double = Pacer::new(30);
        let kept = (0..600)
            .filter(|i| double.admit(start + Duration::from_micros(i * 16_667)))
            .count();
        assert!((295..=305).contains(&kept), "kept {kept}");
    }
}
