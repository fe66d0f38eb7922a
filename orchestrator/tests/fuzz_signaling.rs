//! Seeded fuzzing of signaling through the web origin's proxy (issue 9): about 2 550 messages
//! (3 200 generated; those after a connection's end are not sent) over 160 viewer connections
//! (owners and share links, four at a time) to one running instance:
//! joins, SDP answers mutated from a real Chromium answer (`rust-core/tests/fixtures/
//! answer.sdp`) and from the instance's own offer (lines reordered, dropped, duplicated,
//! altered, cut), hostile ICE candidates, `bye`, second joins, control messages, junk, binary
//! frames and oversized text.
//!
//! The instance is the real GL test host when `OSW_GL_HOST` names it and this process runs in
//! a loopback-only network namespace (each `join` makes the host open a WebRTC peer; the
//! README's test command provides both), so rust-core's own answer checks run for real;
//! otherwise the fake instance, and the output says so loudly. Afterwards: every connection
//! the fuzzer opened was answered and closed only after a fatal error, a `bye` or a frame over
//! the transport limit; the instance has no viewer left and still streams (`ready` says
//! `framesFlowing`); a fresh viewer joins and gets an offer (the fake sends none); and this
//! process (web role and supervisor) holds no more files or threads than before, within the
//! bound the assertion names. The host's own counts are printed, not bounded (rust-core's
//! tests bound those). `FUZZ_SIGNALING_DUMP=1` prints every message sent, to replay a failure.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::fuzz::{ProcCounts, Seeded, in_loopback_only_namespace, serial};
use common::web::TestWeb;
use common::{TempDir, TestSupervisor, fake_settings};
use futures_util::{SinkExt, StreamExt};
use openspace_webrtc_protocol::ViewerRequest;
use orchestrator::control_client::ControlClient;
use orchestrator::instances::XvfbMode;
use serde_json::{Value, json};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

/// Fixed, so a failure is reproduced by running the test again.
const SEED: u64 = 0x5eed_0009_0002_5d90;
const WORKERS: usize = 4;
const CONNECTIONS_PER_WORKER: usize = 40;
const MESSAGES_PER_CONNECTION: usize = 20;
/// A real Chromium answer to one of rust-core's offers.
const BROWSER_ANSWER: &str = include_str!("../../rust-core/tests/fixtures/answer.sdp");
/// rust-core's (and the proxy's) limit on a signaling message.
const LIMIT: usize = 64 * 1024;
/// The transport limit: a frame over it closes the connection (1009), by design.
const TRANSPORT_LIMIT: usize = 1024 * 1024;
/// Growth allowed over the baseline once every viewer is gone: a leak per connection (an
/// upstream socket, a task's thread) would be a hundred.
const FD_BOUND: usize = 8;
const THREAD_BOUND: usize = 4;
/// A real host's first frame under llvmpipe and Xvfb.
const STARTUP: Duration = Duration::from_secs(90);

/// Which instance the run streams from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Host {
    Real,
    Fake,
}

/// The supervisor: of one real GL test host when it may run here, else of one fake.
async fn supervisor() -> (TestSupervisor, Host) {
    let skip = |why: &str| {
        eprintln!(
            "\n!!!!! fuzz_signaling: the FAKE instance is used, so rust-core's answer checks are \
             NOT exercised: {why} !!!!!\n"
        );
    };
    let host = std::env::var_os("OSW_GL_HOST").map(PathBuf::from);
    let has_display = std::env::var("DISPLAY").is_ok_and(|d| !d.is_empty());
    let host = match host {
        None => {
            skip(
                "OSW_GL_HOST is not set (build tests/gl-host and set it, as scripts/test.sh does)",
            );
            None
        }
        Some(path) if !path.is_file() => {
            skip(&format!("OSW_GL_HOST={} is not a file", path.display()));
            None
        }
        Some(_) if !in_loopback_only_namespace() => {
            skip(
                "not in a loopback-only network namespace (run through scripts/in-loopback-netns.sh)",
            );
            None
        }
        Some(path) => Some(path),
    };
    let displays = match (&host, has_display) {
        (Some(_), false) => match common::xvfb_displays(1) {
            Some(base) => Some(base),
            None => {
                skip("there is no DISPLAY and no Xvfb");
                return (TestSupervisor::fake(1, |_| {}).await, Host::Fake);
            }
        },
        _ => None,
    };
    let Some(host) = host else {
        return (TestSupervisor::fake(1, |_| {}).await, Host::Fake);
    };
    let dir = TempDir::new("fuzz-signaling-host");
    let mut settings = fake_settings(1, dir.path());
    settings.command.executable = host;
    settings.command.args = ["--fps", "15", "--stats-interval", "0"]
        .map(String::from)
        .to_vec();
    settings.startup_timeout = STARTUP;
    settings.probe_interval = Duration::from_millis(200);
    settings.stop_timeout = Duration::from_secs(15);
    settings.xvfb.mode = if displays.is_some() {
        XvfbMode::Auto
    } else {
        XvfbMode::Never
    };
    settings.xvfb.display_base = displays.unwrap_or(0);
    (TestSupervisor::start(settings, dir).await, Host::Real)
}

