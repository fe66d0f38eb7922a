//! Fan-out benchmark (a figure, not a test): what each extra viewer costs the sender.
//!
//! A streamer at 1280x720, 30 fps, x264, fed synthetic frames through `submit(Pixels)` on its
//! own render thread, serves 0, 1, 5, 10 and 20 viewers in turn. For each count it prints the
//! sender process's CPU time over the window (% of one core), the frames per second each
//! viewer received (min/median), and the render thread's `submit()` time; then it measures
//! `submit()` again while 10 viewers keep joining and leaving. The last line is one JSON
//! object with all of it.
//!
//! The viewers are light receivers in a second process (this same binary, `--receive` or
//! `--churn`), so the sender's CPU figure is the sender's alone: `webrtcbin → depayloader →
//! fakesink`, counting whole frames after depayloading, never decoding. Both processes share
//! the machine's cores, so with many viewers the receivers compete with the sender.
//!
//! GStreamer's `webrtcbin` as a receiver sends no transport-wide congestion control feedback,
//! so each viewer's estimate stays where it starts: `--kbps` (8000 by default, the engine's
//! ceiling, so every viewer costs what an unconstrained one would).
//!
//! Run it through `tests/bench/fanout`, which builds it in release and runs it inside a
//! loopback-only network namespace (it refuses to run outside one).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use gst::prelude::*;
use gst_webrtc::{WebRTCSDPType, WebRTCSessionDescription};
use openspace_webrtc::config::{EncoderChoice, StreamerConfig};
use openspace_webrtc::streamer::{FrameSource, Streamer};
use openspace_webrtc_protocol::{ViewerReply, ViewerRequest};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 30;
/// Extra columns in the synthetic picture: each frame shows a window into it shifted a little
/// further, so the encoder codes real motion without the render thread drawing anything.
const SCROLL: u32 = 256;
/// Pixels the picture scrolls per frame.
const SCROLL_STEP: u32 = 6;
/// Linux reports process times in USER_HZ ticks, which the ABI fixes at 100 per second.
const TICKS_PER_SECOND: f64 = 100.0;

/// Command-line options: `--name value`.
struct Options(Vec<String>);

