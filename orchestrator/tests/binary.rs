//! The `orchestrator` binary itself: `--help`, configuration precedence, and SIGTERM stopping
//! every instance it started.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Client, FAKE, ORCHESTRATOR, TempDir, alive, free_port_base, kill};

#[test]
fn help_explains_the_options_the_environment_and_xvfb() {
    let out = Command::new(ORCHESTRATOR).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config",
        "ORCHESTRATOR_CONFIG",
        "--listen",
        "ORCHESTRATOR_LISTEN",
        "--slots",
        "--signaling-base-port",
        "--instance-executable",
        "--instance-env",
        "--startup-timeout",
        "--stop-timeout",
        "--xvfb",
        "OSW_CONTROL_SECRET",
        "OSW_API_TCP_PORT",
        "OSW_WEBGUI_HTTP_PORT",
        "--webgui-http-base-port",
        "Xvfb :<display base + N> -screen 0 3840x2160x24 -nolisten tcp",
        "no DISPLAY",
        "SIGTERM",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}:\n{help}");
    }
}

#[test]
fn file_environment_and_flags_merge_in_that_order() {
    let dir = TempDir::new("config");
    let file = dir.path().join("orchestrator.toml");
    std::fs::write(
        &file,
        "slots = 2\nstop_timeout = 3\n[instance]\nexecutable = \"bin/host\"\n[instance.env]\nA = \"file\"\n",
    )
    .unwrap();
    let out = Command::new(ORCHESTRATOR)
        .args([
            "--config",
            file.to_str().unwrap(),
            "--print-config",
            "--stop-timeout",
            "4",
        ])
        .env("ORCHESTRATOR_SLOTS", "5")
        .env("ORCHESTRATOR_STOP_TIMEOUT", "9")
        .env("ORCHESTRATOR_INSTANCE_ENV", "B=env;C=env")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("slots: 5,"), "{shown}");
    assert!(shown.contains("stop_timeout: 4s,"), "{shown}");
    assert!(
        shown.contains(&format!("{}/bin/host", dir.path().display())),
        "{shown}"
    );
    for pair in [r#""A": "file""#, r#""B": "env""#, r#""C": "env""#] {
        assert!(shown.contains(pair), "{pair} missing: {shown}");
    }

    let bad = Command::new(ORCHESTRATOR)
        .args(["--slots", "0", "--print-config"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("slots must be between 1 and 1000"));
    let unknown = dir.path().join("bad.toml");
    std::fs::write(&unknown, "slotz = 2\n").unwrap();
    let bad = Command::new(ORCHESTRATOR)
        .args(["--config", unknown.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown field `slotz`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_every_instance_and_exits() {
    let dir = TempDir::new("sigterm");
    let base = free_port_base(3);
    let mut child = Command::new(ORCHESTRATOR)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--slots",
            "3",
            "--xvfb",
            "never",
            "--stop-timeout",
            "2",
        ])
        .args(["--signaling-base-port", &base.to_string()])
        .args([
            "--instance-executable",
            FAKE,
            "--instance-env",
            "OSW_ICE_ADDRESSES=127.0.0.1",
        ])
        .args(["--log-dir", dir.path().join("logs").to_str().unwrap()])
        // Both roles (the default): the web origin on a free port, its database in `dir`.
        .args(["--web-listen", "127.0.0.1:0"])
        .args(["--database", dir.path().join("web.db").to_str().unwrap()])
        .env("ORCHESTRATOR_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[orchestrator] {line}");
            let _ = lines_tx.send(line);
        }
    });
    let next_with = |needle: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(20))
                .expect("orchestrator log line");
            if line.contains(needle) {
                return line;
            }
        }
    };
    let value_of = |line: &str, key: &str| -> String {
        let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
        line[start..].split_whitespace().next().unwrap().to_string()
    };
    let listening = next_with("supervisor listening");
    let addr = value_of(&listening, "address=").parse().unwrap();

    let mut c = Client::connect(addr).await;
    let mut pids = Vec::new();
    for id in 0..3 {
        assert_eq!(c.start().await["id"], id);
        let launched = next_with("instance launched");
        pids.push(value_of(&launched, "pid=").parse::<u32>().unwrap());
    }
    c.wait_status(2, "RUNNING", Duration::from_secs(5)).await;

    kill(child.id(), libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orchestrator did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(!alive(pid), "instance {pid} left running after SIGTERM");
    }
}
