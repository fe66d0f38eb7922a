//! Real pipelines end to end, without a browser: a streamer fed through the same path as the
//! C ABI's `submit_pixels`, and receivers that are real `webrtcbin` peers speaking the viewer
//! protocol over a real WebSocket. Must run in a loopback-only network namespace.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use openspace_webrtc::app::HostRequestKind;
use openspace_webrtc::config::{EncoderChoice, StreamerConfig};
use openspace_webrtc::input::Event;
use openspace_webrtc::streamer::{FrameSource, Streamer};
use openspace_webrtc_protocol::ViewerRole;
use support::receiver::Receiver;
use tokio_tungstenite::tungstenite::Message;

use support::{HEIGHT, WIDTH};

fn config(encoder: EncoderChoice) -> StreamerConfig {
    support::loopback_config(encoder)
}

fn frame(n: u32) -> Vec<u8> {
    support::moving_frame(n)
}

/// Hands one frame to the streamer the way `osw_streamer_submit_pixels` does.
fn submit_frame(streamer: &mut Streamer, pixels: &[u8]) {
    let source = FrameSource::Pixels {
        data: pixels,
        stride: (WIDTH * 4) as usize,
    };
    streamer.submit(source, WIDTH, HEIGHT).expect("submit");
}

/// Feeds `pixels` at 30 fps until `task` (a viewer's life) has finished, and returns its
/// result.
fn feed_until_done<T>(
    streamer: &mut Streamer,
    runtime: &tokio::runtime::Runtime,
    pixels: &[u8],
    task: tokio::task::JoinHandle<T>,
) -> T {
    while !task.is_finished() {
        submit_frame(streamer, pixels);
        std::thread::sleep(Duration::from_millis(33));
    }
    runtime.block_on(task).expect("viewer task")
}

/// Feeds frames at 30 fps on this thread (the streamer's render thread) while `scenario`
/// runs on a tokio runtime; events the host drains are collected for the scenario to check.
fn run_host<F, Fut>(encoder: EncoderChoice, scenario: F)
where
    F: FnOnce(u16, Arc<Mutex<Vec<Event>>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    run_host_with(config(encoder), scenario)
}