impl Options {
    fn get(&self, name: &str) -> Option<&str> {
        let at = self.0.iter().position(|a| a == name)?;
        self.0.get(at + 1).map(String::as_str)
    }

    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    fn number<T: std::str::FromStr>(&self, name: &str, fallback: T) -> anyhow::Result<T> {
        match self.get(name) {
            None => Ok(fallback),
            Some(text) => text
                .parse()
                .map_err(|_| anyhow!("{name} takes a number, not {text:?}")),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OSW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,fanout=info"));
    // Set before the streamer's own, so its per-viewer lines stay quiet unless asked for.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let options = Options(std::env::args().skip(1).collect());
    if options.has("--help") {
        println!(
            "fanout [--seconds 20] [--warmup 5] [--viewers 0,1,5,10,20] [--churn-seconds 20] \
             [--churn-viewers 10] [--max-encoders 2] [--kbps 8000]"
        );
        return Ok(());
    }
    if !in_loopback_only_namespace() {
        // Exit code 2, as the other benchmarks use for the same refusal.
        tracing::error!(
            "the fanout benchmark opens WebRTC connections and must run in a loopback-only \
             network namespace: use tests/bench/fanout"
        );
        std::process::exit(2);
    }
    if let Some(port) = options.get("--receive") {
        return receive(port.parse().context("--receive takes a port")?, &options);
    }
    if let Some(port) = options.get("--churn") {
        return churn(port.parse().context("--churn takes a port")?, &options);
    }
    send(&options)
}

/// True when this process sees no network interface but loopback.
fn in_loopback_only_namespace() -> bool {
    // /proc/net/dev follows the reading process's namespace (/sys/class/net does not).
    match std::fs::read_to_string("/proc/net/dev") {
        Ok(table) => table
            .lines()
            .skip(2)
            .filter_map(|line| line.split(':').next())
            .all(|name| name.trim() == "lo"),
        Err(_) => false,
    }
}

/// CPU time this process (every thread, live or exited) has used so far, in seconds.
fn process_cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The command name may hold spaces; fields are counted after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow!("unexpected /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/self/stat"))?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

// ---------------------------------------------------------------------------------------
// The sender: streamer, render thread, phases.

/// What the render thread shares with the thread running the phases.
#[derive(Default)]
struct RenderShared {
    /// `submit()` durations since the window opened.
    submit_times: Mutex<Vec<Duration>>,
    /// The streamer's stats, refreshed twice a second.
    stats: Mutex<serde_json::Value>,
    stop: AtomicBool,
}

/// A picture with some texture (smooth waves plus fine noise, so it is not trivially
/// compressible), `SCROLL` columns wider than the stream.
fn synthetic_picture() -> Vec<u8> {
    let width = WIDTH + SCROLL;
    let mut pixels = vec![0u8; (width * HEIGHT * 4) as usize];
    let mut seed = 0x2545_f491_u32;
    for (i, px) in pixels.chunks_exact_mut(4).enumerate() {
        let x = (i as u32 % width) as f32;
        let y = (i as u32 / width) as f32;
        // xorshift: cheap noise, the same every run.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed & 0x1f) as f32 - 16.0;
        let wave = |fx: f32, fy: f32, phase: f32| {
            (128.0 + 100.0 * (x * fx + y * fy + phase).sin() + noise).clamp(0.0, 255.0) as u8
        };
        px.copy_from_slice(&[
            wave(0.031, 0.017, 0.0),
            wave(0.013, 0.041, 1.7),
            wave(0.023, -0.029, 3.1),
            255,
        ]);
    }
    pixels
}

/// The render thread: owns the streamer, submits a frame every 1/30 s on an absolute
/// schedule and times each `submit()`.
fn render(
    config: StreamerConfig,
    shared: Arc<RenderShared>,
    port: std::sync::mpsc::Sender<anyhow::Result<u16>>,
) {
    let mut streamer = match Streamer::new(config, None) {
        Ok(streamer) => streamer,
        Err(err) => {
            let _ = port.send(Err(anyhow!("the streamer did not start: {err}")));
            return;
        }
    };
    let _ = port.send(Ok(streamer.signaling_port()));
    let picture = synthetic_picture();
    let stride = ((WIDTH + SCROLL) * 4) as usize;
    let interval = Duration::from_secs(1) / FPS;
    let started = Instant::now();
    let mut n: u32 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        let shift = (n * SCROLL_STEP) % (2 * SCROLL);
        // Back and forth, so the picture never jumps.
        let column = if shift < SCROLL {
            shift
        } else {
            2 * SCROLL - shift
        };
        let source = FrameSource::Pixels {
            data: &picture[(column * 4) as usize..],
            stride,
        };
        let before = Instant::now();
        let outcome = streamer.submit(source, WIDTH, HEIGHT);
        let took = before.elapsed();
        if let Err(err) = outcome {
            tracing::error!(%err, "submit failed");
            break;
        }
        shared
            .submit_times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took);
        while streamer.poll_event().is_some() {}
        if n.is_multiple_of(FPS / 2) {
            *shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = streamer.stats();
        }
        n += 1;
        if let Some(wait) = (started + interval * n).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    streamer.shutdown();
}

