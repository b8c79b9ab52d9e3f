//! The JSON-lines results file: one object per model, appended and flushed as each model
//! finishes. A run that died leaves at worst a partial last line; it is cut off when the
//! file is opened again and that model is scored anew.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A result line with where it came from.
#[derive(Clone, Debug)]
pub struct Record {
    pub file: PathBuf,
    pub line: usize,
    pub value: Value,
    /// The line as written (without its newline): copied unchanged by merge, since parsing
    /// and printing a float again need not give back the same digits.
    pub raw: String,
}

impl Record {
    pub fn model(&self) -> &str {
        self.value.get("model").and_then(Value::as_str).unwrap_or("")
    }

    /// `ok` unless the line says `failed` (lines written by `zerocost score --format jsonl`
    /// have no status and count as ok).
    pub fn ok(&self) -> bool {
        self.value.get("status").and_then(Value::as_str) != Some("failed")
    }

    pub fn at(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Splits `bytes` into complete lines; returns them and the length of the partial tail.
fn complete_lines(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let end = bytes.iter().rposition(|b| *b == b'\n').map(|i| i + 1).unwrap_or(0);
    let lines: Vec<&[u8]> = if end == 0 { Vec::new() } else { bytes[..end - 1].split(|b| *b == b'\n').collect() };
    (lines, bytes.len() - end)
}

fn parse_lines(file: &Path, lines: &[&[u8]]) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let text = String::from_utf8_lossy(l);
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| anyhow!("{}:{}: not a JSON result line: {e}", file.display(), i + 1))?;
        if value.get("model").and_then(Value::as_str).is_none() {
            bail!("{}:{}: a result line needs a \"model\" string", file.display(), i + 1);
        }
        out.push(Record { file: file.to_path_buf(), line: i + 1, value, raw: text.trim_end_matches('\r').to_string() });
    }
    Ok(out)
}

/// Reads every complete line of a results file. A partial last line (a run killed while
/// writing) is skipped with a warning on stderr.
pub fn read(file: &Path) -> Result<Vec<Record>> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let (lines, tail) = complete_lines(&bytes);
    if tail > 0 {
        eprintln!("zerocost: warning: {}: ignoring a partial last line ({tail} bytes; the run writing it was interrupted)", file.display());
    }
    parse_lines(file, &lines)
}

/// Groups result lines by model id, in file order; with `drop_failed`, failed lines are left
/// out (as `--retry-failed` removes them).
pub fn by_model(records: Vec<Record>, drop_failed: bool) -> HashMap<String, Vec<Record>> {
    let mut out: HashMap<String, Vec<Record>> = HashMap::new();
    for r in records.into_iter().filter(|r| !drop_failed || r.ok()) {
        out.entry(r.model().to_string()).or_default().push(r);
    }
    out
}

/// How long a run waits for the lock of a results file before giving up: a process killed a
/// moment ago keeps its lock until the kernel has torn it down (`kill -9` returns before
/// that), which takes a while for a big process. ZEROCOST_LOCK_WAIT (seconds) overrides it.
fn lock_wait() -> Duration {
    let secs = std::env::var("ZEROCOST_LOCK_WAIT").ok().and_then(|s| s.parse::<f64>().ok()).filter(|s| s.is_finite() && *s >= 0.0);
    Duration::from_secs_f64(secs.unwrap_or(5.0))
}

/// The file beside a results file that says who holds its lock.
fn owner_file(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().or_else(|| std::env::var("HOSTNAME").ok()).map(|h| h.trim().to_string()).filter(|h| !h.is_empty()).unwrap_or_else(|| "?".into())
}

/// `secs` since the Unix epoch as a UTC date and time (days to civil date: H. Hinnant).
fn utc(secs: u64) -> String {
    let z = (secs / 86400) as i64 + 719468;
    let (era, doe) = (z.div_euclid(146097), z.rem_euclid(146097));
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let (d, m) = (doy - (153 * mp + 2) / 5 + 1, if mp < 10 { mp + 3 } else { mp - 9 });
    let y = yoe + era * 400 + i64::from(m <= 2);
    let t = secs % 86400;
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC", t / 3600, t / 60 % 60, t % 60)
}

