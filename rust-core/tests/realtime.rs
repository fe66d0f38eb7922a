//! Real-time delivery while the audience changes: a viewer who is watching must not see the
//! picture freeze because other viewers join or leave. Joining builds a `webrtcbin`, attaches
//! it to a tier and asks for a key frame; leaving tears one down. None of that may hold up
//! the frames already flowing to everyone else. Must run in a loopback-only network namespace.

// Shared with webrtc.rs, which uses all of it; this test does not.
#[allow(dead_code)]
mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use openspace_webrtc::config::{EncoderChoice, StreamerConfig};
use openspace_webrtc::streamer::{FrameSource, Streamer};
use support::receiver::Receiver;
use tokio_tungstenite::tungstenite::Message;

use support::{HEIGHT, SECRET, WIDTH};
const FPS: u32 = 30;
/// The longest a watching viewer may go without a new frame: three frame intervals at 30 fps.
/// Longer is a visible stutter.
const MAX_GAP: Duration = Duration::from_millis(100);

/// What happened when, for the failure message: joins, leaves, frames.
type Timeline = Arc<Mutex<Vec<(Instant, String)>>>;

fn config() -> StreamerConfig {
    StreamerConfig {
        fps_cap: FPS,
        // The watcher and every wave at once, with room to spare: a refusal is not the
        // subject here.
        max_viewers: 16,
        ..support::loopback_config(EncoderChoice::X264)
    }
}

fn frame(n: u32) -> Vec<u8> {
    support::moving_frame(n)
}

/// The largest gap between consecutive instants that overlaps `from..to`, as (gap, start of
/// the gap).
fn largest_gap(times: &[Instant], from: Instant, to: Instant) -> Option<(Duration, Instant)> {
    times
        .windows(2)
        .filter(|w| w[1] > from && w[0] < to)
        .map(|w| (w[1] - w[0], w[0]))
        .max_by_key(|(gap, _)| *gap)
}

/// A control connection that reads the streamer's stats: what the engine says it sent to a
/// viewer tells a frame the engine dropped from one that was late on the way.
struct StatsClient(
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
);

