//! Which files of `web/` the origin serves, and reading them without following links.
//!
//! The folder holds more than the product: notes (`README.md`), tooling (`package.json`) and
//! the pages' unit tests (`test/`). Only an allow-list is served: the `*.html` pages at the
//! top, and in the asset folders (`js/`, `css/`, `images/`, `fonts/`, at any depth) the file
//! types that belong there. Everything else is "not found", as is anything reached through a
//! symbolic link: the folder is resolved once, at start, and below it no path component may be
//! a link, so a link to `/etc/passwd` (or to anywhere else) is never followed.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Asset folders and the file types served from them.
const ASSET_FOLDERS: &[(&str, &[&str])] = &[
    ("js", &["js", "mjs"]),
    ("css", &["css"]),
    (
        "images",
        &["png", "svg", "jpg", "jpeg", "webp", "gif", "ico"],
    ),
    ("fonts", &["woff2", "woff"]),
];

/// The content type of a served file name.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        _ => "application/octet-stream",
    }
}

fn extension(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(_, ext)| ext)
}

/// Whether the path segments name a file that is served: `*.html` or `favicon.ico` at the
/// top, or a file of its folder's types under an asset folder.
fn allowed(segments: &[&str]) -> bool {
    match segments {
        [page] => extension(page) == "html" || *page == "favicon.ico",
        [folder, .., file] => ASSET_FOLDERS
            .iter()
            .find(|(name, _)| name == folder)
            .is_some_and(|(_, types)| types.contains(&extension(file))),
        [] => false,
    }
}

/// The segments of a URL path if every one is plain (letters, digits, `.`, `_`, `-`; not
/// starting with a dot) and they name an allowed file; `None` for anything else, including
/// anything that could climb out of the folder or reach a hidden file.
pub fn served_segments(url_path: &str) -> Option<Vec<&str>> {
    let relative = url_path.strip_prefix('/')?;
    let segments: Vec<&str> = relative.split('/').collect();
    let plain = segments.iter().all(|segment| {
        !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    });
    (plain && allowed(&segments)).then_some(segments)
}

/// The `web/` folder, resolved.
#[derive(Debug, Clone)]
pub struct WebRoot {
    /// Canonical: no links, absolute.
    dir: PathBuf,
}

impl WebRoot {
    /// Resolves `dir` once (it may itself be reached through a link).
    pub fn open(dir: &Path) -> io::Result<WebRoot> {
        Ok(WebRoot {
            dir: std::fs::canonicalize(dir)?,
        })
    }

    /// The resolved folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the served file at `url_path`: `Ok(None)` when it is not served (not on the
    /// allow-list, missing, not a regular file, or reached through a link).
    pub async fn read(&self, url_path: &str) -> io::Result<Option<(PathBuf, Vec<u8>)>> {
        let Some(segments) = served_segments(url_path) else {
            return Ok(None);
        };
        let dir = self.dir.clone();
        let segments: Vec<String> = segments.into_iter().map(str::to_string).collect();
        tokio::task::spawn_blocking(move || read_below(&dir, &segments))
            .await
            .map_err(io::Error::other)?
    }
}

/// Reads `dir/segments…` if no component below `dir` is a link and the last is a regular
/// file.
fn read_below(dir: &Path, segments: &[String]) -> io::Result<Option<(PathBuf, Vec<u8>)>> {
    let mut path = dir.to_path_buf();
    for (i, segment) in segments.iter().enumerate() {
        path.push(segment);
        let kind = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta.file_type(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(err) => return Err(err),
        };
        let last = i + 1 == segments.len();
        if kind.is_symlink() || (last && !kind.is_file()) || (!last && !kind.is_dir()) {
            return Ok(None);
        }
    }
    // The checks above and the open below are two steps; should a component be swapped for a
    // link in between, the real path would leave the folder, and the open refuses a last
    // component that is a link.
    if !std::fs::canonicalize(&path)?.starts_with(dir) {
        return Ok(None);
    }
    let mut file = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
    {
        Ok(file) => file,
        Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return Ok(None),
        Err(err) => return Err(err),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(Some((path, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pages_and_assets_of_their_folders_are_served() {
        for served in [
            "/index.html",
            "/viewer.html",
            "/favicon.ico",
            "/js/viewer.js",
            "/js/lib/x.mjs",
            "/css/product.css",
            "/images/logo.svg",
            "/fonts/a.woff2",
        ] {
            assert!(served_segments(served).is_some(), "{served}");
        }
        for refused in [
            "/",
            "/README.md",
            "/package.json",
            "/test/config.test.js",
            "/js/app.js.map",
            "/css/app.js",
            "/docs/index.html",
            "/../etc/passwd",
            "/js/../../x.js",
            "/.git/config",
            "/js/.hidden.js",
            "/js//x.js",
            "/%2e%2e/x.html",
            "/js/",
            "relative.html",
        ] {
            assert_eq!(served_segments(refused), None, "{refused}");
        }
        assert_eq!(
            content_type(Path::new("a/b.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a/b")), "application/octet-stream");
    }
}
