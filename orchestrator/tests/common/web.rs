//! Test harness of the web role: `orchestrator::web::run` on an ephemeral port, raw HTTP/1.1
//! requests, and WebSocket helpers.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use orchestrator::web::{self, LocalSupervisor, WebError, WebSettings};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestSupervisor;

pub const WAIT: Duration = Duration::from_secs(15);

/// A web role served by `orchestrator::web::run` on an ephemeral port.
pub struct TestWeb {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its database URL.
    pub database: String,
    /// Set when the origin serves HTTPS: trusts its certificate.
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsConnector>,
    /// Resolves `run`'s shutdown future.
    stop: Option<oneshot::Sender<()>>,
    /// The `run` task.
    task: Option<JoinHandle<Result<(), WebError>>>,
}

/// A `web/` with the two pages, as files `run` can serve.
pub fn web_root(dir: &Path) -> PathBuf {
    let root = dir.join("web");
    std::fs::create_dir_all(root.join("js")).unwrap();
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>home</title>",
    )
    .unwrap();
    std::fs::write(
        root.join("stream.html"),
        "<!doctype html><title>stream</title>",
    )
    .unwrap();
    std::fs::write(root.join("js/app.js"), "export default 1;\n").unwrap();
    std::fs::write(root.join(".secret"), "no").unwrap();
    root
}

/// The test's database: a SQLite file in `dir`, or, with `OSW_TEST_POSTGRES=postgres://…/db`
/// and the `postgres` feature, a database of that server named after `dir` (made once, so a
/// restarted web role finds it again).
pub async fn database_url(dir: &Path) -> String {
    #[cfg(feature = "postgres")]
    if let Ok(admin) = std::env::var("OSW_TEST_POSTGRES") {
        use sqlx::Row;
        sqlx::any::install_default_drivers();
        let name: String = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&admin)
            .await
            .unwrap();
        let exists = sqlx::query("SELECT COUNT(*) AS n FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap();
        if exists == 0 {
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(base, _)| base);
        return format!("{base}/{name}");
    }
    format!("sqlite://{}", dir.join("web.db").display())
}

/// A client's end of a connection to the origin: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
/// A boxed [`Io`].
pub type Conn = Box<dyn Io>;

/// Status, headers (lower-case names) and body of an HTTP response.
pub type Answer = (u16, Vec<(String, String)>, String);

/// The value of header `name` (lower case), or "".
pub fn header(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// Parses a response head: status and headers.
pub fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// Reads one response head, byte by byte, so nothing after it is consumed.
pub async fn read_head(conn: &mut Conn) -> Option<String> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match timeout(WAIT, conn.read(&mut byte)).await {
            Ok(Ok(1)) => raw.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&raw).to_string())
}

/// Reads one response with a `Content-Length` body from a connection that stays open.
pub async fn read_response(conn: &mut Conn) -> Option<Answer> {
    let head = read_head(conn).await?;
    let (status, headers) = parse_head(&head);
    let length: usize = header(&headers, "content-length").parse().unwrap_or(0);
    let mut body = vec![0u8; length];
    timeout(WAIT, conn.read_exact(&mut body)).await.ok()?.ok()?;
    Some((status, headers, String::from_utf8_lossy(&body).to_string()))
}

