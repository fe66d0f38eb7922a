//! Test doubles and helpers shared by rust-core's integration tests.

pub mod receiver;

/// True when this process sees no network interface but loopback: the rule for any test that
/// opens a WebRTC peer connection (see DESIGN.md, "Network rule").
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