/// Median, 99th percentile and maximum of durations, in milliseconds.
fn spread(times: &mut [Duration]) -> serde_json::Value {
    if times.is_empty() {
        return serde_json::json!(null);
    }
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times[i].as_secs_f64() * 1000.0
    };
    serde_json::json!({
        "samples": times.len(),
        "medianMs": round(at(0.5), 3),
        "p99Ms": round(at(0.99), 3),
        "maxMs": round(at(1.0), 3),
    })
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// A receiver process and its report lines.
struct Receivers {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Receivers {
    fn spawn(mode: &str, port: u16, arguments: &[(&str, String)]) -> anyhow::Result<Receivers> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg(mode).arg(port.to_string());
        for (name, value) in arguments {
            command.arg(name).arg(value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the receiver process")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("receiver process has no stdout"))?;
        Ok(Receivers {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next line that starts with `word`, and what follows it.
    fn expect(&mut self, word: &str) -> anyhow::Result<String> {
        for line in self.lines.by_ref() {
            let line = line?;
            if let Some(rest) = line.strip_prefix(word) {
                return Ok(rest.trim().to_string());
            }
        }
        bail!("the receiver process ended before saying {word:?}")
    }

    fn finish(mut self) -> anyhow::Result<()> {
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the receiver process failed: {status}");
        }
        Ok(())
    }
}

/// Counters read at the start and end of a window.
struct Snapshot {
    at: Instant,
    cpu: f64,
    stats: serde_json::Value,
}

impl Snapshot {
    fn take(shared: &RenderShared) -> anyhow::Result<Snapshot> {
        Ok(Snapshot {
            at: Instant::now(),
            cpu: process_cpu_seconds()?,
            stats: shared
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        })
    }
}

/// The sender's figures over one window.
fn window_figures(
    start: &Snapshot,
    end: &Snapshot,
    submit_times: &mut [Duration],
) -> serde_json::Value {
    let seconds = (end.at - start.at).as_secs_f64();
    let counter = |name: &str| {
        end.stats[name].as_u64().unwrap_or(0) as i64
            - start.stats[name].as_u64().unwrap_or(0) as i64
    };
    let tiers = end.stats["tiers"].as_array().map_or(0, Vec::len);
    let tier_kbps: Vec<u64> = end.stats["tiers"]
        .as_array()
        .map(|tiers| {
            tiers
                .iter()
                .filter_map(|t| t["targetKbps"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "seconds": round(seconds, 2),
        "senderCpuPercent": round((end.cpu - start.cpu) / seconds * 100.0, 1),
        "encodedFps": round(counter("framesEncoded") as f64 / seconds, 1),
        "sourceFramesDropped": counter("framesDropped"),
        "tiers": tiers,
        "tierKbps": tier_kbps,
        "submit": spread(submit_times),
    })
}

fn take_submit_times(shared: &RenderShared) -> Vec<Duration> {
    std::mem::take(
        &mut *shared
            .submit_times
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    )
}

/// Waits until the streamer reports no viewer, so one phase's leavers do not count in the
/// next one.
fn wait_for_no_viewers(shared: &RenderShared) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let viewers = shared.stats.lock().unwrap_or_else(|e| e.into_inner())["viewers"]
            .as_u64()
            .unwrap_or(0);
        if viewers == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tracing::warn!("viewers still present after their process ended");
}

fn send(options: &Options) -> anyhow::Result<()> {
    let seconds: u64 = options.number("--seconds", 20)?;
    let warmup: u64 = options.number("--warmup", 5)?;
    let churn_seconds: u64 = options.number("--churn-seconds", 20)?;
    let churn_viewers: usize = options.number("--churn-viewers", 10)?;
    let max_encoders: u32 = options.number("--max-encoders", 2)?;
    let kbps: u32 = options.number("--kbps", 8000)?;
    let counts: Vec<usize> = options
        .get("--viewers")
        .unwrap_or("0,1,5,10,20")
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .context("--viewers takes numbers, comma-separated")
        })
        .collect::<anyhow::Result<_>>()?;

    let config = StreamerConfig {
        listen_port: 0,
        encoder: EncoderChoice::X264,
        ice_addresses: vec![[127, 0, 0, 1].into()],
        fps_cap: FPS,
        // The default (8) is a product limit; the benchmark goes past it on purpose.
        max_viewers: 32,
        max_encoders,
        // GStreamer's receivers send no transport-wide CC feedback, so every estimate stays
        // where it starts: start it at the ceiling, as an unconstrained viewer would reach.
        bitrate_kbps: kbps,
        start_bitrate_kbps: kbps,
        ..StreamerConfig::default()
    };
    let shared = Arc::new(RenderShared::default());
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let render_shared = shared.clone();
    let render_thread = std::thread::Builder::new()
        .name("render".into())
        .spawn(move || render(config, render_shared, port_tx))?;
    let port = port_rx
        .recv()
        .context("the render thread ended before starting the streamer")??;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "fanout: {WIDTH}x{HEIGHT} @ {FPS} fps, x264 at {kbps} kbit/s, maxEncoders \
         {max_encoders}, synthetic frames through submit(Pixels); light receivers (webrtcbin → \
         depay → fakesink, no decoding) in a second process; {cores} cores shared by sender \
         and receivers"
    );
    // Past the encoder's start-up and the first frames' allocations.
    std::thread::sleep(Duration::from_secs(2));

    let mut phases = Vec::new();
    for &viewers in &counts {
        tracing::info!(viewers, "phase starting");
        let (start, end, received) = if viewers == 0 {
            std::thread::sleep(Duration::from_secs(warmup.min(2)));
            take_submit_times(&shared);
            let start = Snapshot::take(&shared)?;
            std::thread::sleep(Duration::from_secs(seconds));
            (start, Snapshot::take(&shared)?, serde_json::json!(null))
        } else {
            let mut receivers = Receivers::spawn(
                "--receive",
                port,
                &[
                    ("--viewers", viewers.to_string()),
                    ("--warmup", warmup.to_string()),
                    ("--seconds", seconds.to_string()),
                ],
            )?;
            receivers.expect("start")?;
            take_submit_times(&shared);
            let start = Snapshot::take(&shared)?;
            let result = receivers.expect("result")?;
            let end = Snapshot::take(&shared)?;
            receivers.finish()?;
            (start, end, serde_json::from_str(&result)?)
        };
        let mut figures = window_figures(&start, &end, &mut take_submit_times(&shared));
        figures["viewers"] = viewers.into();
        figures["received"] = received;
        print_phase(&figures);
        phases.push(figures);
        wait_for_no_viewers(&shared);
    }

    tracing::info!(viewers = churn_viewers, "churn starting");
    let mut receivers = Receivers::spawn(
        "--churn",
        port,
        &[
            ("--viewers", churn_viewers.to_string()),
            ("--seconds", churn_seconds.to_string()),
        ],
    )?;
    receivers.expect("start")?;
    take_submit_times(&shared);
    let start = Snapshot::take(&shared)?;
    let result = receivers.expect("result")?;
    let end = Snapshot::take(&shared)?;
    receivers.finish()?;
    let mut churn = window_figures(&start, &end, &mut take_submit_times(&shared));
    churn["viewers"] = churn_viewers.into();
    churn["churn"] = serde_json::from_str(&result)?;
    println!(
        "churn: {} viewers joining and leaving for {} s ({} joins, {} failed): submit() median \
         {} ms, p99 {} ms, max {} ms; sender CPU {}% of a core; {} source frames dropped",
        churn_viewers,
        churn["seconds"],
        churn["churn"]["joins"],
        churn["churn"]["failures"],
        churn["submit"]["medianMs"],
        churn["submit"]["p99Ms"],
        churn["submit"]["maxMs"],
        churn["senderCpuPercent"],
        churn["sourceFramesDropped"],
    );

    shared.stop.store(true, Ordering::Relaxed);
    if render_thread.join().is_err() {
        bail!("the render thread panicked");
    }
    println!(
        "{}",
        serde_json::json!({
            "benchmark": "fanout",
            "width": WIDTH,
            "height": HEIGHT,
            "fps": FPS,
            "encoder": "x264enc",
            "maxEncoders": max_encoders,
            "kbps": kbps,
            "cores": cores,
            "note": "receivers (no decoding) run in a second process on the same cores",
            "phases": phases,
            "churn": churn,
        })
    );
    std::io::stdout().flush()?;
    Ok(())
}

fn print_phase(figures: &serde_json::Value) {
    let received = &figures["received"];
    let delivery = if received.is_null() {
        "no viewers".to_string()
    } else {
        format!(
            "fps per viewer min {} median {} (receivers' CPU {}% of a core)",
            received["minFps"], received["medianFps"], received["cpuPercent"]
        )
    };
    println!(
        "{:>2} viewers: sender CPU {:>5}% of a core, encoder {} fps, {} tier(s) at {} kbps, {} \
         source frames dropped; {delivery}; submit() median {} ms, p99 {} ms, max {} ms",
        figures["viewers"],
        figures["senderCpuPercent"],
        figures["encodedFps"],
        figures["tiers"],
        figures["tierKbps"],
        figures["sourceFramesDropped"],
        figures["submit"]["medianMs"],
        figures["submit"]["p99Ms"],
        figures["submit"]["maxMs"],
    );
}

// ---------------------------------------------------------------------------------------
// The receivers' process.

/// One light viewer: `webrtcbin → depayloader → fakesink`, counting depayloaded frames.
struct LightViewer {
    frames: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    pipeline: gst::Pipeline,
    to_server: mpsc::UnboundedSender<ViewerRequest>,
    task: tokio::task::JoinHandle<()>,
}

impl LightViewer {
    async fn join(port: u16, view_only: bool) -> anyhow::Result<LightViewer> {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
            .await
            .context("connecting to the signaling endpoint")?;
        let (mut sink, mut stream) = socket.split();
        let frames = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let pipeline = gst::Pipeline::new();
        let webrtcbin = gst::ElementFactory::make("webrtcbin").build()?;
        webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
        let ice = webrtcbin.property::<gst_webrtc::WebRTCICE>("ice-agent");
        let _: bool = ice.emit_by_name("add-local-ip-address", &[&"127.0.0.1"]);
        pipeline.add(&webrtcbin)?;

        let (to_server, mut outgoing) = mpsc::unbounded_channel::<ViewerRequest>();
        let ice_tx = to_server.clone();
        webrtcbin.connect("on-ice-candidate", false, move |values| {
            let m_line = values.get(1).and_then(|v| v.get::<u32>().ok());
            let candidate = values.get(2).and_then(|v| v.get::<String>().ok());
            if let (Some(m_line), Some(candidate)) = (m_line, candidate) {
                let _ = ice_tx.send(ViewerRequest::Ice {
                    candidate,
                    sdp_m_line_index: m_line,
                });
            }
            None
        });
        let pipeline_weak = pipeline.downgrade();
        let counter = frames.clone();
        let pad_errors = errors.clone();
        webrtcbin.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            if let Err(err) = add_depayloader(&pipeline, pad, counter.clone()) {
                pad_errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(err.to_string());
            }
        });
        pipeline.set_state(gst::State::Playing)?;

