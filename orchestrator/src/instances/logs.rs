//! Per-instance log files: each instance's stdout and stderr (and each Xvfb's) go to a file in
//! the log directory; the previous run's file is kept as `<name>.1`. The tail of the file is
//! what a crash report quotes.
//!
//! An instance's output is never written by the instance itself: it goes through a pipe to
//! [`pump`], which writes it into the [`LogFile`] and rotates the file when it reaches its cap
//! (`<name>` moves to `<name>.1`, replacing it), so one slot never holds much more than twice
//! the cap on disk. That matters because an instance can write without end: a failed Ghoul
//! assertion in OpenSpace prompts on stdin and, at end of file, prompts again, hundreds of
//! megabytes in seconds.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{ChildStderr, ChildStdout};
use tokio::task::JoinHandle;

/// Bytes read from the end of a log for [`LogFile::tail`].
const TAIL_BYTES: u64 = 4096;
/// Lines kept in [`LogFile::tail`].
const TAIL_LINES: usize = 12;
/// Bytes [`pump`] reads from a pipe at once.
const PUMP_CHUNK: usize = 16 * 1024;

/// An open log file with a size cap.
#[derive(Debug)]
pub(super) struct LogFile {
    /// Where it is, for messages and for reading the tail.
    path: PathBuf,
    /// Where a full file goes (`<name>.1`).
    rotated: PathBuf,
    /// Bytes after which the file is rotated.
    max_bytes: u64,
    /// The open file and what was written to it; only held for one write.
    writer: Mutex<Writer>,
}

#[derive(Debug)]
struct Writer {
    file: File,
    /// Bytes in `file`.
    written: u64,
    /// Whether `rotated` holds this run's earlier output (rather than the previous run's).
    rotated_this_run: bool,
}

impl LogFile {
    /// Creates `dir/name`, first renaming an existing one to `name.1`. The file is rotated
    /// whenever it would grow past `max_bytes`.
    pub fn create(dir: &Path, name: &str, max_bytes: u64) -> io::Result<LogFile> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(name);
        let rotated = dir.join(format!("{name}.1"));
        if path.exists() {
            std::fs::rename(&path, &rotated)?;
        }
        let file = open_new(&path)?;
        Ok(LogFile {
            path,
            rotated,
            max_bytes: max_bytes.max(1),
            writer: Mutex::new(Writer {
                file,
                written: 0,
                rotated_this_run: false,
            }),
        })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line of our own (what was launched), ignoring errors: logs are best effort.
    pub fn note(&self, line: &str) {
        self.write(format!("[orchestrator] {line}\n").as_bytes());
    }

    /// Appends `bytes`, rotating first when they would take the file past its cap. Errors are
    /// ignored: a full disk must not stop an instance.
    pub fn write(&self, bytes: &[u8]) {
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.written > 0 && writer.written + bytes.len() as u64 > self.max_bytes {
            self.rotate(&mut writer);
        }
        if writer.file.write_all(bytes).is_ok() {
            writer.written += bytes.len() as u64;
        }
    }

    fn rotate(&self, writer: &mut Writer) {
        let Ok(()) = std::fs::rename(&self.path, &self.rotated) else {
            return; // keep writing where we are rather than lose output
        };
        let Ok(file) = open_new(&self.path) else {
            return;
        };
        writer.file = file;
        writer.written = 0;
        writer.rotated_this_run = true;
        let note = format!(
            "[orchestrator] this log reached its cap of {} bytes; the output before this line \
             is in {} (anything older was dropped)\n",
            self.max_bytes,
            self.rotated.display()
        );
        // Not counted: with a cap smaller than the note, every write would rotate again.
        let _ = writer.file.write_all(note.as_bytes());
    }

    /// Two handles for a child's stdout and stderr writing straight into the file, bypassing
    /// the cap. Only for Xvfb, whose output is a few lines; instances go through [`pump`].
    pub fn stdio(&self) -> io::Result<(Stdio, Stdio)> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        Ok((
            Stdio::from(writer.file.try_clone()?),
            Stdio::from(writer.file.try_clone()?),
        ))
    }

    /// The last lines of this run's output (at most 4 KiB of each file), trimmed, lines joined
    /// with `\n`. Just after a rotation the current file is short, so the rotated one is read
    /// too.
    pub fn tail(&self) -> String {
        let rotated_this_run = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .rotated_this_run;
        let mut lines = tail_lines(&self.path).unwrap_or_default();
        if lines.len() < TAIL_LINES && rotated_this_run {
            let mut earlier = tail_lines(&self.rotated).unwrap_or_default();
            earlier.append(&mut lines);
            lines = earlier;
        }
        let keep = lines.len().saturating_sub(TAIL_LINES);
        lines[keep..].join("\n")
    }
}

