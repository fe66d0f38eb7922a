//! Seeded fuzzing of the web origin's HTTP side (issue 9): 4 000 raw requests against a web
//! role with a supervisor of two fake instances: every route, right and wrong methods, bad and
//! huge JSON bodies, missing, wrong, malformed and right tokens (sessions and share links, in
//! headers and queries), path tricks, odd and oversized headers, odd HTTP versions,
//! pipelining, truncated bodies and plain garbage, from 48 client addresses (127.0.1.x) so
//! the per-address limits bite on some and not on others.
//!
//! Every request gets an answer (only requests that break HTTP itself, or that the fuzzer cut
//! short, may get a closed connection instead), no answer is a 5xx except the documented
//! `503 no rendering server has a free slot` of a launch, every answer the application made
//! carries the security headers, every API error is `{"error": "<sentence>"}`, `/api/health`
//! answers `{"ok": true}` all along, and afterwards this process (the web role and the
//! supervisor run in it) holds no more files or threads than before, within the bound the
//! assertion names.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::fuzz::{ProcCounts, Seeded, serial};
use common::web::{TestWeb, header, parse_head};
use common::{TempDir, TestSupervisor};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::time::{Instant, timeout};

/// Fixed, so a failure is reproduced by running the test again.
const SEED: u64 = 0x5eed_0009_0003_0a91;
const WORKERS: usize = 4;
const PER_WORKER: usize = 1_000;
/// Client addresses 127.0.1.1 ..= 127.0.1.48.
const ADDRESSES: u8 = 48;
/// Longest an answer may take; a request the origin sits on fails the test.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
/// Growth allowed over the baseline: the database pool (4 connections: a file, its journal
/// and a worker thread each) may still grow after the warm-up; a leak per request would be
/// hundreds.
const FD_BOUND: usize = 16;
const THREAD_BOUND: usize = 8;

/// What the fuzzer knows: tokens and instance ids, good and bad.
#[derive(Debug, Clone)]
struct World {
    owner: String,
    stranger: String,
    share: String,
    ids: Vec<String>,
}

/// One raw request.
struct Request {
    /// The bytes written.
    bytes: Vec<u8>,
    /// Shut the write side after writing (a body cut short): the origin may just close.
    half_close: bool,
    /// The request breaks HTTP itself: a closed connection is an answer too.
    may_drop: bool,
    /// Method and path as sent, for the checks and the failure message.
    method: String,
    path: String,
}

/// Each route with a method it takes.
const ROUTES: [&(&str, &str); 15] = [
    &("GET", "/"),
    &("GET", "/stream/{id}"),
    &("GET", "/js/app.js"),
    &("GET", "/api/health"),
    &("POST", "/api/sessions"),
    &("GET", "/api/events"),
    &("GET", "/api/instances"),
    &("POST", "/api/instances"),
    &("GET", "/api/instances/{id}"),
    &("DELETE", "/api/instances/{id}"),
    &("POST", "/api/instances/{id}/resolution"),
    &("POST", "/api/instances/{id}/resolution"),
    &("POST", "/api/instances/{id}/share"),
    &("GET", "/api/instances/{id}/events"),
    &("GET", "/api/instances/{id}/signal"),
];

const TOKEN_FORMS: &[&str] = &[
    "Bearer {}",
    "bearer {}",
    "BEARER   {}  ",
    "Basic {}",
    "Bearer",
    "Bearer ",
    "{}",
    "Bearer {} {}",
    "Token {}",
];

fn token(rng: &mut Seeded, world: &World) -> String {
    match rng.below(12) {
        0..=3 => world.owner.clone(),
        4 => world.stranger.clone(),
        5 => world.share.clone(),
        6 => format!("s{}", "0".repeat(64)),
        7 => format!("v{}", "f".repeat(64)),
        8 => "x".repeat(rng.below(9_000)),
        9 => String::new(),
        10 => world.owner.to_uppercase(),
        _ => format!("{}%00", world.owner),
    }
}