        let join = serde_json::to_string(&ViewerRequest::Join { view_only })?;
        sink.send(Message::text(join)).await?;
        let bin = webrtcbin.clone();
        let answers = to_server.clone();
        let task_errors = errors.clone();
        let task = tokio::spawn(async move {
            let note = |message: String| {
                task_errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(message);
            };
            loop {
                tokio::select! {
                    incoming = stream.next() => {
                        let Some(Ok(Message::Text(text))) = incoming else { break };
                        match serde_json::from_str::<ViewerReply>(text.as_str()) {
                            Ok(ViewerReply::Offer { sdp }) => {
                                if let Err(err) = answer(&bin, &sdp, answers.clone()) {
                                    note(err.to_string());
                                }
                            }
                            Ok(ViewerReply::Ice { candidate, sdp_m_line_index }) => {
                                bin.emit_by_name::<()>("add-ice-candidate", &[&sdp_m_line_index, &candidate]);
                            }
                            Ok(ViewerReply::Error { message, .. }) => note(message),
                            Ok(ViewerReply::Bye { .. }) => break,
                            Ok(ViewerReply::Welcome { .. }) => {}
                            Err(err) => note(format!("unreadable reply: {err}")),
                        }
                    }
                    Some(request) = outgoing.recv() => {
                        let bye = request == ViewerRequest::Bye;
                        let Ok(text) = serde_json::to_string(&request) else { continue };
                        if sink.send(Message::text(text)).await.is_err() || bye { break; }
                    }
                }
            }
            let _ = sink.close().await;
        });
        Ok(LightViewer {
            frames,
            errors,
            pipeline,
            to_server,
            task,
        })
    }

    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Waits for `frames` frames; an error after `timeout`.
    async fn wait_frames(&self, frames: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.frames() < frames {
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} of {frames} frames within {timeout:?}; errors: {:?}",
                    self.frames(),
                    self.errors.lock().unwrap_or_else(|e| e.into_inner())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn leave(self) {
        let _ = self.to_server.send(ViewerRequest::Bye);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Links a new `webrtcbin` source pad to a depayloader for its codec and a fakesink, and
/// counts the depayloader's output: whole frames (access units).
fn add_depayloader(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    frames: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let caps = pad
        .current_caps()
        .or_else(|| pad.allowed_caps())
        .ok_or_else(|| anyhow!("webrtcbin pad without caps"))?;
    let encoding = caps
        .structure(0)
        .and_then(|s| s.get::<String>("encoding-name").ok())
        .unwrap_or_default();
    let (depay, frame_caps) = match encoding.as_str() {
        // Access units, so one buffer is one frame.
        "H264" => ("rtph264depay", Some("video/x-h264,alignment=au")),
        "VP8" => ("rtpvp8depay", None),
        other => bail!("no depayloader for {other:?}"),
    };
    let depay = gst::ElementFactory::make(depay).build()?;
    let filter = gst::ElementFactory::make("capsfilter").build()?;
    if let Some(frame_caps) = frame_caps {
        filter.set_property("caps", frame_caps.parse::<gst::Caps>()?);
    }
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .property("async", false)
        .build()?;
    pipeline.add_many([&depay, &filter, &sink])?;
    gst::Element::link_many([&depay, &filter, &sink])?;
    let counted = filter
        .static_pad("src")
        .ok_or_else(|| anyhow!("capsfilter without a src pad"))?;
    counted.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        frames.fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    for element in [&depay, &filter, &sink] {
        element.sync_state_with_parent()?;
    }
    let depay_sink = depay
        .static_pad("sink")
        .ok_or_else(|| anyhow!("depayloader without a sink pad"))?;
    pad.link(&depay_sink)
        .map_err(|e| anyhow!("webrtcbin → depayloader: {e:?}"))?;
    Ok(())
}

/// Answers the server's offer and sends the answer.
fn answer(
    webrtcbin: &gst::Element,
    sdp: &str,
    to_server: mpsc::UnboundedSender<ViewerRequest>,
) -> anyhow::Result<()> {
    let message = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes())
        .map_err(|_| anyhow!("the offer's SDP does not parse"))?;
    let offer = WebRTCSessionDescription::new(WebRTCSDPType::Offer, message);
    webrtcbin.emit_by_name::<()>("set-remote-description", &[&offer, &None::<gst::Promise>]);
    let bin = webrtcbin.downgrade();
    let promise = gst::Promise::with_change_func(move |reply| {
        let Some(bin) = bin.upgrade() else { return };
        let Some(answer) = reply
            .ok()
            .flatten()
            .and_then(|r| r.get::<WebRTCSessionDescription>("answer").ok())
        else {
            tracing::warn!("webrtcbin created no answer");
            return;
        };
        bin.emit_by_name::<()>("set-local-description", &[&answer, &None::<gst::Promise>]);
        if let Ok(sdp) = answer.sdp().as_text() {
            let _ = to_server.send(ViewerRequest::Answer { sdp });
        }
    });
    webrtcbin.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &promise]);
    Ok(())
}

