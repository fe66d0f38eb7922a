//! The accept loop: caps concurrent connections and refuses the rest with an HTTP 503.
//!
//! It knows nothing of what a connection does (that is the handler [`super::serve`] passes
//! in), so it is tested with plain sockets, without an [`super::Engine`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, mpsc};

/// The answer to a connection over the cap. Sent before reading the request: it does not
/// depend on it, and a WebSocket client reports the status instead of a bare reset.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
Content-Type: text/plain\r\n\
Content-Length: 31\r\n\
Retry-After: 5\r\n\
Connection: close\r\n\
\r\n\
too many signaling connections\n";

/// Refusals in flight at once; beyond this a connection is just closed. Each refusal is a
/// short task, and a flood must not turn into an unbounded number of them.
const MAX_PENDING_REFUSALS: usize = 16;

/// How long a refusal keeps reading what the client sent. Closing a socket with unread bytes
/// makes the kernel send a reset, which can destroy the 503 before the client has read it.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// The most a refusal reads before closing anyway.
const REFUSAL_MAX_DRAIN_BYTES: usize = 64 * 1024;

/// Accepts connections until `stop` fires, running each through `handler` on its own task
/// while fewer than `max_connections` are open; then waits for the open ones to end.
pub(super) async fn accept_loop<H, F>(
    listener: TcpListener,
    max_connections: usize,
    mut stop: broadcast::Receiver<()>,
    mut handler: H,
) where
    H: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_PENDING_REFUSALS));
    let mut refusal_log = RefusalLog::default();
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // The slot is taken at accept time, so connections still in their
                    // handshake count too (the handshake timeout bounds how long).
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        refusal_log.refused(Instant::now(), peer, max_connections);
                        refuse(stream, &refusals);
                        continue;
                    };
                    let connection = handler(stream, peer);
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        connection.await;
                        drop(slot);
                        drop(done);
                    });
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.recv() => break,
        }
    }
    drop(done_tx);
    // Every connection holds a clone of `done_tx`; recv returns None once all have ended.
    let _ = done_rx.recv().await;
}

/// Answers an over-cap connection with [`REFUSAL`] on a short task, or closes it at once when
/// too many refusals are already in flight.
fn refuse(stream: TcpStream, refusals: &Arc<Semaphore>) {
    let Ok(pending) = refusals.clone().try_acquire_owned() else {
        return; // dropping the stream closes it
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let answer = async {
            stream.write_all(REFUSAL).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            let mut drained = 0;
            while drained < REFUSAL_MAX_DRAIN_BYTES {
                match stream.read(&mut sink).await? {
                    0 => break,
                    n => drained += n,
                }
            }
            Ok::<(), std::io::Error>(())
        };
        // Errors and the deadline both just mean: close now.
        let _ = tokio::time::timeout(REFUSAL_LINGER, answer).await;
        drop(pending);
    });
}