fn id(rng: &mut Seeded, world: &World) -> String {
    match rng.below(10) {
        0..=5 => rng
            .pick(&world.ids.iter().map(String::as_str).collect::<Vec<_>>())
            .to_string(),
        6 => "00000000-0000-4000-8000-000000000000".into(),
        7 => "not-a-uuid".into(),
        8 => world.ids[0].to_uppercase(),
        _ => format!("{}%2F..%2F", world.ids[0]),
    }
}

fn path(rng: &mut Seeded, world: &World) -> String {
    let id = id(rng, world);
    let templates = [
        "/",
        "/index.html",
        "/stream.html",
        "/stream/{id}",
        "/stream/not-a-uuid",
        "/api/health",
        "/api/sessions",
        "/api/events",
        "/api/instances",
        "/api/instances/{id}",
        "/api/instances/{id}/resolution",
        "/api/instances/{id}/share",
        "/api/instances/{id}/events",
        "/api/instances/{id}/signal",
        "/api/instances/{id}/",
        "/api/instances/{id}/nothing",
        "/api",
        "/api/",
        "/api/nothing",
        "/js/app.js",
        "/js/",
        "/.secret",
        "/js/../index.html",
        "/js/%2e%2e/index.html",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2fetc/passwd",
        "//api/health",
        "/api//instances",
        "/api/instances/{id}/../share",
        "/api/instances/%00",
        "/js/app.js%00.html",
        "/%5c..%5cetc%5cpasswd",
        "/index.html;.js",
        "/%ff%fe",
        "/web.db",
        "/../web.db",
        "*",
        "http://evil.example/api/health",
    ];
    let mut path = rng.pick(&templates).replace("{id}", &id);
    match rng.below(12) {
        0 => path.push_str(&format!("?token={}", token(rng, world))),
        1 => path.push_str(&format!("?token={}&token=bad", world.owner)),
        2 => path.push_str("?token="),
        3 => path.push_str("?%ff=%fe&token"),
        4 => path.push_str(&format!("?x={}", "y".repeat(rng.below(20_000)))),
        5 => path = format!("/{}", "a".repeat(rng.below(70_000))),
        _ => {}
    }
    path
}

fn body(rng: &mut Seeded) -> Vec<u8> {
    match rng.below(14) {
        0..=3 => Vec::new(),
        4 => json!({"width": 640, "height": 360})
            .to_string()
            .into_bytes(),
        5 => {
            let sides = [0i64, 1, 16, 641, 7680, 7681, -1, 4_294_967_296];
            let (w, h) = (rng.below(sides.len()), rng.below(sides.len()));
            json!({"width": sides[w], "height": sides[h]})
                .to_string()
                .into_bytes()
        }
        6 => br#"{"width":"640","height":null}"#.to_vec(),
        7 => br#"{"width":1e400,"height":1.5}"#.to_vec(),
        8 => b"{".to_vec(),
        9 => b"[]".to_vec(),
        10 => {
            let depth = 1 + rng.below(5_000);
            ("[".repeat(depth) + &"]".repeat(depth)).into_bytes()
        }
        11 => {
            let len = rng.below(4_000);
            rng.bytes(len)
        }
        // Past axum's 2 MB body limit, and just under.
        12 => vec![b'{'; 2 * 1024 * 1024 + 1],
        _ => vec![b' '; 1024 * 1024 + rng.below(1024 * 1024)],
    }
}

fn method(rng: &mut Seeded) -> String {
    let methods = [
        "GET", "GET", "GET", "POST", "POST", "POST", "DELETE", "DELETE", "PUT", "PATCH", "HEAD",
        "OPTIONS", "TRACE", "CONNECT", "get", "FOO", "G\x01T",
    ];
    if rng.one_in(200) {
        "M".repeat(20_000)
    } else {
        rng.pick(&methods).to_string()
    }
}

