//! Supervisor authentication: with a secret, a connection that does not present it is refused
//! before the WebSocket upgrade (401), one that does (bearer header, or `?token=` for clients
//! that cannot set headers) speaks the seeds' protocol unchanged; the web role's client
//! presents it; and no configuration opens a supervisor beyond loopback without one.

mod common;

use clap::Parser;
use common::web::TestWeb;
use common::{TempDir, TestSupervisor, fake_settings};
use futures_util::{SinkExt, StreamExt};
use orchestrator::config::{Cli, Config, ConfigError, FileConfig};
use orchestrator::secret::SupervisorSecret;
use orchestrator::supervisor::Supervisor;
use orchestrator::web::client::SupervisorClient;
use orchestrator::{ConnectionLimits, ServerSettings};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const SECRET: &str = "test-secret-0123456789";

async fn secured() -> TestSupervisor {
    let dir = TempDir::new("auth");
    let settings = fake_settings(1, dir.path());
    let server = ServerSettings {
        limits: ConnectionLimits::default(),
        secret: Some(SupervisorSecret::new(SECRET).unwrap()),
        ..ServerSettings::default()
    };
    TestSupervisor::start_with(settings, dir, server).await
}

/// Connects with `authorization` (a header value) to `path`; the HTTP status of a refusal.
async fn connect(
    sup: &TestSupervisor,
    path: &str,
    authorization: Option<&str>,
) -> Result<Value, u16> {
    let mut request = format!("ws://{}{path}", sup.addr)
        .into_client_request()
        .unwrap();
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("authorization", value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut ws, _)) => {
            ws.send(Message::text(r#"{"command":"SERVER_STATUS"}"#))
                .await
                .unwrap();
            let Some(Ok(Message::Text(reply))) = ws.next().await else {
                panic!("no reply");
            };
            Ok(serde_json::from_str(reply.as_str()).unwrap())
        }
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(err) => panic!("unexpected error: {err}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_secret_nothing_gets_past_the_upgrade() {
    let sup = secured().await;
    assert_eq!(connect(&sup, "/", None).await, Err(401));
    assert_eq!(
        connect(&sup, "/", Some("Bearer wrong-secret-0123456789")).await,
        Err(401)
    );
    assert_eq!(
        connect(&sup, "/?token=wrong-secret-0123456789", None).await,
        Err(401)
    );
    assert_eq!(
        connect(&sup, "/", Some(&format!("Basic {SECRET}"))).await,
        Err(401)
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_secret_the_seeds_protocol_is_unchanged() {
    let sup = secured().await;
    let expected = r#"{"command":"SERVER_STATUS","error":"none","id":0,"running":0,"total":1}"#;
    let expected: Value = serde_json::from_str(expected).unwrap();
    let by_header = connect(&sup, "/", Some(&format!("Bearer {SECRET}")))
        .await
        .unwrap();
    assert_eq!(by_header, expected);
    // The seeds' backend cannot set headers; it is configured with the URL instead.
    let by_url = connect(&sup, &format!("/?token={SECRET}"), None)
        .await
        .unwrap();
    assert_eq!(by_url, expected);
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_roles_client_presents_the_secret() {
    let sup = secured().await;
    let secret = SupervisorSecret::new(SECRET).unwrap();
    let host = sup.addr.ip().to_string();
    let with = SupervisorClient::new(&host, sup.addr.port(), Some(secret));
    let status = with
        .server_status()
        .await
        .expect("answered with the secret");
    assert_eq!(status.total, 1);
    let without = SupervisorClient::new(&host, sup.addr.port(), None);
    let err = without.server_status().await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_role_runs_instances_on_a_supervisor_that_needs_the_secret() {
    let sup = secured().await;
    let dir = TempDir::new("auth-web");
    let web = TestWeb::start(dir.path(), Some(&sup), |settings| {
        settings.manager.supervisor_secret = Some(SupervisorSecret::new(SECRET).unwrap());
    })
    .await;
    let owner = web.session().await;
    let launched = web.launch(&owner).await;
    let id = launched["id"].as_str().expect("launched").to_string();
    web.wait_for(&id, &owner, "running", |view| view["status"] == "RUNNING")
        .await;
    web.shutdown().await;
    sup.shutdown().await;
}

#[test]
fn a_supervisor_beyond_loopback_needs_a_secret() {
    let cli = |args: &[&str]| {
        let mut argv = vec!["orchestrator"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap()
    };
    let open = cli(&["--listen", "0.0.0.0:4699"]);
    let err = Config::merge(&open, FileConfig::default(), None).unwrap_err();
    assert!(
        matches!(err, ConfigError::OpenWithoutSecret { .. }),
        "{err}"
    );
    let secured = cli(&["--listen", "0.0.0.0:4699", "--supervisor-secret", SECRET]);
    let config = Config::merge(&secured, FileConfig::default(), None).unwrap();
    assert!(config.supervisor_secret.is_some());
    assert_eq!(
        config.web.manager.supervisor_secret, config.supervisor_secret,
        "the web role presents what the supervisor demands"
    );
    let weak = cli(&["--supervisor-secret", "short"]);
    let err = Config::merge(&weak, FileConfig::default(), None).unwrap_err();
    assert!(err.to_string().contains("at least 16"), "{err}");
    // A web role alone listens to no supervisor protocol: nothing to refuse.
    let web = cli(&["--role", "web", "--listen", "0.0.0.0:4699"]);
    assert!(Config::merge(&web, FileConfig::default(), None).is_ok());
}
