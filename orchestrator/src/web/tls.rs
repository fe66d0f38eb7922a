//! Optional TLS, rustls with ring, in the three places the orchestrator uses it; one loader
//! for each kind of PEM file, so they cannot drift apart:
//!
//! - HTTPS for the web origin, given a certificate chain and key (`--tls-cert`, `--tls-key`):
//!   [`acceptor`] and [`TlsListener`]. Browsers then use `wss://` for the WebSockets, which the
//!   pages derive from the page's own scheme.
//! - `wss://` on the supervisor port (`--supervisor-tls-cert`, `--supervisor-tls-key`): the
//!   same [`acceptor`], wrapped as [`ServerTls`] for the supervisor's accept loop, which runs
//!   the TLS handshake itself so its handshake deadline covers it.
//! - The web role's side of that (`wss://HOST:PORT` supervisors): [`ClientTls`], trusting a
//!   PEM bundle (`--supervisor-ca`) or else the system's roots.
//!
//! Compiled with the crate's `tls` feature (on by default); without it, asking for TLS is a
//! start-up error, and a `wss://` supervisor cannot be reached (never reached in the clear).

use std::path::{Path, PathBuf};

use super::TlsFiles;

/// TLS could not be set up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The trust for `wss://` supervisors could not be set up.
    #[error("supervisor CA {path}: {message}")]
    Ca {
        /// The bundle (`--supervisor-ca`).
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Built without the `tls` feature.
    #[error("TLS was requested, but this orchestrator was built without the `tls` feature")]
    NotCompiled,
}

/// The server side of TLS for the supervisor port: the certificate and key loaded once at
/// start ([`ServerTls::load`]), each connection's handshake run by [`ServerTls::accept`].
#[derive(Clone)]
pub struct ServerTls(imp::Acceptor);

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Nothing in it is worth printing, and the key must never be.
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// Loads the certificate chain and key (PEM), exactly as the web origin does.
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        imp::acceptor(files).map(ServerTls)
    }

    /// Runs the TLS handshake on `stream`. No deadline of its own: the caller's handshake
    /// deadline covers this and the WebSocket upgrade after it.
    pub async fn accept(&self, stream: tokio::net::TcpStream) -> std::io::Result<ServerStream> {
        imp::accept(&self.0, stream).await
    }
}

/// A connection accepted by [`ServerTls::accept`].
pub type ServerStream = imp::ServerStream;

/// What the web role trusts on `wss://` supervisors: the certificates of a PEM bundle
/// (`--supervisor-ca`, for a private CA: then nothing else is trusted), or else the system's
/// roots (for certificates from a public CA). Built once and shared by every supervisor
/// connection, protocol and relay alike.
#[derive(Clone)]
pub struct ClientTls(imp::ClientConfig);

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientTls")
    }
}

impl ClientTls {
    /// Trusts the certificates in the PEM file `ca`, or the system's roots when `None`.
    pub fn new(ca: Option<&Path>) -> Result<ClientTls, TlsError> {
        imp::client_config(ca).map(ClientTls)
    }
}

