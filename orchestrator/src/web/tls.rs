//! Optional HTTPS for the web origin (rustls with ring), given a certificate chain and key in
//! PEM files (`--tls-cert`, `--tls-key`). Browsers then use `wss://` for the WebSockets,
//! which the pages derive from the page's own scheme. Compiled with the crate's `tls`
//! feature (on by default); without it, asking for TLS is a start-up error.

use std::path::PathBuf;

use super::TlsFiles;

/// TLS could not be set up.
#[derive(Debug, thiserror::Error)]
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
    /// Built without the `tls` feature.
    #[error("TLS was requested, but this orchestrator was built without the `tls` feature")]
    NotCompiled,
}

#[cfg(feature = "tls")]
mod imp {
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use tokio::time::{sleep, timeout};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::server::TlsStream;
    use tracing::debug;

    use super::{TlsError, TlsFiles};

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

    use tokio::net::{TcpListener, TcpStream};

    use super::{TlsError, TlsFiles};

    /// Stands in for the TLS acceptor; never built.
    #[derive(Clone)]
    pub enum Acceptor {}

    /// Always fails: TLS is not compiled in.
    pub fn acceptor(_files: &TlsFiles) -> Result<Acceptor, TlsError> {
        Err(TlsError::NotCompiled)
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
