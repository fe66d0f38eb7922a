//! The owner's proxy to an instance's OpenSpace JSON API, `/api/instances/<uuid>/openspace`:
//! who may open it (the owner only; share links, strangers, wrong tokens and unknown
//! instances are refused, and no answer names an address or port), what a browser hears when
//! the instance serves no API, and, with the REAL GL test host and its stand-in of that API, a
//! Lua call through the proxy and its answer.
//!
//! The real-host test needs `OSW_GL_HOST` (as `tests/gl_host.rs`); without it that test prints
//! a loud SKIPPED line and passes, the others still run. No WebRTC peer is opened here (only
//! WebSockets on 127.0.0.1).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::web::{TestWeb, WAIT, header, next_json};
use common::{TempDir, TestSupervisor, fake_settings, free_port_base};
use futures_util::{SinkExt, StreamExt};
use orchestrator::instances::{InstanceSettings, XvfbMode};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A real host under llvmpipe on a busy machine may take a while to deliver its first frame.
const STARTUP: Duration = Duration::from_secs(90);

/// Gives the instances an API WebSocket range of their own (the default 4682 + N may be in
/// use by another test's hosts), clear of their signaling range.
fn private_api_ports(settings: &mut InstanceSettings) {
    let slots = u16::try_from(settings.slots).unwrap_or(1);
    let signaling = settings.ports.signaling_base..settings.ports.signaling_base + slots;
    loop {
        let base = free_port_base(slots);
        if !signaling.contains(&base) && !(base..base + slots).contains(&signaling.start) {
            settings.ports.api_websocket_base = base;
            return;
        }
    }
}

/// What an upgrade request for `path` gets when it is refused: status and JSON body.
async fn refused(web: &TestWeb, path: &str) -> (u16, Value) {
    refused_with(web, path, "").await
}

/// [`refused`] with `extra` header lines.
async fn refused_with(web: &TestWeb, path: &str, extra: &str) -> (u16, Value) {
    let (status, headers, mut conn) = web.upgrade(path, extra).await;
    let length: usize = header(&headers, "content-length").parse().unwrap_or(0);
    let mut body = vec![0u8; length];
    timeout(WAIT, conn.read_exact(&mut body))
        .await
        .expect("body in time")
        .expect("body");
    let text = String::from_utf8_lossy(&body).to_string();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{path}: not JSON ({status}): {text}"));
    (status, value)
}