/// Warns about refused connections at most once per [`RefusalLog::INTERVAL`], counting the
/// ones it kept quiet about: a flood must not flood the log too.
#[derive(Debug, Default)]
struct RefusalLog {
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl RefusalLog {
    const INTERVAL: Duration = Duration::from_secs(10);

    /// Records one refusal at `now` (a parameter so tests need no clock); returns whether
    /// it was logged.
    fn refused(&mut self, now: Instant, peer: SocketAddr, max_connections: usize) -> bool {
        if self
            .last_warning
            .is_some_and(|last| now.duration_since(last) < Self::INTERVAL)
        {
            self.suppressed += 1;
            return false;
        }
        tracing::warn!(
            %peer,
            max_connections,
            refused_quietly_before = self.suppressed,
            "signaling connection refused: too many open connections"
        );
        self.last_warning = Some(now);
        self.suppressed = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite;

    use super::super::connection::{HANDSHAKE_TIMEOUT, handshake};
    use super::*;

    /// Runs the accept loop with a handler that does the real handshake and then just holds
    /// the connection open until the client closes it.
    async fn start(max_connections: usize) -> (SocketAddr, broadcast::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let (shutdown, stop) = broadcast::channel(1);
        tokio::spawn(accept_loop(
            listener,
            max_connections,
            stop,
            |stream, peer| async move {
                if let Some((mut socket, _)) = handshake(stream, peer, HANDSHAKE_TIMEOUT).await {
                    while let Some(Ok(_)) = socket.next().await {}
                }
            },
        ));
        (address, shutdown)
    }

    type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

    async fn connect(address: SocketAddr) -> Result<Client, tungstenite::Error> {
        tokio_tungstenite::connect_async(format!("ws://{address}/"))
            .await
            .map(|(socket, _)| socket)
    }

    fn assert_refused(result: Result<Client, tungstenite::Error>) {
        match result {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
            Err(other) => panic!("expected an HTTP 503, got {other}"),
            Ok(_) => panic!("expected an HTTP 503, the connection was accepted"),
        }
    }

    #[tokio::test]
    async fn silent_client_is_dropped_after_the_handshake_timeout() {
        let (address, _shutdown) = start(4).await;
        let mut silent = TcpStream::connect(address).await.expect("connect");
        let opened = Instant::now();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(
            HANDSHAKE_TIMEOUT + Duration::from_secs(2),
            silent.read(&mut buf),
        )
        .await
        .expect("the server closes a client that never sends the upgrade");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the server sent data instead of closing: {read:?}"
        );
        let waited = opened.elapsed();
        assert!(
            waited + Duration::from_millis(500) >= HANDSHAKE_TIMEOUT,
            "closed after {waited:?}, before the handshake timeout"
        );
    }

    #[tokio::test]
    async fn connections_over_the_cap_get_503_until_one_closes() {
        const CAP: usize = 3;
        let (address, _shutdown) = start(CAP).await;
        let mut open = Vec::new();
        for _ in 0..CAP {
            open.push(connect(address).await.expect("a connection under the cap"));
        }
        // Refused while the cap holds, repeatedly (a refusal frees nothing).
        assert_refused(connect(address).await);
        assert_refused(connect(address).await);

        let mut closing = open.pop().expect("an open connection");
        closing.close(None).await.expect("close");
        while closing.next().await.is_some() {}

        // The slot frees once the server's task for it has ended: poll briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        let replacement = loop {
            match connect(address).await {
                Ok(socket) => break socket,
                Err(err) if Instant::now() < deadline => {
                    tracing::debug!(%err, "not yet");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(err) => panic!("still refused after a connection closed: {err}"),
            }
        };
        open.push(replacement);
        assert_refused(connect(address).await);
        for mut socket in open {
            socket
                .send(tungstenite::Message::text("still open"))
                .await
                .expect("send");
        }
    }

    #[tokio::test]
    async fn stops_accepting_and_returns_once_connections_end() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let (shutdown, stop) = broadcast::channel(1);
        let (release, released) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(accept_loop(listener, 2, stop, move |_stream, _peer| {
            let mut released = released.clone();
            async move {
                let _ = released.wait_for(|go| *go).await;
            }
        }));
        let _client = TcpStream::connect(address).await.expect("connect");
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.send(()).expect("the loop listens");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!server.is_finished(), "waits for the open connection");
        release.send(true).expect("the handler listens");
        tokio::time::timeout(Duration::from_secs(2), server)
            .await
            .expect("returns once the connection ended")
            .expect("no panic");
    }

    #[test]
    fn refusal_content_length_matches_its_body() {
        let text = std::str::from_utf8(REFUSAL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
    }

    #[test]
    fn refusal_warnings_are_rate_limited() {
        let peer: SocketAddr = "127.0.0.1:9".parse().expect("address");
        let start = Instant::now();
        let mut log = RefusalLog::default();
        assert!(log.refused(start, peer, 1));
        assert!(!log.refused(start + Duration::from_secs(1), peer, 1));
        assert!(!log.refused(start + Duration::from_secs(9), peer, 1));
        assert_eq!(log.suppressed, 2);
        assert!(log.refused(start + RefusalLog::INTERVAL, peer, 1));
        assert_eq!(log.suppressed, 0);
    }
}
