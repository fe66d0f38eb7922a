//! Two web roles sharing one database (SQLite here; PostgreSQL when the test script runs it
//! with `OSW_TEST_POSTGRES`): they see the same instances, and 20 launches at once spread over
//! both never give one slot to two instances.

mod common;

use std::collections::HashSet;

use common::TempDir;
use common::TestSupervisor;
use common::web::TestWeb;
use futures_util::future::join_all;
use sqlx::Row;

const SLOTS: u32 = 4;
const LAUNCHES: usize = 20;

#[tokio::test(flavor = "multi_thread")]
async fn twenty_launches_over_two_web_roles_never_share_a_slot() {
    let sup = TestSupervisor::fake(SLOTS, |s| {
        s.command
            .env
            .insert("FAKE_READY_DELAY_MS".into(), "200".into());
    })
    .await;
    let dir = TempDir::new("web-roles");
    // Same folder, same database: two origins of one product.
    let a = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let b = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    assert_eq!(a.database, b.database);

    let mut sessions = Vec::new();
    for i in 0..LAUNCHES {
        let web = if i % 2 == 0 { &a } else { &b };
        sessions.push((web, web.session().await));
    }
    let answers = join_all(sessions.iter().map(|(web, token)| async move {
        web.json("POST", "/api/instances", Some(token), None).await
    }))
    .await;
    let launched: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    for (status, body) in &answers {
        assert!(
            *status == 201 || *status == 503,
            "a launch is made or refused with a reason: {status} {body}"
        );
        if *status == 503 {
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{body}"
            );
        }
    }
    assert_eq!(
        launched.len(),
        SLOTS as usize,
        "every slot used once, the rest refused"
    );

    // Each web role sees every instance, whichever launched it.
    for ((web, token), (status, body)) in sessions.iter().zip(&answers) {
        if *status != 201 {
            continue;
        }
        let id = body["id"].as_str().unwrap();
        let other = if std::ptr::eq(*web, &a) { &b } else { &a };
        let (seen, view) = other
            .json("GET", &format!("/api/instances/{id}"), Some(token), None)
            .await;
        assert_eq!(seen, 200, "the other web role sees {id}: {view}");
    }

    // The database, read directly: no slot holds two live instances.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&a.database).await.unwrap();
    let rows = sqlx::query("SELECT slot FROM instances WHERE status <> 'ENDED'")
        .fetch_all(&pool)
        .await
        .unwrap();
    let slots: Vec<i64> = rows.iter().map(|row| row.get::<i64, _>("slot")).collect();
    let distinct: HashSet<i64> = slots.iter().copied().collect();
    assert_eq!(slots.len(), SLOTS as usize, "{slots:?}");
    assert_eq!(distinct.len(), slots.len(), "a slot given twice: {slots:?}");
    pool.close().await;

    a.shutdown().await;
    b.shutdown().await;
    sup.shutdown().await;
}