/// One fuzzed request.
fn request(rng: &mut Seeded, world: &World, host: SocketAddr) -> Request {
    // Plain garbage now and then.
    if rng.one_in(25) {
        let junk: Vec<u8> = match rng.below(4) {
            0 => {
                let len = 1 + rng.below(3_000);
                rng.bytes(len)
            }
            1 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            // The start of a TLS ClientHello.
            2 => vec![
                0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
            ],
            _ => b"GET / HTTP/1.1\r\nHost: x\r\n\r".to_vec(),
        };
        return Request {
            bytes: junk,
            half_close: true,
            may_drop: true,
            method: "(garbage)".into(),
            path: String::new(),
        };
    }
    // Half the time a request a page could make (the right method for the route), so the
    // fuzzer gets past the router and the tokens into the handlers; the rest anything.
    let (method, path) = if rng.one_in(2) {
        let (method, template) = *rng.pick(&ROUTES);
        let mut path = template.replace("{id}", &id(rng, world));
        if template.ends_with("/events") || template.ends_with("/signal") {
            path.push_str(&format!("?token={}", token(rng, world)));
        }
        (method.to_string(), path)
    } else {
        (method(rng), path(rng, world))
    };
    let version = if rng.one_in(10) {
        *rng.pick(&[&"HTTP/1.0", &"HTTP/2.0", &"HTTP/9.9", &"HTTP/1.1 x", &""])
    } else {
        "HTTP/1.1"
    };
    let mut may_drop = method.len() > 100
        || method.contains('\x01')
        || !version.starts_with("HTTP/1.")
        || version.len() > 8
        || path.len() > 60_000;
    let mut head = format!("{method} {path} {version}\r\n");
    match rng.below(14) {
        0 => {}
        1 => head.push_str("Host: evil.example\r\n"),
        2 => head.push_str(&format!("Host: {host}\r\nHost: other\r\n")),
        _ => head.push_str(&format!("Host: {host}\r\n")),
    }
    if !rng.one_in(8) {
        let form = rng.pick(TOKEN_FORMS);
        let value = form.replace("{}", &token(rng, world));
        head.push_str(&format!("Authorization: {value}\r\n"));
        if rng.one_in(10) {
            head.push_str(&format!("Authorization: Bearer {}\r\n", world.stranger));
        }
    }
    for _ in 0..rng.below(4).saturating_sub(1) {
        let odd = match rng.below(14) {
            0 => "Origin: http://evil.example".to_string(),
            1 => format!("Origin: http://{host}"),
            2 => "Origin: null".into(),
            3 => "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
                .into(),
            4 => "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 12".into(),
            5 => "Expect: 100-continue".into(),
            6 => "X-Forwarded-For: 10.0.0.1, 127.0.0.1".into(),
            7 => format!("X-Big: {}", "b".repeat(rng.below(120_000))),
            8 => (0..150)
                .map(|i| format!("X-Many-{i}: {i}"))
                .collect::<Vec<_>>()
                .join("\r\n"),
            9 => "X-Utf8: h\u{e9}llo \u{1F680}".into(),
            10 => "Bad Header: x".into(),
            11 => "Content-Type: text/plain".into(),
            12 => "Cookie: token=x; session=y".into(),
            _ => "Accept-Encoding: gzip, br, zstd".into(),
        };
        head.push_str(&odd);
        head.push_str("\r\n");
    }
    let body = body(rng);
    let mut half_close = false;
    match rng.below(40) {
        // A body shorter than its length: the origin waits for the rest, so the fuzzer cuts
        // the connection's write side.
        0 => {
            head.push_str(&format!("Content-Length: {}\r\n", body.len() + 10));
            half_close = true;
            may_drop = true;
        }
        1 => {
            head.push_str(&format!(
                "Content-Length: {}\r\nContent-Length: 0\r\n",
                body.len()
            ));
            may_drop = true;
        }
        2 => {
            head.push_str("Content-Length: -1\r\n");
            may_drop = true;
        }
        3 => {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        _ => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
    }
    // Close after the answer (one request per connection), except for a pipelined pair.
    let pipelined = rng.one_in(20);
    if !pipelined {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if bytes
        .windows(26)
        .any(|w| w == b"Transfer-Encoding: chunked")
    {
        bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    } else {
        bytes.extend_from_slice(&body);
    }
    if pipelined {
        bytes.extend_from_slice(
            format!("GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
    }
    Request {
        bytes,
        half_close,
        may_drop,
        method,
        path,
    }
}

/// Status, headers (lower-case names) and body bytes of an answer.
type RawAnswer = (u16, Vec<(String, String)>, Vec<u8>);

/// The first final answer in `raw` (after any `100 Continue`).
fn first_answer(raw: &[u8]) -> Option<RawAnswer> {
    let mut rest = raw;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let (status, headers) = parse_head(&head);
        let after = &rest[end + 4..];
        if status == 100 {
            rest = after;
            continue;
        }
        let length: usize = header(&headers, "content-length")
            .parse()
            .unwrap_or(after.len());
        return Some((status, headers, after[..length.min(after.len())].to_vec()));
    }
}

/// Sends `request` from `source` and returns what came back (possibly nothing).
async fn send(target: SocketAddr, source: IpAddr, request: &Request) -> Result<Vec<u8>, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let mut conn = socket
        .connect(target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut reader, mut writer) = conn.split();
    let write = async {
        // The origin may answer (and close) before reading everything: that is fine.
        let _ = writer.write_all(&request.bytes).await;
        if request.half_close {
            let _ = writer.shutdown().await;
        }
    };
    let read = async {
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return raw,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
            // An accepted WebSocket upgrade stays open: its head is the whole answer.
            if raw.starts_with(b"HTTP/1.1 101") && raw.windows(4).any(|w| w == b"\r\n\r\n") {
                return raw;
            }
        }
    };
    let ((), raw) = timeout(ANSWER_TIMEOUT, async { tokio::join!(write, read) })
        .await
        .map_err(|_| format!("no answer within {ANSWER_TIMEOUT:?}"))?;
    Ok(raw)
}

/// Checks one answer; `Err` says what is wrong.
fn check(request: &Request, raw: &[u8]) -> Result<u16, String> {
    let Some((status, headers, body)) = first_answer(raw) else {
        return if request.may_drop || raw.is_empty() && request.half_close {
            Ok(0)
        } else {
            Err(format!("no answer ({} bytes back)", raw.len()))
        };
    };
    let body_text = String::from_utf8_lossy(&body).to_string();
    let json: Option<Value> = serde_json::from_str(&body_text).ok();
    let error = json
        .as_ref()
        .and_then(|j| j["error"].as_str())
        .unwrap_or("");
    if status >= 500 {
        let launch = request.method == "POST"
            && request.path.starts_with("/api/instances")
            && status == 503
            && error.starts_with("no rendering server has a free slot");
        if !launch {
            return Err(format!("undocumented {status}: {body_text}"));
        }
    }
    // Answers hyper gives on its own (the request never reached the application) have no
    // body and none of the application's headers.
    let from_hyper = matches!(status, 400 | 414 | 431 | 501 | 505) && body.is_empty();
    if !from_hyper {
        if !header(&headers, "content-security-policy").contains("default-src 'self'")
            || header(&headers, "x-content-type-options") != "nosniff"
        {
            return Err(format!("{status} without the security headers"));
        }
        let api = request.path.starts_with("/api");
        if api && status >= 400 && request.method != "HEAD" && error.is_empty() {
            return Err(format!(
                "API error {status} without {{\"error\"}}: {body_text:?}"
            ));
        }
    }
    Ok(status)
}

/// The counts of one worker.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    statuses: BTreeMap<u16, usize>,
    learnt: Vec<String>,
}