/// Who holds the lock, as recorded by that process; whether it still runs when it is on
/// this machine.
fn holder(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(owner_file(path)) else { return String::new() };
    let mut words = text.split_whitespace();
    let (pid, host) = (words.nth(1).unwrap_or(""), words.nth(1).unwrap_or(""));
    let gone = host == host_name() && Path::new("/proc/self").exists() && !Path::new("/proc").join(pid).exists();
    format!("; {} records: {}{}", owner_file(path).display(), text.trim(), if gone { " (that process has exited: a process it started may still have the file open)" } else { "" })
}

/// Takes the lock of `file`, waiting up to `lock_wait()` for a holder that is exiting.
fn lock(file: &File, path: &Path) -> Result<()> {
    let (start, wait) = (Instant::now(), lock_wait());
    let mut told = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            // file systems without locks (some network mounts): go on without
            Err(std::fs::TryLockError::Error(_)) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < wait => {
                if !told && start.elapsed() >= Duration::from_secs(1) {
                    eprintln!("zerocost: waiting for the lock on {}{}", path.display(), holder(path));
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{} is being written by another process (waited {:.0} s){}",
                path.display(),
                wait.as_secs_f64(),
                holder(path)
            ),
        }
    }
}

/// An open results file, being appended to.
pub struct Store {
    pub path: PathBuf,
    file: File,
    /// Result lines already in the file, by model id (several when proxies were added later).
    pub existing: HashMap<String, Vec<Record>>,
    /// Bytes of a partial last line that were cut off on opening.
    pub repaired: usize,
    /// Whether this process wrote the lock's owner file (removed again on drop).
    owner: bool,
}

impl Store {
    /// Opens (or creates) `path` for appending. `force` empties it; otherwise a partial last
    /// line is cut off and the complete lines are read. With `retry_failed`, lines of failed
    /// models are removed so that those models run again.
    pub fn open(path: &Path, force: bool, retry_failed: bool) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        lock(&file, path)?;
        let since = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let note = format!("pid {} on {} since {} (zerocost batch)\n", std::process::id(), host_name(), utc(since));
        let owner = std::fs::write(owner_file(path), note).is_ok();
        let mut store = Store { path: path.to_path_buf(), file, existing: HashMap::new(), repaired: 0, owner };
        if force {
            store.file.set_len(0)?;
            store.file.sync_all()?;
            return Ok(store);
        }
        let mut bytes = Vec::new();
        store.file.read_to_end(&mut bytes)?;
        let (lines, tail) = complete_lines(&bytes);
        let records = parse_lines(path, &lines)?;
        if retry_failed && records.iter().any(|r| !r.ok()) {
            let text: String = records.iter().filter(|r| r.ok()).map(|r| format!("{}\n", r.raw)).collect();
            // the file is locked: rewrite it in place
            store.file.set_len(0)?;
            store.file.seek(SeekFrom::Start(0))?;
            store.file.write_all(text.as_bytes())?;
            store.file.sync_all()?;
        } else if tail > 0 {
            store.file.set_len((bytes.len() - tail) as u64)?;
            store.file.sync_all()?;
        }
        store.file.seek(SeekFrom::End(0))?;
        store.existing = by_model(records, retry_failed);
        store.repaired = tail;
        Ok(store)
    }

    /// Appends one result line and flushes it to disk.
    pub fn append(&mut self, value: &Value) -> Result<()> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).with_context(|| format!("cannot write to {}", self.path.display()))?;
        self.file.flush()?;
        self.file.sync_data().with_context(|| format!("cannot write to {}", self.path.display()))?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // still locked here, so the owner file is ours
        if self.owner {
            let _ = std::fs::remove_file(owner_file(&self.path));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_tail_is_separated() {
        let (l, t) = complete_lines(b"{\"a\":1}\n{\"b\":2}\n{\"c\"");
        assert_eq!(l.len(), 2);
        assert_eq!(t, 4);
        let (l, t) = complete_lines(b"");
        assert!(l.is_empty() && t == 0);
        let (l, t) = complete_lines(b"{}\n");
        assert_eq!((l.len(), t), (1, 0));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400 + 3661), "2000-02-29 01:01:01 UTC");
        assert_eq!(utc(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }
}
