//! The supervisor with the REAL GL test host (`build/gl-host/osw-gl-host`): START → RUNNING
//! through rust-core's readiness probe, RESOLUTION changing the real stream size, crash
//! detection, several instances side by side.
//!
//! Set `OSW_GL_HOST` to the host's path (the CI script does, after
//! `cmake -S tests/gl-host -B build/gl-host -G Ninja && cmake --build build/gl-host`);
//! without it these tests print a loud SKIPPED line and pass. With no `DISPLAY`, each instance
//! runs under the supervisor's own per-instance Xvfb. No viewer connects here, so no WebRTC
//! peer is opened (only WebSockets on 127.0.0.1).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{TempDir, TestSupervisor, alive, fake_settings, kill, wait_gone};
use orchestrator::control_client::ControlClient;
use orchestrator::instances::XvfbMode;
use tokio::sync::Mutex;

/// Real hosts are heavy (llvmpipe + an encoder each); run these tests one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

const STARTUP: Duration = Duration::from_secs(90);

/// A supervisor of `slots` real hosts, or None (after a loud message) without `OSW_GL_HOST`.
async fn real_hosts(slots: u32) -> Option<TestSupervisor> {
    let Some(host) = std::env::var_os("OSW_GL_HOST") else {
        eprintln!(
            "\n!!!!! SKIPPED: OSW_GL_HOST is not set; the real GL test host was NOT tested. Build it \
             (cmake -S tests/gl-host -B build/gl-host -G Ninja && cmake --build build/gl-host) and \
             run with OSW_GL_HOST=$PWD/build/gl-host/osw-gl-host !!!!!\n"
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
        common::xvfb_displays(slots).expect("Xvfb is needed to run the GL host without a display")
    };
    let dir = TempDir::new("gl-host");
    let mut settings = fake_settings(slots, dir.path());
    settings.command.executable = host;
    settings.command.args = vec![
        "--fps".into(),
        "15".into(),
        "--stats-interval".into(),
        "0".into(),
    ];
    settings.startup_timeout = STARTUP;
    settings.probe_interval = Duration::from_millis(200);
    settings.stop_timeout = Duration::from_secs(15);
    settings.resize_timeout = Duration::from_secs(20);
    settings.xvfb.mode = XvfbMode::Auto;
    settings.xvfb.display_base = display_base;
    Some(TestSupervisor::start(settings, dir).await)
}

async fn stream_size(sup: &TestSupervisor, id: u32) -> (u64, u64, serde_json::Value) {
    let (addr, secret) = sup.instances.control_endpoint(id).expect("endpoint");
    let mut control = ControlClient::connect(addr, &secret, Duration::from_secs(5))
        .await
        .expect("control");
    let stats = control.stats().await.expect("stats");
    (
        stats["width"].as_u64().unwrap_or(0),
        stats["height"].as_u64().unwrap_or(0),
        stats,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn real_host_starts_runs_resizes_and_stops() {
    let _serial = SERIAL.lock().await;
    let Some(sup) = real_hosts(1).await else {
        return;
    };
    let mut c = sup.client().await;
    assert_eq!(
        c.raw(r#"{"command":"START"}"#).await,
        r#"{"command":"START","error":"none","id":0}"#
    );
    assert_eq!(c.status(0).await["status"], "INITIALIZING");
    c.wait_status(0, "RUNNING", STARTUP).await;
    assert!(sup.log(0).contains("READY port="), "{}", sup.log(0));
    let (w, h, stats) = stream_size(&sup, 0).await;
    assert_eq!((w, h), (1280, 720), "{stats}");
    assert_eq!(
        stats["signalingPort"],
        sup.instances.settings().ports.signaling_base
    );

    // Odd sides (641×361 once made x264 fail for good while STATUS said RUNNING) stream
    // rounded down to even; too large is fitted into the instance's 3840×2160.
    for ((width, height), (applied_width, applied_height)) in [
        ((640, 360), (640, 360)),
        ((641, 361), (640, 360)),
        ((1920, 1080), (1920, 1080)),
    ] {
        assert_eq!(
            c.raw(&format!(
                r#"{{"command":"RESOLUTION","id":0,"width":{width},"height":{height}}}"#
            ))
            .await,
            format!(
                r#"{{"command":"RESOLUTION","error":"none","id":0,"width":{width},"height":{height}}}"#
            )
        );
        let (w, h, stats) = stream_size(&sup, 0).await;
        assert_eq!((w, h), (applied_width, applied_height), "{stats}");
        // Frames keep coming at the new size (the encoder took it).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (_, _, later) = stream_size(&sup, 0).await;
        let encoded = |s: &serde_json::Value| s["framesEncoded"].as_u64().unwrap_or(0);
        assert!(encoded(&later) >= encoded(&stats) + 10, "{stats}\n{later}");
        assert!(
            sup.log(0)
                .contains(&format!("RESIZE {applied_width}x{applied_height}")),
            "{}",
            sup.log(0)
        );
    }

    let pid = sup.instances.pid(0).unwrap();
    assert_eq!(
        c.raw(r#"{"command":"STOP","id":0}"#).await,
        r#"{"command":"STOP","error":"none","id":0}"#
    );
    assert!(!alive(pid));
    let status = c.status(0).await;
    assert_eq!(status["status"], "IDLE");
    assert_eq!(
        status["lastExit"], "stopped on request; exited with status 0",
        "{status}"
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn real_host_crash_is_detected() {
    let _serial = SERIAL.lock().await;
    let Some(sup) = real_hosts(1).await else {
        return;
    };
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", STARTUP).await;
    let pid = sup.instances.pid(0).unwrap();
    kill(pid, libc::SIGKILL);
    let status = c.wait_status(0, "IDLE", Duration::from_secs(5)).await;
    let last_exit = status["lastExit"].as_str().unwrap();
    assert!(
        last_exit.starts_with("killed by signal 9 (SIGKILL)"),
        "{last_exit}"
    );
    assert_eq!(c.server_status().await["running"], 0);
    assert_eq!(c.stop(0).await["error"], "not running");
    wait_gone(pid, Duration::from_secs(5)).await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_real_hosts_side_by_side_then_shutdown() {
    let _serial = SERIAL.lock().await;
    let Some(sup) = real_hosts(2).await else {
        return;
    };
    let base = sup.instances.settings().ports.signaling_base;
    let mut c = sup.client().await;
    assert_eq!(c.start().await["id"], 0);
    assert_eq!(c.start().await["id"], 1);
    assert_eq!(c.start().await["error"], "no available slots");
    for id in 0..2u32 {
        c.wait_status(i64::from(id), "RUNNING", STARTUP).await;
        let (_, _, stats) = stream_size(&sup, id).await;
        assert_eq!(
            stats["signalingPort"].as_u64(),
            Some(u64::from(base) + u64::from(id)),
            "{stats}"
        );
    }
    assert_eq!(
        c.raw(r#"{"command":"SERVER_STATUS"}"#).await,
        r#"{"command":"SERVER_STATUS","error":"none","id":-1,"running":2,"total":2}"#
    );
    let pids = [sup.instances.pid(0).unwrap(), sup.instances.pid(1).unwrap()];
    sup.shutdown().await;
    for pid in pids {
        assert!(!alive(pid), "host {pid} left running after shutdown");
    }
}