/// Whether the server closes `conn` within `within` (EOF or reset), reading and dropping
/// anything it still sends.
pub async fn closed_within(conn: &mut Conn, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    timeout(within, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

impl TestWeb {
    pub async fn start(
        dir: &Path,
        local: Option<&TestSupervisor>,
        tweak: impl FnOnce(&mut WebSettings),
    ) -> TestWeb {
        let local = local.map(|sup| LocalSupervisor {
            listen: sup.addr,
            slots: sup.instances.settings().slots,
            loopback: None,
        });
        TestWeb::start_with_local(dir, local, tweak).await
    }

    /// [`TestWeb::start`] with the local supervisor described by hand (a TLS port with a
    /// plain loopback listener beside it, as `--role both` makes one).
    pub async fn start_with_local(
        dir: &Path,
        local: Option<LocalSupervisor>,
        tweak: impl FnOnce(&mut WebSettings),
    ) -> TestWeb {
        let mut settings = WebSettings {
            root: web_root(dir),
            database: database_url(dir).await,
            ..WebSettings::default()
        };
        settings.manager.poll_initializing = Duration::from_millis(50);
        settings.manager.poll_running = Duration::from_millis(100);
        settings.manager.default_startup = Duration::from_secs(2);
        tweak(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        #[cfg(feature = "tls")]
        let tls = settings
            .tls
            .as_ref()
            .map(|files| tls_connector(&files.cert));
        let database = settings.database.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(web::run(listener, settings, local, async move {
            let _ = stopped.await;
        }));
        let web = TestWeb {
            addr,
            database,
            #[cfg(feature = "tls")]
            tls,
            stop: Some(stop),
            task: Some(task),
        };
        // Ready once it answers.
        let deadline = Instant::now() + WAIT;
        while web.request("GET", "/api/health", None, None).await.0 != 200 {
            assert!(Instant::now() < deadline, "web role did not come up");
            sleep(Duration::from_millis(20)).await;
        }
        web
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            timeout(Duration::from_secs(20), task)
                .await
                .expect("web::run returns after shutdown")
                .unwrap()
                .expect("web::run ends without error");
        }
    }

    /// A new connection to the origin from the local address `source` (any of 127.0.0.0/8
    /// works on Linux, so tests can be several clients), through TLS when the origin has it.
    pub async fn connect_from(&self, source: IpAddr) -> Option<Conn> {
        let socket = TcpSocket::new_v4().ok()?;
        socket.bind(SocketAddr::new(source, 0)).ok()?;
        let stream = socket.connect(self.addr).await.ok()?;
        #[cfg(feature = "tls")]
        if let Some(connector) = &self.tls {
            let name = rustls::pki_types::ServerName::try_from("localhost").ok()?;
            let tls = connector.connect(name, stream).await.ok()?;
            return Some(Box::new(tls));
        }
        Some(Box::new(stream))
    }

    /// A new connection from 127.0.0.1.
    pub async fn connect(&self) -> Option<Conn> {
        self.connect_from(IpAddr::from([127, 0, 0, 1])).await
    }

    /// One HTTP/1.1 request; returns status, headers (lower-case names) and body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.request_from(IpAddr::from([127, 0, 0, 1]), method, path, token, body)
            .await
    }

    /// [`TestWeb::request`] from the local address `source`.
    pub async fn request_from(
        &self,
        source: IpAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let Some(mut stream) = self.connect_from(source).await else {
            return (0, Vec::new(), String::new());
        };
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        // A TLS peer may end without close_notify; what arrived is still the answer.
        let _ = timeout(WAIT, stream.read_to_end(&mut raw))
            .await
            .expect("response in time");
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let (status, headers) = parse_head(head);
        (status, headers, body.to_string())
    }

    /// Sends a WebSocket upgrade request for `path` with `extra` header lines (each ending in
    /// `\r\n`; a `Host` line among them replaces the default one) and reads the response
    /// head. Returns the status, the headers and the connection, positioned after the head.
    pub async fn upgrade(&self, path: &str, extra: &str) -> (u16, Vec<(String, String)>, Conn) {
        let mut conn = self.connect().await.expect("connect");
        let host = if extra.to_ascii_lowercase().contains("host:") {
            String::new()
        } else {
            format!("Host: {}\r\n", self.addr)
        };
        let head = format!(
            "GET {path} HTTP/1.1\r\n{host}{extra}Connection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let head = read_head(&mut conn).await.unwrap_or_default();
        let (status, headers) = parse_head(&head);
        (status, headers, conn)
    }

    /// A JSON request; returns status and the parsed body.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, text) = self.request(method, path, token, body).await;
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON ({status}): {text}"));
        (status, value)
    }

    pub async fn session(&self) -> String {
        let (status, body) = self.json("POST", "/api/sessions", None, None).await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    pub async fn launch(&self, token: &str) -> Value {
        let (status, body) = self.json("POST", "/api/instances", Some(token), None).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Launches as `token` and waits until the instance runs; returns its id.
    pub async fn launch_running(&self, token: &str) -> String {
        let id = self.launch(token).await["id"]
            .as_str()
            .expect("an instance id")
            .to_string();
        self.wait_for(&id, token, "RUNNING", |v| v["status"] == "RUNNING")
            .await;
        id
    }

    /// Stops `id` as `token` (its owner) and checks it ended; returns the instance's view.
    pub async fn stop(&self, id: &str, token: &str) -> Value {
        let (status, view) = self
            .json("DELETE", &format!("/api/instances/{id}"), Some(token), None)
            .await;
        assert_eq!((status, &view["status"]), (200, &json!("ENDED")), "{view}");
        view
    }

    /// A share link for `id`, made by its owner: the link's token, and the whole answer.
    pub async fn share(&self, id: &str, owner: &str) -> (String, Value) {
        let (status, body) = self
            .json(
                "POST",
                &format!("/api/instances/{id}/share"),
                Some(owner),
                None,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().expect("a share token").to_string();
        (token, body)
    }

    pub async fn ws(&self, path: &str) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
        tokio_tungstenite::connect_async(format!("ws://{}{path}", self.addr))
            .await
            .map(|(ws, _)| ws)
    }

    /// Polls the instance until `probe` holds; returns the view.
    pub async fn wait_for(
        &self,
        id: &str,
        token: &str,
        what: &str,
        probe: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, view) = self
                .json("GET", &format!("/api/instances/{id}"), Some(token), None)
                .await;
            if probe(&view) {
                return view;
            }
            assert!(Instant::now() < deadline, "instance never {what}: {view}");
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TestWeb {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The next text message, parsed.
pub async fn next_json(ws: &mut Socket) -> Value {
    loop {
        let message = timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("websocket ok");
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Reads pushed messages until one satisfies `probe`.
pub async fn pushed_until(ws: &mut Socket, probe: impl Fn(&Value) -> bool) -> Value {
    loop {
        let message = next_json(ws).await;
        if probe(&message) {
            return message;
        }
    }
}

pub async fn send(ws: &mut Socket, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// A TLS client that trusts only the certificate in the PEM file `cert`.
#[cfg(feature = "tls")]
pub fn tls_connector(cert: &Path) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
}

/// A WebSocket frame as a client would write it, with every bit under the test's control.
pub fn ws_frame(opcode: u8, payload: &[u8], fin: bool, rsv1: bool, masked: bool) -> Vec<u8> {
    let mut frame = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
    let mask_bit = u8::from(masked) << 7;
    match payload.len() {
        n if n < 126 => frame.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37u8, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    frame
}

/// Reads the server's frames until its close frame and returns the close code (1005 for a
/// close frame without one), or `None` when the connection ends without a close frame.
pub async fn close_code(conn: &mut Conn) -> Option<u16> {
    loop {
        let mut head = [0u8; 2];
        timeout(WAIT, conn.read_exact(&mut head)).await.ok()?.ok()?;
        let opcode = head[0] & 0x0f;
        let length = match head[1] & 0x7f {
            126 => {
                let mut n = [0u8; 2];
                conn.read_exact(&mut n).await.ok()?;
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                conn.read_exact(&mut n).await.ok()?;
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(length).ok()?];
        timeout(WAIT, conn.read_exact(&mut payload))
            .await
            .ok()?
            .ok()?;
        if opcode == 8 {
            return Some(match payload.get(..2) {
                Some(code) => u16::from_be_bytes([code[0], code[1]]),
                None => 1005,
            });
        }
    }
}