/// A WebSocket client connection, plain or TLS.
pub type ClientSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket of `request` with Nagle off (requests and signaling are small
/// messages that wait for an answer), over TLS with `tls` for a `wss://` URL; `config`
/// bounds what is read. A `ws://` URL is connected in the clear whatever `tls` is; a
/// `wss://` one without `tls` is refused by tungstenite, never connected in the clear.
pub async fn connect_websocket(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
    config: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
    tls: Option<&ClientTls>,
) -> Result<ClientSocket, tokio_tungstenite::tungstenite::Error> {
    imp::connect_websocket(request, config, tls.map(|tls| &tls.0)).await
}

#[cfg(feature = "tls")]
mod imp {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use std::path::Path;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use tokio::time::{sleep, timeout};
    pub use tokio_rustls::TlsAcceptor as Acceptor;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::server::TlsStream;
    use tracing::{debug, warn};

    use super::{TlsError, TlsFiles};

    /// A supervisor connection after its TLS handshake.
    pub type ServerStream = TlsStream<TcpStream>;
    /// The web role's TLS client configuration for supervisors.
    pub type ClientConfig = Arc<rustls::ClientConfig>;

    /// Time a client gets to finish the TLS handshake.
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A TLS server configuration from PEM files.
    pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
        let pem = |path: &std::path::PathBuf, message: String| TlsError::Pem {
            path: path.clone(),
            message,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
            .map_err(|err| pem(&files.cert, err.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|err| pem(&files.cert, err.to_string()))?;
        if certs.is_empty() {
            return Err(pem(&files.cert, "no certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&files.key)
            .map_err(|err| pem(&files.key, err.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Config(err.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|err| TlsError::Config(err.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// The TLS handshake of one accepted connection.
    pub async fn accept(acceptor: &Acceptor, stream: TcpStream) -> io::Result<ServerStream> {
        acceptor.accept(stream).await
    }

    /// A client configuration trusting the certificates in `ca`, or the system's roots.
    pub fn client_config(ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some(path) => {
                let failed = |message: String| TlsError::Ca {
                    path: path.to_path_buf(),
                    message,
                };
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .map_err(|err| failed(err.to_string()))?
                    .collect::<Result<_, _>>()
                    .map_err(|err| failed(err.to_string()))?;
                if certs.is_empty() {
                    return Err(failed("no certificate in the file".into()));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|err| failed(format!("not a usable CA certificate: {err}")))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for err in &found.errors {
                    // One unreadable file in the store need not stop the others from working.
                    warn!(%err, "a system root certificate could not be read");
                }
                let (added, ignored) = roots.add_parsable_certificates(found.certs);
                debug!(
                    added,
                    ignored, "system root certificates for wss:// supervisors"
                );
                if roots.is_empty() {
                    // Not fatal here: web roles without a wss:// supervisor never need them.
                    // A wss:// connection then fails verification, saying so.
                    warn!(
                        "no system root certificates found: wss:// supervisors need \
                         --supervisor-ca"
                    );
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Config(err.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// See [`super::connect_websocket`].
    pub async fn connect_websocket(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
        config: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
        tls: Option<&ClientConfig>,
    ) -> Result<super::ClientSocket, tokio_tungstenite::tungstenite::Error> {
        let connector = tls.map(|tls| tokio_tungstenite::Connector::Rustls(Arc::clone(tls)));
        tokio_tungstenite::connect_async_tls_with_config(request, config, true, connector)
            .await
            .map(|(socket, _)| socket)
    }

    /// Accepts TCP connections and hands out those whose TLS handshake succeeded. Handshakes
    /// run on their own tasks, so a slow client never holds up the others.
    pub struct TlsListener {
        /// Finished handshakes.
        accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
        /// The bound address.
        local: SocketAddr,
        /// The accept loop; aborted when the listener is dropped.
        task: JoinHandle<()>,
    }

    impl TlsListener {
        /// Starts accepting on `listener`.
        pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
            let local = listener
                .local_addr()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
            let (tx, accepted) = mpsc::channel(64);
            let task = tokio::spawn(async move {
                loop {
                    let (stream, peer) = match listener.accept().await {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            debug!(%err, "accept failed");
                            sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    };
                    let acceptor = acceptor.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                let _ = tx.send((tls, peer)).await;
                            }
                            Ok(Err(err)) => debug!(%peer, %err, "TLS handshake failed"),
                            Err(_) => debug!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            });
            TlsListener {
                accepted,
                local,
                task,
            }
        }
    }

    impl Drop for TlsListener {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            match self.accepted.recv().await {
                Some(accepted) => accepted,
                // The accept loop never ends on its own; if it did, accept nothing more.
                None => std::future::pending().await,
            }
        }

        fn local_addr(&self) -> io::Result<Self::Addr> {
            Ok(self.local)
        }
    }
}

#[cfg(not(feature = "tls"))]
mod imp {
    use std::io;
    use std::net::SocketAddr;
    use std::path::Path;

    use tokio::net::{TcpListener, TcpStream};

    use super::{TlsError, TlsFiles};

    /// Stands in for the TLS acceptor; never built.
    #[derive(Clone)]
    pub enum Acceptor {}

    /// Stands in for the client configuration; never built.
    #[derive(Clone)]
    pub enum ClientConfig {}

    /// Never made: there is no [`Acceptor`].
    pub type ServerStream = TcpStream;

    /// Always fails: TLS is not compiled in.
    pub fn acceptor(_files: &TlsFiles) -> Result<Acceptor, TlsError> {
        Err(TlsError::NotCompiled)
    }

    /// Cannot be called: there is no [`Acceptor`].
    pub async fn accept(acceptor: &Acceptor, _stream: TcpStream) -> io::Result<ServerStream> {
        match *acceptor {}
    }

    /// Always fails: TLS is not compiled in.
    pub fn client_config(_ca: Option<&Path>) -> Result<ClientConfig, TlsError> {
        Err(TlsError::NotCompiled)
    }

    /// Plain only: there is no [`ClientConfig`], and tungstenite refuses `wss://` URLs.
    pub async fn connect_websocket(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
        config: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
        tls: Option<&ClientConfig>,
    ) -> Result<super::ClientSocket, tokio_tungstenite::tungstenite::Error> {
        if let Some(tls) = tls {
            match *tls {}
        }
        tokio_tungstenite::connect_async_with_config(request, config, true)
            .await
            .map(|(socket, _)| socket)
    }

    /// Never built.
    pub struct TlsListener(Acceptor);

    impl TlsListener {
        /// Cannot be called: there is no [`Acceptor`].
        pub fn new(_listener: TcpListener, acceptor: Acceptor) -> TlsListener {
            TlsListener(acceptor)
        }
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TcpStream;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            match self.0 {}
        }

        fn local_addr(&self) -> io::Result<Self::Addr> {
            match self.0 {}
        }
    }
}

pub use imp::{TlsListener, acceptor};
