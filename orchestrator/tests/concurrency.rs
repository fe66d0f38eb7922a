//! Many clients at once: 20 clients hammer START/STOP/STATUS/RESOLUTION/SERVER_STATUS (and bad
//! requests) concurrently; every reply is well-formed, no id is ever handed out twice, and the
//! final state matches the processes really running.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestSupervisor, alive, wait_gone};
use serde_json::Value;

const SLOTS: u32 = 4;
const CLIENTS: u64 = 20;
const OPS: usize = 40;

/// A tiny deterministic generator per client.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn assert_status_reply(reply: &Value, id: i64) {
    assert_eq!(reply["command"], "STATUS", "{reply}");
    if (0..SLOTS as i64).contains(&id) {
        assert_eq!(reply["error"], "none", "{reply}");
        let status = reply["status"].as_str().unwrap();
        assert!(
            ["IDLE", "INITIALIZING", "RUNNING", "DEINITIALIZING"].contains(&status),
            "{reply}"
        );
    } else {
        assert_eq!(reply["error"], "invalid id", "{reply}");
        assert_eq!(reply["status"], "INVALID", "{reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_clients_hammering_keep_the_state_consistent() {
    let sup = TestSupervisor::fake(SLOTS, |s| {
        s.command
            .env
            .insert("FAKE_READY_DELAY_MS".into(), "100".into());
    })
    .await;
    // Ids currently held by some client; START must never return one of these.
    let owned: Arc<Mutex<HashSet<i64>>> = Arc::new(Mutex::new(HashSet::new()));
    // (successful starts, refused starts, stops) over all clients, to show the test bites.
    let counts = Arc::new(Mutex::new((0u32, 0u32, 0u32)));

    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let addr = sup.addr;
        let owned = Arc::clone(&owned);
        let counts = Arc::clone(&counts);
        tasks.push(tokio::spawn(async move {
            let mut c = common::Client::connect(addr).await;
            let mut rng = Lcg(client * 7919 + 1);
            let mut mine: Vec<i64> = Vec::new();
            for _ in 0..OPS {
                match rng.next(9) {
                    0..=2 => {
                        let reply = c.start().await;
                        let id = reply["id"].as_i64().unwrap();
                        if reply["error"] == "none" {
                            assert!((0..SLOTS as i64).contains(&id), "{reply}");
                            assert!(
                                owned.lock().unwrap().insert(id),
                                "id {id} handed out twice: {reply}"
                            );
                            mine.push(id);
                            counts.lock().unwrap().0 += 1;
                        } else {
                            counts.lock().unwrap().1 += 1;
                            assert_eq!(reply["error"], "no available slots", "{reply}");
                            assert_eq!(id, -1);
                        }
                    }
                    3..=5 if !mine.is_empty() => {
                        let id = mine.swap_remove(rng.next(mine.len() as u64) as usize);
                        // Give up ownership before the slot can be reused.
                        owned.lock().unwrap().remove(&id);
                        let reply = c.stop(id).await;
                        assert_eq!(
                            reply,
                            serde_json::json!({"command":"STOP","error":"none","id":id})
                        );
                        counts.lock().unwrap().2 += 1;
                    }
                    3 | 6 => {
                        let id = rng.next(SLOTS as u64 + 1) as i64;
                        assert_status_reply(&c.status(id).await, id);
                    }
                    4 => {
                        let reply = c.server_status().await;
                        assert_eq!(reply["error"], "none", "{reply}");
                        assert_eq!(reply["total"], SLOTS);
                        assert!(
                            reply["running"].as_u64().unwrap() <= SLOTS as u64,
                            "{reply}"
                        );
                    }
                    5 | 7 => {
                        let id = rng.next(SLOTS as u64 + 1) as i64;
                        let reply = c.resolution(id, 800, 600).await;
                        let error = reply["error"].as_str().unwrap();
                        assert!(
                            ["none", "not running", "invalid id"].contains(&error),
                            "{reply}"
                        );
                        assert_eq!(
                            (reply["width"].as_i64(), reply["height"].as_i64()),
                            (Some(800), Some(600))
                        );
                    }
                    _ => {
                        let reply = c.send_text(r#"{"command":"STOP","id":"nope"}"#).await;
                        assert_eq!(reply["error"], "field \"id\" must be an integer");
                    }
                }
            }
            mine
        }));
    }
    let mut held = Vec::new();
    for task in tasks {
        held.extend(task.await.expect("client task"));
    }

    let (started, refused, stopped) = *counts.lock().unwrap();
    eprintln!("{started} starts, {refused} refused for no slot, {stopped} stops");
    assert!(
        started >= 2 * SLOTS && refused > 0 && stopped >= SLOTS,
        "too little contention"
    );

    // Final state: exactly the held ids are busy, each with a live process.
    let mut c = sup.client().await;
    let owned_now = owned.lock().unwrap().clone();
    assert_eq!(owned_now, held.iter().copied().collect::<HashSet<_>>());
    let server = c.server_status().await;
    assert_eq!(
        server["running"].as_u64().unwrap() as usize,
        held.len(),
        "{server}"
    );
    let mut pids = Vec::new();
    for id in 0..SLOTS as i64 {
        let status = c.status(id).await;
        if owned_now.contains(&id) {
            assert!(
                status["status"] == "RUNNING" || status["status"] == "INITIALIZING",
                "{status}"
            );
            let pid = sup
                .instances
                .pid(id as u32)
                .expect("a held id has a process");
            assert!(alive(pid));
            pids.push(pid);
        } else {
            assert_eq!(status["status"], "IDLE", "{status}");
            assert!(sup.instances.pid(id as u32).is_none());
        }
    }
    for id in &held {
        assert_eq!(c.stop(*id).await["error"], "none");
    }
    for pid in pids {
        wait_gone(pid, Duration::from_secs(5)).await;
    }
    assert_eq!(c.server_status().await["running"], 0);
    sup.shutdown().await;
}
