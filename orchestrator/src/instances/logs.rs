//! Per-instance log files: each instance's stdout and stderr (and each Xvfb's) go to a file
//! in the log directory; the previous run's file is kept as `<name>.1`. The tail of the file is
//! what a crash report quotes.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// Bytes read from the end of a log for [`LogFile::tail`].
const TAIL_BYTES: u64 = 4096;
/// Lines kept in [`LogFile::tail`].
const TAIL_LINES: usize = 12;

/// An open log file.
#[derive(Debug)]
pub(super) struct LogFile {
    /// Where it is, for messages and for reading the tail.
    path: PathBuf,
    /// Opened for appending, so the child's stdout and stderr interleave safely.
    file: File,
}

impl LogFile {
    /// Creates `dir/name`, first renaming an existing one to `name.1`.
    pub fn create(dir: &Path, name: &str) -> io::Result<LogFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(name);
        if path.exists() {
            std::fs::rename(&path, dir.join(format!("{name}.1")))?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(LogFile { path, file })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line of our own (what was launched), ignoring errors: logs are best effort.
    pub fn note(&self, line: &str) {
        let _ = writeln!(&self.file, "[orchestrator] {line}");
    }

    /// Two handles for a child's stdout and stderr.
    pub fn stdio(&self) -> io::Result<(Stdio, Stdio)> {
        Ok((
            Stdio::from(self.file.try_clone()?),
            Stdio::from(self.file.try_clone()?),
        ))
    }

    /// The last lines of the file (at most 4 KiB), trimmed, lines joined with `\n`.
    pub fn tail(&self) -> String {
        tail_of(&self.path).unwrap_or_default()
    }
}

/// The last lines of the file at `path`.
pub(super) fn tail_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let keep = lines.len().saturating_sub(TAIL_LINES);
    Ok(lines[keep..].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_and_tails() {
        let dir = std::env::temp_dir().join(format!("orchestrator-logs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = LogFile::create(&dir, "instance-0.log").unwrap();
        first.note("first run");
        let second = LogFile::create(&dir, "instance-0.log").unwrap();
        for i in 0..30 {
            writeln!(&second.file, "line {i}").unwrap();
        }
        let tail = second.tail();
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.ends_with("line 29"), "{tail}");
        let old = std::fs::read_to_string(dir.join("instance-0.log.1")).unwrap();
        assert!(old.contains("first run"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
