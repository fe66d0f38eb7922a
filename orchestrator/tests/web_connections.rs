//! The web origin's connections under misuse: HTTP clients that never finish their headers or
//! sit idle are dropped, WebSocket frames that break the protocol get the close code that says
//! why, a signaling message over the protocol's limit is refused with an error while the
//! connection stays usable, and a thousand abandoned connections (mute, or upgraded push
//! sockets never read) keep no new request waiting. Only 127.0.0.1 is used.

mod common;

use std::time::Duration;

use common::web::{TestWeb, close_code, closed_within, next_json, read_response, send, ws_frame};
use common::{TempDir, TestSupervisor};
use futures_util::{SinkExt, StreamExt};
use openspace_webrtc_protocol::MAX_MESSAGE_BYTES;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

/// Far longer than the one-second header timeout these tests configure: a connection still
/// open after this was kept, not merely slow to close.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn headers_that_never_finish_and_idle_kept_alive_connections_are_closed() {
    let dir = TempDir::new("web-slow");
    let web = TestWeb::start(dir.path(), None, |s| {
        s.limits.header_timeout = Duration::from_secs(1);
    })
    .await;

    // Half a request head, then silence.
    let mut slow = web.connect().await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .unwrap();
    // A connection that never sends a byte.
    let mut mute = web.connect().await.unwrap();
    // One whole request on a kept-alive connection, answered, then silence.
    let mut idle = web.connect().await.unwrap();
    idle.write_all(format!("GET /api/health HTTP/1.1\r\nHost: {}\r\n\r\n", web.addr).as_bytes())
        .await
        .unwrap();
    let (status, _, body) = read_response(&mut idle).await.expect("an answer");
    assert_eq!((status, body.contains("true")), (200, true), "{body}");

    assert!(
        closed_within(&mut slow, CLOSE_WITHIN).await,
        "a connection with unfinished headers was kept open"
    );
    assert!(
        closed_within(&mut mute, CLOSE_WITHIN).await,
        "a connection that sent nothing was kept open"
    );
    assert!(
        closed_within(&mut idle, CLOSE_WITHIN).await,
        "an idle kept-alive connection was kept open"
    );
    // The origin itself is fine.
    assert_eq!(web.request("GET", "/api/health", None, None).await.0, 200);
    web.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_frames_that_break_the_protocol_get_their_close_codes() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("web-frames");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let token = web.session().await;
    let id = web.launch_running(&token).await;

    let over_the_limit = {
        // A header announcing 2 MiB; the payload need not follow.
        let mut frame = vec![0x81, 0x80 | 127];
        frame.extend_from_slice(&(2u64 << 20).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame
    };
    let cases: [(&str, Vec<u8>, u16); 6] = [
        (
            "invalid UTF-8 in a text frame",
            ws_frame(0x1, &[b'{', 0xff, 0xfe, b'}'], true, false, true),
            1007,
        ),
        (
            "invalid UTF-8 across fragments",
            [
                ws_frame(0x1, b"{\"a\":\"", false, false, true),
                ws_frame(0x0, &[0xc3], true, false, true),
            ]
            .concat(),
            1007,
        ),
        (
            "a continuation without a start",
            ws_frame(0x0, b"x", true, false, true),
            1002,
        ),
        (
            "a reserved bit set",
            ws_frame(0x1, b"{}", true, true, true),
            1002,
        ),
        (
            "an unmasked client frame",
            ws_frame(0x1, b"{}", true, false, false),
            1002,
        ),
        ("a frame over the transport limit", over_the_limit, 1009),
    ];
    for path in [
        format!("/api/instances/{id}/signal?token={token}"),
        format!("/api/events?token={token}"),
    ] {
        for (what, bytes, want) in &cases {
            let (status, _, mut conn) = web.upgrade(&path, "").await;
            assert_eq!(status, 101, "{path}");
            conn.write_all(bytes).await.unwrap();
            assert_eq!(
                close_code(&mut conn).await,
                Some(*want),
                "{what} on {path}: expected close code {want}"
            );
        }
    }
    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_signaling_message_gets_an_error_and_the_connection_stays() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("web-oversized");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let token = web.session().await;
    let id = web.launch_running(&token).await;
    let mut viewer = web
        .ws(&format!("/api/instances/{id}/signal?token={token}"))
        .await
        .unwrap();
    send(&mut viewer, json!({"type": "join"})).await;
    assert_eq!(next_json(&mut viewer).await["type"], "welcome");
    next_json(&mut viewer).await; // the fake's "joined"

    let huge = json!({"type": "answer", "sdp": "x".repeat(MAX_MESSAGE_BYTES + 10)}).to_string();
    viewer.send(Message::text(huge.clone())).await.unwrap();
    let refused = next_json(&mut viewer).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["fatal"], false, "{refused}");
    assert_eq!(
        refused["message"],
        format!(
            "message of {} bytes is larger than the limit of {MAX_MESSAGE_BYTES}",
            huge.len()
        )
    );
    // Still connected, still relayed.
    send(&mut viewer, json!({"type": "answer", "sdp": "v=0"})).await;
    assert_eq!(next_json(&mut viewer).await["message"], "fake: got answer");

    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_abandoned_connections_do_not_keep_the_next_page_waiting() {
    // This process holds both ends of every connection.
    let limit = orchestrator::server::raise_descriptor_limit().expect("descriptor limit");
    assert!(
        limit >= 2400,
        "this test needs 2400 open files, the hard limit is {limit}"
    );
    let dir = TempDir::new("web-abandoned");
    let web = TestWeb::start(dir.path(), None, |_| {}).await;
    let token = web.session().await;
    let abandon = async {
        let mut mute = Vec::new();
        let mut upgraded = Vec::new();
        for i in 0..1000 {
            if i % 2 == 0 {
                // A connection that never sends a byte.
                mute.push(web.connect().await.expect("connect"));
            } else {
                // A session's push WebSocket, upgraded, then never read again.
                let ws = web
                    .ws(&format!("/api/events?token={token}"))
                    .await
                    .expect("upgrade");
                upgraded.push(ws);
            }
        }
        (mute, upgraded)
    };
    let held = tokio::time::timeout(Duration::from_secs(60), abandon)
        .await
        .expect("earlier idle connections kept new ones from being served");
    let started = std::time::Instant::now();
    let (status, _, _) = tokio::time::timeout(
        Duration::from_secs(2),
        web.request("GET", "/api/health", None, None),
    )
    .await
    .expect("a new request is answered at once, whatever was abandoned before it");
    assert_eq!(status, 200);
    println!(
        "GET /api/health with 1000 abandoned connections: {:?}",
        started.elapsed()
    );
    drop(held);
    web.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_that_stops_answering_pings_is_closed_and_one_that_answers_is_kept() {
    let dir = TempDir::new("web-pings");
    let web = TestWeb::start(dir.path(), None, |s| {
        s.limits.websocket_ping_every = Duration::from_millis(200);
    })
    .await;
    let token = web.session().await;
    let mut gone = web.ws(&format!("/api/events?token={token}")).await.unwrap();
    let mut alive = web.ws(&format!("/api/events?token={token}")).await.unwrap();

    // `alive` reads all along (tungstenite answers each ping as it reads); `gone` reads
    // nothing, so it sends no pong, like a browser whose machine went to sleep.
    let reader = tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(message) = tokio::time::timeout_at(until, alive.next()).await {
            match message {
                Some(Ok(Message::Close(frame))) => return Err(format!("closed: {frame:?}")),
                Some(Ok(_)) => {}
                other => return Err(format!("ended: {other:?}")),
            }
        }
        Ok(alive)
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut alive = reader
        .await
        .unwrap()
        .expect("a socket that answers pings stays open");

    // The silent one was closed by the origin: a close frame saying why, or (when reading
    // it now makes tungstenite answer a queued ping on the closed socket) a broken pipe.
    loop {
        match tokio::time::timeout(CLOSE_WITHIN, gone.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(
                    frame.expect("a reason").reason.as_str(),
                    "no answer to pings"
                );
                break;
            }
            Ok(Some(Ok(_))) => continue, // the snapshot and the unanswered pings
            Ok(Some(Err(_)) | None) => break,
            Err(_) => panic!("the silent socket is still open"),
        }
    }
    // And the one that answers still works.
    alive.send(Message::Ping(Vec::new().into())).await.unwrap();
    web.shutdown().await;
}
