//! The web origin's limits per client address: new sessions are rate-limited, sessions expire,
//! live instances are capped per address whatever the session, and wrong tokens are counted,
//! answered with a closed connection and, past the limit, refused outright. Clients are told
//! apart by their source address: 127.0.0.1 and 127.0.0.2 are both this machine's loopback.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::web::{Conn, TestWeb, closed_within, header, read_response};
use common::{TempDir, TestSupervisor};
use serde_json::Value;
use sqlx::Row;
use tokio::io::AsyncWriteExt;
use tokio::time::sleep;

const ONE: [u8; 4] = [127, 0, 0, 1];
const TWO: [u8; 4] = [127, 0, 0, 2];

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn new_sessions_are_rate_limited_per_client_address() {
    let dir = TempDir::new("web-session-rate");
    let web = TestWeb::start(dir.path(), None, |s| s.limits.new_sessions_per_minute = 3).await;
    for _ in 0..3 {
        let (status, _, body) = web
            .request_from(IpAddr::from(ONE), "POST", "/api/sessions", None, None)
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, headers, body) = web
        .request_from(IpAddr::from(ONE), "POST", "/api/sessions", None, None)
        .await;
    assert_eq!(status, 429, "a fourth session within a minute: {body}");
    assert!(
        parse(&body)["error"]
            .as_str()
            .unwrap()
            .contains("too many new sessions"),
        "{body}"
    );
    let retry: u64 = header(&headers, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Another address has its own allowance.
    let (status, _, body) = web
        .request_from(IpAddr::from(TWO), "POST", "/api/sessions", None, None)
        .await;
    assert_eq!(status, 201, "{body}");
    web.shutdown().await;
}

async fn count(url: &str, table: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let n = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get::<i64, _>("n")
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn unused_sessions_expire_and_are_deleted_unless_an_instance_runs() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("web-expiry");
    let web = TestWeb::start(dir.path(), Some(&sup), |s| {
        s.sessions.expiry = Some(Duration::from_secs(1));
        s.sessions.sweep_every = Duration::from_millis(200);
    })
    .await;
    let idle = web.session().await;
    let busy = web.session().await;
    let id = web.launch(&busy).await["id"].as_str().unwrap().to_string();
    sleep(Duration::from_millis(1500)).await;

    let (status, body) = web.json("GET", "/api/instances", Some(&idle), None).await;
    assert_eq!(
        status, 401,
        "a session unused past its expiry still works: {body}"
    );
    // A session with a live instance stays: its owner must be able to stop it.
    let (status, body) = web.json("GET", "/api/instances", Some(&busy), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = web
        .json("DELETE", &format!("/api/instances/{id}"), Some(&busy), None)
        .await;
    assert_eq!(status, 200, "{body}");
    // Stopping was a use: the session lives a full expiry time from then.
    let (status, _) = web.json("GET", "/api/instances", Some(&busy), None).await;
    assert_eq!(status, 200);
    sleep(Duration::from_millis(1500)).await;
    let (status, _) = web.json("GET", "/api/instances", Some(&busy), None).await;
    assert_eq!(status, 401);

    // The sweep deletes them, their ended instances with them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while count(&web.database, "sessions").await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expired sessions were never deleted"
        );
        sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&web.database, "instances").await, 0);
    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_instances_are_capped_per_client_address_whatever_the_session() {
    let sup = TestSupervisor::fake(4, |_| {}).await;
    let dir = TempDir::new("web-per-address");
    let web = TestWeb::start(dir.path(), Some(&sup), |s| {
        s.manager.max_per_address = 2;
        s.manager.max_per_session = 0;
    })
    .await;
    let launch_from = |source: [u8; 4], token: String| {
        let web = &web;
        async move {
            let (status, _, body) = web
                .request_from(
                    IpAddr::from(source),
                    "POST",
                    "/api/instances",
                    Some(&token),
                    None,
                )
                .await;
            (status, parse(&body))
        }
    };
    let sessions = [
        web.session().await,
        web.session().await,
        web.session().await,
    ];
    let (status, first) = launch_from(ONE, sessions[0].clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(launch_from(ONE, sessions[1].clone()).await.0, 201);
    let (status, body) = launch_from(ONE, sessions[2].clone()).await;
    assert_eq!(
        status, 429,
        "a third live instance from one address: {body}"
    );
    assert!(
        body["error"].as_str().unwrap().contains("your address"),
        "{body}"
    );
    // Another address is not held back.
    assert_eq!(launch_from(TWO, sessions[2].clone()).await.0, 201);
    // Once one has ended, the first address may launch again.
    let id = first["id"].as_str().unwrap();
    web.stop(id, &sessions[0]).await;
    assert_eq!(launch_from(ONE, sessions[2].clone()).await.0, 201);
    web.shutdown().await;
    sup.shutdown().await;
}

/// `GET /api/instances` with `token` on a fresh kept-alive connection from `source`; returns
/// the answer and the connection.
async fn list_kept_alive(
    web: &TestWeb,
    source: [u8; 4],
    token: &str,
) -> (u16, Vec<(String, String)>, Conn) {
    let mut conn = web.connect_from(IpAddr::from(source)).await.unwrap();
    let head = format!(
        "GET /api/instances HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        web.addr
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let (status, headers, _) = read_response(&mut conn).await.expect("an answer");
    (status, headers, conn)
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_tokens_close_the_connection_and_are_refused_past_the_limit() {
    let dir = TempDir::new("web-token-guess");
    let web = TestWeb::start(dir.path(), None, |s| s.limits.token_failures_per_minute = 5).await;
    let good = web.session().await;
    let (status, _, mut conn) = list_kept_alive(&web, ONE, &good).await;
    assert_eq!(status, 200);
    assert!(
        !closed_within(&mut conn, Duration::from_millis(300)).await,
        "a good token's connection was closed"
    );

    for guess in 0..5 {
        let wrong = format!("s{guess:064}");
        let (status, headers, mut conn) = list_kept_alive(&web, ONE, &wrong).await;
        assert_eq!(status, 401, "guess {guess}");
        assert_eq!(header(&headers, "connection"), "close", "guess {guess}");
        assert!(
            closed_within(&mut conn, Duration::from_secs(5)).await,
            "the connection stayed open after wrong token {guess}"
        );
    }
    // Past the limit: refused without a look at the token, even a good one.
    let (status, headers, _) = list_kept_alive(&web, ONE, "s".repeat(65).as_str()).await;
    assert_eq!(status, 429);
    assert!(header(&headers, "retry-after").parse::<u64>().is_ok());
    let (status, _, _) = list_kept_alive(&web, ONE, &good).await;
    assert_eq!(status, 429, "a locked-out address may still try tokens");
    // Requests without a token are not held back, nor are other addresses.
    assert_eq!(web.request("GET", "/", None, None).await.0, 200);
    let (status, _, _) = list_kept_alive(&web, TWO, &good).await;
    assert_eq!(status, 200);
    web.shutdown().await;
}
