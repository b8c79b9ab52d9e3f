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

/// A reference case: model file, batch and PyTorch values.
pub struct Case {
    pub name: String,
    pub model: PathBuf,
    pub dir: PathBuf,
    /// Where inputs.npy and targets.npy are (the case's folder, or a batch shared by cases).
    pub batch_dir: PathBuf,
    pub reference: Value,
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

    /// PyTorch's own float32-vs-float64 relative difference for a proxy.
    pub fn noise_floor(&self, proxy: &str) -> f64 {
        self.reference["rel_diff_f32_vs_f64"].get(proxy).and_then(Value::as_f64).unwrap_or(0.0)
    }
}

fn case_from(dir: &Path, model: PathBuf, name: &str) -> Option<Case> {
    let reference: Value = serde_json::from_reader(File::open(dir.join("ref.json")).ok()?).ok()?;
    if !model.exists() {
        return None;
    }
    // a case without its own batch uses the one of its parent folder
    let batch_dir = if dir.join("inputs.npy").exists() { dir.to_path_buf() } else { dir.parent()?.to_path_buf() };
    Some(Case { name: name.to_string(), model, dir: dir.to_path_buf(), batch_dir, reference })
}

/// The repository's fixtures (models/NAME.onnx + tests/fixtures/NAME/).
pub fn fixtures() -> Vec<Case> {
    let mut out = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root().join("tests/fixtures")).unwrap().flatten().map(|e| e.path()).collect();
    dirs.sort();
    for d in dirs {
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        if let Some(c) = case_from(&d, root().join("models").join(format!("{name}.onnx")), &name) {
            out.push(c);
        }
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
        .filter_map(|d| case_from(d, d.join("model.onnx"), &format!("shared/{}", d.file_name().unwrap().to_string_lossy())))
        .collect()
}

pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-30)
}
