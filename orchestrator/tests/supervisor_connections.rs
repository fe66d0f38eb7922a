//! Connection hygiene of the supervisor protocol: clients that connect and walk away (with or
//! without finishing the WebSocket handshake) never keep the next client waiting, and idle
//! connections are closed after the idle timeout, busy ones never.

mod common;

use std::time::Duration;

use common::{Client, TempDir, TestSupervisor, fake_settings};
use futures_util::StreamExt;
use orchestrator::{ConnectionLimits, ServerSettings};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Connections opened and abandoned before the real client comes.
const ABANDONED: usize = 1000;

async fn supervisor(limits: ConnectionLimits) -> TestSupervisor {
    let dir = TempDir::new("connections");
    let settings = fake_settings(1, dir.path());
    let server = ServerSettings {
        limits,
        ..ServerSettings::default()
    };
    TestSupervisor::start_with(settings, dir, server).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_abandoned_connections_do_not_keep_the_next_client_waiting() {
    // This process holds both ends of every connection.
    let limit = orchestrator::server::raise_descriptor_limit().expect("descriptor limit");
    assert!(
        limit >= 2 * ABANDONED as u64 + 200,
        "this test needs {} open files, the hard limit is {limit}",
        2 * ABANDONED + 200
    );
    let sup = supervisor(ConnectionLimits::default()).await;
    // Each of these is a client being served; none of them may keep the others out.
    let abandon = async {
        let mut abandoned_ws = Vec::new();
        let mut abandoned_tcp = Vec::new();
        for _ in 0..ABANDONED / 2 {
            // Handshake done, then silence: the seeds' backend after a STOP.
            abandoned_ws.push(Client::connect(sup.addr).await);
        }
        for _ in 0..ABANDONED / 2 {
            // Connected, never a byte sent: stuck before the WebSocket handshake.
            abandoned_tcp.push(TcpStream::connect(sup.addr).await.expect("connect"));
        }
        (abandoned_ws, abandoned_tcp)
    };
    let (abandoned_ws, abandoned_tcp) = timeout(Duration::from_secs(60), abandon)
        .await
        .expect("earlier idle connections kept new ones from being served");
    let started = Instant::now();
    let mut client = timeout(Duration::from_secs(2), async {
        let mut client = Client::connect(sup.addr).await;
        let status = client.server_status().await;
        (client, status)
    })
    .await
    .map(|(client, status)| {
        assert_eq!(status["error"], "none", "{status}");
        client
    })
    .expect("a new client is served at once, whatever was abandoned before it");
    let waited = started.elapsed();
    println!("connect + SERVER_STATUS with {ABANDONED} abandoned connections: {waited:?}");
    // A second request on the same connection is as quick.
    assert_eq!(client.server_status().await["error"], "none");
    drop(abandoned_tcp);
    drop(abandoned_ws);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let idle_timeout = Duration::from_millis(600);
    let sup = supervisor(ConnectionLimits {
        idle_timeout,
        ..ConnectionLimits::default()
    })
    .await;
    let mut idle = Client::connect(sup.addr).await;
    let mut busy = Client::connect(sup.addr).await;

    // Requests every 200 ms keep a connection open well past the idle timeout.
    let started = Instant::now();
    while started.elapsed() < 3 * idle_timeout {
        assert_eq!(busy.server_status().await["error"], "none");
        sleep(Duration::from_millis(200)).await;
    }

    // The silent one was closed, with a normal close that says why.
    let closed = timeout(Duration::from_secs(2), idle.ws.next())
        .await
        .expect("the idle connection is closed by the supervisor");
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason.as_str(), "idle");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    // A client that connects again is served as before.
    let mut again = Client::connect(sup.addr).await;
    assert_eq!(again.server_status().await["error"], "none");
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_finishes_the_handshake_is_dropped() {
    let sup = supervisor(ConnectionLimits {
        handshake_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    })
    .await;
    let mut stuck = TcpStream::connect(sup.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut stuck, &mut buf),
    )
    .await
    .expect("the supervisor ends the connection");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, nothing sent: {read:?}"
    );
    sup.shutdown().await;
}