async fn worker(web: SocketAddr, mut world: World, seed: u64) -> Result<Tally, String> {
    let mut rng = Seeded::new(seed);
    let mut tally = Tally::default();
    for i in 0..PER_WORKER {
        let request = request(&mut rng, &world, web);
        // A quarter from one address, which runs out of wrong tokens and gets 429s; the rest
        // spread, so most addresses never do.
        let last = if rng.one_in(4) {
            1
        } else {
            1 + rng.below(ADDRESSES.into()) as u8
        };
        let source = IpAddr::from(Ipv4Addr::new(127, 0, 1, last));
        let raw = send(web, source, &request).await.map_err(|e| {
            format!(
                "seed {seed:#x}, #{i}: {} {:.200}: {e}",
                request.method, request.path
            )
        })?;
        let status = check(&request, &raw).map_err(|e| {
            format!(
                "seed {seed:#x}, #{i}: {e}\n  request: {:?}\n  answer: {:?}",
                String::from_utf8_lossy(&request.bytes[..request.bytes.len().min(600)]),
                String::from_utf8_lossy(&raw[..raw.len().min(600)])
            )
        })?;
        // A launch that worked: its id is fair game from now on.
        if status == 201
            && let Some((_, _, body)) = first_answer(&raw)
            && let Ok(view) = serde_json::from_slice::<Value>(&body)
            && let Some(id) = view["id"].as_str()
        {
            world.ids.push(id.to_string());
            tally.learnt.push(id.to_string());
        }
        tally.sent += 1;
        *tally.statuses.entry(status).or_default() += 1;
    }
    Ok(tally)
}

