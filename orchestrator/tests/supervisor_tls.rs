//! `wss://` on the supervisor port: with a certificate and key, every connection starts with
//! TLS, so the secret and the relayed signaling never cross the network in the clear. A web
//! role that trusts the supervisor's CA runs instances through it (the protocol and the
//! signaling relay); a client that does not trust it, or speaks plain `ws://`, gets nothing;
//! a client that never starts its TLS handshake is dropped at the handshake deadline; and the
//! web role in the same process reaches a TLS supervisor on its plain loopback listener.
//!
//! The CA and the supervisor's certificate (for `localhost` and `127.0.0.1`) are made at test
//! time with rcgen, nothing is kept.
#![cfg(feature = "tls")]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::web::{TestWeb, next_json, send};
use common::{TempDir, TestSupervisor, fake_settings};
use futures_util::{SinkExt, StreamExt};
use orchestrator::instances::Instances;
use orchestrator::secret::SupervisorSecret;
use orchestrator::supervisor::Supervisor;
use orchestrator::web::client::{SupervisorAccess, SupervisorClient};
use orchestrator::web::tls::ServerTls;
use orchestrator::web::{LocalSupervisor, SupervisorAddress, TlsFiles};
use orchestrator::{ConnectionLimits, ServerSettings};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "tls-test-secret-0123456789";

/// A throwaway CA and a supervisor certificate it signed, as PEM files in a folder.
struct Pki {
    /// The CA certificate: what `--supervisor-ca` names.
    ca: PathBuf,
    /// The supervisor's certificate and key.
    server: TlsFiles,
}

/// A CA named `name`, written to `dir/<name>-ca.pem`, and a certificate it signed for
/// `localhost` and `127.0.0.1` with its key (`dir/<name>-cert.pem`, `dir/<name>-key.pem`).
fn make_pki(dir: &Path, name: &str) -> Pki {
    make_pki_for(dir, name, &["localhost", "127.0.0.1"])
}

/// [`make_pki`] with a certificate for `names`.
fn make_pki_for(dir: &Path, name: &str, names: &[&str]) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "supervisor");
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        server: TlsFiles {
            cert: dir.join(format!("{name}-cert.pem")),
            key: dir.join(format!("{name}-key.pem")),
        },
    };
    std::fs::write(&pki.ca, ca.pem()).unwrap();
    std::fs::write(&pki.server.cert, cert.pem()).unwrap();
    std::fs::write(&pki.server.key, key.serialize_pem()).unwrap();
    pki
}

fn secret() -> SupervisorSecret {
    SupervisorSecret::new(SECRET).unwrap()
}

/// A supervisor of `slots` fake instances whose port speaks TLS with a certificate for
/// `localhost` and `127.0.0.1` from a new CA, and needs the secret.
async fn tls_supervisor(slots: u32, limits: ConnectionLimits) -> (TestSupervisor, Pki) {
    let dir = TempDir::new("tls");
    let pki = make_pki(dir.path(), "good");
    (tls_supervisor_with(slots, limits, dir, &pki).await, pki)
}

/// [`tls_supervisor`] with `pki`'s certificate.
async fn tls_supervisor_with(
    slots: u32,
    limits: ConnectionLimits,
    dir: TempDir,
    pki: &Pki,
) -> TestSupervisor {
    let settings = fake_settings(slots, dir.path());
    let server = ServerSettings {
        limits,
        secret: Some(secret()),
        tls: Some(ServerTls::load(&pki.server).expect("the test certificate loads")),
    };
    TestSupervisor::start_with(settings, dir, server).await
}