/// [`run_host`] with a configuration of the test's own.
fn run_host_with<F, Fut>(config: StreamerConfig, scenario: F)
where
    F: FnOnce(u16, Arc<Mutex<Vec<Event>>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let streamer = Streamer::new(config, None).expect("streamer starts");
    let port = streamer.signaling_port();
    let events = Arc::new(Mutex::new(Vec::new()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scenario = runtime.spawn(scenario(port, events.clone()));
    host_until_done(streamer, &runtime, scenario, &events, |_| {});
}

/// Is the host of `streamer` (on this thread, its render thread) until `scenario` ends:
/// each turn `before_frame` (given the time since the start), a frame at 30 fps, and the
/// events the host drains into `events`. Then shuts the streamer down and passes on a
/// panic of the scenario.
fn host_until_done(
    mut streamer: Streamer,
    runtime: &tokio::runtime::Runtime,
    scenario: tokio::task::JoinHandle<()>,
    events: &Mutex<Vec<Event>>,
    mut before_frame: impl FnMut(Duration),
) {
    let started = Instant::now();
    let mut n = 0;
    while !scenario.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "scenario timed out"
        );
        before_frame(started.elapsed());
        submit_frame(&mut streamer, &frame(n));
        while let Some(event) = streamer.poll_event() {
            events.lock().unwrap().push(event);
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(33));
    }
    let result = runtime.block_on(scenario);
    streamer.shutdown();
    if let Err(err) = result {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[test]
fn h264_two_viewers_share_one_encoder_and_input_reaches_the_host() {
    require_loopback_namespace!();
    run_host(EncoderChoice::X264, |port, events| async move {
        let first = Receiver::join(port).await;
        first.wait_frames(10, Duration::from_secs(20)).await;
        assert_eq!(
            *first.received.size.lock().unwrap(),
            Some((WIDTH as i32, HEIGHT as i32))
        );

        let second = Receiver::join(port).await;
        second.wait_frames(10, Duration::from_secs(20)).await;

        first
            .send_input(r#"{"type":"pointerButton","x":10,"y":20,"width":320,"height":240,"button":0,"pressed":true}"#)
            .await;
        first
            .send_input(r#"{"type":"key","key":87,"action":1,"mods":2}"#)
            .await;
        first
            .send_input(r#"{"type":"pointerMove","x":"bad"}"#)
            .await;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = events.lock().unwrap().clone();
            let button = seen.iter().any(|e| matches!(e, Event::PointerButton { x, y, button: 0, pressed: true, .. } if *x == 10.0 && *y == 20.0));
            let key = seen.iter().any(|e| {
                matches!(
                    e,
                    Event::Key {
                        key: 87,
                        action: 1,
                        mods: 2,
                        ..
                    }
                )
            });
            let joined = seen
                .iter()
                .filter(|e| matches!(e, Event::ViewerJoined { .. }))
                .count();
            if button && key && joined == 2 {
                break;
            }
            assert!(Instant::now() < deadline, "events never arrived: {seen:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // One viewer leaving must not disturb the other.
        let second_id = second.received.viewer_id.lock().unwrap().unwrap();
        second.leave().await;
        let before = first
            .received
            .frames
            .load(std::sync::atomic::Ordering::Relaxed);
        first
            .wait_frames(before + 15, Duration::from_secs(10))
            .await;
        assert!(events.lock().unwrap().contains(&Event::ViewerLeft {
            viewer_id: second_id
        }));
        first.leave().await;
    });
}

#[test]
fn vp8_stream_plays() {
    require_loopback_namespace!();
    run_host(EncoderChoice::Vp8, |port, _| async move {
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(10, Duration::from_secs(20)).await;
        assert_eq!(
            *viewer.received.size.lock().unwrap(),
            Some((WIDTH as i32, HEIGHT as i32))
        );
        viewer.leave().await;
    });
}

async fn control(
    port: u16,
) -> impl FnMut(
    &'static str,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>> {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
        .await
        .unwrap();
    let socket = Arc::new(tokio::sync::Mutex::new(socket));
    move |text: &'static str| {
        let socket = socket.clone();
        Box::pin(async move {
            let mut socket = socket.lock().await;
            socket.send(Message::text(text)).await.unwrap();
            loop {
                match socket.next().await {
                    Some(Ok(Message::Text(reply))) => {
                        return serde_json::from_str(reply.as_str()).unwrap();
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("connection ended: {other:?}"),
                }
            }
        })
    }
}

#[test]
fn control_client_sees_readiness_stats_and_can_resize() {
    require_loopback_namespace!();
    run_host(EncoderChoice::X264, |port, events| async move {
        let mut send = control(port).await;
        assert_eq!(
            send(r#"{"type":"ready"}"#).await["type"],
            "error",
            "hello comes first"
        );
        assert_eq!(
            send(r#"{"type":"hello","secret":"wrong"}"#).await["message"],
            "wrong secret"
        );
        assert_eq!(
            send(r#"{"type":"hello","secret":"test-secret"}"#).await["type"],
            "welcome"
        );
        // Readiness follows the first frame, as the orchestrator's probe expects: poll it.
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = loop {
            let ready = send(r#"{"type":"ready"}"#).await;
            if ready["ready"] == true {
                break ready;
            }
            assert!(Instant::now() < deadline, "never ready: {ready}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(ready["width"], WIDTH);
        let stats = send(r#"{"type":"getStats"}"#).await;
        assert_eq!(stats["stats"]["encoder"], "x264enc", "{stats}");
        assert_eq!(stats["stats"]["codec"], "H264");
        assert!(stats["stats"]["framesIn"].as_u64().unwrap() > 0);
        assert_eq!(
            send(r#"{"type":"resize","width":0,"height":5}"#).await["type"],
            "error"
        );
        assert_eq!(
            send(r#"{"type":"resize","width":641,"height":361}"#).await["type"],
            "ok"
        );
        assert_eq!(
            send(r#"{"type":"resize","width":7680,"height":4320}"#).await["type"],
            "ok"
        );
        assert_eq!(
            send(r#"{"type":"resize","width":7681,"height":4320}"#).await["type"],
            "error"
        );
        assert_eq!(
            send(r#"{"type":"nonsense"}"#).await["type"],
            "error",
            "connection stays usable"
        );
        assert_eq!(send(r#"{"type":"keyFrame"}"#).await["request"], "keyFrame");
        let deadline = Instant::now() + Duration::from_secs(5);
        // Odd sides come out even, and too large is fitted into 3840×2160.
        while !(events.lock().unwrap().contains(&Event::Resize {
            viewer_id: 0,
            width: 640,
            height: 360,
        }) && events.lock().unwrap().contains(&Event::Resize {
            viewer_id: 0,
            width: 3840,
            height: 2160,
        })) {
            assert!(
                Instant::now() < deadline,
                "resize event never reached the host"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

/// Polls `getStats` on a control connection until `done` accepts the stats, or panics.
async fn wait_stats(
    port: u16,
    timeout: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut send = control(port).await;
    assert_eq!(
        send(r#"{"type":"hello","secret":"test-secret"}"#).await["type"],
        "welcome"
    );
    let deadline = Instant::now() + timeout;
    loop {
        let stats = send(r#"{"type":"getStats"}"#).await["stats"].clone();
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what}: {stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The lines of an SDP that contain `needle`.
fn sdp_lines<'a>(sdp: &'a str, needle: &str) -> Vec<&'a str> {
    sdp.lines().filter(|l| l.contains(needle)).collect()
}

/// What each viewer is offered; whether a browser takes it is checked by the browser tests
/// (GStreamer's own receiver answers without the extension).
#[test]
fn every_offer_asks_for_twcc_nack_pli_and_rtx() {
    require_loopback_namespace!();
    run_host(EncoderChoice::X264, |port, _| async move {
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(5, Duration::from_secs(20)).await;
        let offer = viewer.received.offer.lock().unwrap().clone().unwrap();
        let stats = wait_stats(port, Duration::from_secs(5), "no peer in stats", |s| {
            s["peers"][0]["role"] == "owner"
        })
        .await;
        assert_eq!(
            stats["tiers"][0]["viewers"],
            serde_json::json!([stats["peers"][0]["viewerId"]])
        );
        assert!(
            stats["peers"][0]["estimateKbps"]
                .as_u64()
                .is_some_and(|e| e > 0),
            "{stats}"
        );
        let (name, sdp) = ("offer", &offer);
        assert!(
            !sdp_lines(sdp, openspace_webrtc::pipeline::TWCC_URI).is_empty(),
            "{name} lacks the TWCC extension:\n{sdp}"
        );
        assert!(
            !sdp_lines(sdp, "a=rtcp-fb:96 transport-cc").is_empty(),
            "{name} lacks transport-cc feedback:\n{sdp}"
        );
        assert!(
            sdp.lines().any(|l| l.trim_end() == "a=rtcp-fb:96 nack"),
            "{name} lacks NACK:\n{sdp}"
        );
        assert!(
            !sdp_lines(sdp, "a=rtcp-fb:96 nack pli").is_empty(),
            "{name} lacks PLI:\n{sdp}"
        );
        let rtx = sdp_lines(sdp, " rtx/90000");
        assert_eq!(rtx.len(), 1, "{name} has no single RTX payload:\n{sdp}");
        let rtx_pt = rtx[0]
            .trim_start_matches("a=rtpmap:")
            .split(' ')
            .next()
            .unwrap();
        assert!(
            !sdp_lines(sdp, &format!("a=fmtp:{rtx_pt} apt=96")).is_empty(),
            "{name}: RTX is not tied to the video payload:\n{sdp}"
        );
        viewer.leave().await;
    });
}

#[test]
fn fec_when_configured_is_offered_and_the_stream_plays() {
    require_loopback_namespace!();
    let config = StreamerConfig {
        fec_percentage: 20,
        ..config(EncoderChoice::X264)
    };
    run_host_with(config, |port, _| async move {
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(10, Duration::from_secs(20)).await;
        let offer = viewer.received.offer.lock().unwrap().clone().unwrap();
        for codec in ["red/90000", "ulpfec/90000"] {
            assert!(
                !sdp_lines(&offer, codec).is_empty(),
                "no {codec} offered:\n{offer}"
            );
        }
        viewer.leave().await;
    });
}

#[test]
fn below_the_floor_the_picture_is_scaled_down_and_keeps_playing() {
    require_loopback_namespace!();
    // 100 kbit/s at most: 90 for the encoder, short of the ~92 that 320×240 at 30 fps needs
    // at the floor, so tier 0 encodes 3/4 of each side.
    let config = StreamerConfig {
        bitrate_kbps: 100,
        min_bitrate_kbps: 50,
        start_bitrate_kbps: 100,
        ..config(EncoderChoice::X264)
    };
    run_host_with(config, |port, _| async move {
        let viewer = Receiver::join(port).await;
        let stats = wait_stats(port, Duration::from_secs(10), "never downscaled", |s| {
            s["tiers"][0]["mitigation"] == "downscaled"
        })
        .await;
        assert_eq!(stats["tiers"][0]["width"], 240, "{stats}");
        assert_eq!(stats["tiers"][0]["height"], 180, "{stats}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while *viewer.received.size.lock().unwrap() != Some((240, 180)) {
            assert!(
                Instant::now() < deadline,
                "the viewer never decoded the smaller picture: {:?}",
                viewer.received.size.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = viewer
            .received
            .frames
            .load(std::sync::atomic::Ordering::Relaxed);
        viewer
            .wait_frames(before + 30, Duration::from_secs(10))
            .await;
        viewer.leave().await;
    });
}

/// A raw viewer: joins, waits for the offer, sends `answer(offer)` and returns the replies
/// that arrive within a short while.
async fn answer_with(port: u16, answer: impl FnOnce(&str) -> String) -> Vec<serde_json::Value> {
    let url = support::viewer_url(port, ViewerRole::Spectator).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(Message::text(r#"{"type":"join","viewOnly":true}"#))
        .await
        .unwrap();
    let offer = loop {
        let Some(Ok(Message::Text(text))) = socket.next().await else {
            panic!("no offer");
        };
        let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if message["type"] == "offer" {
            break message["sdp"].as_str().unwrap().to_string();
        }
    };
    let reply = serde_json::json!({"type": "answer", "sdp": answer(&offer)});
    socket.send(Message::text(reply.to_string())).await.unwrap();
    let mut replies = Vec::new();
    while let Ok(Some(Ok(Message::Text(text)))) =
        tokio::time::timeout(Duration::from_millis(300), socket.next()).await
    {
        replies.push(serde_json::from_str(text.as_str()).unwrap());
    }
    let _ = socket.close(None).await;
    replies
}

type RawSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Joins as a raw viewer and returns the socket with the first offer or error it got.
async fn join_raw(port: u16, view_only: bool) -> (RawSocket, serde_json::Value) {
    let role = ViewerRole::from_view_only(view_only);
    let url = support::viewer_url(port, role).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let join = serde_json::json!({"type": "join", "viewOnly": view_only});
    socket.send(Message::text(join.to_string())).await.unwrap();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            panic!("no offer or error: {next:?}");
        };
        let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        if message["type"] == "offer" || message["type"] == "error" {
            return (socket, message);
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn share_links_that_never_answer_cannot_lock_the_owner_out() {
    require_loopback_namespace!();
    let config = StreamerConfig {
        max_viewers: 4,
        negotiation_timeout_ms: 1500,
        ..config(EncoderChoice::X264)
    };
    run_host_with(config, |port, _| async move {
        let mut hung = Vec::new();
        for _ in 0..3 {
            let (socket, first) = join_raw(port, true).await;
            assert_eq!(first["type"], "offer", "{first}");
            hung.push(socket);
        }
        let (_refused, first) = join_raw(port, true).await;
        assert!(
            first["message"]
                .as_str()
                .unwrap()
                .contains("maximum of 3 spectators"),
            "{first}"
        );
        // The owner's place was kept.
        let owner = Receiver::join(port).await;
        owner.wait_frames(10, Duration::from_secs(20)).await;
        // The silent ones are told why and dropped once the timeout passes.
        for socket in &mut hung {
            let reason = loop {
                let next = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
                let Ok(Some(Ok(Message::Text(text)))) = next else {
                    panic!("a silent viewer was not dropped: {next:?}");
                };
                let message: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                if message["type"] == "error" {
                    break message;
                }
            };
            assert_eq!(reason["fatal"], true, "{reason}");
            assert!(
                reason["message"].as_str().unwrap().contains("no answer"),
                "{reason}"
            );
        }
        wait_stats(
            port,
            Duration::from_secs(5),
            "the silent viewers were not freed",
            |s| s["viewers"] == 1,
        )
        .await;
        owner.leave().await;
    });
}

#[test]
fn viewers_that_leave_as_soon_as_the_offer_arrives_leak_nothing() {
    require_loopback_namespace!();
    let config = StreamerConfig {
        max_viewers: 8,
        ..config(EncoderChoice::X264)
    };
    run_host_with(config, |port, _| async move {
        let churn = |rounds: usize| async move {
            for _ in 0..rounds {
                let (socket, first) = join_raw(port, true).await;
                assert_eq!(first["type"], "offer", "{first}");
                drop(socket);
            }
            wait_stats(
                port,
                Duration::from_secs(10),
                "viewers were not freed",
                |s| s["viewers"] == 0 && s["viewersLeaving"] == 0,
            )
            .await;
            // Freed viewers' threads wind down shortly after their pipelines stop.
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        churn(20).await;
        let (fds, tasks) = (open_fds(), threads());
        churn(200).await;
        let (fds_after, tasks_after) = (open_fds(), threads());
        assert!(
            fds_after <= fds + 8 && tasks_after <= tasks + 4,
            "200 quick leavers: fds {fds} -> {fds_after}, threads {tasks} -> {tasks_after}"
        );
        // And the stream still serves a newcomer.
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(5, Duration::from_secs(20)).await;
        viewer.leave().await;
    });
}

/// A real browser's answer to one of our offers.
const BROWSER_ANSWER: &str = include_str!("fixtures/answer.sdp");

#[test]
fn hostile_answers_are_refused_and_the_host_keeps_streaming() {
    require_loopback_namespace!();
    run_host(EncoderChoice::X264, |port, _| async move {
        // The answer that aborted the host: the data channel section first, recvonly,
        // setup active, no candidates.
        let replies = answer_with(port, |_| {
            let (head, rest) = BROWSER_ANSWER.split_at(BROWSER_ANSWER.find("m=video").unwrap());
            let (video, application) = rest.split_at(rest.find("m=application").unwrap());
            format!("{head}{application}{video}")
        })
        .await;
        assert!(
            replies.iter().any(|r| r["type"] == "error"
                && r["fatal"] == false
                && r["message"].as_str().unwrap().contains("order")),
            "{replies:?}"
        );
        // Seeded mutations of a real answer: reordered, dropped, duplicated, altered lines.
        let lines: Vec<&str> = BROWSER_ANSWER.lines().collect();
        for round in 0..40usize {
            let mutated = {
                let mut mutated: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                let i = (round * 7919) % mutated.len();
                let j = (round * 104_729 + 13) % mutated.len();
                match round % 4 {
                    0 => mutated.swap(i, j),
                    1 => {
                        mutated.remove(i);
                    }
                    2 => mutated.insert(i, lines[j].to_string()),
                    _ => mutated[i] = mutated[i].replace(':', "::"),
                }
                mutated.join("\r\n") + "\r\n"
            };
            answer_with(port, move |_| mutated).await;
        }
        // Still streaming, to a newcomer.
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(10, Duration::from_secs(20)).await;
        viewer.leave().await;
    });
}

#[test]
fn odd_frame_sizes_stream_cropped_to_even_and_back() {
    require_loopback_namespace!();
    let mut streamer = Streamer::new(config(EncoderChoice::X264), None).unwrap();
    let port = streamer.signaling_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // 321×241 (odd both ways), then back to 320×240, each frame's pixels from `frame`.
    let sizes = [(WIDTH + 1, HEIGHT + 1), (WIDTH, HEIGHT)];
    let viewer = runtime.block_on(Receiver::join(port));
    let received = viewer.received.clone();
    for (width, height) in sizes {
        let mut pixels = frame(0);
        pixels.resize((width * height * 4) as usize, 128);
        let before = received.frames.load(std::sync::atomic::Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let source = FrameSource::Pixels {
                data: &pixels,
                stride: (width * 4) as usize,
            };
            streamer.submit(source, width, height).expect("submit");
            std::thread::sleep(Duration::from_millis(33));
            let frames = received.frames.load(std::sync::atomic::Ordering::Relaxed);
            if frames > before + 20
                && *received.size.lock().unwrap() == Some((width as i32 & !1, height as i32 & !1))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{width}x{height}: {} frames, size {:?}, stats {}",
                frames - before,
                received.size.lock().unwrap(),
                streamer.stats()
            );
        }
    }
    let too_small = FrameSource::Pixels {
        data: &[0; 64],
        stride: 8 * 4,
    };
    assert!(streamer.submit(too_small, 8, 2).is_err());
    runtime.block_on(viewer.leave());
    streamer.shutdown();
}

#[test]
fn a_failed_encoder_is_rebuilt_and_its_viewers_get_frames_again() {
    require_loopback_namespace!();
    let mut streamer = Streamer::new(config(EncoderChoice::X264), None).unwrap();
    let port = streamer.signaling_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pixels = frame(0);
    submit_frame(&mut streamer, &pixels);
    let viewer = runtime.block_on(Receiver::join(port));
    let received = viewer.received.clone();
    let feed_until =
        |streamer: &mut Streamer, what: &str, done: &dyn Fn(&serde_json::Value) -> bool| {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                submit_frame(streamer, &pixels);
                std::thread::sleep(Duration::from_millis(33));
                let stats = streamer.stats();
                if done(&stats) {
                    return;
                }
                assert!(Instant::now() < deadline, "{what}: {stats}");
            }
        };
    let frames = |r: &std::sync::Arc<support::receiver::Received>| {
        r.frames.load(std::sync::atomic::Ordering::Relaxed)
    };
    feed_until(&mut streamer, "never streamed", &|s| {
        s["framesFlowing"] == true && frames(&received) > 10
    });
    streamer.view().inject_encoder_error();
    feed_until(&mut streamer, "the encoder was not rebuilt", &|s| {
        s["encoderRebuilds"] == 1
    });
    let before = frames(&received);
    feed_until(&mut streamer, "no frames after the rebuild", &|s| {
        s["framesFlowing"] == true && frames(&received) > before + 10
    });
    assert_eq!(
        streamer.stats()["tiers"][0]["viewers"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    runtime.block_on(viewer.leave());
    streamer.shutdown();
}

/// A small seeded generator (xorshift), so every fuzz run is the same run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next(items.len())]
    }
}

/// One data-channel message: mostly well-formed input with hostile values, some resizes
/// and texts, some garbage.
fn fuzzed_input(rng: &mut Seeded) -> String {
    let numbers = [
        "0",
        "-1",
        "1e308",
        "-1e308",
        "NaN",
        "1.5",
        "640",
        "65536",
        "4294967296",
        "\"7\"",
        "null",
        "[]",
        "{}",
        "true",
        "7680",
        "7681",
        "641",
        "99999999999999999999",
    ];
    let n = |rng: &mut Seeded| rng.pick(&numbers).to_string();
    match rng.next(9) {
        0 => format!(
            r#"{{"type":"pointerMove","x":{},"y":{},"width":{},"height":{}}}"#,
            n(rng),
            n(rng),
            n(rng),
            n(rng)
        ),
        1 => format!(
            r#"{{"type":"pointerButton","x":{},"y":{},"width":{},"height":{},"button":{},"pressed":{},"mods":{}}}"#,
            n(rng),
            n(rng),
            n(rng),
            n(rng),
            n(rng),
            rng.pick(&["true", "false", "1"]),
            n(rng)
        ),
        2 => format!(r#"{{"type":"wheel","dx":{},"dy":{}}}"#, n(rng), n(rng)),
        3 => format!(
            r#"{{"type":"key","key":{},"action":{},"mods":{}}}"#,
            n(rng),
            n(rng),
            n(rng)
        ),
        4 => {
            let texts = [
                "a",
                "héllo",
                r"\u0000",
                r"\ud800",
                "日本語",
                r"\n\t",
                "\n",
                "",
            ];
            let text = rng.pick(&texts).repeat(1 + rng.next(300));
            format!(r#"{{"type":"text","text":"{text}"}}"#)
        }
        5 => format!(
            r#"{{"type":"resize","width":{},"height":{}}}"#,
            n(rng),
            n(rng)
        ),
        6 => r#"{"type":"keyFrame"}"#.to_string(),
        7 => {
            // No empty message: GStreamer's data channel, the test's sending peer, closes
            // itself on one.
            let junk = [
                " ",
                "{",
                "[1,2]",
                r#"{"type":"nope"}"#,
                "\u{7f}\u{1}",
                r#"{"type":5}"#,
            ];
            rng.pick(&junk).to_string()
        }
        // Long junk, within what GStreamer's SCTP sends in one message without closing the
        // channel (that limit is the sending test peer's, not the host's).
        _ => "x".repeat(rng.next(8_000)),
    }
}

#[test]
fn fuzzed_input_never_breaks_the_stream() {
    require_loopback_namespace!();
    run_host(EncoderChoice::X264, |port, events| async move {
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(10, Duration::from_secs(20)).await;
        let (fds, tasks) = (open_fds(), threads());
        let mut rng = Seeded(0x9e37_79b9_7f4a_7c15);
        for i in 0..5000 {
            viewer.send_input(&fuzzed_input(&mut rng)).await;
            if i % 250 == 0 {
                // Let the channel drain now and then, as a real page would.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let stats = wait_stats(port, Duration::from_secs(10), "input never counted", |s| {
            s["inputRefused"].as_u64().unwrap_or(0) + s["inputEvents"].as_u64().unwrap_or(0) > 2000
        })
        .await;
        assert!(stats["inputRefused"].as_u64().unwrap() > 0, "{stats}");
        // Every resize that reached the host was a size the stream can take.
        for event in events.lock().unwrap().iter() {
            if let Event::Resize { width, height, .. } = *event {
                assert!(
                    (16..=3840).contains(&width) && (16..=2160).contains(&height),
                    "a resize of {width}x{height} reached the host"
                );
                assert!(
                    width % 2 == 0 && height % 2 == 0,
                    "odd resize {width}x{height}"
                );
            }
        }
        let before = viewer
            .received
            .frames
            .load(std::sync::atomic::Ordering::Relaxed);
        viewer
            .wait_frames(before + 20, Duration::from_secs(10))
            .await;
        assert!(
            open_fds() <= fds + 8 && threads() <= tasks + 4,
            "fds {fds} -> {}, threads {tasks} -> {}",
            open_fds(),
            threads()
        );
        viewer.leave().await;
    });
}

/// One signaling message: valid and invalid requests of both roles, mutated SDP, junk.
fn fuzzed_signaling(rng: &mut Seeded, offer: &str) -> String {
    let mutate_sdp = |rng: &mut Seeded, sdp: &str| {
        let mut lines: Vec<String> = sdp.lines().map(str::to_string).collect();
        for _ in 0..1 + rng.next(3) {
            let i = rng.next(lines.len());
            match rng.next(4) {
                0 => {
                    let j = rng.next(lines.len());
                    lines.swap(i, j);
                }
                1 => {
                    lines.remove(i);
                }
                2 => {
                    let line = lines[i].clone();
                    lines.insert(i, line);
                }
                _ => lines[i] = lines[i].replace("video", "application"),
            }
            if lines.is_empty() {
                break;
            }
        }
        lines.join("\r\n") + "\r\n"
    };
    let value = match rng.next(12) {
        0 => serde_json::json!({"type": "join", "viewOnly": rng.next(2) == 0}),
        1 => serde_json::json!({"type": "answer", "sdp": mutate_sdp(rng, BROWSER_ANSWER)}),
        2 => serde_json::json!({"type": "answer", "sdp": mutate_sdp(rng, offer)}),
        3 => {
            serde_json::json!({"type": "ice", "candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host", "sdpMLineIndex": rng.next(5)})
        }
        4 => {
            serde_json::json!({"type": "ice", "candidate": "x".repeat(rng.next(5000)), "sdpMLineIndex": u32::MAX})
        }
        5 => {
            serde_json::json!({"type": "hello", "secret": rng.pick(&["", "wrong", "test-secret"])})
        }
        6 => serde_json::json!({"type": rng.pick(&["ready", "getStats", "keyFrame"])}),
        7 => {
            serde_json::json!({"type": "resize", "width": rng.next(9000), "height": rng.next(9000)})
        }
        8 => serde_json::json!({"type": "bye"}),
        9 => serde_json::json!({"type": rng.pick(&["nope", "", "JOIN"]), "sdp": 5}),
        10 => return ["{", "[]", "null", "\"join\"", "{\"type\":null}"][rng.next(5)].to_string(),
        _ => return "y".repeat(rng.next(80_000)),
    };
    value.to_string()
}

#[test]
fn fuzzed_signaling_never_breaks_the_host() {
    require_loopback_namespace!();
    let config = StreamerConfig {
        max_viewers: 8,
        negotiation_timeout_ms: 1000,
        ..config(EncoderChoice::X264)
    };
    run_host_with(config, |port, _| async move {
        let offer = {
            let probe = Receiver::join(port).await;
            probe.wait_frames(3, Duration::from_secs(20)).await;
            let offer = probe.received.offer.lock().unwrap().clone().unwrap();
            probe.leave().await;
            offer
        };
        let (fds, tasks) = (open_fds(), threads());
        let mut rng = Seeded(0xdead_beef_cafe_f00d);
        let mut sent = 0;
        // 2000 messages over 100 connections of 20, each read back without waiting long.
        for _ in 0..100 {
            let url = support::viewer_url(port, ViewerRole::Owner).await;
            let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            for _ in 0..20 {
                let text = fuzzed_signaling(&mut rng, &offer);
                if socket.send(Message::text(text)).await.is_err() {
                    break;
                }
                sent += 1;
                while let Ok(Some(Ok(_))) =
                    tokio::time::timeout(Duration::from_millis(2), socket.next()).await
                {
                }
            }
            let _ = socket.close(None).await;
        }
        assert!(sent >= 1500, "only {sent} messages went out");
        // Every viewer those connections created is freed again.
        wait_stats(
            port,
            Duration::from_secs(15),
            "fuzzed viewers were not freed",
            |s| s["viewers"] == 0 && s["viewersLeaving"] == 0,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            open_fds() <= fds + 8 && threads() <= tasks + 4,
            "fds {fds} -> {}, threads {tasks} -> {}",
            open_fds(),
            threads()
        );
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(10, Duration::from_secs(20)).await;
        viewer.leave().await;
    });
}

/// Connects to `url`, sends `join` and returns the first reply and whether the streamer then
/// closed the connection.
async fn first_reply_to_join(url: &str) -> (serde_json::Value, bool) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(Message::text(r#"{"type":"join"}"#))
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), socket.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = next else {
        panic!("no reply to join: {next:?}");
    };
    let reply = serde_json::from_str(text.as_str()).unwrap();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(1), socket.next()).await {
            Ok(Some(Ok(Message::Close(_))) | None | Some(Err(_))) => break true,
            Ok(Some(Ok(_))) => continue,
            Err(_) => break false,
        }
    };
    (reply, closed)
}

#[test]
fn a_managed_streamer_admits_only_its_tickets_once_and_spectators_send_no_input() {
    require_loopback_namespace!();
    let config = StreamerConfig {
        max_viewers: 4,
        ..config(EncoderChoice::X264)
    };
    run_host_with(config, |port, events| async move {
        // Reaching the port is not enough: no ticket, no stream, and the socket is closed.
        let (reply, closed) = first_reply_to_join(&format!("ws://127.0.0.1:{port}/")).await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["fatal"], true, "{reply}");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("no join ticket")
        );
        assert!(closed, "a refused join closes the connection");
        let (reply, _) = first_reply_to_join(&format!("ws://127.0.0.1:{port}/?ticket=00ff")).await;
        assert!(
            reply["message"].as_str().unwrap().contains("not known"),
            "{reply}"
        );

        // A ticket admits once: the second connection with it is refused.
        let url = support::viewer_url(port, ViewerRole::Owner).await;
        let (reply, closed) = first_reply_to_join(&url).await;
        assert_eq!(reply["type"], "welcome", "{reply}");
        assert!(!closed, "an admitted viewer stays connected");
        let (reply, closed) = first_reply_to_join(&url).await;
        assert!(
            reply["message"].as_str().unwrap().contains("used already"),
            "{reply}"
        );
        assert!(closed);

        // A spectator's ticket: the join asks for control and still gets none.
        let spectator_url = support::viewer_url(port, ViewerRole::Spectator).await;
        let spectator = Receiver::join_url(&spectator_url, false).await;
        spectator.wait_frames(3, Duration::from_secs(20)).await;
        spectator.send_input(&key(87)).await;
        let owner = Receiver::join(port).await;
        owner.wait_frames(3, Duration::from_secs(20)).await;
        owner.send_input(&key(65)).await;
        host_gets_key(&events, 65).await;
        let seen = events.lock().unwrap().clone();
        assert!(
            !seen.iter().any(|e| matches!(e, Event::Key { key: 87, .. })),
            "the spectator's key reached the host: {seen:?}"
        );
        spectator.leave().await;
        owner.leave().await;
    });
}

#[test]
fn ice_gathers_only_on_the_configured_udp_ports() {
    require_loopback_namespace!();
    let config = StreamerConfig {
        ice_port_min: 41000,
        ice_port_max: 41009,
        ..config(EncoderChoice::X264)
    };
    run_host_with(config, |port, _| async move {
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(3, Duration::from_secs(20)).await;
        let candidates = viewer.received.candidates.lock().unwrap().clone();
        let ports: Vec<u32> = candidates
            .iter()
            .filter(|c| c.contains(" udp ") || c.contains(" UDP "))
            .filter_map(|c| c.split_whitespace().nth(5)?.parse().ok())
            .collect();
        assert!(!ports.is_empty(), "no UDP candidates: {candidates:?}");
        assert!(
            ports.iter().all(|p| (41000..=41009).contains(p)),
            "candidates outside 41000..=41009: {candidates:?}"
        );
        viewer.leave().await;
    });
}

#[test]
fn viewers_beyond_the_limit_are_refused_with_a_reason() {
    require_loopback_namespace!();
    run_host(EncoderChoice::X264, |port, _| async move {
        let a = Receiver::join(port).await;
        let b = Receiver::join(port).await;
        a.wait_frames(3, Duration::from_secs(20)).await;
        b.wait_frames(3, Duration::from_secs(20)).await;
        let c = Receiver::join(port).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.received.errors.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "third viewer was not refused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(c.received.errors.lock().unwrap()[0].contains("maximum of 2 viewers"));
        for r in [a, b, c] {
            r.leave().await;
        }
    });
}

#[test]
fn viewers_that_leave_free_everything_and_shutdown_joins_every_thread() {
    require_loopback_namespace!();
    // Warm GStreamer's process-wide threads (registry, clock) before taking the baseline.
    run_host(EncoderChoice::X264, |port, _| async move {
        Receiver::join(port)
            .await
            .wait_frames(3, Duration::from_secs(20))
            .await;
    });
    let baseline_threads = threads();

    let mut streamer = Streamer::new(config(EncoderChoice::X264), None).unwrap();
    let port = streamer.signaling_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pixels = frame(0);
    submit_frame(&mut streamer, &pixels);
    std::thread::sleep(Duration::from_millis(200));
    let idle_elements = streamer.pipeline_element_count();
    assert!(idle_elements > 0);
    for round in 0..4 {
        let viewer = runtime.spawn(async move {
            let viewer = Receiver::join(port).await;
            viewer.wait_frames(3, Duration::from_secs(20)).await;
            viewer.leave().await;
        });
        feed_until_done(&mut streamer, &runtime, &pixels, viewer);
        // Leaving is processed when the server sees the socket close.
        let deadline = Instant::now() + Duration::from_secs(5);
        while streamer.pipeline_element_count() != idle_elements {
            assert!(
                Instant::now() < deadline,
                "round {round}: viewer elements left behind"
            );
            submit_frame(&mut streamer, &pixels);
            std::thread::sleep(Duration::from_millis(33));
        }
        assert_eq!(streamer.stats()["viewers"], 0);
    }
    streamer.shutdown();
    drop(runtime);
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads() > baseline_threads {
        assert!(
            Instant::now() < deadline,
            "threads leaked: {} > {baseline_threads}",
            threads()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Not a test: prints the process's RSS while viewers join and leave, to tell a per-viewer
/// leak (linear growth) from allocator warm-up (a plateau). Run with `--ignored --nocapture`.
#[test]
#[ignore]
fn viewer_churn_memory_figures() {
    require_loopback_namespace!();
    let rss_kib = || {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .unwrap()
    };
    let mut streamer = Streamer::new(config(EncoderChoice::X264), None).unwrap();
    let port = streamer.signaling_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pixels = frame(0);
    for round in 0..=60 {
        let viewer = runtime.spawn(async move {
            let viewer = Receiver::join(port).await;
            viewer.wait_frames(2, Duration::from_secs(20)).await;
            viewer.leave().await;
        });
        feed_until_done(&mut streamer, &runtime, &pixels, viewer);
        if round % 10 == 0 {
            println!("after {round} viewers: RSS {} KiB", rss_kib());
        }
    }
    streamer.shutdown();
}

/// Keys (GLFW codes) the host saw pressed, in order.
fn keys_seen(events: &Mutex<Vec<Event>>) -> Vec<i32> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Key { key, action: 1, .. } => Some(*key),
            _ => None,
        })
        .collect()
}

/// Keys the host saw released, with whose release it was.
fn keys_released(events: &Mutex<Vec<Event>>) -> Vec<(u32, i32)> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Key {
                viewer_id,
                key,
                action: 0,
                ..
            } => Some((*viewer_id, *key)),
            _ => None,
        })
        .collect()
}

/// Waits until the host saw key `key`.
async fn host_gets_key(events: &Mutex<Vec<Event>>, key: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !keys_seen(events).contains(&key) {
        assert!(
            Instant::now() < deadline,
            "key {key} never reached the host: {:?}",
            keys_seen(events)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn key(code: i32) -> String {
    format!(r#"{{"type":"key","key":{code},"action":1,"mods":0}}"#)
}

#[test]
fn the_app_channel_runs_owners_requests_and_the_controls_pass_between_viewers() {
    require_loopback_namespace!();
    let streamer = Streamer::new(
        StreamerConfig {
            max_viewers: 4,
            ..config(EncoderChoice::X264)
        },
        None,
    )
    .expect("streamer starts");
    let view = streamer.view();
    view.publish_app_status(r#"{"views":["Earth"]}"#).unwrap();
    assert!(
        view.publish_app_status("[]").is_err(),
        "a status is an object"
    );
    let port = streamer.signaling_port();
    let events = Arc::new(Mutex::new(Vec::new()));
    let scripts = Arc::new(Mutex::new(Vec::<String>::new()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (seen, ran) = (events.clone(), scripts.clone());
    let scenario = runtime.spawn(async move {
        let owner = Receiver::join(port).await;
        let spectator = Receiver::join_as(port, true).await;
        owner.wait_frames(3, Duration::from_secs(20)).await;
        spectator.wait_frames(3, Duration::from_secs(20)).await;
        let owner_id = owner.received.viewer_id.lock().unwrap().unwrap();
        let spectator_id = spectator.received.viewer_id.lock().unwrap().unwrap();
        let holder_is = |id: u32| {
            move |m: &serde_json::Value| {
                m["type"] == "controls"
                    && m["holder"] == id
                    && m["viewers"].as_array().is_some_and(|v| v.len() == 2)
            }
        };

        // Both pages learn who is here, who holds the controls, and the host's views.
        owner
            .app_message("controls: the owner holds", holder_is(owner_id))
            .await;
        spectator
            .app_message("controls: the owner holds", holder_is(owner_id))
            .await;
        spectator
            .app_message("the host's status", |m| {
                m["type"] == "status" && m["status"]["views"][0] == "Earth"
            })
            .await;

        // The owner's script runs in the host and its answer comes back; a spectator's is refused.
        owner
            .send_app(r#"{"type":"runScript","id":1,"script":"openspace.time.togglePause()"}"#)
            .await;
        let reply = owner
            .app_message("reply 1", |m| m["type"] == "reply" && m["id"] == 1)
            .await;
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["message"], "ran openspace.time.togglePause()");
        spectator
            .send_app(r#"{"type":"runScript","id":2,"script":"os.exit()"}"#)
            .await;
        let reply = spectator
            .app_message("reply 2", |m| m["type"] == "reply" && m["id"] == 2)
            .await;
        assert_eq!(reply["ok"], false);
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("only the owner"),
            "{reply}"
        );
        owner
            .send_app(r#"{"type":"goToView","id":3,"view":"Mars"}"#)
            .await;
        let reply = owner
            .app_message("reply 3", |m| m["type"] == "reply" && m["id"] == 3)
            .await;
        assert_eq!(reply["ok"], false);
        assert_eq!(reply["message"], "no view named Mars");
        owner.send_app("{nope").await;
        let reply = owner
            .app_message("reply 0", |m| m["type"] == "reply" && m["id"] == 0)
            .await;
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("not an app request"),
            "{reply}"
        );

        // The owner holds the controls: its key arrives, the spectator's does not.
        owner.send_input(&key(65)).await;
        spectator.send_input(&key(66)).await;
        host_gets_key(&seen, 65).await;

        // Handed to the spectator: now only the spectator's input arrives.
        spectator
            .send_app(&format!(
                r#"{{"type":"passControl","id":4,"viewerId":{spectator_id}}}"#
            ))
            .await;
        let reply = spectator
            .app_message("reply 4", |m| m["type"] == "reply" && m["id"] == 4)
            .await;
        assert_eq!(reply["ok"], false, "a spectator cannot take them: {reply}");
        owner
            .send_app(&format!(
                r#"{{"type":"passControl","id":5,"viewerId":{spectator_id}}}"#
            ))
            .await;
        owner
            .app_message("reply 5", |m| {
                m["type"] == "reply" && m["id"] == 5 && m["ok"] == true
            })
            .await;
        spectator
            .app_message("controls: the spectator holds", holder_is(spectator_id))
            .await;
        owner.send_input(&key(67)).await;
        spectator.send_input(&key(68)).await;
        host_gets_key(&seen, 68).await;

        // Taken back: the owner's input arrives again, the spectator's not.
        owner.send_app(r#"{"type":"takeControl","id":6}"#).await;
        // The reply comes once the holder changed (the first controls message would match
        // already, so it is no sign).
        owner
            .app_message("reply 6", |m| {
                m["type"] == "reply" && m["id"] == 6 && m["ok"] == true
            })
            .await;
        spectator.send_input(&key(69)).await;
        owner.send_input(&key(70)).await;
        host_gets_key(&seen, 70).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            keys_seen(&seen),
            vec![65, 68, 70],
            "exactly one viewer's input at a time"
        );
        // Keys pressed and never released are let go for a holder that loses the
        // controls: the owner's 65 at the pass, the spectator's 68 at the take.
        assert_eq!(
            keys_released(&seen),
            vec![(owner_id, 65), (spectator_id, 68)],
            "held keys are released when the controls move"
        );
        let changes: Vec<u32> = seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::ControlsChanged { viewer_id } => Some(*viewer_id),
                _ => None,
            })
            .collect();
        assert_eq!(changes, vec![owner_id, spectator_id, owner_id]);
        assert_eq!(
            ran.lock().unwrap().clone(),
            vec!["openspace.time.togglePause()".to_string()]
        );
        owner.leave().await;
        spectator.leave().await;
    });
    // The host: frames, events, and answers to the app requests.
    host_until_done(streamer, &runtime, scenario, &events, |_| {
        while let Ok(Some(request)) = view.poll_app_request(1024) {
            let (ok, message) = match request.kind {
                HostRequestKind::RunScript => {
                    scripts.lock().unwrap().push(request.text.clone());
                    (true, format!("ran {}", request.text))
                }
                HostRequestKind::GoToView => (false, format!("no view named {}", request.text)),
            };
            view.reply_app_request(request.request_id, ok, Some(message))
                .unwrap();
            assert!(
                view.reply_app_request(request.request_id, ok, None)
                    .is_err(),
                "once"
            );
        }
    });
}

/// 1 kHz at half scale, stereo, `frames` sample frames from sample `start` on.
fn sine(start: u64, frames: usize) -> Vec<i16> {
    (0..frames as u64)
        .flat_map(|i| {
            let t = (start + i) as f64 / 48_000.0;
            let value = (0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 32767.0) as i16;
            [value, value]
        })
        .collect()
}

/// The media kinds of an SDP's sections, in order.
fn media_kinds(sdp: &str) -> Vec<&str> {
    sdp.lines()
        .filter_map(|l| l.strip_prefix("m="))
        .filter_map(|m| m.split_whitespace().next())
        .collect()
}

#[test]
fn with_host_audio_every_viewer_gets_opus_from_one_encoder_beside_the_video() {
    require_loopback_namespace!();
    let mut config = config(EncoderChoice::X264);
    config.audio = openspace_webrtc::config::AudioMode::Host;
    let streamer = Streamer::new(config, None).expect("streamer starts");
    let port = streamer.signaling_port();
    let view = streamer.view();
    // Before the first frame there is no stream: the sound is not taken, and says so.
    let early = view.submit_audio(&sine(0, 480), 480, 48_000, 2).unwrap();
    assert_eq!(early, openspace_webrtc::streamer::SubmitOutcome::Dropped);
    // Outside the ranges is refused, never taken.
    assert!(view.submit_audio(&sine(0, 480), 480, 48_000, 3).is_err());
    assert!(
        view.submit_audio(&sine(0, 480)[..959], 480, 48_000, 2)
            .is_err()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scenario = runtime.spawn(async move {
        let first = Receiver::join(port).await;
        let second = Receiver::join_as(port, true).await;
        for viewer in [&first, &second] {
            viewer.wait_frames(10, Duration::from_secs(20)).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            // A second of 10 ms packets, and the tone decoded at about its level.
            while viewer
                .received
                .audio_packets
                .load(std::sync::atomic::Ordering::Relaxed)
                < 100
                || viewer
                    .received
                    .audio_peak
                    .load(std::sync::atomic::Ordering::Relaxed)
                    < 8000
            {
                assert!(
                    Instant::now() < deadline,
                    "{} audio packets, peak {}",
                    viewer
                        .received
                        .audio_packets
                        .load(std::sync::atomic::Ordering::Relaxed),
                    viewer
                        .received
                        .audio_peak
                        .load(std::sync::atomic::Ordering::Relaxed)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(
                viewer.received.audio_encoding.lock().unwrap().as_deref(),
                Some("OPUS")
            );
            let offer = viewer.received.offer.lock().unwrap().clone().unwrap();
            assert_eq!(media_kinds(&offer), ["video", "audio", "application"]);
            assert_eq!(
                sdp_lines(&offer, "a=rtpmap:111 OPUS/48000/2").len(),
                1,
                "{offer}"
            );
            // Both sections name one msid stream: the browser's unit of lip sync.
            let streams: std::collections::BTreeSet<&str> = sdp_lines(&offer, " msid:")
                .iter()
                .filter_map(|l| l.split(" msid:").nth(1)?.split_whitespace().next())
                .collect();
            let video = offer.split("m=audio").next().unwrap();
            assert!(
                video.contains(" msid:"),
                "the video section names its msid: {offer}"
            );
            assert_eq!(streams.len(), 1, "{offer}");
            // webrtcbin accepted the answer's audio section (the answer checks passed it).
            assert!(viewer.received.errors.lock().unwrap().is_empty());
        }
        let stats = wait_stats(
            port,
            Duration::from_secs(10),
            "both viewers' audio packets",
            |s| {
                s["peers"].as_array().is_some_and(|peers| {
                    peers.len() == 2 && peers.iter().all(|p| p["audioPackets"].as_u64() > Some(50))
                })
            },
        )
        .await;
        assert_eq!(stats["audio"], "host");
        assert!(stats["audioPackets"].as_u64() >= Some(100), "{stats}");
        assert!(stats["audioSamplesIn"].as_u64() >= Some(48_000), "{stats}");
        // (`audioResyncs` stays 0 on an idle machine; a loaded one stalls this loop, so it
        // is not asserted.)
        assert!(stats["audioResyncs"].is_u64(), "{stats}");
        first.leave().await;
        second.leave().await;
    });
    let mut sample = 0u64;
    let events = Mutex::new(Vec::new());
    host_until_done(streamer, &runtime, scenario, &events, |elapsed| {
        // Each frame's sound right before it, as a host hands it: what the clock says is due
        // until the next frame (real-time amounts, whatever this loop's pace).
        let due = ((elapsed.as_secs_f64() + 0.033) * 48_000.0) as u64;
        // After a stall (the first frame builds the pipeline) the sound it missed is
        // skipped, not handed late.
        if due.saturating_sub(sample) > 2 * 1600 {
            sample = due - 1600;
        }
        let frames = due.saturating_sub(sample) as usize;
        if frames > 0 {
            view.submit_audio(&sine(sample, frames), frames, 48_000, 2)
                .expect("sound taken");
            sample += frames as u64;
        }
    });
}

#[test]
fn without_audio_the_offer_has_no_audio_section_and_pcm_is_refused() {
    require_loopback_namespace!();
    let mut streamer = Streamer::new(config(EncoderChoice::X264), None).expect("streamer starts");
    let err = streamer
        .view()
        .submit_audio(&sine(0, 480), 480, 48_000, 2)
        .unwrap_err();
    assert!(err.to_string().contains("audio is none"), "{err}");
    let port = streamer.signaling_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scenario = runtime.spawn(async move {
        let viewer = Receiver::join(port).await;
        viewer.wait_frames(5, Duration::from_secs(20)).await;
        let offer = viewer.received.offer.lock().unwrap().clone().unwrap();
        assert_eq!(media_kinds(&offer), ["video", "application"]);
        // The offer is as it was before sound: no SSRC named.
        assert!(sdp_lines(&offer, "a=ssrc").is_empty(), "{offer}");
        let stats = wait_stats(port, Duration::from_secs(10), "one viewer", |s| {
            s["viewers"] == 1
        })
        .await;
        assert_eq!(stats["audio"], "none");
        assert!(stats["peers"][0]["audioPackets"].is_null(), "{stats}");
        viewer.leave().await;
    });
    feed_until_done(&mut streamer, &runtime, &frame(0), scenario);
    streamer.shutdown();
}