fn open_new(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
}

/// Copies a child's stdout and stderr into `log` until both pipes are closed (the child and
/// everything that inherited them have exited). Chunks interleave as the child wrote them.
pub(super) fn pump(log: Arc<LogFile>, stdout: ChildStdout, stderr: ChildStderr) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::join!(copy_into(&log, stdout), copy_into(&log, stderr));
    })
}

async fn copy_into(log: &LogFile, mut pipe: impl AsyncRead + Unpin) {
    let mut buf = vec![0u8; PUMP_CHUNK];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => log.write(&buf[..n]),
        }
    }
}

/// The last lines of the file at `path`, trimmed, empty lines left out.
fn tail_lines(path: &Path) -> io::Result<Vec<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let keep = lines.len().saturating_sub(TAIL_LINES);
    Ok(lines.split_off(keep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("orchestrator-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn keeps_the_previous_run_and_tails() {
        let dir = scratch("logs");
        let first = LogFile::create(&dir, "instance-0.log", 1 << 20).unwrap();
        first.note("first run");
        let second = LogFile::create(&dir, "instance-0.log", 1 << 20).unwrap();
        for i in 0..30 {
            second.write(format!("line {i}\n").as_bytes());
        }
        let tail = second.tail();
        assert_eq!(tail.lines().count(), TAIL_LINES);
        assert!(tail.ends_with("line 29"), "{tail}");
        let old = std::fs::read_to_string(dir.join("instance-0.log.1")).unwrap();
        assert!(old.contains("first run"));
        // The previous run never leaks into this run's tail.
        let third = LogFile::create(&dir, "instance-0.log", 1 << 20).unwrap();
        third.note("third run");
        assert_eq!(third.tail(), "[orchestrator] third run");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_flood_never_takes_more_than_twice_the_cap() {
        let dir = scratch("flood");
        let cap = 64 * 1024;
        let log = LogFile::create(&dir, "instance-1.log", cap).unwrap();
        let line = b"Assertion failed. (I)gnore, (A)bort, (E)xit?\n";
        for _ in 0..100_000 {
            log.write(line); // 4.5 MB, 70 times the cap
        }
        log.write(b"the last words\n");
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let current = size(&dir.join("instance-1.log"));
        let rotated = size(&dir.join("instance-1.log.1"));
        let note = 512; // the rotation note at the top of each file is not counted
        assert!(
            current <= cap + note && rotated <= cap + note,
            "{current} + {rotated}"
        );
        assert!(
            rotated > cap / 2,
            "rotated file holds recent output: {rotated}"
        );
        let text = std::fs::read_to_string(dir.join("instance-1.log")).unwrap();
        assert!(
            text.starts_with("[orchestrator] this log reached its cap"),
            "{text:.200}"
        );
        assert!(log.tail().ends_with("the last words"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_tail_reaches_into_the_rotated_file_right_after_a_rotation() {
        let dir = scratch("tail");
        let log = LogFile::create(&dir, "instance-2.log", 200).unwrap();
        for i in 0..20 {
            log.write(format!("output line {i:02}\n").as_bytes()); // 16 bytes each
        }
        let tail = log.tail();
        assert_eq!(tail.lines().count(), TAIL_LINES, "{tail}");
        assert!(tail.ends_with("output line 19"), "{tail}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn pump_copies_both_pipes_until_the_child_ends() {
        let dir = scratch("pump");
        let log = Arc::new(LogFile::create(&dir, "instance-3.log", 1 << 20).unwrap());
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "echo to-stdout; echo to-stderr >&2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pumping = pump(
            Arc::clone(&log),
            child.stdout.take().unwrap(),
            child.stderr.take().unwrap(),
        );
        child.wait().await.unwrap();
        pumping.await.unwrap();
        let text = std::fs::read_to_string(log.path()).unwrap();
        assert!(
            text.contains("to-stdout") && text.contains("to-stderr"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
