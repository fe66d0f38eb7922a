//! Test doubles and helpers shared by rust-core's integration tests.

pub mod receiver;

use futures_util::{SinkExt, StreamExt};
use openspace_webrtc::config::{EncoderChoice, StreamerConfig};
use openspace_webrtc_protocol::ViewerRole;
use tokio_tungstenite::tungstenite::Message;

/// Width and height of the frames the tests feed.
pub const WIDTH: u32 = 320;
pub const HEIGHT: u32 = 240;
/// The control secret of [`loopback_config`].
pub const SECRET: &str = "test-secret";

/// A streamer for tests: any free port, ICE on 127.0.0.1 only, 30 fps, control on with
/// [`SECRET`], two viewers (tests that need more say so).
pub fn loopback_config(encoder: EncoderChoice) -> StreamerConfig {
    StreamerConfig {
        listen_port: 0,
        encoder,
        ice_addresses: vec!["127.0.0.1".parse().expect("an address")],
        control_secret: SECRET.into(),
        fps_cap: 30,
        max_viewers: 2,
        ..StreamerConfig::default()
    }
}

/// Asks the streamer on `port` for a join ticket over its control channel ([`SECRET`]).
pub async fn issue_ticket(port: u16, role: ViewerRole) -> String {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/"))
        .await
        .expect("connect for a ticket");
    let mut ask = async |request: serde_json::Value| -> serde_json::Value {
        socket
            .send(Message::text(request.to_string()))
            .await
            .expect("send");
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).expect("JSON");
                }
                Some(Ok(_)) => continue,
                other => panic!("control connection ended: {other:?}"),
            }
        }
    };
    let welcome = ask(serde_json::json!({"type": "hello", "secret": SECRET})).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let reply = ask(serde_json::json!({"type": "issueTicket", "role": role.as_str()})).await;
    assert_eq!(reply["type"], "ticket", "{reply}");
    reply["ticket"].as_str().expect("a ticket").to_string()
}

/// The URL a viewer with `role` connects to: a managed streamer (one with a control secret,
/// as every test streamer has) admits a viewer only with a ticket, so this gets one first.
pub async fn viewer_url(port: u16, role: ViewerRole) -> String {
    let ticket = issue_ticket(port, role).await;
    format!("ws://127.0.0.1:{port}/?ticket={ticket}")
}

/// A [`WIDTH`]×[`HEIGHT`] RGBA frame whose colour changes every call, so the encoder has
/// motion to code.
pub fn moving_frame(n: u32) -> Vec<u8> {
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 4) as usize];
    for (i, px) in pixels.chunks_exact_mut(4).enumerate() {
        let x = (i as u32 % WIDTH + n * 4) % 256;
        px.copy_from_slice(&[x as u8, (n * 3 % 256) as u8, 128, 255]);
    }
    pixels
}

/// True when this process sees no network interface but loopback: the rule for any test that
/// opens a WebRTC peer connection: nothing may leave loopback.
pub fn in_loopback_only_namespace() -> bool {
    // /proc/net/dev follows the reading process's namespace (/sys/class/net follows the
    // namespace sysfs was mounted in, so it would still list the host's interfaces).
    match std::fs::read_to_string("/proc/net/dev") {
        Ok(table) => table
            .lines()
            .skip(2)
            .filter_map(|line| line.split(':').next())
            .all(|name| name.trim() == "lo"),
        Err(_) => false,
    }
}

/// Skips (with a loud message) a test that must run in a loopback-only network namespace.
#[macro_export]
macro_rules! require_loopback_namespace {
    () => {
        if !support::in_loopback_only_namespace() {
            eprintln!(
                "SKIPPED: this test opens WebRTC connections and must run in a loopback-only \
                 network namespace: run `unshare -n sh -c 'ip link set lo up; cargo test …'` \
                 (the README's test command does)"
            );
            return;
        }
    };
}
