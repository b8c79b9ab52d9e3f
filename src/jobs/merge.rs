//! Joining result files (shards): one line per model. The same model twice is collapsed when
//! both lines agree; lines with other proxies of one model (a job rerun with proxies added)
//! are combined into one; a failed line gives way to a successful one; two successful lines
//! with different scores for one proxy are a conflict, and nothing is written.

use super::store::{self, Record};
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default)]
pub struct Merged {
    /// Sorted by model id.
    pub records: Vec<Record>,
    pub lines: usize,
    pub identical: usize,
    /// Lines that added proxies to an earlier line of the same model.
    pub combined: usize,
    pub superseded: usize,
}

fn close(a: f64, b: f64, rtol: f64) -> bool {
    a == b || (a - b).abs() <= rtol * a.abs().max(b.abs())
}

/// The proxies a line has scores for, in its order.
pub fn proxies_of(v: &Value) -> Vec<&str> {
    v.get("scores").and_then(Value::as_object).map(|s| s.keys().map(String::as_str).collect()).unwrap_or_default()
}

/// Why two successful results of one model disagree on a proxy both have, or `None`.
pub fn difference(a: &Value, b: &Value, rtol: f64) -> Option<String> {
    let empty = serde_json::Map::new();
    let sa = a.get("scores").and_then(Value::as_object).unwrap_or(&empty);
    let sb = b.get("scores").and_then(Value::as_object).unwrap_or(&empty);
    for (k, va) in sa {
        let Some(vb) = sb.get(k) else { continue };
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

/// Fields of a line that are keyed by proxy: joined when lines of one model are combined.
const PER_PROXY: &[&str] = &["scores", "seconds", "errors", "infinite", "engines", "per_layer", "details"];

/// How a second successful line of a model was taken in.
pub enum Join {
    /// It scored no proxy the first did not (with the same values).
    Identical,
    /// It added proxies (a job rerun with more proxies): they are now in the first.
    Combined,
    Conflict(String),
}

/// Takes the successful line `b` into the successful line `a` of the same model: a proxy
/// both have must agree (up to `rtol`); proxies only `b` has are added to `a`.
pub fn join(a: &mut Record, b: &Record, rtol: f64) -> Join {
    if let Some(d) = difference(&a.value, &b.value, rtol) {
        return Join::Conflict(d);
    }
    let have = proxies_of(&a.value);
    if proxies_of(&b.value).iter().all(|p| have.contains(p)) {
        return Join::Identical;
    }
    let scoring = |v: &Value| v.get("scoring").cloned();
    if let (Some(x), Some(y)) = (scoring(&a.value), scoring(&b.value)) {
        if x != y {
            return Join::Conflict(format!("scored with different settings (scoring {x} vs {y})"));
        }
    }
    let (Value::Object(ao), Value::Object(bo)) = (&mut a.value, &b.value) else { return Join::Identical };
    // the fingerprint of one line's proxy list fits neither; `scoring` still holds
    if ao.get("settings") != bo.get("settings") {
        ao.shift_remove("settings");
    }
    for (k, bv) in bo {
        match (ao.get_mut(k), bv) {
            (Some(Value::Object(am)), Value::Object(bm)) if PER_PROXY.contains(&k.as_str()) => {
                for (p, v) in bm {
                    am.entry(p.clone()).or_insert_with(|| v.clone());
                }
            }
            (Some(av), _) if k == "wall_seconds" => *av = json!(((av.as_f64().unwrap_or(0.0) + bv.as_f64().unwrap_or(0.0)) * 1e3).round() / 1e3),
            (None, _) if k != "settings" => {
                ao.insert(k.clone(), bv.clone());
            }
            _ => {}
        }
    }
    a.raw = a.value.to_string();
    Join::Combined
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
                    (true, true) => match join(prev, &r, rtol) {
                        Join::Identical => out.identical += 1,
                        Join::Combined => out.combined += 1,
                        Join::Conflict(d) => conflicts.push(format!("{id}: {} and {} differ: {d}", prev.at(), r.at())),
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
