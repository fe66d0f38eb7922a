//! What the seeded fuzz tests (`tests/fuzz_*.rs`) share: a deterministic generator, this
//! process's open files and threads, and the loopback-namespace check.
//!
//! The orchestrator runs in the test process (`orchestrator::run` and `web::run` as tasks),
//! so `/proc/self` is the process under test. The tests of a fuzz binary run one at a time
//! ([`serial`]), so its counts belong to one test alone.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::{Instant, sleep};

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `test` on a runtime of its own once no other test of this binary runs. The runtime is
/// made after the lock is taken: a waiting test must not hold worker threads meanwhile, or they
/// would count as the running test's.
pub fn serial<F: Future>(test: impl FnOnce() -> F) -> F::Output {
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(test())
}

/// A small seeded generator (xorshift64), so every fuzz run is the same run: a failure found
/// once is found again with the seed the test prints.
pub struct Seeded(u64);

impl Seeded {
    /// A generator from `seed` (0 would stay 0 forever; it is replaced).
    pub fn new(seed: u64) -> Seeded {
        Seeded(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One of `items`.
    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }

    /// `len` bytes of anything.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.below(256) as u8).collect()
    }
}

/// Open file descriptors and threads of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcCounts {
    /// Entries of `/proc/self/fd`.
    pub fds: usize,
    /// Entries of `/proc/self/task`.
    pub threads: usize,
}

impl std::fmt::Display for ProcCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} fds, {} threads", self.fds, self.threads)
    }
}

impl ProcCounts {
    /// The counts now.
    pub fn now() -> ProcCounts {
        let count = |dir: &str| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
        ProcCounts {
            fds: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
        }
    }

    /// Waits (up to `settle`) until the counts are within `fds` and `threads` of `self`, the
    /// baseline, and panics naming the bound otherwise. Waiting lets closing sockets and
    /// tokio's idle blocking threads (kept 10 s) go; a leak per request stays.
    pub async fn assert_no_growth(self, what: &str, fds: usize, threads: usize, settle: Duration) {
        let deadline = Instant::now() + settle;
        loop {
            let now = ProcCounts::now();
            if now.fds <= self.fds + fds && now.threads <= self.threads + threads {
                println!(
                    "{what}: {self} before, {now} after (bound: +{fds} fds, +{threads} threads)"
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the orchestrator process grew from {self} to {now}; the bound is at most \
                 +{fds} fds and +{threads} threads over the baseline, {settle:?} after the run"
            );
            sleep(Duration::from_millis(100)).await;
        }
    }
}

/// True when this process sees no network interface but loopback: the rule for any test in
/// which a WebRTC peer connection is opened (the real host opens one per `join`).
pub fn in_loopback_only_namespace() -> bool {
    // /proc/net/dev follows the reading process's namespace (/sys/class/net follows the
    // namespace sysfs was mounted in).
    match std::fs::read_to_string("/proc/net/dev") {
        Ok(table) => table
            .lines()
            .skip(2)
            .filter_map(|line| line.split(':').next())
            .all(|name| name.trim() == "lo"),
        Err(_) => false,
    }
}
