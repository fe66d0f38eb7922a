//! Processes a supervisor that died leaves behind.
//!
//! Instances and their Xvfb lead process groups of their own, so a supervisor killed with
//! SIGKILL leaves them running: holding their slot's signaling port and X display, so every
//! later `START` in that slot would fail. The supervisor therefore keeps a ledger,
//! `<log dir>/supervisor-processes.json`, of every process group it started (slot, leader
//! pid, and the leader's start time from `/proc`, so a recycled pid is never taken for ours),
//! rewritten whenever one starts or ends. A supervisor starting with the same log directory
//! stops what the ledger lists and still runs (SIGTERM to the group, SIGKILL after the stop
//! timeout) before it serves anyone: its slots start free. (Adopting them instead would need
//! their control secrets and their pipes, which died with the old supervisor.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::process::signal_group;

/// The ledger's file name inside the log directory.
pub const LEDGER_FILE: &str = "supervisor-processes.json";

/// One process group this supervisor started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The slot it belongs to.
    pub slot: u32,
    /// Its leader's pid (the group id).
    pub pgid: u32,
    /// The leader's start time, in clock ticks since boot (`/proc/<pid>/stat`, field 22).
    pub started: u64,
}

/// The process groups this supervisor started and that still run, written to disk on every
/// change. Owned by the slot table's lock: one writer.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    /// By leader pid.
    groups: BTreeMap<u32, Group>,
}

impl Ledger {
    /// An empty ledger at `<log_dir>/supervisor-processes.json` (written at the first change).
    pub fn new(log_dir: &Path) -> Ledger {
        Ledger {
            path: log_dir.join(LEDGER_FILE),
            groups: BTreeMap::new(),
        }
    }

    /// Records the group led by `pgid` for `slot`.
    pub fn started(&mut self, slot: u32, pgid: u32) {
        let Some(started) = start_time(pgid) else {
            return; // already gone
        };
        self.groups.insert(
            pgid,
            Group {
                slot,
                pgid,
                started,
            },
        );
        self.save();
    }

    /// Forgets every group of `slot` (its task ended: they were stopped).
    pub fn slot_ended(&mut self, slot: u32) {
        let before = self.groups.len();
        self.groups.retain(|_, group| group.slot != slot);
        if self.groups.len() != before {
            self.save();
        }
    }

    fn save(&self) {
        let groups: Vec<Group> = self.groups.values().copied().collect();
        let result = serde_json::to_vec_pretty(&groups)
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomically(&self.path, &bytes));
        if let Err(err) = result {
            warn!(path = %self.path.display(), %err, "cannot write the process ledger");
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, path)
}

/// The start time of process `pid` in clock ticks since boot, if it runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    // `rest` starts at field 3 (state); the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Stops every group the ledger at `<log_dir>` lists that still runs (the same leader, by its
/// start time), SIGTERM first and SIGKILL after `stop_timeout`, then empties the ledger.
/// Returns the groups stopped. Blocking: it runs once, before the supervisor serves anyone.
pub fn stop_left_behind(log_dir: &Path, stop_timeout: Duration) -> Vec<Group> {
    let path = log_dir.join(LEDGER_FILE);
    let Ok(text) = std::fs::read(&path) else {
        return Vec::new(); // no earlier supervisor here
    };
    let groups: Vec<Group> = match serde_json::from_slice(&text) {
        Ok(groups) => groups,
        Err(err) => {
            warn!(path = %path.display(), %err, "ignoring an unreadable process ledger");
            Vec::new()
        }
    };
    let ours = |group: &Group| start_time(group.pgid) == Some(group.started);
    let left: Vec<Group> = groups.into_iter().filter(ours).collect();
    for group in &left {
        info!(
            slot = group.slot,
            pgid = group.pgid,
            "stopping a process group an earlier supervisor left running"
        );
        signal_group(group.pgid, libc::SIGTERM);
    }
    let deadline = Instant::now() + stop_timeout;
    while left.iter().any(ours) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for group in left.iter().filter(|group| ours(group)) {
        warn!(pgid = group.pgid, "ignored SIGTERM; sending SIGKILL");
        signal_group(group.pgid, libc::SIGKILL);
    }
    let _ = write_atomically(&path, b"[]");
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_past_a_command_name_with_spaces() {
        let own = start_time(std::process::id()).expect("this process runs");
        assert!(own > 0);
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn a_recycled_pid_is_not_taken_for_ours() {
        let dir = std::env::temp_dir().join(format!("osw-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // This very process, but with another start time: some other process now.
        let stranger = Group {
            slot: 0,
            pgid: std::process::id(),
            started: start_time(std::process::id()).unwrap() + 1,
        };
        std::fs::write(
            dir.join(LEDGER_FILE),
            serde_json::to_vec(&[stranger]).unwrap(),
        )
        .unwrap();
        assert_eq!(
            stop_left_behind(&dir, Duration::from_millis(100)),
            Vec::new()
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(LEDGER_FILE)).unwrap(),
            "[]"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_ledger_follows_what_starts_and_ends() {
        let dir = std::env::temp_dir().join(format!("osw-ledger-live-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut ledger = Ledger::new(&dir);
        ledger.started(2, std::process::id());
        let saved: Vec<Group> =
            serde_json::from_slice(&std::fs::read(dir.join(LEDGER_FILE)).unwrap()).unwrap();
        assert_eq!(saved.len(), 1);
        assert_eq!((saved[0].slot, saved[0].pgid), (2, std::process::id()));
        ledger.slot_ended(2);
        assert_eq!(
            std::fs::read_to_string(dir.join(LEDGER_FILE)).unwrap(),
            "[]"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