fn receiver_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    gst::init()?;
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `--receive PORT`: N viewers join (the first with control, the rest view-only, as a
/// presenter and an audience would), warm up, and count frames over the window.
fn receive(port: u16, options: &Options) -> anyhow::Result<()> {
    let viewers: usize = options.number("--viewers", 1)?;
    let warmup: u64 = options.number("--warmup", 5)?;
    let seconds: u64 = options.number("--seconds", 20)?;
    let runtime = receiver_runtime()?;
    runtime.block_on(async move {
        let mut joined = Vec::new();
        for i in 0..viewers {
            joined.push(LightViewer::join(port, i > 0).await?);
        }
        for viewer in &joined {
            viewer.wait_frames(1, Duration::from_secs(60)).await?;
        }
        tokio::time::sleep(Duration::from_secs(warmup)).await;
        let cpu_before = process_cpu_seconds()?;
        let before: Vec<u64> = joined.iter().map(LightViewer::frames).collect();
        let started = Instant::now();
        println!("start");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        let after: Vec<u64> = joined.iter().map(LightViewer::frames).collect();
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds()? - cpu_before;
        let mut fps: Vec<f64> = after
            .iter()
            .zip(&before)
            .map(|(a, b)| round((a - b) as f64 / elapsed, 1))
            .collect();
        fps.sort_by(f64::total_cmp);
        let result = serde_json::json!({
            "minFps": fps.first(),
            "medianFps": fps.get(fps.len() / 2),
            "maxFps": fps.last(),
            "fps": fps,
            "cpuPercent": round(cpu / elapsed * 100.0, 1),
        });
        println!("result {result}");
        std::io::stdout().flush()?;
        for viewer in joined {
            viewer.leave().await;
        }
        anyhow::Ok(())
    })
}

/// `--churn PORT`: N viewers keep joining, receiving a few frames and leaving, staggered, for
/// the given time.
fn churn(port: u16, options: &Options) -> anyhow::Result<()> {
    let viewers: usize = options.number("--viewers", 10)?;
    let seconds: u64 = options.number("--seconds", 20)?;
    let runtime = receiver_runtime()?;
    runtime.block_on(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        let joins = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        println!("start");
        std::io::stdout().flush()?;
        let slots: Vec<_> = (0..viewers)
            .map(|slot| {
                let joins = joins.clone();
                let failures = failures.clone();
                tokio::spawn(async move {
                    // Staggered, so joins and leaves interleave rather than arrive in bursts.
                    tokio::time::sleep(Duration::from_millis(150 * slot as u64)).await;
                    while tokio::time::Instant::now() < deadline {
                        let life = async {
                            let viewer = LightViewer::join(port, slot % 2 == 1).await?;
                            let watched = viewer.wait_frames(3, Duration::from_secs(20)).await;
                            if watched.is_ok() {
                                tokio::time::sleep(Duration::from_millis(300 + 70 * slot as u64))
                                    .await;
                            }
                            viewer.leave().await;
                            watched
                        };
                        match life.await {
                            Ok(()) => {
                                joins.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(err) => failures
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push(err.to_string()),
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            })
            .collect();
        for slot in slots {
            slot.await?;
        }
        let failures = failures.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let result = serde_json::json!({
            "joins": joins.load(Ordering::Relaxed),
            "failures": failures.len(),
            "firstFailure": failures.first(),
        });
        println!("result {result}");
        std::io::stdout().flush()?;
        anyhow::Ok(())
    })
}