/// Polls the instance until it is RUNNING, for up to `within`.
async fn wait_running(web: &TestWeb, id: &str, token: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (_, view) = web
            .json("GET", &format!("/api/instances/{id}"), Some(token), None)
            .await;
        if view["status"] == "RUNNING" {
            return;
        }
        assert!(
            view["status"] != "ENDED" && Instant::now() < deadline,
            "instance never RUNNING: {view}"
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// The next close frame of `ws` (skipping other messages): code and reason.
async fn close_of(ws: &mut common::web::Socket) -> (CloseCode, String) {
    loop {
        let message = timeout(WAIT, ws.next())
            .await
            .expect("a close in time")
            .expect("a close frame before the end")
            .expect("websocket ok");
        if let Message::Close(frame) = message {
            let frame = frame.expect("a close code");
            return (frame.code, frame.reason.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_owner_may_open_the_api_and_no_answer_names_an_address() {
    let sup = TestSupervisor::fake(1, |s| {
        private_api_ports(s);
        // Long enough to try the proxy while the instance starts.
        s.command
            .env
            .insert("FAKE_READY_DELAY_MS".into(), "1500".into());
    })
    .await;
    let api_port = sup.instances.settings().ports.api_websocket_base;
    let dir = TempDir::new("openspace-api-access");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let owner = web.session().await;
    let stranger = web.session().await;
    let id = web.launch(&owner).await["id"].as_str().unwrap().to_string();
    let path = |token: &str| format!("/api/instances/{id}/openspace?token={token}");

    // Still starting: there is no API to reach yet.
    let (status, body) = refused(&web, &path(&owner)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "the instance is still starting, not running");
    wait_running(&web, &id, &owner, WAIT).await;

    let (spectator, _) = web.share(&id, &owner).await;

    let unknown_uuid = "6f1c2a9e-0b7d-4c3e-9a51-2d8e4f6a7b90";
    for (path, want, sentence) in [
        (
            path(&spectator),
            403,
            "a share link only lets you watch this instance",
        ),
        (
            path(&stranger),
            403,
            "this instance belongs to another browser session",
        ),
        (
            path("s0000000000000000000000000000000000000000000000000000000000000000"),
            401,
            "unknown session token",
        ),
        (path("nonsense"), 401, "unknown session token"),
        (
            format!("/api/instances/{id}/openspace"),
            401,
            "no session token: send it as \"Authorization: Bearer <token>\"",
        ),
        (
            format!("/api/instances/{unknown_uuid}/openspace?token={owner}"),
            404,
            "no such instance",
        ),
        (
            format!("/api/instances/not-a-uuid/openspace?token={owner}"),
            404,
            "no such instance",
        ),
    ] {
        let (status, body) = refused(&web, &path).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (want, Some(sentence)),
            "{path}"
        );
        let text = body.to_string();
        for hidden in ["127.0.0.1", &api_port.to_string(), "4682"] {
            assert!(!text.contains(hidden), "{hidden} leaked: {text}");
        }
    }
    // Pages of other sites cannot use a token they lured out of the owner.
    let (status, body) = refused_with(&web, &path(&owner), "Origin: http://evil.example\r\n").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            403,
            Some("WebSocket connections are only accepted from this site's own pages")
        )
    );
    // A plain GET is told it is a WebSocket.
    let (status, body) = web.json("GET", &path(&owner), None, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (426, Some("this endpoint is a WebSocket"))
    );

    // The owner gets a WebSocket; the fake instance serves no API, so it closes at once
    // with a reason, and without the address it tried.
    let mut api = web.ws(&path(&owner)).await.expect("the owner's upgrade");
    let (code, reason) = close_of(&mut api).await;
    assert_eq!(code, CloseCode::Away);
    assert_eq!(reason, "the instance's OpenSpace API cannot be reached");

    // Once it has ended, there is nothing to reach.
    web.stop(&id, &owner).await;
    let (status, body) = refused(&web, &path(&owner)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("the instance is ended, not running"))
    );

    web.shutdown().await;
    sup.shutdown().await;
}

/// A supervisor of one real GL test host, or None (after a loud message) without
/// `OSW_GL_HOST`.
async fn real_host() -> Option<TestSupervisor> {
    let Some(host) = std::env::var_os("OSW_GL_HOST") else {
        eprintln!(
            "\n!!!!! SKIPPED: OSW_GL_HOST is not set; the OpenSpace API proxy was NOT tested against \
             the real GL test host. Build it (cmake -S tests/gl-host -B build/gl-host -G Ninja && \
             cmake --build build/gl-host) and run with OSW_GL_HOST=$PWD/build/gl-host/osw-gl-host !!!!!\n"
        );
        return None;
    };
    let host = PathBuf::from(host);
    assert!(
        host.is_file(),
        "OSW_GL_HOST={} is not a file",
        host.display()
    );
    let has_display = std::env::var("DISPLAY").is_ok_and(|d| !d.is_empty());
    let display_base = if has_display {
        0
    } else {
        common::xvfb_displays(1).expect("Xvfb is needed to run the GL host without a display")
    };
    let dir = TempDir::new("openspace-api-host");
    let mut settings = fake_settings(1, dir.path());
    private_api_ports(&mut settings);
    settings.command.executable = host;
    settings.command.args = ["--fps", "10", "--stats-interval", "0"]
        .map(String::from)
        .to_vec();
    settings.startup_timeout = STARTUP;
    settings.probe_interval = Duration::from_millis(200);
    settings.stop_timeout = Duration::from_secs(15);
    settings.xvfb.mode = XvfbMode::Auto;
    settings.xvfb.display_base = display_base;
    Some(TestSupervisor::start(settings, dir).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owner_runs_lua_in_the_real_host_through_the_proxy() {
    let Some(sup) = real_host().await else {
        return;
    };
    let dir = TempDir::new("openspace-api-lua");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let owner = web.session().await;
    let id = web.launch(&owner).await["id"].as_str().unwrap().to_string();
    wait_running(&web, &id, &owner, STARTUP).await;

    let mut api = web
        .ws(&format!("/api/instances/{id}/openspace?token={owner}"))
        .await
        .expect("the owner's upgrade");

    // Real OpenSpace (and the stand-in) close a connection whose first message is not this.
    let handshake =
        json!({"type": "apiHandshake", "apiVersion": {"major": 1, "minor": 0, "patch": 0}});
    api.send(Message::text(handshake.to_string()))
        .await
        .unwrap();
    // A script without "return": true is run and not answered; the next one is, so the first
    // answer to arrive is the second call's (the proxy keeps the order).
    let quiet = json!({"topic": 1, "type": "luascript",
        "payload": {"script": "openspace.time.setPause(true)"}});
    api.send(Message::text(quiet.to_string())).await.unwrap();
    let call = r#"{"topic":2,"type":"luascript","payload":{"script":"return openspace.webrtc.status()","return":true}}"#;
    api.send(Message::text(call)).await.unwrap();
    let answer = timeout(WAIT, api.next())
        .await
        .expect("an answer in time")
        .expect("socket open")
        .expect("websocket ok");
    // Byte for byte what the stand-in wrote: the proxy passes text unchanged.
    assert_eq!(
        answer,
        Message::text(
            r#"{"payload":{"1":"osw-gl-host ran: return openspace.webrtc.status()"},"topic":2}"#
        )
    );

    // Topic types the stand-in does not serve get OpenSpace's error shape.
    api.send(Message::text(
        json!({"topic": 3, "type": "get", "payload": {"property": "NavigationHandler.OrbitalNavigator.Anchor"}}).to_string(),
    ))
    .await
    .unwrap();
    let error = next_json(&mut api).await;
    assert_eq!(
        (
            error["status"].as_str(),
            error["topic"].as_u64(),
            error["code"].as_u64()
        ),
        (Some("error"), Some(3), Some(404)),
        "{error}"
    );

    // Too large for the proxy: answered by it, never forwarded; the socket stays usable.
    let big = json!({"topic": 4, "type": "luascript",
        "payload": {"script": "x".repeat(70_000), "return": true}});
    api.send(Message::text(big.to_string())).await.unwrap();
    let refusal = next_json(&mut api).await;
    assert_eq!(
        (refusal["code"].as_u64(), refusal["topic"].as_u64()),
        (Some(413), Some(4)),
        "{refusal}"
    );
    api.send(Message::text(
        json!({"topic": 5, "type": "luascript", "payload": {"script": "return 5", "return": true}})
            .to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(
        next_json(&mut api).await,
        json!({"payload": {"1": "osw-gl-host ran: return 5"}, "topic": 5})
    );

    // The host logged the scripts it was asked to run, and not the refused one.
    let deadline = Instant::now() + WAIT;
    loop {
        let log = sup.log(0);
        let ran: Vec<&str> = log.lines().filter(|l| l.starts_with("api: ran ")).collect();
        if ran.len() >= 3 {
            assert_eq!(
                ran,
                [
                    "api: ran openspace.time.setPause(true)",
                    "api: ran return openspace.webrtc.status()",
                    "api: ran return 5",
                ],
                "{log}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host did not log its scripts:\n{log}"
        );
        sleep(Duration::from_millis(100)).await;
    }

    // Stopping the instance closes the proxied socket.
    web.stop(&id, &owner).await;
    let (code, reason) = close_of(&mut api).await;
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Normal, "the instance closed the connection")
    );

    web.shutdown().await;
    sup.shutdown().await;
}
