//! `fake-instance`: a test double of a streaming instance, for the orchestrator's tests.
//!
//! It serves rust-core's control channel (`hello` → `welcome`, `ready`, `resize`, `getStats`,
//! `keyFrame`, `issueTicket`; types from `openspace-webrtc-protocol`) on
//! `127.0.0.1:$OSW_LISTEN_PORT`, under rust-core's own rules (the protocol crate's session
//! state machine and join tickets, so a viewer needs a ticket when `$OSW_CONTROL_SECRET` is
//! set), and prints what it was given, `READY port=<port>` once listening and
//! `RESIZE WxH` when resized, like the GL test host. A viewer's `join` gets `welcome`, then
//! an `error` (not fatal) saying what the fake saw, `fake: joined viewOnly=<bool>`; each later
//! viewer message gets `fake: got <type>`, so tests of the web role's signaling proxy can see
//! exactly what reached the instance. Environment knobs make it misbehave:
//!
//! | variable | effect |
//! | --- | --- |
//! | `FAKE_BIND_DELAY_MS` | wait before listening |
//! | `FAKE_READY_DELAY_MS` | answer `ready: false` until this long after start |
//! | `FAKE_NEVER_READY=1` | always answer `ready: false` |
//! | `FAKE_CRASH_AFTER_MS` | exit with `FAKE_EXIT_CODE` (default 3) after this long |
//! | `FAKE_CRASH_AFTER_READY_MS` | the same, this long after it first answered `ready: true` |
//! | `FAKE_IGNORE_SIGTERM=1` | survive SIGTERM (the supervisor must use SIGKILL) |
//! | `FAKE_RESIZE_DELAY_MS` | apply a resize this long after acknowledging it |
//! | `FAKE_IGNORE_RESIZE=1` | acknowledge resizes but keep the size |
//! | `FAKE_FRAMES_STOP_AFTER_MS` | report `framesFlowing: false` from this long after start (a hung host) |

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openspace_webrtc_protocol::session::{Admission, Decision, Session};
use openspace_webrtc_protocol::tickets::TicketBook;
use openspace_webrtc_protocol::{
    ControlReply, ControlRequest, PROTOCOL_VERSION, ViewerReply, ViewerRequest, ticket_in_query,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// The fake's behaviour, read once from the environment.
struct Knobs {
    /// `OSW_LISTEN_PORT`.
    port: u16,
    /// `OSW_CONTROL_SECRET`; empty disables control, as in rust-core.
    secret: String,
    /// When `ready` becomes true (`None`: never).
    ready_at: Option<Instant>,
    /// `FAKE_RESIZE_DELAY_MS`.
    resize_delay: Duration,
    /// `FAKE_IGNORE_RESIZE`.
    ignore_resize: bool,
    /// `FAKE_CRASH_AFTER_READY_MS`.
    crash_after_ready: Option<Duration>,
    /// Set once the crash after ready is scheduled.
    crash_scheduled: AtomicBool,
    /// `FAKE_FRAMES_STOP_AFTER_MS`, as an instant.
    frames_stop_at: Option<Instant>,
}

/// The "stream" size, changed by resizes.
type Size = Arc<Mutex<(u32, u32)>>;

fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_millis)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let start = Instant::now();
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    println!(
        "fake-instance: OSW_INSTANCE_ID={} OSW_LISTEN_PORT={} OSW_ENABLED={} \
         OSW_API_WEBSOCKET_PORT={} OSW_API_TCP_PORT={} OSW_WEBGUI_HTTP_PORT={} OSW_ICE_ADDRESSES={} DISPLAY={} secret_len={}",
        var("OSW_INSTANCE_ID"),
        var("OSW_LISTEN_PORT"),
        var("OSW_ENABLED"),
        var("OSW_API_WEBSOCKET_PORT"),
        var("OSW_API_TCP_PORT"),
        var("OSW_WEBGUI_HTTP_PORT"),
        var("OSW_ICE_ADDRESSES"),
        var("DISPLAY"),
        var("OSW_CONTROL_SECRET").len(),
    );
    if !var("PULSE_SERVER").is_empty() || !var("OSW_AUDIO").is_empty() {
        println!(
            "fake-instance: PULSE_SERVER={} OSW_AUDIO={} OSW_AUDIO_DEVICE={}",
            var("PULSE_SERVER"),
            var("OSW_AUDIO"),
            var("OSW_AUDIO_DEVICE"),
        );
    }
    let Ok(port) = var("OSW_LISTEN_PORT").parse::<u16>() else {
        eprintln!("fake-instance: OSW_LISTEN_PORT is not a port");
        std::process::exit(2);
    };
    let knobs = Arc::new(Knobs {
        port,
        secret: var("OSW_CONTROL_SECRET"),
        ready_at: (!env_flag("FAKE_NEVER_READY"))
            .then(|| start + env_ms("FAKE_READY_DELAY_MS").unwrap_or_default()),
        resize_delay: env_ms("FAKE_RESIZE_DELAY_MS").unwrap_or_default(),
        ignore_resize: env_flag("FAKE_IGNORE_RESIZE"),
        crash_after_ready: env_ms("FAKE_CRASH_AFTER_READY_MS"),
        frames_stop_at: env_ms("FAKE_FRAMES_STOP_AFTER_MS").map(|after| start + after),
        crash_scheduled: AtomicBool::new(false),
    });

    if let Some(after) = env_ms("FAKE_CRASH_AFTER_MS") {
        crash_after(after);
    }
    let _sigterm = if env_flag("FAKE_IGNORE_SIGTERM") {
        // Installing a handler replaces the default action (terminate).
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => Some(signal),
            Err(err) => {
                eprintln!("fake-instance: cannot ignore SIGTERM: {err}");
                None
            }
        }
    } else {
        None
    };

    if let Some(delay) = env_ms("FAKE_BIND_DELAY_MS") {
        sleep(delay).await;
    }
    let listener = match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("fake-instance: cannot listen on port {port}: {err}");
            std::process::exit(2);
        }
    };
    println!("READY port={port}");
    let size: Size = Arc::new(Mutex::new((1280, 720)));
    let tickets: Tickets = Arc::new(Mutex::new(TicketBook::new()));
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let (knobs, size, tickets) = (Arc::clone(&knobs), Arc::clone(&size), Arc::clone(&tickets));
        tokio::spawn(serve(socket, knobs, size, tickets));
    }
}

