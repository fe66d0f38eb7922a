//! The web role when its database fails: `/api/health` notices a deleted or corrupted file,
//! reads keep working while writes fail, a stop that cannot be recorded changes nothing, and
//! an end noticed during the failure is recorded once writes work again. The database never
//! ends up contradicting the processes.
//!
//! The write failure is real: another connection holds SQLite's write lock (`BEGIN
//! IMMEDIATE`), as a stuck backup or a second program would, so every write of the web role
//! fails with "database is locked" after SQLite's busy timeout (5 s) while reads still work,
//! as they do on a full disk. These tests always use a SQLite file.

mod common;

use std::time::Duration;

use common::web::{TestWeb, WAIT};
use common::{TempDir, TestSupervisor};
use serde_json::{Value, json};
use sqlx::{AnyConnection, Connection, Row};
use tokio::time::{Instant, sleep};

/// Longer than SQLite's busy timeout plus a retry or two: how long an answer may take while
/// the database refuses writes.
const SLOW_WAIT: Duration = Duration::from_secs(40);

fn sqlite(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("web.db").display())
}

/// A second connection that holds the database's write lock until dropped or released.
struct WriteLock(AnyConnection);

impl WriteLock {
    async fn take(url: &str) -> WriteLock {
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect(url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        WriteLock(conn)
    }

    /// The instance's `status` column, read through the lock holder's connection.
    async fn status(&mut self, id: &str) -> String {
        status_on(&mut self.0, id).await
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
        self.0.close().await.unwrap();
    }
}

async fn status_on(conn: &mut AnyConnection, id: &str) -> String {
    sqlx::query("SELECT status FROM instances WHERE instance_id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
        .try_get("status")
        .unwrap()
}

/// The instance's `status` column, read on a connection of its own.
async fn stored_status(url: &str, id: &str) -> String {
    let mut conn = AnyConnection::connect(url).await.unwrap();
    let status = status_on(&mut conn, id).await;
    conn.close().await.unwrap();
    status
}

#[tokio::test(flavor = "multi_thread")]
async fn health_fails_when_the_database_file_is_deleted_or_corrupted() {
    // Deleted under the running web role.
    let dir = TempDir::new("web-health-deleted");
    let web = TestWeb::start(dir.path(), None, |s| s.database = sqlite(dir.path())).await;
    let (status, body) = web.json("GET", "/api/health", None, None).await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)));
    std::fs::remove_file(dir.path().join("web.db")).unwrap();
    let (status, body) = web.json("GET", "/api/health", None, None).await;
    assert_eq!(
        status, 503,
        "a deleted database is reported healthy: {body}"
    );
    assert_eq!(body["ok"], false);
    web.shutdown().await;

    // Overwritten with garbage in place.
    let dir = TempDir::new("web-health-garbage");
    let web = TestWeb::start(dir.path(), None, |s| s.database = sqlite(dir.path())).await;
    let path = dir.path().join("web.db");
    let length = std::fs::metadata(&path).unwrap().len() as usize;
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(&vec![0x5a; length]).unwrap();
    }
    let (status, body) = web.json("GET", "/api/health", None, None).await;
    assert_eq!(
        status, 503,
        "a corrupted database is reported healthy: {body}"
    );
    assert_eq!(body["ok"], false);
    web.shutdown().await;
}

async fn running_instance(web: &TestWeb) -> (String, String) {
    let token = web.session().await;
    let id = web.launch_running(&token).await;
    (token, id)
}

#[tokio::test(flavor = "multi_thread")]
async fn while_writes_fail_reads_answer_and_a_stop_changes_nothing() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("web-writes-fail");
    let url = sqlite(dir.path());
    let web = TestWeb::start(dir.path(), Some(&sup), |s| s.database = url.clone()).await;
    let (token, id) = running_instance(&web).await;
    let path = format!("/api/instances/{id}");

    let mut lock = WriteLock::take(&url).await;
    // Reads do not write.
    let (status, list) = web.json("GET", "/api/instances", Some(&token), None).await;
    assert_eq!(
        status, 200,
        "a read failed because the database refuses writes: {list}"
    );
    assert_eq!(list["instances"][0]["status"], "RUNNING");
    let (status, _) = web.json("GET", &path, Some(&token), None).await;
    assert_eq!(status, 200);

    // A stop the database cannot record is refused before anything is stopped.
    let started = Instant::now();
    let (status, body) = web.json("DELETE", &path, Some(&token), None).await;
    assert!(started.elapsed() < SLOW_WAIT);
    assert_eq!(
        status, 503,
        "a stop was answered while the database refused it: {body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("database"),
        "{body}"
    );
    let mut c = sup.client().await;
    assert_eq!(c.status(0).await["status"], "RUNNING", "stopped anyway");
    assert_eq!(lock.status(&id).await, "RUNNING");
    let (_, view) = web.json("GET", &path, Some(&token), None).await;
    assert_eq!(view["status"], "RUNNING", "{view}");

    // Writes work again: the stop goes through and is recorded.
    lock.release().await;
    let (status, body) = web.json("DELETE", &path, Some(&token), None).await;
    assert_eq!((status, &body["status"]), (200, &json!("ENDED")), "{body}");
    assert_eq!(c.status(0).await["status"], "IDLE");
    assert_eq!(stored_status(&url, &id).await, "ENDED");
    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_end_noticed_while_writes_fail_is_recorded_once_they_work_again() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("web-end-retried");
    let url = sqlite(dir.path());
    let web = TestWeb::start(dir.path(), Some(&sup), |s| s.database = url.clone()).await;
    let (token, id) = running_instance(&web).await;

    let mut lock = WriteLock::take(&url).await;
    common::kill(sup.instances.pid(0).unwrap(), libc::SIGKILL);
    // The page learns the truth at once, whatever the database.
    let deadline = Instant::now() + WAIT;
    let view: Value = loop {
        let (_, view) = web
            .json("GET", &format!("/api/instances/{id}"), Some(&token), None)
            .await;
        if view["status"] == "ENDED" {
            break view;
        }
        assert!(Instant::now() < deadline, "the crash never showed: {view}");
        sleep(Duration::from_millis(50)).await;
    };
    assert!(
        view["reason"].as_str().unwrap().contains("SIGKILL"),
        "{view}"
    );
    assert_eq!(lock.status(&id).await, "RUNNING", "the fault was not real");

    // Once writes work, the end is recorded without anyone asking again.
    lock.release().await;
    let deadline = Instant::now() + SLOW_WAIT;
    while stored_status(&url, &id).await != "ENDED" {
        assert!(Instant::now() < deadline, "the end was never recorded");
        sleep(Duration::from_millis(100)).await;
    }
    web.shutdown().await;
    sup.shutdown().await;
}
