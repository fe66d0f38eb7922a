//! Launching an instance process and signalling it.
//!
//! Each instance (and each Xvfb) is the leader of its own process group, so a terminal's Ctrl-C
//! reaches only the orchestrator (which then stops instances in order), and SIGTERM/SIGKILL can
//! reach everything an instance spawned (a wrapper script's children too).

use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};

use super::InstanceSettings;
use super::logs::LogFile;

/// Environment variables the orchestrator sets for every instance; the configured `env` may
/// not set them.
pub const RESERVED_ENV: &[&str] = &[
    "OSW_INSTANCE_ID",
    "OSW_LISTEN_PORT",
    "OSW_CONTROL_SECRET",
    "OSW_ENABLED",
    "OSW_API_WEBSOCKET_PORT",
    "OSW_API_TCP_PORT",
    "OSW_WEBGUI_HTTP_PORT",
];

/// The environment instance `id` gets on top of the orchestrator's own and the configured
/// `env`: its id, ports, secret, (under Xvfb) display and `extra` (its sound server's).
pub(super) fn instance_env(
    settings: &InstanceSettings,
    id: u32,
    secret: &str,
    display: Option<u32>,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let ports = settings.ports;
    let mut env: Vec<(String, String)> = settings
        .command
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend([
        ("OSW_INSTANCE_ID".to_string(), id.to_string()),
        (
            "OSW_LISTEN_PORT".to_string(),
            ports.signaling(id).to_string(),
        ),
        ("OSW_CONTROL_SECRET".to_string(), secret.to_string()),
        ("OSW_ENABLED".to_string(), "1".to_string()),
        (
            "OSW_API_WEBSOCKET_PORT".to_string(),
            ports.api_websocket(id).to_string(),
        ),
        (
            "OSW_API_TCP_PORT".to_string(),
            ports.api_tcp(id).to_string(),
        ),
        (
            "OSW_WEBGUI_HTTP_PORT".to_string(),
            ports.webgui_http(id).to_string(),
        ),
    ]);
    if let Some(display) = display {
        env.push(("DISPLAY".to_string(), format!(":{display}")));
    }
    env.extend(extra.iter().cloned());
    env
}

/// Spawns instance `id`. Its stdout and stderr are pipes for [`super::logs::pump`], which
/// caps the log. Its stdin is a pipe that the caller keeps open and never writes: a program
/// that prompts (a failed Ghoul assertion asks "ignore, abort, exit?") then waits for an
/// answer instead of reading end of file, prompting again, and filling the log in a loop.
pub(super) fn spawn_instance(
    settings: &InstanceSettings,
    id: u32,
    secret: &str,
    display: Option<u32>,
    extra_env: &[(String, String)],
    log: &LogFile,
) -> std::io::Result<Child> {
    let program = &settings.command;
    let mut command = Command::new(&program.executable);
    command
        .args(&program.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(dir) = &program.working_dir {
        command.current_dir(dir);
    }
    if display.is_some() {
        command.env_remove("DISPLAY");
    }
    command.envs(instance_env(settings, id, secret, display, extra_env));
    log.note(&format!(
        "launching instance {id}: {} {} (signaling port {}, display {})",
        program.executable.display(),
        program.args.join(" "),
        settings.ports.signaling(id),
        display.map_or_else(
            || std::env::var("DISPLAY").unwrap_or_default(),
            |d| format!(":{d}")
        ),
    ));
    command.spawn()
}

/// Sends `signal` to the process group led by `pgid`. Returns false if there was nothing to
/// signal (the group is gone) or the id is not a usable group id.
pub(super) fn signal_group(pgid: u32, signal: libc::c_int) -> bool {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false; // never signal "every process" or init
    }
    // SAFETY: kill(2) takes plain integers and has no memory-safety preconditions; the negative
    // pid addresses the process group our child leads (spawned with `process_group(0)`).
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// "exited with status 1", "killed by signal 9 (SIGKILL)".
pub(super) fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exited with status {code}");
    }
    match status.signal() {
        Some(signal) => {
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("killed by signal {signal} ({}{core})", signal_name(signal))
        }
        None => format!("ended ({status})"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn exits_are_described() {
        assert_eq!(
            describe_exit(ExitStatus::from_raw(1 << 8)),
            "exited with status 1"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(ExitStatus::from_raw(15)),
            "killed by signal 15 (SIGTERM)"
        );
    }

    #[test]
    fn env_has_ids_ports_secret_and_display() {
        let mut settings = InstanceSettings::default();
        settings
            .command
            .env
            .insert("OSW_ICE_ADDRESSES".into(), "127.0.0.1".into());
        let pulse = [("PULSE_SERVER".to_string(), "unix:/tmp/p/native".to_string())];
        let env = instance_env(&settings, 2, "abc", Some(92), &pulse);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("OSW_INSTANCE_ID"), Some("2"));
        assert_eq!(get("OSW_LISTEN_PORT"), Some("4702"));
        assert_eq!(get("OSW_CONTROL_SECRET"), Some("abc"));
        assert_eq!(get("OSW_ENABLED"), Some("1"));
        assert_eq!(get("OSW_API_WEBSOCKET_PORT"), Some("4684"));
        assert_eq!(get("OSW_API_TCP_PORT"), Some("4679"));
        assert_eq!(get("OSW_WEBGUI_HTTP_PORT"), Some("4802"));
        assert_eq!(get("OSW_ICE_ADDRESSES"), Some("127.0.0.1"));
        assert_eq!(get("DISPLAY"), Some(":92"));
        assert_eq!(get("PULSE_SERVER"), Some("unix:/tmp/p/native"));
    }

    #[test]
    fn signal_group_refuses_init_and_everyone() {
        assert!(!signal_group(0, 0));
        assert!(!signal_group(1, 0));
    }
}