/// `sdp` with one to four of: lines swapped, dropped, duplicated, altered, or the text cut.
fn mutate_sdp(rng: &mut Seeded, sdp: &str) -> String {
    let mut lines: Vec<String> = sdp.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        if lines.is_empty() {
            break;
        }
        let i = rng.below(lines.len());
        let j = rng.below(lines.len());
        match rng.below(8) {
            0 => lines.swap(i, j),
            1 => {
                lines.remove(i);
            }
            2 => {
                let line = lines[i].clone();
                lines.insert(j, line);
            }
            3 => {
                // A section moved: everything from one m= line on to the front.
                if let Some(m) = lines.iter().rposition(|l| l.starts_with("m=")) {
                    let tail: Vec<String> = lines.drain(m..).collect();
                    let at = lines.iter().position(|l| l.starts_with("m=")).unwrap_or(0);
                    lines.splice(at..at, tail);
                }
            }
            4 => {
                let swaps = [
                    ("a=setup:active", "a=setup:actpass"),
                    ("a=setup:active", "a=setup:holdconn"),
                    ("a=recvonly", "a=sendrecv"),
                    ("a=recvonly", "a=inactive"),
                    ("m=video 9", "m=video 0"),
                    ("UDP/TLS/RTP/SAVPF 96 97", "UDP/TLS/RTP/SAVPF 120"),
                    ("H264/90000", "VP8/90000"),
                    ("a=mid:video0", "a=mid:application1"),
                    ("sha-256", "md5"),
                    ("webrtc-datachannel", "webrtc-nonsense"),
                    ("a=sctp-port:5000", "a=sctp-port:99999999999"),
                    ("IN IP4 0.0.0.0", "IN IP6 ::"),
                    (":", "::"),
                    ("=", ""),
                ];
                let (from, to) = swaps[rng.below(swaps.len())];
                lines[i] = lines[i].replace(from, to);
            }
            5 => {
                let inserted = [
                    "a=candidate:1 1 UDP 2122260223 127.0.0.1 9 typ host",
                    "a=candidate:1 1 UDP 1 203.0.113.9 65536 typ host",
                    "a=candidate:x",
                    "a=extmap:99999 urn:x",
                    "a=rtpmap:96 H264/0",
                    "a=fmtp:96 profile-level-id=zzzzzz",
                    "a=ice-ufrag:",
                    "a=fingerprint:sha-256 00",
                    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                    "b=AS:-1",
                    "a=ssrc:4294967296 cname:x",
                    "v=1",
                    "\u{0}",
                    "a=\u{1F680}",
                ];
                lines.insert(i, inserted[rng.below(inserted.len())].to_string());
            }
            6 => {
                let keep = rng.below(lines[i].len() + 1);
                let cut: String = lines[i].chars().take(keep).collect();
                lines.truncate(i);
                lines.push(cut);
            }
            _ => {
                let line = lines[i].clone();
                let times = 1 + rng.below(1_500);
                lines.splice(i..i, std::iter::repeat_n(line, times));
            }
        }
    }
    let end = if rng.one_in(5) { "\n" } else { "\r\n" };
    lines.join(end) + end
}

/// One frame to send; `Close` frames are sent by the connection logic, not here.
enum Frame {
    Text(String),
    Binary(Vec<u8>),
}

