//! Shared helpers of the integration tests: fixture discovery and reference loading.
#![allow(dead_code)]

use ndarray::ArrayD;
use ndarray_npy::{NpzReader, ReadNpyExt};
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use zerocost::data::Batch;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// PyTorch's value and ours for `proxy`, or None when there is nothing to compare: the
/// reference declares the proxy undefined (then ours must have no value either) or not
/// computed, the reference lacks it, or ours failed — each failure recorded in `failures`.
pub fn compared(case: &Case, proxy: &str, r: &zerocost::proxies::ProxyResult, failures: &mut Vec<String>) -> Option<(f64, f64)> {
    let want = match case.expected(proxy) {
        Ok(Expected::Value(v)) => v,
        Ok(Expected::Undefined) => {
            match &r.value {
                None => eprintln!("{:<28} {:<14} undefined in PyTorch, error here: {}", case.name, proxy, r.error.clone().unwrap_or_default()),
                Some(v) => failures.push(format!("{}: {proxy}: PyTorch declares it undefined, ours {}", case.name, v.total)),
            }
            return None;
        }
        Ok(Expected::NotComputed(why)) => {
            eprintln!("{:<28} {:<14} no PyTorch value: {why}", case.name, proxy);
            return None;
        }
        Err(e) => {
            failures.push(e);
            return None;
        }
    };
    match &r.value {
        Some(v) => Some((want, v.total)),
        None => {
            failures.push(format!("{}: {proxy}: error {}", case.name, r.error.clone().unwrap_or_default()));
            None
        }
    }
}

/// What PyTorch computed for a proxy.
#[derive(Clone, Debug, PartialEq)]
pub enum Expected {
    Value(f64),
    /// The reference declares the proxy undefined for this network (`null` in ref.json).
    Undefined,
    /// The reference declares that it did not compute the proxy, and why (`not_computed`
    /// in ref.json, or a `not_computed.json` beside it).
    NotComputed(String),
}

/// True under CI (`CI` set, and not to "false" or "0"), where `.ci/run` installs every
/// optional dependency of the tests.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A test whose optional dependency (ONNX Runtime, the `onnx` package) is missing: skipped
/// with a message on a developer's machine, a failure under CI.
pub fn skip_or_fail(test: &str, why: &str) {
    if in_ci() {
        panic!("{test}: {why}; under CI (CI={:?}) this dependency is installed by .ci/run, so its absence is a failure", std::env::var("CI").unwrap_or_default());
    }
    eprintln!("SKIPPED {test}: {why}");
}

/// A reference case: model file, batch and PyTorch values.
pub struct Case {
    pub name: String,
    pub model: PathBuf,
    pub dir: PathBuf,
    /// Where inputs.npy and targets.npy are (the case's folder, or a batch shared by cases).
    pub batch_dir: PathBuf,
    pub reference: Value,
    /// Proxies the reference did not compute, with the reason.
    pub not_computed: std::collections::BTreeMap<String, String>,
}

impl Case {
    pub fn batch(&self) -> Batch {
        let x: ArrayD<f32> = ArrayD::<f32>::read_npy(File::open(self.batch_dir.join("inputs.npy")).unwrap()).unwrap();
        let t: ArrayD<i64> = ArrayD::<i64>::read_npy(File::open(self.batch_dir.join("targets.npy")).unwrap()).unwrap();
        Batch { inputs: x, targets: t.iter().copied().collect() }
    }

    /// Reference gradients (grads.npz): key → array.
    pub fn grads(&self) -> Option<Vec<(String, ArrayD<f32>)>> {
        let f = File::open(self.dir.join("grads.npz")).ok()?;
        let mut z = NpzReader::new(f).unwrap();
        let names = z.names().unwrap();
        Some(names.into_iter().map(|n| {
            let a: ArrayD<f32> = z.by_name(&n).unwrap();
            (n.trim_end_matches(".npy").to_string(), a)
        }).collect())
    }

    pub fn f64_value(&self, proxy: &str) -> Option<f64> {
        self.reference["proxies_f64"].get(proxy).and_then(Value::as_f64)
            .or_else(|| self.reference["proxies"].get(proxy).and_then(Value::as_f64))
    }

    /// The PyTorch value a parity test compares `proxy` with: a number, or `Undefined` where
    /// the reference declares the proxy undefined for this network (`null`). A reference
    /// without the key is an error: a parity test must not pass by having nothing to check.
    pub fn expected(&self, proxy: &str) -> Result<Expected, String> {
        if let Some(why) = self.not_computed.get(proxy) {
            return Ok(Expected::NotComputed(why.clone()));
        }
        let value = self.reference["proxies_f64"].get(proxy).or_else(|| self.reference["proxies"].get(proxy));
        match value {
            Some(Value::Null) => Ok(Expected::Undefined),
            Some(v) => v.as_f64().map(Expected::Value).ok_or_else(|| format!("{}: reference value of {proxy} is not a number: {v}", self.name)),
            None => Err(format!("{}: ref.json has no reference value for {proxy} (null declares it undefined)", self.name)),
        }
    }

    /// PyTorch's own float32-vs-float64 relative difference for a proxy.
    pub fn noise_floor(&self, proxy: &str) -> f64 {
        self.reference["rel_diff_f32_vs_f64"].get(proxy).and_then(Value::as_f64).unwrap_or(0.0)
    }
}

/// The case of a reference folder; a folder without a readable ref.json, its model or a
/// batch is a broken fixture and fails the test (it is not silently left out).
fn case_from(dir: &Path, model: PathBuf, name: &str) -> Case {
    let file = dir.join("ref.json");
    let reference: Value = File::open(&file)
        .map_err(|e| e.to_string())
        .and_then(|f| serde_json::from_reader(f).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(model.exists(), "{name}: model {} is missing", model.display());
    // a case without its own batch uses the one of its parent folder
    let batch_dir = if dir.join("inputs.npy").exists() { dir.to_path_buf() } else { dir.parent().unwrap().to_path_buf() };
    assert!(batch_dir.join("inputs.npy").exists(), "{name}: no inputs.npy in {} or its parent", dir.display());
    let mut not_computed: std::collections::BTreeMap<String, String> =
        serde_json::from_value(reference.get("not_computed").cloned().unwrap_or_default()).unwrap_or_default();
    if let Ok(f) = File::open(dir.join("not_computed.json")) {
        let more: std::collections::BTreeMap<String, String> =
            serde_json::from_reader(f).unwrap_or_else(|e| panic!("{}/not_computed.json: {e}", dir.display()));
        not_computed.extend(more);
    }
    Case { name: name.to_string(), model, dir: dir.to_path_buf(), batch_dir, reference, not_computed }
}

/// The repository's fixtures (models/NAME.onnx + tests/fixtures/NAME/).
pub fn fixtures() -> Vec<Case> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/fixtures")).unwrap().flatten().map(|e| e.path()).collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        out.push(case_from(&d, root().join("models").join(format!("{name}.onnx")), &name));
    }
    out
}

/// The project's given PyTorch reference cases, copied into tests/reference/NAME/ (model
/// and ref.json; the batch they share is tests/reference/inputs.npy, targets.npy).
pub fn shared_references() -> Vec<Case> {
    let base = root().join("tests/reference");
    let mut dirs: Vec<_> = std::fs::read_dir(&base).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs.iter()
        .map(|d| case_from(d, d.join("model.onnx"), &format!("shared/{}", d.file_name().unwrap().to_string_lossy())))
        .collect()
}

pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}