async fn healthy(web: &TestWeb) {
    let (status, body) = web.json("GET", "/api/health", None, None).await;
    assert_eq!((status, &body), (200, &json!({"ok": true})), "/api/health");
}

#[test]
fn seeded_http_requests_get_no_undocumented_5xx_and_health_stays_ok() {
    serial(fuzz_http);
}

async fn fuzz_http() {
    let started = Instant::now();
    let sup = TestSupervisor::fake(2, |_| {}).await;
    let dir = TempDir::new("fuzz-api");
    let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
    let owner = web.session().await;
    let stranger = web.session().await;
    let first = web.launch_running(&owner).await;
    let (share, _) = web.share(&first, &owner).await;
    let world = World {
        owner,
        stranger,
        share,
        ids: vec![first.clone()],
    };
    // Warm what opens lasting things on first use (database connections, the blocking pool)
    // with as many requests at once as the fuzzer makes, then take the baseline.
    let warm: Vec<_> = (0..WORKERS * 2)
        .map(|_| web.json("GET", "/api/instances", Some(&world.owner), None))
        .collect();
    futures_util::future::join_all(warm).await;
    healthy(&web).await;
    let baseline = ProcCounts::now();

    println!("fuzz_api: seed {SEED:#x}, {WORKERS} workers x {PER_WORKER} requests");
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|i| {
            tokio::spawn(worker(
                web.addr,
                world.clone(),
                SEED ^ (i + 1).wrapping_mul(0x9e37_79b9),
            ))
        })
        .collect();
    // While they run, the origin must stay healthy.
    let checks = std::sync::atomic::AtomicUsize::new(0);
    let watch = async {
        loop {
            healthy(&web).await;
            checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    let collect = async {
        let mut tallies = Vec::new();
        for worker in workers {
            tallies.push(
                worker
                    .await
                    .expect("worker")
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        tallies
    };
    let tallies = tokio::select! {
        tallies = collect => tallies,
        () = watch => unreachable!("the health loop never ends"),
    };
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut sent = 0;
    let mut learnt = Vec::new();
    for tally in tallies {
        sent += tally.sent;
        learnt.extend(tally.learnt);
        for (status, n) in tally.statuses {
            *statuses.entry(status).or_default() += n;
        }
    }
    println!(
        "fuzz_api: {sent} requests in {:.1} s, answers by status (0: closed without one) {statuses:?}; \
         {} instances launched by the fuzzer; /api/health ok {} times meanwhile",
        started.elapsed().as_secs_f64(),
        learnt.len(),
        checks.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert_eq!(sent, WORKERS * PER_WORKER);
    healthy(&web).await;

    // The origin still does its job: a new session launches, watches and stops.
    let token = web.session().await;
    let (_, list) = web
        .json("GET", "/api/instances", Some(&world.owner), None)
        .await;
    assert!(list["instances"].is_array(), "{list}");
    for view in list["instances"].as_array().into_iter().flatten() {
        if view["status"] != "ENDED"
            && let Some(id) = view["id"].as_str()
        {
            web.stop(id, &world.owner).await;
        }
    }
    let again = web.launch_running(&token).await;
    web.stop(&again, &token).await;
    healthy(&web).await;

    baseline
        .assert_no_growth("fuzz_api", FD_BOUND, THREAD_BOUND, Duration::from_secs(15))
        .await;
    web.shutdown().await;
    sup.shutdown().await;
    println!("fuzz_api: done in {:.1} s", started.elapsed().as_secs_f64());
}

/// One raw request on a connection of its own; the answer's status, headers and body.
async fn raw(web: &TestWeb, request: &[u8]) -> (u16, Vec<(String, String)>, Value) {
    let mut conn = web.connect().await.expect("connect");
    conn.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let _ = timeout(ANSWER_TIMEOUT, conn.read_to_end(&mut answer)).await;
    let (status, headers, body) = first_answer(&answer).unwrap_or_default();
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(format!("not JSON: {}", String::from_utf8_lossy(&body))));
    (status, headers, body)
}

/// Found by the fuzzer (seed 0x5eed_0009_0003_0a91, its first requests): axum's own refusals
/// under `/api/` were no JSON, though every API answer is: a method a route does not take got
/// a 405 with no body, `/api/` itself an HTML 404 of the files (and `CONNECT /api/` a bare
/// 405), a repeated `?token=` or a path that is no UTF-8 a plain-text 400, a body over the limit
/// a plain-text 413.
#[test]
fn refusals_under_api_are_json_errors_whoever_makes_them() {
    serial(|| async {
        let sup = TestSupervisor::fake(1, |_| {}).await;
        let dir = TempDir::new("fuzz-api-json");
        let web = TestWeb::start(dir.path(), Some(&sup), |_| {}).await;
        let owner = web.session().await;
        let id = web.launch(&owner).await["id"]
            .as_str()
            .expect("an id")
            .to_string();
        let host = web.addr;
        let big = "x".repeat(2 * 1024 * 1024 + 1);
        let cases = [
            (
                format!("POST /api/instances/{id}"),
                String::new(),
                405,
                "method not allowed",
            ),
            (
                "PUT /api/sessions".to_string(),
                String::new(),
                405,
                "method not allowed",
            ),
            (
                "GET /api/".to_string(),
                String::new(),
                404,
                "no such API endpoint",
            ),
            (
                "POST /api/instances/%ff/share".to_string(),
                String::new(),
                400,
                "Invalid UTF-8 in `id`",
            ),
            (
                "CONNECT /api/".to_string(),
                String::new(),
                404,
                "no such API endpoint",
            ),
            (
                format!("GET /api/instances/{id}/events?token={owner}&token=bad"),
                String::new(),
                400,
                "duplicate field `token`",
            ),
            (
                format!("POST /api/instances/{id}/resolution"),
                big,
                413,
                "length limit exceeded",
            ),
        ];
        for (line, body, want, words) in cases {
            let request = format!(
                "{line} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {owner}\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let (status, headers, answer) = raw(&web, request.as_bytes()).await;
            assert_eq!(status, want, "{line}: {answer}");
            assert!(
                answer["error"].as_str().is_some_and(|e| e.contains(words)),
                "{line}: {answer}"
            );
            assert!(
                header(&headers, "content-type").starts_with("application/json"),
                "{line}: {headers:?}"
            );
            assert!(
                header(&headers, "content-security-policy").contains("default-src 'self'"),
                "{line}: {headers:?}"
            );
        }
        // axum's `Allow` survives the rewrite.
        let request =
            format!("DELETE /api/sessions HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, headers, _) = raw(&web, request.as_bytes()).await;
        assert_eq!(
            (status, header(&headers, "allow")),
            (405, "POST".to_string())
        );
        // Pages keep their plain answers.
        let (status, headers, _) = web.request("POST", "/", None, None).await;
        assert_eq!(status, 405);
        assert!(!header(&headers, "content-type").starts_with("application/json"));
        web.shutdown().await;
        sup.shutdown().await;
    });
}
