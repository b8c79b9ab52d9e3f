//! Lookup tables: architecture → number (accuracy of the trained network, or a proxy
//! score computed beforehand). Formats:
//!
//! - CSV with a header: an `arch` column (else the first column) and the value column
//!   (`column`, else `accuracy`, else the only other column). Quoted fields allowed.
//! - JSON: an object arch → number, or arch → object holding `column`
//!   (a dotted path such as `scores.synflow`); `root` (`a/b`) descends into nested objects
//!   first, e.g. `nasbench101/cifar10` for NASLib's files.
//! - JSON lines (`.jsonl`): one object per line with `arch` and `column`.
//!
//! Keys are brought to the space's canonical form (`normalize`), so a table may use NB201
//! strings or NASLib tuples, and NB101 hashes, JSON specs or NASLib tuples.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

pub type Table = HashMap<String, f64>;

pub fn load(path: &Path, column: Option<&str>, root: Option<&str>, normalize: &dyn Fn(&str) -> String) -> Result<Table> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let raw = match ext.as_str() {
        "json" => from_json(&text, column, root),
        "jsonl" | "ndjson" => from_jsonl(&text, column),
        _ => from_csv(&text, column),
    }
    .with_context(|| format!("{}", path.display()))?;
    let mut out = Table::with_capacity(raw.len());
    for (k, v) in raw {
        out.insert(normalize(&k), v);
    }
    if out.is_empty() {
        bail!("{}: no entries", path.display());
    }
    Ok(out)
}

/// Splits one CSV line (RFC 4180 quoting).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).collect()
}

fn from_csv(text: &str, column: Option<&str>) -> Result<Vec<(String, f64)>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = csv_fields(lines.next().ok_or_else(|| anyhow!("empty table"))?);
    let arch = header.iter().position(|h| h == "arch").unwrap_or(0);
    let col = match column {
        Some(c) => header.iter().position(|h| h == c).ok_or_else(|| anyhow!("no column '{c}' (columns: {})", header.join(", ")))?,
        None => match header.iter().position(|h| h == "accuracy") {
            Some(i) => i,
            None if header.len() == 2 => 1 - arch,
            None => bail!("which column? pass one of {} (--truth-column / --proxy-column)", header.join(", ")),
        },
    };
    let mut out = Vec::new();
    for (i, l) in lines.enumerate() {
        let f = csv_fields(l);
        let (Some(k), Some(v)) = (f.get(arch), f.get(col)) else { bail!("line {}: too few fields", i + 2) };
        if v.is_empty() || v == "nan" || v == "NaN" {
            continue;
        }
        let v: f64 = v.parse().map_err(|_| anyhow!("line {}: '{v}' is not a number", i + 2))?;
        out.push((k.clone(), v));
    }
    Ok(out)
}

/// At most 8 keys of an object, and how many more there are.
fn some_keys(o: &serde_json::Map<String, Value>) -> String {
    let shown: Vec<&str> = o.keys().take(8).map(String::as_str).collect();
    match o.len().saturating_sub(8) {
        0 => shown.join(", "),
        more => format!("{}, … ({more} more)", shown.join(", ")),
    }
}

/// A JSON table one level too high: a few keys (datasets) each holding objects of objects,
/// as NASLib's `{"cifar10": {arch: {"val_accuracy": .., "synflow": {..}}}}`.
fn looks_nested(o: &serde_json::Map<String, Value>) -> bool {
    !o.is_empty() && o.len() <= 16 && o.values().all(|e| e.as_object().is_some_and(|inner| !inner.is_empty() && inner.values().all(Value::is_object)))
}

fn field<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |acc, p| acc.get(p))
}

fn value_of(v: &Value, column: Option<&str>) -> Result<Option<f64>> {
    match v {
        Value::Number(n) => Ok(n.as_f64()),
        Value::Null => Ok(None),
        Value::Object(o) => {
            let c = match column {
                Some(c) => c,
                None if o.contains_key("accuracy") => "accuracy",
                None => bail!("entries are objects; pick a field with --truth-column / --proxy-column (fields: {})", some_keys(o)),
            };
            match field(v, c) {
                Some(Value::Number(n)) => Ok(n.as_f64()),
                // NASLib's proxies: {"score": x, "time": t}
                Some(Value::Object(inner)) => Ok(inner.get("score").and_then(Value::as_f64)),
                Some(Value::Null) | None => Ok(None),
                Some(other) => bail!("field '{c}' is not a number: {other}"),
            }
        }
        other => bail!("entry is not a number or an object: {other}"),
    }
}

/// Python's `json.dump` writes NaN and ±Infinity, which JSON has not: they become null
/// (outside strings).
fn python_json(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains("NaN") && !text.contains("Infinity") {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut in_str = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_str {
            in_str = c != '"' || escaped;
            escaped = c == '\\' && !escaped;
        } else if c == '"' {
            in_str = true;
        } else if let Some(tok) = ["NaN", "-Infinity", "Infinity"].iter().find(|t| rest.starts_with(**t)) {
            out.push_str("null");
            rest = &rest[tok.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out.into()
}

fn from_json(text: &str, column: Option<&str>, root: Option<&str>) -> Result<Vec<(String, f64)>> {
    let mut v: Value = serde_json::from_str(&python_json(text)).context("not valid JSON")?;
    if let Some(r) = root {
        for p in r.split('/').filter(|p| !p.is_empty()) {
            v = v.get(p).cloned().ok_or_else(|| anyhow!("no key '{p}' under the JSON root path '{r}'"))?;
        }
    }
    let obj = v.as_object().ok_or_else(|| anyhow!("expected a JSON object arch → accuracy"))?;
    if looks_nested(obj) {
        let first = obj.keys().next().cloned().unwrap_or_default();
        bail!(
            "the top-level keys ({}) hold tables of their own: pick one with --truth-root / --proxy-root (e.g. {first})",
            some_keys(obj)
        );
    }
    let mut out = Vec::new();
    for (k, e) in obj {
        if let Some(x) = value_of(e, column)? {
            out.push((k.clone(), x));
        }
    }
    Ok(out)
}

fn from_jsonl(text: &str, column: Option<&str>) -> Result<Vec<(String, f64)>> {
    let col = column.unwrap_or("accuracy");
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(&python_json(l)).with_context(|| format!("line {}: not JSON", i + 1))?;
        let k = v.get("arch").and_then(Value::as_str).ok_or_else(|| anyhow!("line {}: no string 'arch'", i + 1))?;
        if let Some(x) = field(&v, col).and_then(Value::as_f64) {
            out.push((k.to_string(), x));
        }
    }
    Ok(out)
}
