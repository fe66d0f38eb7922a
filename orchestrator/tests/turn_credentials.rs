//! The stream page's ICE servers: `GET /api/instances/<uuid>/ice-servers` hands a configured
//! web role's STUN/TURN URLs out with coturn `use-auth-secret` credentials (expiring at
//! now + TTL, the HMAC-SHA1 of the username under the shared secret, recomputed here
//! independently), to the owner and to share links, and to nobody else. Without TURN the
//! list is empty. Only 127.0.0.1 is used; no TURN server is needed, none is contacted.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::TempDir;
use common::TestSupervisor;
use common::web::TestWeb;
use hmac::{Hmac, Mac};
use orchestrator::web::TurnSettings;
use serde_json::{Value, json};
use sha1::Sha1;

const SECRET: &str = "test-turn-secret-0123456789";
const TTL: Duration = Duration::from_secs(600);
const TURN_URL: &str = "turn:127.0.0.1:3478?transport=udp";
const STUN_URL: &str = "stun:127.0.0.1:3478";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The `iceServers` entry with credentials, checked as coturn would: the username's expiry
/// about now + TTL, its user part neither token nor session, the credential the secret's
/// HMAC of it. Returns the expiry and the user part.
fn check_turn_entry(servers: &Value, tokens: &[&str]) -> (u64, String) {
    let servers = servers.as_array().expect("iceServers is a list");
    assert_eq!(servers.len(), 2, "{servers:?}");
    assert_eq!(servers[0], json!({ "urls": [STUN_URL] }));
    let turn = &servers[1];
    assert_eq!(turn["urls"], json!([TURN_URL]));
    let username = turn["username"].as_str().expect("a username");
    let credential = turn["credential"].as_str().expect("a credential");

    let (expiry, user) = username.split_once(':').expect("<expiry>:<user>");
    let expiry: u64 = expiry.parse().expect("a Unix time");
    let want = unix_now() + TTL.as_secs();
    assert!(
        expiry.abs_diff(want) <= 5,
        "expiry {expiry}, now + TTL {want}"
    );
    assert!(!user.is_empty() && !user.contains(':'), "{username}");
    for token in tokens {
        assert!(!username.contains(token), "a token in {username}");
    }

    let mut mac = Hmac::<Sha1>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    mac.update(username.as_bytes());
    assert_eq!(credential, BASE64.encode(mac.finalize().into_bytes()));
    let mut wrong = Hmac::<Sha1>::new_from_slice(b"another-secret-entirely").expect("key");
    wrong.update(username.as_bytes());
    assert_ne!(credential, BASE64.encode(wrong.finalize().into_bytes()));
    (expiry, user.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn owners_and_share_links_get_fresh_turn_credentials_and_nobody_else_does() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("turn-credentials");
    let web = TestWeb::start(dir.path(), Some(&sup), |s| {
        s.turn = TurnSettings::new(vec![STUN_URL.into(), TURN_URL.into()], Some(SECRET), TTL)
            .expect("valid TURN settings");
    })
    .await;
    let owner = web.session().await;
    let stranger = web.session().await;
    let launched = web.launch(&owner).await;
    let id = launched["id"].as_str().unwrap().to_string();
    let path = format!("/api/instances/{id}/ice-servers");

    // The owner.
    let (status, body) = web.json("GET", &path, Some(&owner), None).await;
    assert_eq!(status, 200, "{body}");
    let (first_expiry, owner_user) = check_turn_entry(&body["iceServers"], &[&owner]);
    assert!(!body.to_string().contains(SECRET));

    // A share link: watches, so it needs to connect too; its user is not the owner's.
    let (spectator, _) = web.share(&id, &owner).await;
    let (status, body) = web.json("GET", &path, Some(&spectator), None).await;
    assert_eq!(status, 200, "{body}");
    let (_, spectator_user) = check_turn_entry(&body["iceServers"], &[&owner, &spectator]);
    assert_ne!(owner_user, spectator_user);

    // Made at each request: a later one expires later (the page asks before each connection).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = web.json("GET", &path, Some(&owner), None).await;
    let (later_expiry, same_user) = check_turn_entry(&body["iceServers"], &[&owner]);
    assert!(
        later_expiry > first_expiry,
        "{later_expiry} vs {first_expiry}"
    );
    assert_eq!(same_user, owner_user);

    // Everyone else, as on the other endpoints.
    for (token, want) in [
        (Some(stranger.as_str()), 403),
        (None, 401),
        (
            Some("s0000000000000000000000000000000000000000000000000000000000000000"),
            401,
        ),
        (Some("nonsense"), 401),
    ] {
        let (status, body) = web.json("GET", &path, token, None).await;
        assert_eq!(status, want, "{token:?}: {body}");
        assert!(body["error"].is_string(), "{body}");
        assert!(body.get("iceServers").is_none(), "{body}");
    }
    let (status, _) = web
        .json(
            "GET",
            "/api/instances/00000000-0000-4000-8000-000000000000/ice-servers",
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // A read, nothing else: other methods are refused.
    let (status, _, _) = web.request("POST", &path, Some(&owner), None).await;
    assert_eq!(status, 405);

    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_turn_the_list_is_empty() {
    let sup = TestSupervisor::fake(1, |_| {}).await;
    let dir = TempDir::new("turn-none");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let owner = web.session().await;
    let launched = web.launch(&owner).await;
    let id = launched["id"].as_str().unwrap();
    let (status, body) = web
        .json(
            "GET",
            &format!("/api/instances/{id}/ice-servers"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!((status, body), (200, json!({ "iceServers": [] })));
    web.shutdown().await;
    sup.shutdown().await;
}