/// One message after the join.
fn fuzzed(rng: &mut Seeded, offer: &str) -> (&'static str, Frame) {
    let text = |kind: &'static str, value: Value| (kind, Frame::Text(value.to_string()));
    match rng.below(24) {
        0..=7 => text(
            "answer (mutated browser answer)",
            json!({"type": "answer", "sdp": mutate_sdp(rng, BROWSER_ANSWER)}),
        ),
        8..=9 => text(
            "answer (mutated offer)",
            json!({"type": "answer", "sdp": mutate_sdp(rng, offer)}),
        ),
        10 => text(
            "answer (as recorded)",
            json!({"type": "answer", "sdp": BROWSER_ANSWER}),
        ),
        11..=13 => {
            let candidates = [
                "candidate:1 1 UDP 2122260223 127.0.0.1 9 typ host",
                "candidate:1 1 udp 1 127.0.0.1 0 typ host",
                "candidate:1 1 UDP 1 ::1 65535 typ host",
                "candidate:1 1 UDP 1 abcd.local 5000 typ host",
                "candidate:1 1 TCP 1 127.0.0.1 9 typ host tcptype active",
                "candidate:1 1 UDP 1 127.0.0.1 9 typ relay raddr 0.0.0.0 rport 0",
                "candidate:",
                "",
                "a=candidate:1 1 UDP 1 127.0.0.1 9 typ host",
                "candidate:1 1 UDP 99999999999999999999 127.0.0.1 99999 typ host",
                "candidate:1 1 UDP 1 127.0.0.1 9 typ host generation 0 ufrag x network-id 9",
            ];
            let candidate = if rng.one_in(8) {
                "candidate:".to_string() + &"9".repeat(rng.below(60_000))
            } else {
                candidates[rng.below(candidates.len())].to_string()
            };
            let index = *rng.pick(&[&0u64, &1, &2, &7, &65_535, &4_294_967_295]);
            text(
                "ice",
                json!({"type": "ice", "candidate": candidate, "sdpMLineIndex": index}),
            )
        }
        14 if rng.one_in(2) => text("bye", json!({"type": "bye"})),
        15 => text(
            "second join",
            json!({"type": "join", "viewOnly": rng.one_in(2)}),
        ),
        16 => {
            let control = [
                json!({"type": "hello", "secret": "guess"}),
                json!({"type": "ready"}),
                json!({"type": "getStats"}),
                json!({"type": "resize", "width": 7680, "height": 4320}),
                json!({"type": "keyFrame"}),
            ];
            text("control", control[rng.below(control.len())].clone())
        }
        17 => {
            let odd = [
                json!({"type": "ice", "candidate": 5}),
                json!({"type": "ice", "sdpMLineIndex": -1, "candidate": ""}),
                json!({"type": "ice", "candidate": "x", "sdpMLineIndex": 4_294_967_296u64}),
                json!({"type": "answer"}),
                json!({"type": "answer", "sdp": null}),
                json!({"type": "answer", "sdp": ""}),
                json!({"type": "answer", "sdp": "v=0"}),
                json!({"type": "bye", "reason": "x", "extra": [1, 2]}),
                json!({"type": "JOIN"}),
                json!({"type": ""}),
                json!({"type": null}),
                json!({"sdp": "v=0"}),
                json!([{"type": "bye"}]),
            ];
            text("wrong shape", odd[rng.below(odd.len())].clone())
        }
        18 => {
            let junk = [
                "",
                " ",
                "{",
                "null",
                "\"bye\"",
                "{\"type\":\"bye\"",
                "\u{0}",
            ];
            ("junk", Frame::Text(junk[rng.below(junk.len())].to_string()))
        }
        19 => {
            let len = rng.below(4_000);
            ("binary", Frame::Binary(rng.bytes(len)))
        }
        20 => {
            let len = *rng.pick(&[&(LIMIT - 30), &(LIMIT + 1), &(LIMIT + 5_000), &500_000]);
            let pad = "a".repeat(len.saturating_sub(30));
            text("oversized", json!({"type": "answer", "sdp": pad}))
        }
        21 if rng.one_in(10) => (
            "over the transport limit",
            Frame::Text("t".repeat(TRANSPORT_LIMIT + 1)),
        ),
        _ => {
            let once = mutate_sdp(rng, BROWSER_ANSWER);
            text(
                "answer (mutated twice)",
                json!({"type": "answer", "sdp": mutate_sdp(rng, &once)}),
            )
        }
    }
}

/// What the fuzzer saw.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    connections: usize,
    kinds: BTreeMap<&'static str, usize>,
    /// Replies by type (errors by fatal or not).
    replies: BTreeMap<String, usize>,
    /// Closes, by why they were fine.
    closes: BTreeMap<&'static str, usize>,
    /// Error messages seen, a few of each kind.
    samples: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.sent += other.sent;
        self.connections += other.connections;
        for (k, n) in other.kinds {
            *self.kinds.entry(k).or_default() += n;
        }
        for (k, n) in other.replies {
            *self.replies.entry(k).or_default() += n;
        }
        for (k, n) in other.closes {
            *self.closes.entry(k).or_default() += n;
        }
        for (k, n) in other.samples {
            *self.samples.entry(k).or_default() += n;
        }
    }
}

