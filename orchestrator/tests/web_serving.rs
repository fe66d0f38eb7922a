//! What the web origin serves and how: only the pages and their assets, never through a
//! symlink, every response with the same security headers, and WebSocket upgrades only from
//! the origin's own pages (also over TLS and under another host name).

mod common;

use std::os::unix::fs::symlink;

use common::TempDir;
use common::web::{TestWeb, header};

/// Adds files a web folder may hold besides the pages: notes, tooling, tests.
fn add_non_page_files(root: &std::path::Path) {
    std::fs::write(root.join("README.md"), "# notes").unwrap();
    std::fs::write(root.join("package.json"), "{\"name\":\"web\"}").unwrap();
    std::fs::write(root.join("notes.txt"), "notes").unwrap();
    std::fs::create_dir_all(root.join("test")).unwrap();
    std::fs::write(root.join("test/app.test.js"), "test();").unwrap();
    std::fs::create_dir_all(root.join("css")).unwrap();
    std::fs::write(root.join("css/app.css"), "body{}").unwrap();
    std::fs::write(
        root.join("viewer.html"),
        "<!doctype html><title>viewer</title>",
    )
    .unwrap();
    std::fs::write(root.join("js/app.js.map"), "{}").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_pages_and_their_assets_are_served() {
    let dir = TempDir::new("web-allow");
    let web = TestWeb::start(dir.path(), None, |_| {}).await;
    add_non_page_files(&dir.path().join("web"));
    for path in [
        "/",
        "/index.html",
        "/viewer.html",
        "/js/app.js",
        "/css/app.css",
    ] {
        let (status, _, _) = web.request("GET", path, None, None).await;
        assert_eq!(status, 200, "{path}");
    }
    for path in [
        "/README.md",
        "/package.json",
        "/notes.txt",
        "/test/app.test.js",
        "/js/app.js.map",
        "/css/../README.md",
    ] {
        let (status, _, body) = web.request("GET", path, None, None).await;
        assert_eq!(status, 404, "{path} was served: {body}");
    }
    web.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_under_the_web_folder_are_not_followed() {
    let dir = TempDir::new("web-symlinks");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("css")).unwrap();
    std::fs::write(outside.join("secret.html"), "SECRET page").unwrap();
    std::fs::write(outside.join("secret.js"), "SECRET script").unwrap();
    std::fs::write(outside.join("css/app.css"), "SECRET style").unwrap();
    // The web folder itself reached through a symlink is fine: it is resolved once, at start.
    let linked_root = dir.path().join("linked-web");
    common::web::web_root(dir.path());
    symlink(dir.path().join("web"), &linked_root).unwrap();
    let web = TestWeb::start(dir.path(), None, |s| s.root = linked_root.clone()).await;
    let root = dir.path().join("web");
    symlink("/etc/passwd", root.join("passwd.html")).unwrap();
    symlink(outside.join("secret.html"), root.join("secret.html")).unwrap();
    symlink(outside.join("secret.js"), root.join("js/secret.js")).unwrap();
    symlink(outside.join("css"), root.join("css")).unwrap();
    std::fs::create_dir_all(root.join("js/sub")).unwrap();
    symlink("../app.js", root.join("js/sub/same.js")).unwrap();

    assert_eq!(web.request("GET", "/", None, None).await.0, 200);
    assert_eq!(web.request("GET", "/js/app.js", None, None).await.0, 200);
    for path in [
        "/passwd.html",
        "/secret.html",
        "/js/secret.js",
        "/css/app.css",
        // A link that stays inside the folder is still a link.
        "/js/sub/same.js",
    ] {
        let (status, _, body) = web.request("GET", path, None, None).await;
        assert_eq!(status, 404, "{path} followed a symlink: {body}");
        assert!(
            !body.contains("SECRET") && !body.contains("root:"),
            "{body}"
        );
    }
    web.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_response_carries_the_security_headers() {
    let dir = TempDir::new("web-headers");
    let web = TestWeb::start(dir.path(), None, |_| {}).await;
    add_non_page_files(&dir.path().join("web"));
    let token = web.session().await;
    for (method, path, token) in [
        ("GET", "/", None),
        ("GET", "/stream/b829c4a1-5867-477b-a555-25fe2b5f9555", None),
        ("GET", "/viewer.html", None),
        ("GET", "/js/app.js", None),
        ("GET", "/css/app.css", None),
        ("GET", "/README.md", None),
        ("GET", "/nothing.html", None),
        ("POST", "/js/app.js", None),
        ("GET", "/api/health", None),
        ("GET", "/api/instances", Some(token.as_str())),
        ("GET", "/api/instances", None),
        ("GET", "/api/nothing", None),
        ("POST", "/api/sessions", None),
    ] {
        let (status, headers, _) = web.request(method, path, token, None).await;
        let csp = header(&headers, "content-security-policy");
        for want in [
            "default-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(want),
                "{method} {path} ({status}): CSP {csp:?}"
            );
        }
        assert_eq!(
            header(&headers, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&headers, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&headers, "referrer-policy"), "no-referrer", "{path}");
    }
    web.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_upgrades_are_accepted_only_from_the_origins_own_pages() {
    let dir = TempDir::new("web-ws-origin");
    let web = TestWeb::start(dir.path(), None, |_| {}).await;
    let token = web.session().await;
    let path = format!("/api/events?token={token}");
    let port = web.addr.port();
    let other_port = if port == 65535 { port - 1 } else { port + 1 };
    for (extra, want) in [
        (format!("Origin: http://127.0.0.1:{port}\r\n"), 101),
        // Reached under another name: the page's origin is that name.
        (
            format!(
                "Host: Stream.Example.org:{port}\r\nOrigin: http://stream.example.org:{port}\r\n"
            ),
            101,
        ),
        // Non-browser clients send no Origin.
        (String::new(), 101),
        ("Origin: http://evil.example\r\n".to_string(), 403),
        (format!("Origin: http://evil.example:{port}\r\n"), 403),
        (format!("Origin: http://127.0.0.1:{other_port}\r\n"), 403),
        (format!("Origin: https://127.0.0.1:{port}\r\n"), 403),
        ("Origin: null\r\n".to_string(), 403),
        (
            format!("Host: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}.evil.example\r\n"),
            403,
        ),
    ] {
        let (status, _, _) = web.upgrade(&path, &extra).await;
        assert_eq!(status, want, "{extra:?}");
    }
    web.shutdown().await;
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread")]
async fn websocket_origins_are_https_ones_when_the_origin_serves_tls() {
    use orchestrator::web::TlsFiles;
    let fixtures = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    let dir = TempDir::new("web-ws-origin-tls");
    let web = TestWeb::start(dir.path(), None, |s| {
        s.tls = Some(TlsFiles {
            cert: fixtures.join("cert.pem"),
            key: fixtures.join("key.pem"),
        });
    })
    .await;
    let token = web.session().await;
    let path = format!("/api/events?token={token}");
    let port = web.addr.port();
    for (extra, want) in [
        (
            format!("Host: localhost:{port}\r\nOrigin: https://localhost:{port}\r\n"),
            101,
        ),
        (
            format!("Host: localhost:{port}\r\nOrigin: http://localhost:{port}\r\n"),
            403,
        ),
    ] {
        let (status, _, _) = web.upgrade(&path, &extra).await;
        assert_eq!(status, want, "{extra:?}");
    }
    web.shutdown().await;
}
