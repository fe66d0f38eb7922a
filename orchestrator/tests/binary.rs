//! The `orchestrator` binary itself: `--help`, configuration precedence, SIGTERM stopping
//! every instance it started, and a SIGKILLed supervisor's instances stopped by the next one.

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

/// A running orchestrator binary (both roles, fake instances, no Xvfb) and its log lines.
struct Running {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(dir: &TempDir, base: u16, slots: u32) -> Running {
        let mut child = Command::new(ORCHESTRATOR)
            .args(["--listen", "127.0.0.1:0", "--slots", &slots.to_string()])
            .args(["--xvfb", "never", "--stop-timeout", "2"])
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
        Running { child, lines }
    }

    /// The next log line that contains `needle`.
    fn next_with(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .expect("orchestrator log line");
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The supervisor's address, from its log.
    fn supervisor_address(&self) -> std::net::SocketAddr {
        let listening = self.next_with("supervisor listening");
        value_of(&listening, "address=").parse().unwrap()
    }
}

fn value_of(line: &str, key: &str) -> String {
    let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[start..].split_whitespace().next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_every_instance_and_exits() {
    let dir = TempDir::new("sigterm");
    let base = free_port_base(3);
    let mut running = Running::start(&dir, base, 3);
    let addr = running.supervisor_address();
    let mut c = Client::connect(addr).await;
    let mut pids = Vec::new();
    for id in 0..3 {
        assert_eq!(c.start().await["id"], id);
        let launched = running.next_with("instance launched");
        pids.push(value_of(&launched, "pid=").parse::<u32>().unwrap());
    }
    c.wait_status(2, "RUNNING", Duration::from_secs(5)).await;

    kill(running.child.id(), libc::SIGTERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
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

#[tokio::test(flavor = "multi_thread")]
async fn after_a_sigkill_the_next_supervisor_stops_what_was_left_and_every_slot_is_free() {
    let dir = TempDir::new("sigkill");
    let base = free_port_base(2);
    let first = Running::start(&dir, base, 2);
    let addr = first.supervisor_address();
    let mut c = Client::connect(addr).await;
    let mut pids = Vec::new();
    for id in 0..2 {
        assert_eq!(c.start().await["id"], id);
        let launched = first.next_with("instance launched");
        pids.push(value_of(&launched, "pid=").parse::<u32>().unwrap());
    }
    c.wait_status(1, "RUNNING", Duration::from_secs(5)).await;
    drop(c);

    // No chance to clean up: the instances (process groups of their own) keep running, with
    // their slots' ports.
    let mut child = first.child;
    kill(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    for &pid in &pids {
        assert!(
            alive(pid),
            "instance {pid} died with its supervisor; nothing to test"
        );
    }

    // The next supervisor with the same log directory stops them before it serves anyone.
    let second = Running::start(&dir, base, 2);
    second.next_with("stopped what an earlier supervisor left running");
    let addr = second.supervisor_address();
    for &pid in &pids {
        assert!(
            !alive(pid),
            "instance {pid} still running under the new supervisor"
        );
    }
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.server_status().await["running"],
        0,
        "every slot starts free"
    );
    for id in 0..2 {
        assert_eq!(c.start().await["id"], id);
        // RUNNING means its signaling port was free again.
        c.wait_status(id, "RUNNING", Duration::from_secs(5)).await;
    }
    let mut child = second.child;
    kill(child.id(), libc::SIGTERM);
    assert!(child.wait().unwrap().success());
}