/// The state of one connection as the fuzzer reads it.
#[derive(Default)]
struct Seen {
    fatal: bool,
    closed: bool,
    /// How it closed: the close frame, or the error.
    how: String,
    /// The last messages received, for failure reports.
    last: Vec<String>,
    /// The first offer received.
    offer: Option<String>,
}

/// Reads what arrives within `wait`, tallying it; stops early once the socket closes.
async fn drain(ws: &mut common::web::Socket, wait: Duration, tally: &mut Tally, seen: &mut Seen) {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, ws.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Text(text)))) => {
                seen.last.push(text.as_str().chars().take(200).collect());
                if seen.last.len() > 4 {
                    seen.last.remove(0);
                }
                let reply: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                let kind = match reply["type"].as_str() {
                    Some("error") if reply["fatal"] == true => {
                        seen.fatal = true;
                        "error (fatal)".to_string()
                    }
                    Some(kind) => kind.to_string(),
                    None => format!(
                        "not JSON: {}",
                        text.as_str().chars().take(80).collect::<String>()
                    ),
                };
                if kind.starts_with("error") {
                    let message: String = reply["message"]
                        .as_str()
                        .unwrap_or("")
                        .split([':', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(70)
                        .collect();
                    *tally.samples.entry(message).or_default() += 1;
                }
                if reply["type"] == "offer"
                    && let Some(sdp) = reply["sdp"].as_str()
                {
                    seen.offer.get_or_insert_with(|| sdp.to_string());
                }
                *tally.replies.entry(kind).or_default() += 1;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                seen.closed = true;
                seen.how = format!("close frame {frame:?}");
                return;
            }
            Ok(None) => {
                seen.closed = true;
                seen.how = "end of stream".into();
                return;
            }
            Ok(Some(Err(err))) => {
                seen.closed = true;
                seen.how = format!("error {err}");
                return;
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// One worker: connections one after another, each a join and then fuzzed messages. Every
/// connection's messages are generated whatever happens to it, so the sequence depends on the
/// seed alone, not on when the instance answers; those after a close are not sent.
async fn worker(
    web: std::net::SocketAddr,
    paths: [String; 2],
    seed: u64,
    offer: Arc<str>,
    host: Host,
) -> Result<Tally, String> {
    let mut rng = Seeded::new(seed);
    let mut tally = Tally::default();
    for c in 0..CONNECTIONS_PER_WORKER {
        // Mostly the owner; a share link now and then (its join is made view-only).
        let path = &paths[usize::from(rng.one_in(4))];
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{web}{path}"))
            .await
            .map_err(|e| format!("seed {seed:#x}, connection {c}: the proxy refused: {e}"))?;
        tally.connections += 1;
        let mut seen = Seen::default();
        let mut expected_close: Option<&'static str> = None;
        let mut sent_last = Vec::new();
        // Whether a join went through the proxy (its first join does, whatever the kind).
        let mut joined = false;
        for m in 0..MESSAGES_PER_CONNECTION {
            let (kind, frame) = if m == 0 && !rng.one_in(10) {
                let join = json!({"type": "join", "viewOnly": rng.one_in(3)});
                ("join", Frame::Text(join.to_string()))
            } else {
                fuzzed(&mut rng, &offer)
            };
            if seen.closed {
                continue;
            }
            sent_last.push(match &frame {
                Frame::Text(t) => format!("{kind}: {}", t.chars().take(300).collect::<String>()),
                Frame::Binary(b) => format!("{kind}: {} bytes", b.len()),
            });
            if std::env::var_os("FUZZ_SIGNALING_DUMP").is_some()
                && let Frame::Text(t) = &frame
            {
                let quoted = serde_json::to_string(t).unwrap_or_default();
                // Wall-clock seconds of the day (UTC), to match the instance log's times.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64() % 86_400.0)
                    .unwrap_or(0.0);
                eprintln!("DUMP {now:.3} {seed:#x} {c} {m} {kind} {quoted}");
            }
            if sent_last.len() > 3 {
                sent_last.remove(0);
            }
            // Messages the connection ends with: wait for its end, so the next message is
            // not sent into a closing socket (whether it would be is timing, not the seed).
            let mut ends = false;
            // What the proxy makes of it (its own parse): a `bye` with extra fields is one.
            let mut request = None;
            let message = match frame {
                Frame::Text(text) => {
                    if text.len() > TRANSPORT_LIMIT {
                        expected_close = Some("after a frame over the transport limit (1009)");
                        ends = true;
                    } else if text.len() <= LIMIT {
                        request = serde_json::from_str::<ViewerRequest>(&text).ok();
                    }
                    Message::text(text)
                }
                Frame::Binary(bytes) => Message::binary(bytes),
            };
            // rust-core closes after a joined viewer's bye; the fake does not; the proxy
            // refuses a bye before any join.
            if request == Some(ViewerRequest::Bye) && joined && host == Host::Real {
                expected_close.get_or_insert("after our bye");
                ends = true;
            }
            if ws.send(message).await.is_err() {
                seen.closed = true;
                seen.how = "send failed".into();
                continue;
            }
            tally.sent += 1;
            *tally.kinds.entry(kind).or_default() += 1;
            joined |= matches!(request, Some(ViewerRequest::Join { .. }));
            let wait = if ends {
                Duration::from_secs(5)
            } else {
                Duration::from_millis(3)
            };
            drain(&mut ws, wait, &mut tally, &mut seen).await;
            if ends && !seen.closed {
                return Err(format!(
                    "seed {seed:#x}, connection {c}: still open 5 s after {kind}\n  last sent: \
                     {sent_last:#?}\n  last received: {:#?}",
                    seen.last
                ));
            }
        }
        if !seen.closed {
            // Whatever is still on its way, then our own close: the normal end.
            drain(&mut ws, Duration::from_millis(20), &mut tally, &mut seen).await;
        }
        let why = match (seen.closed, seen.fatal, expected_close) {
            (false, _, _) => "by us, at the end",
            (true, true, _) => "after a fatal error",
            (true, false, Some(why)) => why,
            (true, false, None) => {
                return Err(format!(
                    "seed {seed:#x}, connection {c}: closed ({}) without a fatal error, a bye or \
                     an oversized frame\n  last sent: {:#?}\n  last received: {:#?}",
                    seen.how, sent_last, seen.last
                ));
            }
        };
        *tally.closes.entry(why).or_default() += 1;
        let _ = ws.close(None).await;
    }
    Ok(tally)
}

/// The instance's control channel: `ready` and `getStats`.
async fn control(sup: &TestSupervisor) -> ControlClient {
    let (addr, secret) = sup.instances.control_endpoint(0).expect("slot 0 runs");
    ControlClient::connect(addr, &secret, Duration::from_secs(5))
        .await
        .expect("control channel")
}

/// Polls the instance's stats until `done` holds (the fake's stats have no viewer fields).
async fn wait_stats(sup: &TestSupervisor, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = control(sup).await.stats().await.unwrap_or(Value::Null);
        if done(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what}: {stats}");
        sleep(Duration::from_millis(200)).await;
    }
}

/// A fresh viewer through the proxy: welcome, then (real host) an offer.
async fn fresh_viewer(web: &TestWeb, path: &str, host: Host) {
    let mut ws = web.ws(path).await.expect("a fresh viewer is let in");
    common::web::send(&mut ws, json!({"type": "join"})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut welcomed = false;
    loop {
        let message = common::web::next_json(&mut ws).await;
        match message["type"].as_str() {
            Some("welcome") => welcomed = true,
            Some("offer") if host == Host::Real => {
                assert!(welcomed, "an offer before the welcome");
                let sdp = message["sdp"].as_str().unwrap_or("");
                assert!(sdp.starts_with("v=0") && sdp.contains("m=video"), "{sdp}");
                break;
            }
            Some("error") if host == Host::Fake && welcomed => {
                assert_eq!(message["message"], "fake: joined viewOnly=false");
                println!("fuzz_signaling: the fake instance sends no offer; welcome checked only");
                break;
            }
            _ => assert!(
                Instant::now() < deadline && message["fatal"] != true,
                "a fresh viewer got {message}"
            ),
        }
    }
    let _ = ws.close(None).await;
}

/// An instance streaming behind a web role, and its owner's session.
struct Streaming {
    sup: TestSupervisor,
    host: Host,
    web: TestWeb,
    owner: String,
    /// The instance's UUID.
    id: String,
}

/// Launches one instance through the web role (in `dir`) and waits until it runs.
async fn streaming(dir: &TempDir) -> Streaming {
    let (sup, host) = supervisor().await;
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let owner = web.session().await;
    let id = web.launch(&owner).await["id"]
        .as_str()
        .expect("an id")
        .to_string();
    let deadline = Instant::now() + STARTUP;
    loop {
        let (_, view) = web
            .json("GET", &format!("/api/instances/{id}"), Some(&owner), None)
            .await;
        if view["status"] == "RUNNING" {
            break;
        }
        assert!(
            Instant::now() < deadline && view["status"] != "ENDED",
            "the instance never ran: {view}\n{}",
            sup.log(0)
        );
        sleep(Duration::from_millis(200)).await;
    }
    Streaming {
        sup,
        host,
        web,
        owner,
        id,
    }
}

#[test]
fn seeded_signaling_through_the_proxy_leaves_the_instance_streaming() {
    serial(fuzz_signaling);
}

async fn fuzz_signaling() {
    let started = Instant::now();
    let dir = TempDir::new("fuzz-signaling");
    let Streaming {
        sup,
        host,
        web,
        owner,
        id,
    } = streaming(&dir).await;
    let (share, _) = web.share(&id, &owner).await;
    let owner_path = format!("/api/instances/{id}/signal?token={owner}");
    let share_path = format!("/api/instances/{id}/signal?token={share}");
    let ready = control(&sup).await.ready().await.expect("ready");
    assert!(
        ready.frames_flowing,
        "not streaming before the run: {ready:?}"
    );
    println!(
        "fuzz_signaling: seed {SEED:#x}, {:?} instance, running after {:.1} s",
        host,
        started.elapsed().as_secs_f64()
    );

    // Warm the proxy's path (and take the real offer the fuzzer mutates), then the baseline.
    fresh_viewer(&web, &owner_path, host).await;
    let offer: Arc<str> = if host == Host::Real {
        let mut ws = web.ws(&owner_path).await.expect("warm-up viewer");
        common::web::send(&mut ws, json!({"type": "join"})).await;
        let (mut tally, mut seen) = (Tally::default(), Seen::default());
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.offer.is_none() && !seen.closed && Instant::now() < deadline {
            drain(&mut ws, Duration::from_millis(100), &mut tally, &mut seen).await;
        }
        let _ = ws.close(None).await;
        seen.offer.expect("the warm-up viewer got an offer").into()
    } else {
        // The fake sends no offer: mutate the answer instead.
        BROWSER_ANSWER.into()
    };
    let baseline = ProcCounts::now();
    let host_pid = sup.instances.pid(0).expect("slot 0 runs");
    let host_before = process_counts(host_pid);

    let fuzzing = Instant::now();
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|i| {
            tokio::spawn(worker(
                web.addr,
                [owner_path.clone(), share_path.clone()],
                SEED ^ (i + 1).wrapping_mul(0x9e37_79b9),
                Arc::clone(&offer),
                host,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        match worker.await.expect("worker") {
            Ok(tally) => total.add(tally),
            Err(why) => panic!("{why}\ninstance log:\n{}", tail(&sup.log(0))),
        }
    }
    println!(
        "fuzz_signaling: {} messages over {} connections in {:.1} s; by kind {:?}",
        total.sent,
        total.connections,
        fuzzing.elapsed().as_secs_f64(),
        total.kinds
    );
    println!("fuzz_signaling: replies {:?}", total.replies);
    println!("fuzz_signaling: closes {:?}", total.closes);
    println!("fuzz_signaling: errors {:?}", total.samples);
    assert!(total.sent >= 2_000, "only {} messages went out", total.sent);
    // The proxy's and the instance's own error replies both came.
    assert!(
        total.replies.get("error").copied().unwrap_or(0) > 500,
        "{:?}",
        total.replies
    );

    // Every viewer freed, at the web role and (real host) at the instance.
    web.wait_for(&id, &owner, "without viewers", |v| v["viewers"] == 0)
        .await;
    if host == Host::Real {
        wait_stats(&sup, "fuzzed viewers were not freed", |s| {
            s["viewers"] == 0 && s["viewersLeaving"] == 0
        })
        .await;
    }
    let ready = control(&sup).await.ready().await.expect("ready");
    assert!(
        ready.ready && ready.frames_flowing,
        "the instance stopped streaming: {ready:?}\n{}",
        tail(&sup.log(0))
    );
    fresh_viewer(&web, &owner_path, host).await;
    assert_eq!(
        sup.instances.pid(0),
        Some(host_pid),
        "the instance was restarted"
    );
    println!(
        "fuzz_signaling: the {host:?} instance's process: {host_before} before, {} after",
        process_counts(host_pid)
    );
    let (_, view) = web
        .json("GET", &format!("/api/instances/{id}"), Some(&owner), None)
        .await;
    assert_eq!(view["status"], "RUNNING", "{view}");
    // What the host complained about (GLib criticals, panics): told, not judged here.
    let log = sup.log(0);
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CRITICAL") || l.contains("panicked") || l.contains(" ERROR "))
        .collect();
    println!(
        "fuzz_signaling: the instance logged {} criticals, errors or panics{}{}",
        complaints.len(),
        if complaints.is_empty() { "" } else { ":\n  " },
        complaints.join("\n  ")
    );

    baseline
        .assert_no_growth(
            "fuzz_signaling",
            FD_BOUND,
            THREAD_BOUND,
            Duration::from_secs(15),
        )
        .await;
    web.shutdown().await;
    sup.shutdown().await;
    println!(
        "fuzz_signaling: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Open files and threads of process `pid` (the instance), for the output.
fn process_counts(pid: u32) -> String {
    let count = |what: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{what}"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    format!("{} fds, {} threads", count("fd"), count("task"))
}

/// The last lines of a log, for failure messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Found by the fuzzer (seed 0x5eed_0009_0002_5d90, the worker of seed 0x5eed0008daa430bb,
/// connection 0, message 3): an answer whose video section carries an SSRC past 32 bits
/// (`a=ssrc:4294967296 cname:x`) passed rust-core's answer checks, and webrtcbin then logged
/// `CRITICAL **: transport_stream_add_ssrc_map_item: assertion 'ssrc != 0' failed`. rust-core
/// now refuses SSRCs that are not 32-bit numbers above 0 (unit tests in `pipeline/answer.rs`);
/// this test holds the host to living on: the answer gets a reply or is taken, the instance
/// keeps streaming and a newcomer gets an offer. Whether webrtcbin complained is printed.
#[test]
fn an_answer_with_an_ssrc_past_32_bits_leaves_the_instance_streaming() {
    serial(|| async {
        let dir = TempDir::new("fuzz-signaling-ssrc");
        let Streaming {
            sup,
            host,
            web,
            owner,
            id,
        } = streaming(&dir).await;
        let path = format!("/api/instances/{id}/signal?token={owner}");
        for ssrc in ["4294967296", "0"] {
            let mut ws = web.ws(&path).await.expect("a viewer");
            common::web::send(&mut ws, json!({"type": "join"})).await;
            let (mut tally, mut seen) = (Tally::default(), Seen::default());
            let deadline = Instant::now() + Duration::from_secs(20);
            while host == Host::Real && seen.offer.is_none() && Instant::now() < deadline {
                drain(&mut ws, Duration::from_millis(100), &mut tally, &mut seen).await;
            }
            let answer = BROWSER_ANSWER.replace(
                "a=mid:video0\r\n",
                &format!("a=mid:video0\r\na=ssrc:{ssrc} cname:x\r\n"),
            );
            common::web::send(&mut ws, json!({"type": "answer", "sdp": answer})).await;
            drain(&mut ws, Duration::from_millis(500), &mut tally, &mut seen).await;
            assert!(
                !seen.closed && !seen.fatal,
                "a=ssrc:{ssrc}: {:?}",
                seen.last
            );
            let _ = ws.close(None).await;
            let criticals = sup.log(0).matches("CRITICAL").count();
            let refused = tally
                .samples
                .keys()
                .any(|m| m.starts_with("the answer was refused"));
            println!(
                "an_answer_with_an_ssrc_past_32_bits: a=ssrc:{ssrc} was {}; the {host:?} \
                 instance has logged {criticals} GLib criticals so far",
                if refused { "refused" } else { "taken" }
            );
        }
        let ready = control(&sup).await.ready().await.expect("ready");
        assert!(
            ready.frames_flowing,
            "the instance stopped streaming: {ready:?}"
        );
        fresh_viewer(&web, &path, host).await;
        web.shutdown().await;
        sup.shutdown().await;
    });
}

/// Open files of process `pid`, once they stop falling (GStreamer's pools wind down).
async fn settled_fds(pid: u32) -> usize {
    let count = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let mut last = count();
    for _ in 0..20 {
        sleep(Duration::from_millis(500)).await;
        let now = count();
        if now >= last {
            return now;
        }
        last = now;
    }
    last
}

/// Remote candidates a browser might trickle: plain addresses (the fuzzer's, without the broken
/// ones), and the mDNS name Chromium sends by default instead of its address.
const REMOTE_CANDIDATES: &[&str] = &[
    "candidate:1 1 UDP 2122260223 127.0.0.1 9 typ host",
    "candidate:1 1 UDP 1 ::1 65535 typ host",
    "candidate:1 1 TCP 1 127.0.0.1 9 typ host tcptype active",
    "candidate:1 1 UDP 1 127.0.0.1 9 typ relay raddr 0.0.0.0 rport 0",
];
const MDNS_CANDIDATE: &[&str] = &["candidate:1 1 UDP 1 abcd.local 5000 typ host"];

/// How a viewer leaves.
struct Leaving {
    how: &'static str,
    /// Waits for the offer first.
    wait_offer: bool,
    /// Sends this answer.
    answer: Option<&'static str>,
    /// Then trickles these candidates.
    candidates: &'static [&'static str],
    /// Says bye before closing.
    bye: bool,
}

/// Found by the fuzzer: after `seeded_signaling_through_the_proxy_leaves_the_instance_streaming`
/// the real host held about 50 more files than before (UDP and listening TCP sockets on
/// 127.0.0.1, multicast UDP, netlink sockets, eventfds), growing with the connections, though
/// its stats said no viewer was left or leaving. Narrowed down here: a viewer whose answer was
/// taken and who trickled an mDNS candidate (`… abcd.local 5000 typ host`, what Chromium sends
/// by default) leaves about 12 files behind in the host when it goes; every other way of
/// leaving freed everything. rust-core now skips mDNS candidates (a rendering server cannot
/// resolve them; ICE learns the browser's address as peer-reflexive). Each way 20 times: the
/// host's files must come back to within 8 of where they were.
#[test]
fn viewers_that_leave_free_every_file_of_the_instance() {
    serial(|| async {
        let dir = TempDir::new("fuzz-signaling-fds");
        let Streaming {
            sup,
            host,
            web,
            owner,
            id,
        } = streaming(&dir).await;
        if host != Host::Real {
            eprintln!("viewers_that_leave_free_every_file_of_the_instance: needs the real host");
            return;
        }
        let pid = sup.instances.pid(0).expect("slot 0 runs");
        let path = format!("/api/instances/{id}/signal?token={owner}");
        let mut report = Vec::new();
        let taken = Some(BROWSER_ANSWER);
        let leave = |how, wait_offer, answer, candidates, bye| Leaving {
            how,
            wait_offer,
            answer,
            candidates,
            bye,
        };
        let scenarios = [
            leave("closed at once after join", false, None, &[], false),
            leave("closed after the offer", true, None, &[], false),
            leave(
                "closed after a refused answer",
                true,
                Some("v=0\r\n"),
                &[],
                false,
            ),
            leave("closed after a taken answer", true, taken, &[], false),
            leave("bye after a taken answer", true, taken, &[], true),
            leave(
                "closed after candidates, no answer",
                true,
                None,
                REMOTE_CANDIDATES,
                false,
            ),
            leave(
                "closed after an mDNS candidate, no answer",
                true,
                None,
                MDNS_CANDIDATE,
                false,
            ),
            leave(
                "closed after a taken answer and candidates",
                true,
                taken,
                REMOTE_CANDIDATES,
                false,
            ),
            leave(
                "closed after a taken answer and an mDNS candidate",
                true,
                taken,
                MDNS_CANDIDATE,
                false,
            ),
        ];
        for Leaving {
            how,
            wait_offer,
            answer,
            candidates,
            bye,
        } in scenarios
        {
            let before = settled_fds(pid).await;
            for _ in 0..20 {
                let mut ws = web.ws(&path).await.expect("a viewer");
                common::web::send(&mut ws, json!({"type": "join"})).await;
                let (mut tally, mut seen) = (Tally::default(), Seen::default());
                let deadline = Instant::now() + Duration::from_secs(20);
                while wait_offer
                    && seen.offer.is_none()
                    && !seen.closed
                    && Instant::now() < deadline
                {
                    drain(&mut ws, Duration::from_millis(50), &mut tally, &mut seen).await;
                }
                if let Some(sdp) = answer {
                    common::web::send(&mut ws, json!({"type": "answer", "sdp": sdp})).await;
                }
                for candidate in candidates {
                    let ice = json!({"type": "ice", "candidate": candidate, "sdpMLineIndex": 0});
                    common::web::send(&mut ws, ice).await;
                }
                if bye {
                    common::web::send(&mut ws, json!({"type": "bye"})).await;
                }
                drain(&mut ws, Duration::from_millis(100), &mut tally, &mut seen).await;
                let _ = ws.close(None).await;
            }
            wait_stats(&sup, "viewers not freed", |s| {
                s["viewers"] == 0 && s["viewersLeaving"] == 0
            })
            .await;
            let after = settled_fds(pid).await;
            println!(
                "viewers_that_leave: {how}, 20 times: host files {before} -> {after} ({})",
                process_counts(pid)
            );
            report.push((how, before, after));
        }
        web.shutdown().await;
        sup.shutdown().await;
        for (how, before, after) in report {
            assert!(
                after <= before + 8,
                "{how}, 20 times: the host's open files went from {before} to {after} (bound: +8)"
            );
        }
    });
}
