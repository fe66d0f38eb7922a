//! Instances are real processes: environment, log files, readiness, crashes noticed at once,
//! startup timeout, SIGTERM then SIGKILL, per-instance Xvfb and PulseAudio, and shutdown
//! leaving nothing.

mod common;

use std::path::{Path, PathBuf};

use std::time::Duration;

use common::{TestSupervisor, alive, kill, wait_gone};
use orchestrator::instances::{AudioMode, InstanceSettings, XvfbMode};
use tokio::time::{Instant, sleep};

const SECONDS_5: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn each_instance_gets_its_id_ports_secret_and_a_log_file() {
    let sup = TestSupervisor::fake(2, |_| {}).await;
    let base = sup.instances.settings().ports.signaling_base;
    let mut c = sup.client().await;
    for id in 0..2 {
        assert_eq!(c.start().await["id"], id);
        c.wait_status(id, "RUNNING", SECONDS_5).await;
    }
    let log0 = sup.log(0);
    assert!(
        log0.contains(&format!(
            "OSW_INSTANCE_ID=0 OSW_LISTEN_PORT={base} OSW_ENABLED=1 OSW_API_WEBSOCKET_PORT=4682 \
             OSW_API_TCP_PORT=4681 OSW_WEBGUI_HTTP_PORT=4800 OSW_ICE_ADDRESSES=127.0.0.1"
        )),
        "{log0}"
    );
    assert!(log0.contains("secret_len=32"), "{log0}");
    assert!(log0.contains(&format!("READY port={base}")), "{log0}");
    let log1 = sup.log(1);
    assert!(
        log1.contains(&format!(
            "OSW_INSTANCE_ID=1 OSW_LISTEN_PORT={} OSW_ENABLED=1 OSW_API_WEBSOCKET_PORT=4683 OSW_API_TCP_PORT=4680 OSW_WEBGUI_HTTP_PORT=4801",
            base + 1
        )),
        "{log1}"
    );
    // Secrets differ per instance.
    let (_, s0) = sup.instances.control_endpoint(0).unwrap();
    let (_, s1) = sup.instances.control_endpoint(1).unwrap();
    assert_ne!(s0, s1);
    // A relaunch keeps the previous log as .1.
    c.stop(0).await;
    c.start().await;
    let previous = sup.instances.log_path(0).with_extension("log.1");
    assert!(
        std::fs::read_to_string(previous)
            .unwrap()
            .contains("stopping: stopped on request")
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_is_noticed_at_once_and_frees_the_slot() {
    let sup = TestSupervisor::fake(2, |_| {}).await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let pid = sup.instances.pid(0).unwrap();

    let killed = Instant::now();
    kill(pid, libc::SIGKILL);
    let status = c.wait_status(0, "IDLE", SECONDS_5).await;
    assert!(
        killed.elapsed() < Duration::from_secs(1),
        "crash noticed after {:?}",
        killed.elapsed()
    );
    let last_exit = status["lastExit"].as_str().unwrap();
    assert!(
        last_exit.starts_with("killed by signal 9 (SIGKILL): "),
        "{last_exit}"
    );
    assert!(
        last_exit.contains("READY port="),
        "tail of the output: {last_exit}"
    );
    assert_eq!(status["error"], "none");

    assert_eq!(c.server_status().await["running"], 0);
    assert_eq!(c.stop(0).await["error"], "not running");
    assert_eq!(c.resolution(0, 640, 360).await["error"], "not running");
    // The slot is reused, and lastExit goes with the new instance.
    assert_eq!(c.start().await["id"], 0);
    assert!(c.status(0).await.get("lastExit").is_none());
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_reports_the_exit_status_and_the_tail_of_the_output() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command
            .env
            .insert("FAKE_CRASH_AFTER_READY_MS".into(), "500".into());
        s.command.env.insert("FAKE_EXIT_CODE".into(), "7".into());
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let status = c.wait_status(0, "IDLE", SECONDS_5).await;
    let last_exit = status["lastExit"].as_str().unwrap();
    assert!(
        last_exit.starts_with("exited with status 7: "),
        "{last_exit}"
    );
    assert!(
        last_exit.ends_with("fake-instance: crashing on purpose with status 7"),
        "{last_exit}"
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_before_ready_is_reported_as_such() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command.env.insert("FAKE_NEVER_READY".into(), "1".into());
        s.command
            .env
            .insert("FAKE_CRASH_AFTER_MS".into(), "300".into());
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    let status = c.wait_status(0, "IDLE", SECONDS_5).await;
    let last_exit = status["lastExit"].as_str().unwrap();
    assert!(
        last_exit.starts_with("exited with status 3 before it was ready: "),
        "{last_exit}"
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_never_becomes_ready_is_stopped_after_the_startup_timeout() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command.env.insert("FAKE_NEVER_READY".into(), "1".into());
        s.startup_timeout = Duration::from_secs(1);
    })
    .await;
    let mut c = sup.client().await;
    let started = Instant::now();
    c.start().await;
    let pid = sup.instances.pid(0).unwrap();
    assert_eq!(c.status(0).await["status"], "INITIALIZING");
    let status = c.wait_status(0, "IDLE", SECONDS_5).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    let last_exit = status["lastExit"].as_str().unwrap();
    assert!(
        last_exit.starts_with(
            "did not become ready within 1s (last probe: endpoint answers but no frame was delivered yet)"
        ),
        "{last_exit}"
    );
    assert!(
        last_exit.ends_with("; stopped; killed by signal 15 (SIGTERM)"),
        "{last_exit}"
    );
    assert!(!alive(pid));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_sends_sigkill_to_an_instance_that_ignores_sigterm() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command
            .env
            .insert("FAKE_IGNORE_SIGTERM".into(), "1".into());
        s.stop_timeout = Duration::from_secs(1);
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let pid = sup.instances.pid(0).unwrap();

    let mut stopper = sup.client().await;
    let stop = tokio::spawn(async move { stopper.stop(0).await });
    // Others see DEINITIALIZING while the stop is under way.
    c.wait_status(0, "DEINITIALIZING", SECONDS_5).await;
    assert_eq!(c.server_status().await["running"], 1);
    assert_eq!(c.start().await["error"], "no available slots");
    // A second STOP of a stopping instance waits for the same end.
    assert_eq!(c.stop(0).await["error"], "none");
    let reply = stop.await.unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"command":"STOP","error":"none","id":0})
    );
    assert!(!alive(pid));
    let status = c.status(0).await;
    assert_eq!(status["status"], "IDLE");
    assert_eq!(
        status["lastExit"],
        "stopped on request; did not exit within 1s of SIGTERM, killed by signal 9 (SIGKILL)"
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_launch_failure_is_an_error_reply_and_leaves_the_slot_free() {
    let sup = TestSupervisor::fake(2, |s| {
        s.command.executable = PathBuf::from("/nonexistent/osw-gl-host");
    })
    .await;
    let mut c = sup.client().await;
    let reply = c.start().await;
    assert_eq!(reply["id"], -1);
    assert_eq!(
        reply["error"],
        "launch failed: cannot run /nonexistent/osw-gl-host: No such file or directory (os error 2)"
    );
    let status = c.status(0).await;
    assert_eq!(status["status"], "IDLE");
    assert_eq!(
        status["lastExit"],
        "cannot run /nonexistent/osw-gl-host: No such file or directory (os error 2)"
    );
    assert_eq!(c.server_status().await["running"], 0);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_stops_every_instance_and_closes_clients() {
    let sup = TestSupervisor::fake(3, |s| {
        s.stop_timeout = Duration::from_secs(1);
    })
    .await;
    let mut c = sup.client().await;
    for _ in 0..3 {
        c.start().await;
    }
    let pids: Vec<u32> = (0..3).map(|id| sup.instances.pid(id).unwrap()).collect();
    sup.shutdown().await; // returns only after every instance is gone
    for pid in pids {
        assert!(!alive(pid), "instance {pid} left running");
    }
    use futures_util::StreamExt;
    let closed = tokio::time::timeout(SECONDS_5, c.ws.next())
        .await
        .expect("close within 5 s");
    assert!(
        matches!(
            closed,
            None | Some(Err(_)) | Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))
        ),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_display_each_instance_gets_its_own_xvfb() {
    let Some(display_base) = common::xvfb_displays(2) else {
        return;
    };
    let sup = TestSupervisor::fake(2, |s| {
        s.xvfb.mode = XvfbMode::Always;
        s.xvfb.display_base = display_base;
        s.xvfb.screen = "1280x720x24".into();
    })
    .await;
    let mut c = sup.client().await;
    for id in 0..2u32 {
        assert_eq!(c.start().await["id"], id);
        c.wait_status(id as i64, "RUNNING", SECONDS_5).await;
        let display = display_base + id;
        assert!(
            sup.log(id).contains(&format!("DISPLAY=:{display} ")),
            "{}",
            sup.log(id)
        );
        assert!(Path::new(&format!("/tmp/.X11-unix/X{display}")).exists());
    }
    let xvfb_log = sup.dir.path().join("logs/xvfb-0.log");
    assert!(xvfb_log.exists());

    // Stopping the instance stops its Xvfb (the socket goes away).
    c.stop(0).await;
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display_base}"));
    let deadline = Instant::now() + SECONDS_5;
    while socket.exists() {
        assert!(
            Instant::now() < deadline,
            "Xvfb :{display_base} still running after STOP"
        );
        sleep(Duration::from_millis(20)).await;
    }
    // A crash stops it too.
    let pid = sup.instances.pid(1).unwrap();
    kill(pid, libc::SIGKILL);
    c.wait_status(1, "IDLE", SECONDS_5).await;
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{}", display_base + 1));
    let deadline = Instant::now() + SECONDS_5;
    while socket.exists() {
        assert!(
            Instant::now() < deadline,
            "Xvfb still running after the crash"
        );
        sleep(Duration::from_millis(20)).await;
    }
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_xvfb_is_a_launch_failure() {
    let missing = PathBuf::from("/nonexistent/Xvfb");
    assert_launch_fails_without(&missing, |s| {
        s.xvfb.mode = XvfbMode::Always;
        s.xvfb.executable = missing.clone();
    })
    .await;
}

/// START with a helper program (Xvfb, PulseAudio) that cannot run, as `tweak` sets it up:
/// the launch fails naming the program and why, and the slot stays free.
async fn assert_launch_fails_without(missing: &Path, tweak: impl FnOnce(&mut InstanceSettings)) {
    let sup = TestSupervisor::fake(1, tweak).await;
    let mut c = sup.client().await;
    let reply = c.start().await;
    assert_eq!(reply["id"], -1);
    assert_eq!(
        reply["error"],
        format!(
            "launch failed: cannot run {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(c.status(0).await["status"], "IDLE");
    sup.shutdown().await;
}

/// Whether `program` is on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The PulseAudio socket an instance was given, from its `PULSE_SERVER=unix:…` log line.
fn pulse_socket(log: &str) -> PathBuf {
    let value = log
        .split_whitespace()
        .find_map(|word| word.strip_prefix("PULSE_SERVER=unix:"))
        .unwrap_or_else(|| panic!("no PULSE_SERVER in the log: {log}"));
    PathBuf::from(value)
}

async fn wait_removed(path: &Path, what: &str) {
    let deadline = Instant::now() + SECONDS_5;
    while path.exists() {
        assert!(Instant::now() < deadline, "{what} still there");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_audio_pulse_each_instance_gets_its_own_pulseaudio_with_a_null_sink() {
    if !on_path("pulseaudio") {
        eprintln!("SKIPPED: pulseaudio is not installed (scripts/setup-debian.sh installs it)");
        return;
    }
    let sup = TestSupervisor::fake(2, |s| s.audio.mode = AudioMode::Pulse).await;
    let mut c = sup.client().await;
    let mut sockets = Vec::new();
    for id in 0..2u32 {
        assert_eq!(c.start().await["id"], id);
        c.wait_status(id as i64, "RUNNING", SECONDS_5).await;
        let log = sup.log(id);
        assert!(
            log.contains("OSW_AUDIO=pulse OSW_AUDIO_DEVICE=osw.monitor"),
            "{log}"
        );
        let socket = pulse_socket(&log);
        assert!(
            std::os::unix::net::UnixStream::connect(&socket).is_ok(),
            "{} does not answer",
            socket.display()
        );
        sockets.push(socket);
    }
    assert_ne!(sockets[0], sockets[1], "one server each");
    assert!(sup.dir.path().join("logs/pulse-0.log").exists());
    if on_path("pactl") {
        // The sink rust-core records from is there, and it is the server's default.
        let info = std::process::Command::new("pactl")
            .arg("info")
            .env("PULSE_SERVER", format!("unix:{}", sockets[0].display()))
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout);
        assert!(info.contains("Default Sink: osw"), "{info}");
        assert!(info.contains("Default Source: osw.monitor"), "{info}");
    }
    // Stopping the instance stops its server and removes its folder.
    c.stop(0).await;
    wait_removed(sockets[0].parent().unwrap(), "the first server's folder").await;
    // A crash does too.
    let pid = sup.instances.pid(1).unwrap();
    kill(pid, libc::SIGKILL);
    c.wait_status(1, "IDLE", SECONDS_5).await;
    wait_removed(
        sockets[1].parent().unwrap(),
        "the crashed instance's server folder",
    )
    .await;
    // A new instance in the slot gets a server again.
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let socket = pulse_socket(&sup.log(0));
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_ok());
    sup.shutdown().await;
    wait_removed(
        socket.parent().unwrap(),
        "the server's folder after shutdown",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pulseaudio_is_a_launch_failure() {
    let missing = PathBuf::from("/nonexistent/pulseaudio");
    assert_launch_fails_without(&missing, |s| {
        s.audio.mode = AudioMode::Pulse;
        s.audio.executable = missing.clone();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_during_initializing_stops_it() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command.env.insert("FAKE_NEVER_READY".into(), "1".into());
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    let pid = sup.instances.pid(0).unwrap();
    assert_eq!(c.status(0).await["status"], "INITIALIZING");
    assert_eq!(c.stop(0).await["error"], "none");
    wait_gone(pid, SECONDS_5).await;
    assert_eq!(c.status(0).await["status"], "IDLE");
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolution_overtaken_by_a_stop_is_not_running() {
    let sup = TestSupervisor::fake(1, |s| {
        // The fake applies resizes late, so the RESOLUTION is still waiting when STOP comes.
        s.command
            .env
            .insert("FAKE_RESIZE_DELAY_MS".into(), "3000".into());
        s.resize_timeout = Duration::from_secs(10);
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let mut resizer = sup.client().await;
    let resize = tokio::spawn(async move { resizer.resolution(0, 640, 360).await });
    sleep(Duration::from_millis(300)).await;
    assert_eq!(c.stop(0).await["error"], "none");
    let reply = resize.await.unwrap();
    assert_eq!(
        reply,
        serde_json::json!({"command":"RESOLUTION","error":"not running","id":0,"width":640,"height":360})
    );
    sup.shutdown().await;
}

/// Runs `script` with `sh -c` as the instance (it never becomes ready) with a 64 KiB log cap.
async fn shell_instance(script: &str) -> TestSupervisor {
    let script = script.to_string();
    TestSupervisor::fake(1, move |s| {
        s.command.executable = PathBuf::from("/bin/sh");
        s.command.args = vec!["-c".into(), script];
        s.log_max_bytes = 64 * 1024;
        s.startup_timeout = Duration::from_secs(30);
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_on_stdin_waits_for_an_answer_instead_of_spinning() {
    // Ghoul's failed-assertion prompt in OpenSpace: with stdin at end of file it prompts again
    // at once, forever (341 MB of log in 8 s). Our stdin is an open pipe nobody writes.
    let sup = shell_instance(
        "while :; do echo 'Assertion failed. (I)gnore (A)bort (E)xit'; read answer || continue; done",
    )
    .await;
    let mut c = sup.client().await;
    c.start().await;
    let pid = sup.instances.pid(0).unwrap();
    sleep(Duration::from_millis(1500)).await;
    let log = sup.log(0);
    assert_eq!(
        log.lines()
            .filter(|line| line.starts_with("Assertion failed"))
            .count(),
        1,
        "the prompt repeated: {} bytes of log",
        log.len()
    );
    assert!(alive(pid), "waiting at the prompt, not gone");
    c.stop(0).await;
    c.wait_status(0, "IDLE", SECONDS_5).await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_floods_its_output_never_fills_the_disk() {
    let sup = shell_instance("yes 'a line of output that never ends'").await;
    let mut c = sup.client().await;
    c.start().await;
    let path = sup.instances.log_path(0);
    let rotated = path.with_extension("log.1");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let deadline = Instant::now() + SECONDS_5;
    while size(&rotated) == 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
    }
    sleep(Duration::from_millis(500)).await; // megabytes more
    let cap = 64 * 1024 + 512; // the cap plus the rotation note
    let (current, old) = (size(&path), size(&rotated));
    assert!(old > 0, "the log was rotated");
    assert!(
        current <= cap && old <= cap,
        "log {current} bytes, rotated {old} bytes"
    );
    c.stop(0).await;
    c.wait_status(0, "IDLE", SECONDS_5).await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_display_is_skipped_for_the_next_range() {
    // Three free ranges of 2; the first display of the first range is taken by someone else
    // (its lock file, as an X server leaves it), the other orchestrator of this machine.
    let Some(display_base) = common::xvfb_displays(6) else {
        return;
    };
    let lock = PathBuf::from(format!("/tmp/.X{display_base}-lock"));
    std::fs::write(&lock, "     1\n").unwrap();
    let sup = TestSupervisor::fake(2, |s| {
        s.xvfb.mode = XvfbMode::Always;
        s.xvfb.display_base = display_base;
        s.xvfb.screen = "1280x720x24".into();
    })
    .await;
    let mut c = sup.client().await;
    assert_eq!(c.start().await["id"], 0);
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    assert_eq!(c.start().await["id"], 1);
    c.wait_status(1, "RUNNING", SECONDS_5).await;
    // Slot 0 moved up a range (+ 2 slots); slot 1 kept its own display.
    let moved = display_base + 2;
    assert!(
        sup.log(0).contains(&format!("DISPLAY=:{moved} ")),
        "{}",
        sup.log(0)
    );
    assert!(
        sup.log(1)
            .contains(&format!("DISPLAY=:{} ", display_base + 1)),
        "{}",
        sup.log(1)
    );
    sup.shutdown().await;
    std::fs::remove_file(&lock).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_instance_that_stops_delivering_frames_is_ended_with_the_reason() {
    let sup = TestSupervisor::fake(1, |s| {
        s.command
            .env
            .insert("FAKE_FRAMES_STOP_AFTER_MS".into(), "1000".into());
        s.frame_timeout = Duration::from_secs(1);
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    let pid = sup.instances.pid(0).unwrap();
    // Frames stop 1 s after start; 1 s later it counts as hung and is stopped.
    let status = c.wait_status(0, "IDLE", Duration::from_secs(10)).await;
    let last_exit = status["lastExit"].as_str().unwrap();
    assert!(
        last_exit.starts_with("no frames for 1s (no frame came out of the encoder); stopped"),
        "{last_exit}"
    );
    assert!(!alive(pid));
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_that_keeps_delivering_frames_is_never_taken_for_hung() {
    let sup = TestSupervisor::fake(1, |s| {
        s.frame_timeout = Duration::from_millis(500);
    })
    .await;
    let mut c = sup.client().await;
    c.start().await;
    c.wait_status(0, "RUNNING", SECONDS_5).await;
    sleep(Duration::from_secs(2)).await;
    assert_eq!(c.status(0).await["status"], "RUNNING");
    sup.shutdown().await;
}