/// The protocol client the web role uses, over `wss://`, trusting `ca` (the system's roots
/// when `None`).
fn wss_client(addr: SocketAddr, ca: Option<&Path>) -> SupervisorClient {
    let access = SupervisorAccess::new(Some(secret()), ca.map(Path::to_path_buf));
    SupervisorClient::with_access(&addr.ip().to_string(), addr.port(), true, access)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_role_with_the_ca_runs_an_instance_and_relays_its_signaling_over_wss() {
    let (sup, pki) = tls_supervisor(1, ConnectionLimits::default()).await;
    // The protocol client alone: SERVER_STATUS over wss://.
    let status = wss_client(sup.addr, Some(&pki.ca))
        .server_status()
        .await
        .expect("a client that trusts the CA is answered");
    assert_eq!((status.running, status.total), (0, 1));

    let dir = TempDir::new("tls-web");
    let address = SupervisorAddress::tls("127.0.0.1", sup.addr.port());
    let ca = pki.ca.clone();
    let web = TestWeb::start(dir.path(), None, |settings| {
        settings.supervisors = vec![address];
        settings.manager.supervisor_secret = Some(secret());
        settings.manager.supervisor_ca = Some(ca);
    })
    .await;
    let owner = web.session().await;
    let id = web.launch_running(&owner).await;

    // The viewer's signaling goes through the supervisor's relay, over wss:// too.
    let mut viewer = web
        .ws(&format!("/api/instances/{id}/signal?token={owner}"))
        .await
        .expect("the signaling proxy opens");
    send(&mut viewer, json!({"type": "join", "viewOnly": false})).await;
    assert_eq!(next_json(&mut viewer).await["type"], "welcome");
    assert_eq!(
        next_json(&mut viewer).await["message"],
        "fake: joined viewOnly=false"
    );
    send(&mut viewer, json!({"type": "answer", "sdp": "v=0"})).await;
    assert_eq!(next_json(&mut viewer).await["message"], "fake: got answer");
    web.wait_for(&id, &owner, "watched", |v| v["viewers"] == 1)
        .await;
    viewer.close(None).await.unwrap();

    // The servers row says the port speaks TLS, for every web role that shares the database.
    let db = orchestrator::web::db::Db::open(&web.database)
        .await
        .unwrap();
    let servers = db.servers().await.unwrap();
    assert_eq!(servers.len(), 1);
    assert!(servers[0].tls, "{servers:?}");
    db.close().await;

    web.stop(&id, &owner).await;
    web.shutdown().await;
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let (sup, pki) = tls_supervisor(1, ConnectionLimits::default()).await;
    // The system's roots know nothing of a CA made a moment ago.
    let err = wss_client(sup.addr, None)
        .server_status()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    // Nor does another CA.
    let other = TempDir::new("tls-other-ca");
    let stranger = make_pki(other.path(), "other");
    let err = wss_client(sup.addr, Some(&stranger.ca))
        .server_status()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    println!("no CA: {err}");
    // A certificate from the trusted CA, but for another name than the one connected to.
    let misnamed_dir = TempDir::new("tls-misnamed");
    let misnamed = make_pki_for(misnamed_dir.path(), "misnamed", &["render-9.example.org"]);
    let other_sup =
        tls_supervisor_with(1, ConnectionLimits::default(), misnamed_dir, &misnamed).await;
    let err = wss_client(other_sup.addr, Some(&misnamed.ca))
        .server_status()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("certificate"), "{err}");
    println!("wrong name: {err}");
    other_sup.shutdown().await;
    // The supervisor is none the worse.
    assert!(
        wss_client(sup.addr, Some(&pki.ca))
            .server_status()
            .await
            .is_ok()
    );
    sup.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_ws_client_gets_no_protocol_answer_from_a_tls_supervisor() {
    let (sup, pki) = tls_supervisor(1, ConnectionLimits::default()).await;
    // The web role's client configured for a plain supervisor.
    let plain = SupervisorClient::new("127.0.0.1", sup.addr.port(), Some(secret()));
    assert!(plain.server_status().await.is_err());
    // tungstenite over ws://, the secret in the URL as the seeds' backend would send it.
    let url = format!("ws://{}/?token={SECRET}", sup.addr);
    let result = timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("the attempt ends");
    assert!(result.is_err(), "a plain WebSocket opened on a TLS port");
    // Spoken raw: whatever comes back is no HTTP answer (a TLS alert, or the connection ends).
    let mut raw = TcpStream::connect(sup.addr).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {SECRET}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        sup.addr
    );
    raw.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = timeout(Duration::from_secs(10), raw.read_to_end(&mut answer))
        .await
        .expect("the supervisor ends the connection");
    assert!(
        !answer.starts_with(b"HTTP"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // A TLS client is served as before.
    assert!(
        wss_client(sup.addr, Some(&pki.ca))
            .server_status()
            .await
            .is_ok()
    );
    sup.shutdown().await;
}

/// A client that connects and never sends its ClientHello, or never its upgrade after the
/// TLS handshake, holds its slot until the handshake deadline, no longer: with one slot in
/// all, the next client is served right after.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_starts_tls_is_dropped_at_the_handshake_timeout() {
    let handshake_timeout = Duration::from_millis(400);
    let (sup, pki) = tls_supervisor(
        1,
        ConnectionLimits {
            max_connections: 1,
            handshake_timeout,
            ..ConnectionLimits::default()
        },
    )
    .await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(sup.addr).await.unwrap();
    let mut byte = [0u8; 1];
    let end = timeout(Duration::from_secs(5), silent.read(&mut byte))
        .await
        .expect("a silent client is disconnected");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    let held = started.elapsed();
    assert!(
        held >= handshake_timeout - Duration::from_millis(50),
        "dropped after {held:?}, before the deadline"
    );
    println!("silent TCP client dropped after {held:?}");

    // TLS done, then silence: the same deadline, counted from the accept.
    let roots = {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        roots
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let started = Instant::now();
    let tcp = TcpStream::connect(sup.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    let end = timeout(Duration::from_secs(5), tls.read(&mut byte))
        .await
        .expect("a client without an upgrade is disconnected");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    let held = started.elapsed();
    println!("TLS client without an upgrade dropped after {held:?}");
    // One deadline for both handshakes, not one each.
    assert!(held < 2 * handshake_timeout, "held {held:?}");
    drop(tls);

    // The only slot is free again at once.
    let status = timeout(
        Duration::from_secs(3),
        wss_client(sup.addr, Some(&pki.ca)).server_status(),
    )
    .await
    .expect("the next client is served within moments")
    .expect("answered");
    assert_eq!(status.total, 1);
    drop(silent);
    sup.shutdown().await;
}

/// `--role both` with TLS on the supervisor port: the web role reaches its own supervisor on
/// the plain loopback listener beside it, the same row registered under the TLS port.
#[tokio::test(flavor = "multi_thread")]
async fn the_web_role_in_the_same_process_reaches_a_tls_supervisor_on_plain_loopback() {
    let dir = TempDir::new("tls-both");
    let pki = make_pki(dir.path(), "good");
    let instances = Instances::new(fake_settings(1, dir.path())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let loopback = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (tls_addr, loopback_addr) = (
        listener.local_addr().unwrap(),
        loopback.local_addr().unwrap(),
    );
    let server = ServerSettings {
        secret: Some(secret()),
        tls: Some(ServerTls::load(&pki.server).unwrap()),
        ..ServerSettings::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let supervisor = tokio::spawn(orchestrator::server::run_with_loopback(
        listener,
        loopback,
        instances,
        server,
        async move {
            let _ = stopped.await;
        },
    ));

    // The loopback listener speaks plain ws:// (still with the secret); the port, TLS only.
    let plain = SupervisorClient::new("127.0.0.1", loopback_addr.port(), Some(secret()));
    assert_eq!(plain.server_status().await.unwrap().total, 1);
    let unauthorized = SupervisorClient::new("127.0.0.1", loopback_addr.port(), None);
    let err = unauthorized.server_status().await.unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    let on_the_port = SupervisorClient::new("127.0.0.1", tls_addr.port(), Some(secret()));
    assert!(on_the_port.server_status().await.is_err());

    let web_dir = TempDir::new("tls-both-web");
    let local = LocalSupervisor {
        listen: tls_addr,
        slots: 1,
        loopback: Some(loopback_addr),
    };
    // No CA: the web role never needs one to reach itself.
    let web = TestWeb::start_with_local(web_dir.path(), Some(local), |settings| {
        settings.manager.supervisor_secret = Some(secret());
    })
    .await;
    let owner = web.session().await;
    let id = web.launch_running(&owner).await;
    let mut viewer = web
        .ws(&format!("/api/instances/{id}/signal?token={owner}"))
        .await
        .unwrap();
    send(&mut viewer, json!({"type": "join", "viewOnly": true})).await;
    assert_eq!(next_json(&mut viewer).await["type"], "welcome");
    viewer.close(None).await.unwrap();
    let db = orchestrator::web::db::Db::open(&web.database)
        .await
        .unwrap();
    let rows: Vec<(String, u16, bool)> = db
        .servers()
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.ip_address, row.port, row.tls))
        .collect();
    assert_eq!(rows, [("127.0.0.1".to_string(), tls_addr.port(), true)]);
    db.close().await;
    web.shutdown().await;
    let _ = stop.send(());
    timeout(Duration::from_secs(30), supervisor)
        .await
        .expect("the supervisor stops")
        .unwrap();
}

/// The protocol over wss:// is the seeds' protocol, byte for byte, and the secret may come
/// in the URL as before (the seeds' backend configured with `wss://host:4699/?token=…`).
#[tokio::test(flavor = "multi_thread")]
async fn over_wss_the_seeds_protocol_and_the_token_query_are_unchanged() {
    let (sup, pki) = tls_supervisor(1, ConnectionLimits::default()).await;
    let access = SupervisorAccess::new(None, Some(pki.ca.clone()));
    let mut ws = access
        .connect(
            &format!("wss://localhost:{}/?token={SECRET}", sup.addr.port()),
            None,
        )
        .await
        .expect("a DNS name on the certificate works too");
    ws.send(Message::text(r#"{"command":"SERVER_STATUS"}"#))
        .await
        .unwrap();
    let Some(Ok(Message::Text(reply))) = ws.next().await else {
        panic!("no reply");
    };
    assert_eq!(
        reply.as_str(),
        r#"{"command":"SERVER_STATUS","error":"none","id":0,"running":0,"total":1}"#
    );
    // Without the secret: 401 before the upgrade, over TLS like everything else.
    let err = access
        .connect(&format!("wss://127.0.0.1:{}/", sup.addr.port()), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("401"), "{err}");
    sup.shutdown().await;
}
