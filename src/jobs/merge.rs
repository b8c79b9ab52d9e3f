//! Joining result files (shards): one line per model. The same model twice is collapsed when
//! both lines agree; a failed line gives way to a successful one; two successful lines whose
//! scores differ are a conflict, and nothing is written.

use super::store::{self, Record};
use anyhow::{bail, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub struct Merged {
    /// Sorted by model id.
    pub records: Vec<Record>,
    pub lines: usize,
    pub identical: usize,
    pub superseded: usize,
}

fn close(a: f64, b: f64, rtol: f64) -> bool {
    a == b || (a - b).abs() <= rtol * a.abs().max(b.abs())
}

/// Why two successful results of one model disagree, or `None`.
pub fn difference(a: &Value, b: &Value, rtol: f64) -> Option<String> {
    let empty = serde_json::Map::new();
    let sa = a.get("scores").and_then(Value::as_object).unwrap_or(&empty);
    let sb = b.get("scores").and_then(Value::as_object).unwrap_or(&empty);
    let keys_a: Vec<&String> = sa.keys().collect();
    let keys_b: Vec<&String> = sb.keys().collect();
    let mut ka = keys_a.clone();
    let mut kb = keys_b.clone();
    ka.sort();
    kb.sort();
    if ka != kb {
        return Some(format!("different proxies ({} vs {})", keys_a.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","), keys_b.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")));
    }
    for (k, va) in sa {
        let vb = &sb[k];
        let same = match (va.as_f64(), vb.as_f64()) {
            (Some(x), Some(y)) => close(x, y, rtol),
            _ => va == vb,
        };
        if !same {
            return Some(format!("{k} = {va} vs {vb}"));
        }
    }
    None
}

/// Reads and joins result files. `rtol`: relative difference up to which two scores count
/// as equal.
pub fn merge_files(files: &[PathBuf], rtol: f64) -> Result<Merged> {
    let mut by_model: BTreeMap<String, Record> = BTreeMap::new();
    let mut out = Merged::default();
    let mut conflicts = Vec::new();
    for f in files {
        for r in store::read(f)? {
            out.lines += 1;
            let id = r.model().to_string();
            match by_model.get_mut(&id) {
                None => {
                    by_model.insert(id, r);
                }
                Some(prev) => match (prev.ok(), r.ok()) {
                    (true, true) => match difference(&prev.value, &r.value, rtol) {
                        None => out.identical += 1,
                        Some(d) => conflicts.push(format!("{id}: {} and {} differ: {d}", prev.at(), r.at())),
                    },
                    (false, true) => {
                        *prev = r;
                        out.superseded += 1;
                    }
                    (true, false) => out.superseded += 1,
                    (false, false) => out.identical += 1,
                },
            }
        }
    }
    if !conflicts.is_empty() {
        let n = conflicts.len();
        let shown: Vec<String> = conflicts.into_iter().take(20).map(|c| format!("  {c}")).collect();
        bail!(
            "{n} conflicting duplicate{} (the same model with different scores; were the shards run with different settings?):\n{}{}",
            if n == 1 { "" } else { "s" },
            shown.join("\n"),
            if n > 20 { format!("\n  ... and {} more", n - 20) } else { String::new() }
        );
    }
    out.records = by_model.into_values().collect();
    Ok(out)
}
