//! Conformance of the supervisor protocol (seed `002_*`): every command, every documented
//! reply and error, exact reply texts, against a real supervisor with real (fake) instances.

mod common;

use std::time::Duration;

use common::{Client, TestSupervisor};
use futures_util::{SinkExt, StreamExt};
use orchestrator::control_client::ControlClient;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const SECONDS_5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn start_gives_the_lowest_free_id_from_zero_and_reports_no_available_slots() {
    let sup = TestSupervisor::fake(3, |_| {}).await;
    let mut c = sup.client().await;
    for id in 0..3 {
        assert_eq!(
            c.raw(r#"{"command":"START"}"#).await,
            format!(r#"{{"command":"START","error":"none","id":{id}}}"#)
        );
    }
    assert_eq!(
        c.raw(r#"{"command":"START"}"#).await,
        r#"{"command":"START","error":"no available slots","id":-1}"#
    );
    // Free 1 and 0; the next START takes 0, then 1.
    assert_eq!(
        c.raw(r#"{"command":"STOP","id":1}"#).await,
        r#"{"command":"STOP","error":"none","id":1}"#
    );
    assert_eq!(
        c.raw(r#"{"command":"STOP","id":0}"#).await,
        r#"{"command":"STOP","error":"none","id":0}"#
    );
    assert_eq!(
        c.start().await,
        json!({"command":"START","error":"none","id":0})
    );
    assert_eq!(
        c.start().await,
        json!({"command":"START","error":"none","id":1})
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_is_initializing_until_the_instance_is_ready_then_running() {
    let sup = TestSupervisor::fake(2, |s| {
        s.command
            .env
            .insert("FAKE_BIND_DELAY_MS".into(), "300".into());
        s.command
            .env
            .insert("FAKE_READY_DELAY_MS".into(), "800".into());
    })
    .await;
    let mut c = sup.client().await;
    assert_eq!(
        c.raw(r#"{"command":"STATUS","id":0}"#).await,
        r#"{"command":"STATUS","error":"none","id":0,"status":"IDLE"}"#
    );
    assert_eq!(c.start().await["id"], 0);
    assert_eq!(
        c.raw(r#"{"command":"STATUS","id":0}"#).await,
        r#"{"command":"STATUS","error":"none","id":0,"status":"INITIALIZING"}"#
    );
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    assert_eq!(
        c.raw(r#"{"command":"STATUS","id":0}"#).await,
        r#"{"command":"STATUS","error":"none","id":0,"status":"RUNNING"}"#
    );
    assert_eq!(c.status(1).await["status"], "IDLE");
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_errors() {
    let sup = TestSupervisor::fake(3, |_| {}).await;
    let mut c = sup.client().await;
    let cases = [
        (
            r#"{"command":"STATUS","id":3}"#,
            r#"{"command":"STATUS","error":"invalid id","id":3,"status":"INVALID"}"#,
        ),
        (
            r#"{"command":"STATUS","id":-1}"#,
            r#"{"command":"STATUS","error":"invalid id","id":-1,"status":"INVALID"}"#,
        ),
        (
            r#"{"command":"STATUS","id":99999999999999999999}"#,
            r#"{"command":"STATUS","error":"field \"id\" must be an integer","id":-1,"status":"INVALID"}"#,
        ),
        (
            r#"{"command":"STATUS","id":18446744073709551615}"#,
            r#"{"command":"STATUS","error":"invalid id","id":9223372036854775807,"status":"INVALID"}"#,
        ),
        (
            r#"{"command":"STATUS"}"#,
            r#"{"command":"STATUS","error":"missing field \"id\"","id":-1,"status":"INVALID"}"#,
        ),
        (
            r#"{"command":"STATUS","id":"0"}"#,
            r#"{"command":"STATUS","error":"field \"id\" must be an integer","id":-1,"status":"INVALID"}"#,
        ),
        (
            r#"{"command":"STATUS","id":0.5}"#,
            r#"{"command":"STATUS","error":"field \"id\" must be an integer","id":-1,"status":"INVALID"}"#,
        ),
        (
            r#"{"command":"STATUS","id":null}"#,
            r#"{"command":"STATUS","error":"field \"id\" must be an integer","id":-1,"status":"INVALID"}"#,
        ),
    ];
    for (request, reply) in cases {
        assert_eq!(c.raw(request).await, reply, "{request}");
    }
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_of_a_stopped_id_is_not_running_and_stop_errors() {
    let sup = TestSupervisor::fake(2, |_| {}).await;
    let mut c = sup.client().await;
    assert_eq!(
        c.raw(r#"{"command":"STOP","id":0}"#).await,
        r#"{"command":"STOP","error":"not running","id":-1}"#
    );
    assert_eq!(c.start().await["id"], 0);
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let pid = sup.instances.pid(0).expect("pid");
    assert_eq!(
        c.raw(r#"{"command":"STOP","id":0}"#).await,
        r#"{"command":"STOP","error":"none","id":0}"#
    );
    // STOP replies once the slot is free and the process gone.
    assert!(!common::alive(pid), "instance still alive after STOP");
    let status = c.status(0).await;
    assert_eq!(status["status"], "IDLE");
    assert_eq!(
        status["lastExit"],
        "stopped on request; killed by signal 15 (SIGTERM)"
    );
    assert_eq!(
        c.raw(r#"{"command":"STOP","id":0}"#).await,
        r#"{"command":"STOP","error":"not running","id":-1}"#
    );

    let cases = [
        (
            r#"{"command":"STOP","id":2}"#,
            r#"{"command":"STOP","error":"invalid id","id":-1}"#,
        ),
        (
            r#"{"command":"STOP","id":-7}"#,
            r#"{"command":"STOP","error":"invalid id","id":-1}"#,
        ),
        (
            r#"{"command":"STOP"}"#,
            r#"{"command":"STOP","error":"missing field \"id\"","id":-1}"#,
        ),
        (
            r#"{"command":"STOP","id":"1"}"#,
            r#"{"command":"STOP","error":"field \"id\" must be an integer","id":-1}"#,
        ),
        (
            r#"{"command":"STOP","id":true}"#,
            r#"{"command":"STOP","error":"field \"id\" must be an integer","id":-1}"#,
        ),
    ];
    for (request, reply) in cases {
        assert_eq!(c.raw(request).await, reply, "{request}");
    }
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_status_reports_busy_and_total_slots_and_the_next_id() {
    let sup = TestSupervisor::fake(3, |_| {}).await;
    let mut c = sup.client().await;
    assert_eq!(
        c.raw(r#"{"command":"SERVER_STATUS"}"#).await,
        r#"{"command":"SERVER_STATUS","error":"none","id":0,"running":0,"total":3}"#
    );
    c.start().await;
    c.start().await;
    assert_eq!(
        c.raw(r#"{"command":"SERVER_STATUS"}"#).await,
        r#"{"command":"SERVER_STATUS","error":"none","id":2,"running":2,"total":3}"#
    );
    c.stop(0).await;
    assert_eq!(
        c.raw(r#"{"command":"SERVER_STATUS"}"#).await,
        r#"{"command":"SERVER_STATUS","error":"none","id":0,"running":1,"total":3}"#
    );
    c.start().await;
    c.start().await;
    assert_eq!(
        c.raw(r#"{"command":"SERVER_STATUS","extra":1}"#).await,
        r#"{"command":"SERVER_STATUS","error":"none","id":-1,"running":3,"total":3}"#
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resolution_while_running_changes_the_stream_size() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command
            .env
            .insert("FAKE_RESIZE_DELAY_MS".into(), "200".into());
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    assert_eq!(
        c.raw(r#"{"command":"RESOLUTION","id":0,"width":640,"height":360}"#)
            .await,
        r#"{"command":"RESOLUTION","error":"none","id":0,"width":640,"height":360}"#
    );
    // The instance itself reports the new size (the reply waited for it).
    let (addr, secret) = sup.instances.control_endpoint(0).expect("endpoint");
    let mut control = ControlClient::connect(addr, &secret, SECONDS_5)
        .await
        .expect("control");
    let stats = control.stats().await.expect("stats");
    assert_eq!(
        (stats["width"].as_u64(), stats["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert!(sup.log(0).contains("RESIZE 640x360"), "{}", sup.log(0));

    assert_eq!(
        c.resolution(0, 7680, 4320).await,
        json!({"command":"RESOLUTION","error":"none","id":0,"width":7680,"height":4320})
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resolution_errors() {
    let sup = TestSupervisor::fake(2, |s| {
        s.command.env.insert("FAKE_NEVER_READY".into(), "1".into());
    })
    .await;
    let mut c = sup.client().await;
    let bad_size = |w: &str, h: &str| {
        format!(
            r#"{{"command":"RESOLUTION","error":"invalid resolution {w}x{h}: width and height must be integers from 1 to 7680","id":0,"width":{w},"height":{h}}}"#
        )
    };
    let cases = [
        (
            r#"{"command":"RESOLUTION","id":0,"width":640,"height":360}"#.to_string(),
            r#"{"command":"RESOLUTION","error":"not running","id":0,"width":640,"height":360}"#.to_string(),
        ),
        (
            r#"{"command":"RESOLUTION","id":2,"width":640,"height":360}"#.to_string(),
            r#"{"command":"RESOLUTION","error":"invalid id","id":2,"width":640,"height":360}"#.to_string(),
        ),
        (r#"{"command":"RESOLUTION","id":0,"width":0,"height":360}"#.to_string(), bad_size("0", "360")),
        (r#"{"command":"RESOLUTION","id":0,"width":-640,"height":360}"#.to_string(), bad_size("-640", "360")),
        (r#"{"command":"RESOLUTION","id":0,"width":640,"height":7681}"#.to_string(), bad_size("640", "7681")),
        (
            r#"{"command":"RESOLUTION","id":0,"width":640.5,"height":360}"#.to_string(),
            r#"{"command":"RESOLUTION","error":"field \"width\" must be an integer","id":0,"width":0,"height":360}"#.to_string(),
        ),
        (
            r#"{"command":"RESOLUTION","id":0,"width":640,"height":"360"}"#.to_string(),
            r#"{"command":"RESOLUTION","error":"field \"height\" must be an integer","id":0,"width":640,"height":0}"#.to_string(),
        ),
        (
            r#"{"command":"RESOLUTION","id":0}"#.to_string(),
            r#"{"command":"RESOLUTION","error":"missing field \"width\"","id":0,"width":0,"height":0}"#.to_string(),
        ),
        (
            r#"{"command":"RESOLUTION","width":640,"height":360}"#.to_string(),
            r#"{"command":"RESOLUTION","error":"missing field \"id\"","id":-1,"width":640,"height":360}"#.to_string(),
        ),
    ];
    for (request, reply) in &cases {
        assert_eq!(&c.raw(request).await, reply, "{request}");
    }
    // INITIALIZING is not running yet.
    c.start().await;
    assert_eq!(c.status(0).await["status"], "INITIALIZING");
    assert_eq!(c.resolution(0, 640, 360).await["error"], "not running");
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resolution_that_the_instance_does_not_apply_is_reported() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command
            .env
            .insert("FAKE_IGNORE_RESIZE".into(), "1".into());
        s.resize_timeout = Duration::from_millis(500);
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let reply = c.resolution(0, 640, 360).await;
    assert_eq!(
        reply["error"],
        "control channel: resize to 640x360 not applied within 500ms: the instance still renders 1280x720"
    );
    assert_eq!(
        (
            reply["id"].as_i64(),
            reply["width"].as_i64(),
            reply["height"].as_i64()
        ),
        (Some(0), Some(640), Some(360))
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_get_an_error_and_the_connection_stays_usable() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let mut c = sup.client().await;
    let mut other = sup.client().await;
    let unknown =
        "unknown command \\\"DANCE\\\" (expected START, STOP, STATUS, RESOLUTION or SERVER_STATUS)";
    let cases = [
        ("{", r#"{"command":null,"error":"malformed JSON: EOF while parsing an object at line 1 column 1","id":-1}"#.to_string()),
        ("", r#"{"command":null,"error":"malformed JSON: EOF while parsing a value at line 1 column 0","id":-1}"#.to_string()),
        ("[1,2]", r#"{"command":null,"error":"request must be a JSON object like {\"command\":\"STATUS\",\"id\":0}","id":-1}"#.to_string()),
        ("42", r#"{"command":null,"error":"request must be a JSON object like {\"command\":\"STATUS\",\"id\":0}","id":-1}"#.to_string()),
        (r#"{"id":0}"#, r#"{"command":null,"error":"missing field \"command\"","id":-1}"#.to_string()),
        (r#"{"command":7}"#, r#"{"command":null,"error":"field \"command\" must be a string","id":-1}"#.to_string()),
        (r#"{"command":"DANCE"}"#, format!(r#"{{"command":"DANCE","error":"{unknown}","id":-1}}"#)),
        (
            r#"{"command":"start"}"#,
            r#"{"command":"start","error":"unknown command \"start\" (expected START, STOP, STATUS, RESOLUTION or SERVER_STATUS)","id":-1}"#.to_string(),
        ),
    ];
    for (request, reply) in &cases {
        assert_eq!(&c.raw(request).await, reply, "{request}");
        // Other clients are not disturbed.
        assert_eq!(other.server_status().await["error"], "none");
    }

    // Oversized text (over 64 KiB, under the 1 MiB frame limit).
    let big = format!(
        r#"{{"command":"STATUS","id":0,"pad":"{}"}}"#,
        "x".repeat(100_000)
    );
    let reply = c.send_text(&big).await;
    assert_eq!(
        reply["error"],
        format!("message too large: {} bytes (limit 65536)", big.len())
    );
    assert_eq!(reply["id"], -1);

    // Binary frames.
    c.ws.send(Message::binary(b"{\"command\":\"START\"}".to_vec()))
        .await
        .unwrap();
    assert_eq!(
        c.reply().await,
        json!({"command": null, "error": "binary messages are not supported: send a JSON text message", "id": -1})
    );

    // Still the same connection, still working.
    assert_eq!(
        c.status(0).await,
        json!({"command":"STATUS","error":"none","id":0,"status":"IDLE"})
    );
    assert_eq!(c.start().await["error"], "none");
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_over_one_mib_closes_only_that_connection() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let mut bad = sup.client().await;
    let mut good = sup.client().await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let _ = bad.ws.send(Message::text(huge)).await;
    // The server refuses to buffer it and closes this connection (1009 or a reset)…
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match bad.ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "oversized frame did not end the connection");
    // …and nobody else notices.
    assert_eq!(good.server_status().await["error"], "none");
    let mut fresh = Client::connect(sup.addr).await;
    assert_eq!(fresh.start().await["id"], 0);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_on_one_connection_are_answered_in_order() {
    let sup = TestSupervisor::fake(2, |_| {}).await;
    let mut c = sup.client().await;
    for request in [
        r#"{"command":"START"}"#,
        r#"{"command":"STATUS","id":0}"#,
        r#"{"command":"SERVER_STATUS"}"#,
        r#"{"command":"STOP","id":0}"#,
        r#"{"command":"STATUS","id":1}"#,
    ] {
        c.ws.send(Message::text(request)).await.unwrap();
    }
    let commands: Vec<_> = {
        let mut out = Vec::new();
        for _ in 0..5 {
            out.push(c.reply().await["command"].as_str().unwrap().to_string());
        }
        out
    };
    assert_eq!(
        commands,
        ["START", "STATUS", "SERVER_STATUS", "STOP", "STATUS"]
    );
    sup.shutdown().await;
}