impl StatsClient {
    async fn connect(port: u16) -> StatsClient {
        let (socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
            .await
            .unwrap();
        let mut client = StatsClient(socket);
        let hello = serde_json::json!({"type": "hello", "secret": SECRET});
        assert_eq!(client.request(hello).await["type"], "welcome");
        client
    }

    async fn request(&mut self, request: serde_json::Value) -> serde_json::Value {
        self.0
            .send(Message::text(request.to_string()))
            .await
            .unwrap();
        loop {
            match self.0.next().await {
                Some(Ok(Message::Text(reply))) => {
                    return serde_json::from_str(reply.as_str()).unwrap();
                }
                Some(Ok(_)) => continue,
                other => panic!("control connection ended: {other:?}"),
            }
        }
    }

    /// `framesSent` and `framesDropped` of one viewer, as last published (every 100 ms).
    async fn viewer_frames(&mut self, viewer_id: u32) -> (u64, u64) {
        let stats = self.request(serde_json::json!({"type": "getStats"})).await;
        let peers = stats["stats"]["peers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let peer = peers
            .iter()
            .find(|p| p["viewerId"] == viewer_id)
            .unwrap_or_else(|| panic!("viewer {viewer_id} not in stats: {stats}"));
        (
            peer["framesSent"].as_u64().unwrap_or(0),
            peer["framesDropped"].as_u64().unwrap_or(0),
        )
    }
}

/// One viewer of a wave: joins after `delay`, watches a few frames, leaves.
async fn passer_by(port: u16, index: usize, delay: Duration, timeline: Timeline) {
    tokio::time::sleep(delay).await;
    let view_only = index % 2 == 1;
    let note = |what: &str| {
        timeline
            .lock()
            .unwrap()
            .push((Instant::now(), format!("viewer {index} {what}")));
    };
    note(if view_only {
        "joins view-only"
    } else {
        "joins"
    });
    let viewer = Receiver::join_as(port, view_only).await;
    viewer.wait_frames(5, Duration::from_secs(30)).await;
    note("has 5 frames");
    // Stays a little, so the waves overlap and leaves land while others are joining.
    tokio::time::sleep(Duration::from_millis(300 + 100 * index as u64)).await;
    note("leaves");
    viewer.leave().await;
    note("left");
}

#[test]
fn a_watching_viewer_sees_no_gap_while_others_join_and_leave() {
    require_loopback_namespace!();
    let mut streamer = Streamer::new(config(), None).expect("streamer starts");
    let port = streamer.signaling_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let timeline: Timeline = Arc::default();

    let scenario_timeline = timeline.clone();
    let scenario = runtime.spawn(async move {
        let timeline = scenario_timeline;
        let watcher = Receiver::join(port).await;
        // Past the first key frame and the decoder's start-up: the steady state.
        watcher.wait_frames(30, Duration::from_secs(30)).await;
        let watcher_id = watcher
            .received
            .viewer_id
            .lock()
            .unwrap()
            .expect("welcomed");
        let mut stats = StatsClient::connect(port).await;
        let before = stats.viewer_frames(watcher_id).await;
        let from = Instant::now();
        timeline.lock().unwrap().push((from, "churn starts".into()));
        // Three waves of three viewers, 0.8 s apart, each viewer 150 ms after the previous
        // one; a viewer lives a second or more, so each wave joins while the last one leaves.
        let mut others = Vec::new();
        for wave in 0..3 {
            for slot in 0..3 {
                let index = wave * 3 + slot;
                let delay = Duration::from_millis(800 * wave as u64 + 150 * slot as u64);
                others.push(tokio::spawn(passer_by(
                    port,
                    index,
                    delay,
                    timeline.clone(),
                )));
            }
        }
        for other in others {
            if let Err(err) = other.await {
                std::panic::resume_unwind(err.into_panic());
            }
        }
        let to = Instant::now();
        timeline.lock().unwrap().push((to, "churn ends".into()));
        let after = stats.viewer_frames(watcher_id).await;
        let engine = (after.0 - before.0, after.1 - before.1);
        // A few frames after the end, so a gap that spans the end is closed and counted.
        let seen = watcher.received.frames.load(Ordering::Relaxed);
        watcher.wait_frames(seen + 5, Duration::from_secs(10)).await;
        let times = watcher.received.frame_times.lock().unwrap().clone();
        watcher.leave().await;
        (from, to, times, engine)
    });

    // The render thread: 30 fps on an absolute schedule, so a slow iteration does not shift
    // every later frame. Submit times are kept to tell a late host from a stalled engine.
    let started = Instant::now();
    let interval = Duration::from_secs(1) / FPS;
    let mut submitted = Vec::new();
    let mut n = 0;
    while !scenario.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "scenario timed out"
        );
        let pixels = frame(n);
        let source = FrameSource::Pixels {
            data: &pixels,
            stride: (WIDTH * 4) as usize,
        };
        streamer.submit(source, WIDTH, HEIGHT).expect("submit");
        submitted.push(Instant::now());
        while streamer.poll_event().is_some() {}
        n += 1;
        let due = started + interval * n;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let result = runtime.block_on(scenario);
    let stats = streamer.stats();
    streamer.shutdown();
    let (from, to, times, (engine_sent, engine_dropped)) = match result {
        Ok(outcome) => outcome,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    };

    let (gap, at) = largest_gap(&times, from, to).expect("the watcher received frames");
    let host_gap = largest_gap(&submitted, from, to).map(|(g, _)| g);
    let frames_in_window = times.iter().filter(|t| **t >= from && **t <= to).count();
    let window = to - from;
    let offset = |t: Instant| {
        if t >= from {
            format!("+{} ms", (t - from).as_millis())
        } else {
            format!("-{} ms", (from - t).as_millis())
        }
    };
    // What happened in the half second before the gap and during it.
    let nearby: Vec<String> = timeline
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t + Duration::from_millis(500) >= at && *t <= at + gap)
        .map(|(t, what)| format!("{} {what}", offset(*t)))
        .collect();
    // The most viewers besides the watcher at once, to show the waves did overlap.
    let mut present = 0i32;
    let mut most_present = 0;
    for (_, what) in timeline.lock().unwrap().iter() {
        if what.contains(" joins") {
            present += 1;
        } else if what.ends_with(" left") {
            present -= 1;
        }
        most_present = most_present.max(present);
    }
    let report = format!(
        "largest gap {} ms at {} (of a {} ms churn window, {frames_in_window} frames in it, \
         {:.1} fps); the host's largest gap between submits there: {:?} ms; around the gap: \
         {nearby:?}; up to {most_present} other viewers at once; the engine sent the watcher \
         {engine_sent} frames and dropped {engine_dropped} for it over the window (stats \
         lag up to 100 ms); streamer framesDropped {}",
        gap.as_millis(),
        offset(at),
        window.as_millis(),
        frames_in_window as f64 / window.as_secs_f64(),
        host_gap.map(|g| g.as_millis()),
        stats["framesDropped"],
    );
    eprintln!("{report}");
    assert!(gap <= MAX_GAP, "the watching viewer froze: {report}");
}
