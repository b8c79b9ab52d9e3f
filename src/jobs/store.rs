//! The JSON-lines results file: one object per model, appended and flushed as each model
//! finishes. A run that died leaves at worst a partial last line; it is cut off when the
//! file is opened again and that model is scored anew.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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

/// An open results file, being appended to.
pub struct Store {
    pub path: PathBuf,
    file: File,
    /// Results already in the file, by model id.
    pub existing: HashMap<String, Record>,
    /// Bytes of a partial last line that were cut off on opening.
    pub repaired: usize,
}

impl Store {
    /// Opens (or creates) `path` for appending. `force` empties it; otherwise a partial last
    /// line is cut off and the complete lines are read. With `retry_failed`, lines of failed
    /// models are removed so that those models run again.
    pub fn open(path: &Path, force: bool, retry_failed: bool) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                bail!("{} is being written by another process (another `zerocost batch` on the same output?)", path.display())
            }
            // file systems without locks (some network mounts): go on without
            Err(std::fs::TryLockError::Error(_)) => {}
        }
        if force {
            file.set_len(0)?;
            file.sync_all()?;
            return Ok(Store { path: path.to_path_buf(), file, existing: HashMap::new(), repaired: 0 });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (lines, tail) = complete_lines(&bytes);
        let complete = bytes.len() - tail;
        let mut records = parse_lines(path, &lines)?;
        if retry_failed && records.iter().any(|r| !r.ok()) {
            records.retain(|r| r.ok());
            let mut text = String::new();
            for r in &records {
                text.push_str(&r.raw);
                text.push('\n');
            }
            // the file is locked: rewrite it in place
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        } else if tail > 0 {
            file.set_len(complete as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        let mut existing = HashMap::new();
        for r in records {
            existing.entry(r.model().to_string()).or_insert(r);
        }
        Ok(Store { path: path.to_path_buf(), file, existing, repaired: tail })
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
}