/// Exits with `FAKE_EXIT_CODE` (default 3) after `after`.
fn crash_after(after: Duration) {
    let code = std::env::var("FAKE_EXIT_CODE")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3);
    tokio::spawn(async move {
        sleep(after).await;
        eprintln!("fake-instance: crashing on purpose with status {code}");
        std::process::exit(code);
    });
}

/// The join tickets this fake issued; shared by its connections, as in rust-core.
type Tickets = Arc<Mutex<TicketBook>>;

/// Serves one connection with rust-core's own rules ([`Session`], [`TicketBook`]): the fake
/// differs from an instance only in what it does once a request is allowed.
async fn serve(socket: TcpStream, knobs: Arc<Knobs>, size: Size, tickets: Tickets) {
    let mut ticket = None;
    // The callback's type is tungstenite's, large error response included.
    #[allow(clippy::result_large_err)]
    let read_ticket = |request: &Request, response: Response| {
        ticket = ticket_in_query(request.uri().query()).map(str::to_string);
        Ok(response)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(socket, read_ticket).await else {
        return;
    };
    let managed = !knobs.secret.is_empty();
    let redeemed = ticket.map(|ticket| lock(&tickets).redeem(&ticket, std::time::Instant::now()));
    let mut session = Session::new(&knobs.secret, Admission::new(managed, redeemed));
    let mut viewers_seen = 0;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let (replies, close) = match session.on_text(text.as_str()) {
            Decision::ReplyViewer(reply) => {
                let fatal = matches!(reply, ViewerReply::Error { fatal: true, .. });
                (vec![to_json(&reply)], fatal)
            }
            Decision::ReplyControl(reply) => (vec![to_json(&reply)], false),
            Decision::Viewer(request) => {
                let mut replies = Vec::new();
                let seen = match request {
                    ViewerRequest::Join { view_only } => {
                        viewers_seen += 1;
                        replies.push(to_json(&ViewerReply::Welcome {
                            viewer_id: viewers_seen,
                            protocol: PROTOCOL_VERSION,
                            limit: openspace_webrtc_protocol::StreamLimit::default(),
                        }));
                        format!("joined viewOnly={view_only}")
                    }
                    ViewerRequest::Answer { .. } => "got answer".into(),
                    ViewerRequest::Ice { .. } => "got ice".into(),
                    ViewerRequest::Bye => "got bye".into(),
                };
                replies.push(to_json(&ViewerReply::Error {
                    message: format!("fake: {seen}"),
                    fatal: false,
                }));
                (replies, false)
            }
            Decision::Control(request) => (
                vec![to_json(&control(request, &knobs, &size, &tickets))],
                false,
            ),
        };
        for reply in replies {
            if ws.send(Message::text(reply)).await.is_err() {
                return;
            }
        }
        if close {
            let _ = ws.close(None).await;
            return;
        }
    }
}

fn to_json(message: &impl serde::Serialize) -> String {
    serde_json::to_string(message).unwrap_or_default()
}

/// Answers an authenticated control request.
fn control(request: ControlRequest, knobs: &Knobs, size: &Size, tickets: &Tickets) -> ControlReply {
    match request {
        ControlRequest::Hello { .. } => ControlReply::Error {
            message: "already authenticated".into(),
        },
        ControlRequest::IssueTicket { role } => {
            lock(tickets).answer_issue(role, std::time::Instant::now())
        }
        ControlRequest::Ready => {
            let ready = knobs.ready_at.is_some_and(|at| Instant::now() >= at);
            let (width, height) = if ready { *lock(size) } else { (0, 0) };
            if let Some(after) = knobs.crash_after_ready.filter(|_| ready)
                && !knobs.crash_scheduled.swap(true, Ordering::SeqCst)
            {
                crash_after(after);
            }
            let hung = knobs.frames_stop_at.is_some_and(|at| Instant::now() >= at);
            ControlReply::Ready {
                ready,
                width,
                height,
                frames_flowing: ready && !hung,
            }
        }
        ControlRequest::GetStats => {
            let (width, height) = *lock(size);
            ControlReply::Stats {
                stats: serde_json::json!({
                    "encoder": "fake", "width": width, "height": height,
                    "signalingPort": knobs.port, "viewers": 0,
                }),
            }
        }
        ControlRequest::Resize { width, height } => {
            // The real engine's rule: fitted into the default limit, even sides.
            match openspace_webrtc_protocol::fit_stream_size(
                width,
                height,
                openspace_webrtc_protocol::StreamLimit::default(),
            ) {
                Err(err) => ControlReply::Error {
                    message: err.to_string(),
                },
                Ok((width, height)) => {
                    if !knobs.ignore_resize {
                        let size = Arc::clone(size);
                        let delay = knobs.resize_delay;
                        tokio::spawn(async move {
                            sleep(delay).await;
                            *lock(&size) = (width, height);
                            println!("RESIZE {width}x{height}");
                        });
                    }
                    ControlReply::Ok {
                        request: "resize".into(),
                    }
                }
            }
        }
        ControlRequest::KeyFrame => ControlReply::Ok {
            request: "keyFrame".into(),
        },
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
