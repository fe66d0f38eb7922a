//! The words pages show about instances: a phase in an error, a duration, and the `reason`
//! sentence of an instance that ended.
//!
//! Apart from the logic so that every sentence the manager gives a page is in one place and
//! reads like the others, and so that none of them can leak what pages must never see (a
//! supervisor's `lastExit` carries the instance's output tail; only its first clause is kept).
//! Nothing here decides anything: the callers choose which sentence applies.

use std::time::Duration;

use super::Phase;

/// The end of an instance whose slot another launch got: it ended between two polls.
pub(super) const SLOT_TAKEN_OVER: &str = "The instance ended.";
/// The end of an instance whose server no poll reached for the grace time.
pub(super) const SERVER_STOPPED_ANSWERING: &str = "Its rendering server stopped answering.";
/// The end of a live instance whose server is not in the registry after a restart.
pub(super) const SERVER_NOT_REGISTERED: &str = "Its rendering server is no longer registered.";
/// The end of a live instance whose slot was idle when the web role restarted.
pub(super) const GONE_AT_RESTART: &str = "The instance was gone when the orchestrator restarted.";
/// The end of the local supervisor's instances when this process shuts down.
pub(super) const STOPPED_AT_SHUTDOWN: &str =
    "The orchestrator shut down, which stopped the instance.";

impl Phase {
    /// In words, for errors ("the instance is still starting, not running").
    pub(super) fn words(self) -> &'static str {
        match self {
            Phase::Initializing => "still starting",
            Phase::Running => "running",
            Phase::Deinitializing => "stopping",
            Phase::Ended => "ended",
        }
    }
}

/// The reason of an instance stopped by the idle timeout `limit`.
pub(super) fn idle_stop(limit: Duration) -> String {
    format!(
        "Stopped after {} without a viewer.",
        describe_duration(limit)
    )
}

/// "90 s", "5 min".
pub(super) fn describe_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 120 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else if d.subsec_millis() != 0 && secs < 10 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{secs} s")
    }
}

/// The page's sentence for a supervisor's `lastExit` of an instance that ended by itself.
pub(super) fn describe_exit(last_exit: Option<&str>) -> String {
    let Some(text) = last_exit else {
        return "The instance ended.".to_string();
    };
    if text.starts_with("did not become ready") {
        return "The instance did not finish starting in time and was stopped.".to_string();
    }
    if text.starts_with("no frames for") {
        return "The instance stopped delivering pictures and was ended.".to_string();
    }
    if text.starts_with("stopped on request") {
        return "The instance was stopped on its rendering server.".to_string();
    }
    if text.starts_with("stopped at supervisor shutdown") {
        return "The rendering server shut down, which stopped the instance.".to_string();
    }
    // "exited with status 1: <output tail>": the tail stays in the server's logs.
    let how = text.split(": ").next().unwrap_or(text);
    format!("The instance ended unexpectedly ({how}).")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_told_in_sentences_without_the_output() {
        assert_eq!(
            describe_exit(Some("exited with status 1: segfault in frame.cpp line 3")),
            "The instance ended unexpectedly (exited with status 1)."
        );
        assert_eq!(
            describe_exit(Some("killed by signal 9 (SIGKILL): tail")),
            "The instance ended unexpectedly (killed by signal 9 (SIGKILL))."
        );
        assert!(
            describe_exit(Some("did not become ready within 60s (x); stopped")).contains("in time")
        );
        assert_eq!(
            describe_exit(Some(
                "no frames for 30s (no frame came out of the encoder); stopped"
            )),
            "The instance stopped delivering pictures and was ended."
        );
        assert_eq!(describe_exit(None), "The instance ended.");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(describe_duration(Duration::from_secs(300)), "5 min");
        assert_eq!(describe_duration(Duration::from_secs(90)), "90 s");
        assert_eq!(describe_duration(Duration::from_millis(2500)), "2.5 s");
        assert_eq!(
            idle_stop(Duration::from_secs(300)),
            "Stopped after 5 min without a viewer."
        );
    }
}
