//! The web role against real supervisors with real (fake) instances: sessions and who may do
//! what, launching on the least loaded server, pushed status, the signaling proxy (spectators
//! are view-only), resize, stop, the idle timeout, crashes, and a restart that keeps sessions
//! and adopts the instances still running. HTTP is spoken raw; WebSockets with tungstenite.
//! Only 127.0.0.1 is used; no test opens a WebRTC peer.

mod common;

use std::time::Duration;

use common::TempDir;
use common::TestSupervisor;
use common::web::{TestWeb, WAIT, database_url, next_json, pushed_until, send};
use futures_util::StreamExt;
use orchestrator::web::{SupervisorAddress, WebSettings};
use serde_json::json;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread")]
async fn a_session_launches_watches_and_stops_its_instance_and_nobody_else_can() {
    let sup = TestSupervisor::fake(2, |s| {
        s.command
            .env
            .insert("FAKE_READY_DELAY_MS".into(), "300".into());
    })
    .await;
    let dir = TempDir::new("web-basic");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let owner = web.session().await;
    let stranger = web.session().await;

    let launched = web.launch(&owner).await;
    let id = launched["id"].as_str().unwrap().to_string();
    assert_eq!(launched["status"], "INITIALIZING");
    assert_eq!(launched["url"], format!("/stream/{id}"));
    let text = launched.to_string();
    for hidden in ["slot", "port", "pid", "127.0.0.1", "server"] {
        assert!(!text.contains(hidden), "{hidden} leaked: {text}");
    }

    // Pushed, not polled: INITIALIZING, then RUNNING.
    let mut events = web
        .ws(&format!("/api/instances/{id}/events?token={owner}"))
        .await
        .unwrap();
    let first = next_json(&mut events).await;
    assert_eq!(first["type"], "instance");
    assert_eq!(first["instance"]["access"], "owner");
    let running = pushed_until(&mut events, |m| m["instance"]["status"] == "RUNNING").await;
    assert!(running["instance"]["runningAt"].is_i64());
    let mut session_events = web.ws(&format!("/api/events?token={owner}")).await.unwrap();
    let listed = next_json(&mut session_events).await;
    assert_eq!(listed["type"], "instances");
    assert_eq!(listed["instances"][0]["id"], id.as_str());

    // The list, and who may see and do what.
    let (status, list) = web.json("GET", "/api/instances", Some(&owner), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["instances"].as_array().unwrap().len(), 1);
    let (_, list) = web
        .json("GET", "/api/instances", Some(&stranger), None)
        .await;
    assert_eq!(list["instances"], json!([]));
    let path = format!("/api/instances/{id}");
    for (method, token, want) in [
        ("GET", Some(stranger.as_str()), 403),
        ("DELETE", Some(stranger.as_str()), 403),
        ("GET", None, 401),
        ("DELETE", None, 401),
        (
            "GET",
            Some("s0000000000000000000000000000000000000000000000000000000000000000"),
            401,
        ),
        ("GET", Some("nonsense"), 401),
    ] {
        let (status, body) = web.json(method, &path, token, None).await;
        assert_eq!(status, want, "{method} {path} with {token:?}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    let (status, body) = web.json("GET", &path, Some(&stranger), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            403,
            Some("this instance belongs to another browser session")
        )
    );
    assert!(
        web.ws(&format!("/api/instances/{id}/events?token={stranger}"))
            .await
            .is_err()
    );
    assert!(
        web.ws(&format!("/api/instances/{id}/signal?token={stranger}"))
            .await
            .is_err()
    );
    assert!(
        web.ws(&format!("/api/instances/{id}/signal"))
            .await
            .is_err()
    );
    let (status, _) = web
        .json("GET", "/api/instances/not-a-uuid", Some(&owner), None)
        .await;
    assert_eq!(status, 404);

    // Stop: the slot is free again, the page is told why.
    let (status, stopped) = web.json("DELETE", &path, Some(&owner), None).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["status"], "ENDED");
    assert_eq!(stopped["reason"], "Stopped by its owner.");
    pushed_until(&mut events, |m| m["instance"]["status"] == "ENDED").await;
    pushed_until(&mut session_events, |m| m["instance"]["status"] == "ENDED").await;
    let mut c = sup.client().await;
    assert_eq!(c.status(0).await["status"], "IDLE");
    assert_eq!(c.server_status().await["running"], 0);
    // A second stop answers with the same final view.
    let (status, again) = web.json("DELETE", &path, Some(&owner), None).await;
    assert_eq!((status, &again["status"]), (200, &json!("ENDED")));

    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn launches_go_to_the_least_loaded_server_until_none_is_free() {
    let small = TestSupervisor::fake(1, |_| {}).await;
    let large = TestSupervisor::fake(2, |_| {}).await;
    let dir = TempDir::new("web-servers");
    let address = |sup: &TestSupervisor| SupervisorAddress::new("127.0.0.1", sup.addr.port());
    let (a, b) = (address(&small), address(&large));
    let web = TestWeb::start(dir.path(), None, |s| {
        s.supervisors = vec![a, b];
        s.manager.max_per_session = 0;
    })
    .await;
    let token = web.session().await;
    let running = |sup: &TestSupervisor| {
        let addr = sup.addr;
        async move {
            common::Client::connect(addr).await.server_status().await["running"]
                .as_u64()
                .unwrap()
        }
    };
    // 2 free beats 1 free.
    web.launch(&token).await;
    assert_eq!((running(&small).await, running(&large).await), (0, 1));
    // 1 free each: the smaller share of busy slots wins (0/1 beats 1/2).
    web.launch(&token).await;
    assert_eq!((running(&small).await, running(&large).await), (1, 1));
    web.launch(&token).await;
    assert_eq!((running(&small).await, running(&large).await), (1, 2));
    let (status, body) = web.json("POST", "/api/instances", Some(&token), None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no rendering server has a free slot")
    );

    // The seed's servers table, with what SERVER_STATUS said.
    let db = orchestrator::web::db::Db::open(&database_url(dir.path()).await)
        .await
        .unwrap();
    let servers = db.servers().await.unwrap();
    assert_eq!(servers.len(), 2);
    for s in &servers {
        assert_eq!(
            (s.ip_address.as_str(), s.status.as_str()),
            ("127.0.0.1", "active")
        );
        assert_eq!(s.available_instances, 0);
        assert!(s.ram.ends_with("GB") && s.storage.ends_with("GB"), "{s:?}");
        assert_eq!(s.server_id.len(), 36);
    }
    let totals: Vec<u32> = servers.iter().map(|s| s.num_instances).collect();
    assert!(totals.contains(&1) && totals.contains(&2), "{servers:?}");
    db.close().await;

    web.shutdown().await;
    small.shutdown().await;
    large.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_signaling_proxy_passes_viewer_messages_and_makes_spectators_view_only() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("web-proxy");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let owner = web.session().await;
    let id = web.launch(&owner).await["id"].as_str().unwrap().to_string();

    // Not running yet: refused before the upgrade, with a reason.
    let (status, body) = web
        .json(
            "GET",
            &format!("/api/instances/{id}/signal?token={owner}"),
            None,
            None,
        )
        .await;
    assert!(status == 426 || status == 409, "{status} {body}");
    web.wait_for(&id, &owner, "RUNNING", |v| v["status"] == "RUNNING")
        .await;

    let mut viewer = web
        .ws(&format!("/api/instances/{id}/signal?token={owner}"))
        .await
        .unwrap();
    // The instance's own rules, through the relay: nothing but a join first, and a viewer's
    // connection (it came with a join ticket) cannot act as control.
    send(&mut viewer, json!({"type": "hello", "secret": "guess"})).await;
    let refused = next_json(&mut viewer).await;
    assert_eq!(refused["type"], "error");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("viewers cannot send control messages"),
        "{refused}"
    );
    send(&mut viewer, json!({"type": "answer", "sdp": "v=0"})).await;
    assert!(
        next_json(&mut viewer).await["message"]
            .as_str()
            .unwrap()
            .contains("join first")
    );
    send(&mut viewer, json!({"type": "join", "viewOnly": false})).await;
    assert_eq!(next_json(&mut viewer).await["type"], "welcome");
    assert_eq!(
        next_json(&mut viewer).await["message"],
        "fake: joined viewOnly=false"
    );
    send(&mut viewer, json!({"type": "answer", "sdp": "v=0"})).await;
    assert_eq!(next_json(&mut viewer).await["message"], "fake: got answer");
    let watched = web
        .wait_for(&id, &owner, "watched", |v| v["viewers"] == 1)
        .await;
    assert_eq!(watched["viewers"], 1);

    // A share link: watch only, whatever the page asks for.
    let (spectator, share) = web.share(&id, &owner).await;
    assert_eq!(share["url"], format!("/stream/{id}#view={spectator}"));
    let (status, seen) = web
        .json(
            "GET",
            &format!("/api/instances/{id}"),
            Some(&spectator),
            None,
        )
        .await;
    assert_eq!((status, &seen["access"]), (200, &json!("viewer")));
    let mut watcher = web
        .ws(&format!("/api/instances/{id}/signal?token={spectator}"))
        .await
        .unwrap();
    send(&mut watcher, json!({"type": "join", "viewOnly": false})).await;
    assert_eq!(next_json(&mut watcher).await["type"], "welcome");
    assert_eq!(
        next_json(&mut watcher).await["message"],
        "fake: joined viewOnly=true"
    );
    web.wait_for(&id, &owner, "watched twice", |v| v["viewers"] == 2)
        .await;
    // A spectator can neither stop, resize, share nor list.
    for (method, path, body) in [
        ("DELETE", format!("/api/instances/{id}"), None),
        (
            "POST",
            format!("/api/instances/{id}/resolution"),
            Some(json!({"width": 640, "height": 480})),
        ),
        ("POST", format!("/api/instances/{id}/share"), None),
        ("GET", "/api/instances".to_string(), None),
        ("POST", "/api/instances".to_string(), None),
    ] {
        let (status, body) = web.json(method, &path, Some(&spectator), body).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
    }

    // Resize through the supervisor's RESOLUTION.
    let path = format!("/api/instances/{id}/resolution");
    let (status, resized) = web
        .json(
            "POST",
            &path,
            Some(&owner),
            Some(json!({"width": 640, "height": 480})),
        )
        .await;
    assert_eq!(status, 200, "{resized}");
    assert_eq!(
        (resized["width"].as_u64(), resized["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert!(sup.log(0).contains("RESIZE 640x480"));
    for bad in [
        json!({"width": 0, "height": 480}),
        json!({"width": 9000, "height": 480}),
        json!({"w": 1}),
    ] {
        let (status, body) = web.json("POST", &path, Some(&owner), Some(bad)).await;
        assert_eq!(status, 400, "{body}");
    }

    // Closing the sockets: no viewers left.
    viewer.close(None).await.unwrap();
    watcher.close(None).await.unwrap();
    web.wait_for(&id, &owner, "unwatched", |v| v["viewers"] == 0)
        .await;

    // The instance goes away under a viewer: the browser's socket closes.
    let mut viewer = web
        .ws(&format!("/api/instances/{id}/signal?token={owner}"))
        .await
        .unwrap();
    send(&mut viewer, json!({"type": "join"})).await;
    assert_eq!(next_json(&mut viewer).await["type"], "welcome");
    web.stop(&id, &owner).await;
    let closed = timeout(WAIT, async {
        loop {
            match viewer.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the viewer's socket stayed open after the stop"
    );

    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_instances_are_stopped_and_crashes_are_told_in_words() {
    let sup = TestSupervisor::fake(2, |_| {}).await;
    let dir = TempDir::new("web-idle");
    let web = TestWeb::start(dir.path(), Some(&sup), |s| {
        s.manager.idle_timeout = Some(Duration::from_millis(1500));
    })
    .await;
    let token = web.session().await;
    let idle = web.launch(&token).await["id"].as_str().unwrap().to_string();
    let watched = web.launch_running(&token).await;
    let mut viewer = web
        .ws(&format!("/api/instances/{watched}/signal?token={token}"))
        .await
        .unwrap();
    send(&mut viewer, json!({"type": "join"})).await;
    next_json(&mut viewer).await;

    let ended = web
        .wait_for(&idle, &token, "idle-stopped", |v| v["status"] == "ENDED")
        .await;
    assert_eq!(ended["reason"], "Stopped after 1.5 s without a viewer.");
    sleep(Duration::from_millis(1000)).await;
    let (_, still) = web
        .json(
            "GET",
            &format!("/api/instances/{watched}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        still["status"], "RUNNING",
        "a watched instance was stopped: {still}"
    );

    // A crash from outside: the page gets a sentence, not the output tail.
    let pid = sup
        .instances
        .pid(1)
        .expect("the watched instance is in slot 1");
    common::kill(pid, libc::SIGKILL);
    let crashed = web
        .wait_for(&watched, &token, "crashed", |v| v["status"] == "ENDED")
        .await;
    assert_eq!(
        crashed["reason"],
        "The instance ended unexpectedly (killed by signal 9 (SIGKILL))."
    );

    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_web_role_keeps_sessions_and_adopts_instances_still_running() {
    let sup = TestSupervisor::fake(3, |_| {}).await;
    let dir = TempDir::new("web-restart");
    let address = SupervisorAddress::new("127.0.0.1", sup.addr.port());
    let remote = |s: &mut WebSettings| s.supervisors = vec![address.clone()];
    let web = TestWeb::start(dir.path(), None, remote).await;
    let token = web.session().await;
    let kept = web.launch(&token).await["id"].as_str().unwrap().to_string();
    let lost = web.launch_running(&token).await;
    web.wait_for(&kept, &token, "RUNNING", |v| v["status"] == "RUNNING")
        .await;
    // A web role alone leaves instances running when it stops.
    web.shutdown().await;
    let mut c = sup.client().await;
    assert_eq!(c.server_status().await["running"], 2);
    // One of them goes away while no web role watches.
    assert_eq!(c.stop(1).await["error"], "none");

    let web = TestWeb::start(dir.path(), None, remote).await;
    let (status, list) = web.json("GET", "/api/instances", Some(&token), None).await;
    assert_eq!(
        status, 200,
        "the session did not survive the restart: {list}"
    );
    let by_id = |id: &str| {
        list["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_id(&kept)["status"], "RUNNING");
    assert_eq!(by_id(&lost)["status"], "ENDED");
    assert_eq!(
        by_id(&lost)["reason"],
        "The instance was gone when the orchestrator restarted."
    );
    // The adopted instance is watched and controlled as before.
    web.stop(&kept, &token).await;
    assert_eq!(c.server_status().await["running"], 0);

    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_origin_serves_pages_files_and_api_errors_safely() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("web-static");
    let web = TestWeb::start(dir.path(), Some(&sup), |s| s.manager.max_per_session = 1).await;
    let (status, headers, body) = web.request("GET", "/", None, None).await;
    assert_eq!(status, 200);
    assert!(body.contains("<title>home</title>"));
    let header = |headers: &[(String, String)], name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert!(header(&headers, "content-security-policy").contains("default-src 'self'"));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    let (status, _, body) = web
        .request(
            "GET",
            "/stream/b829c4a1-5867-477b-a555-25fe2b5f9555",
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, body.contains("<title>stream</title>")),
        (200, true)
    );
    let (status, headers, _) = web.request("GET", "/js/app.js", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        "text/javascript; charset=utf-8"
    );
    for missing in [
        "/stream/not-a-uuid",
        "/.secret",
        "/js/../index.html",
        "/nothing.html",
        "/js",
    ] {
        let (status, _, _) = web.request("GET", missing, None, None).await;
        assert_eq!(status, 404, "{missing}");
    }
    let (status, body) = web.json("GET", "/api/nothing", None, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no such API endpoint"))
    );
    let (status, _, _) = web.request("POST", "/js/app.js", None, None).await;
    assert_eq!(status, 405);

    // The per-session limit.
    let token = web.session().await;
    web.launch(&token).await;
    let (status, body) = web.json("POST", "/api/instances", Some(&token), None).await;
    assert_eq!(status, 429, "{body}");

    web.shutdown().await;
    sup.shutdown().await;
}
