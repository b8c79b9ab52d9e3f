//! zerocost: zero-cost proxies for neural architecture search, computed on any ONNX network.
//!
//! The data flows top to bottom through the modules:
//! `onnx` (load, canonicalise, infer shapes) → `autodiff` (append the reverse pass as ONNX
//! nodes) → `engine` (run the program) → `proxies` (scores from the results). `data`
//! supplies the batch; `scoring` holds the settings of a run (`BatchSpec`) and scores one
//! model with them, for the `score` command, batch `jobs` and the `search` oracle.

pub mod autodiff;
pub mod data;
pub mod engine;
pub mod error_text;
pub mod jobs;
pub mod memory;
pub mod onnx;
pub mod ops;
pub mod output_path;
pub mod proxies;
pub mod rank;
pub mod report;
pub mod scoring;
pub mod search;
pub mod inspect;

use anyhow::{anyhow, bail, Context, Result};
use onnx::canon::CanonOptions;
use onnx::Model;
use proxies::ScoreOptions;
use std::io::Read;
use std::path::Path;

/// Per-sample input shape of a model: from `--input-shape` (batch entry dropped) or the file.
pub fn sample_shape(model: &Model, input_shape: Option<&[usize]>) -> Result<Vec<usize>> {
    if let Some(s) = input_shape {
        return Ok(s[1..].to_vec());
    }
    // a symbolic non-batch dimension is reported with the --input-shape hint
    model.input_shapes(1, None)?;
    model
        .sample_shape()
        .ok_or_else(|| anyhow!("{}: the input shape is not static; pass --input-shape", model.path.display()))
}

/// Number of classes: the size of the model's output per sample.
pub fn num_classes(model: &Model, opts: &ScoreOptions) -> Result<usize> {
    let batch = model.export_batch().unwrap_or(1);
    let shapes = model.input_shapes(batch, opts.input_shape.as_deref())?;
    let g = model.canonical(&shapes, &CanonOptions { bn: opts.bn, ..Default::default() })?;
    let s = g.shape(&g.outputs[0])?;
    Ok(s[1..].iter().product())
}

/// Names (weight initializers) of the scored layers, in order.
pub fn layer_names(model: &Model, opts: &ScoreOptions, batch: usize) -> Result<Vec<String>> {
    let shapes = model.input_shapes(batch, opts.input_shape.as_deref())?;
    let g = model.canonical(&shapes, &CanonOptions { bn: opts.bn, ..Default::default() })?;
    Ok(onnx::layers::scored_layers(&g)?.into_iter().map(|l| l.weight).collect())
}

/// Keeps only graph output `name` and what it depends on: the proxies score a model's
/// first output, and weights that do not reach it would only add zero gradients.
pub fn select_output(model: &mut Model, name: &str) -> Result<()> {
    let g = &mut model.raw.graph;
    if !g.outputs.iter().any(|o| o == name) {
        bail!("{}: no output named '{name}' (outputs: {})", model.path.display(), g.outputs.join(", "));
    }
    g.outputs = vec![name.to_string()];
    g.prune();
    Ok(())
}

/// Shape of the array in a `.npy` file, read from its header only.
pub fn npy_shape(path: &Path) -> Result<Vec<usize>> {
    let shown = path.display();
    let mut head = Vec::new();
    std::fs::File::open(path).with_context(|| format!("cannot read {shown}"))?.take(1 << 16).read_to_end(&mut head)?;
    if !head.starts_with(b"\x93NUMPY") {
        bail!("{shown}: not a .npy file");
    }
    let text = String::from_utf8_lossy(&head);
    let tuple = text
        .split_once("'shape':")
        .and_then(|(_, rest)| rest.split_once('(')?.1.split_once(')'))
        .map(|(inside, _)| inside)
        .ok_or_else(|| anyhow!("{shown}: no shape in the .npy header"))?;
    tuple
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| anyhow!("{shown}: bad shape in the .npy header: ({tuple})")))
        .collect()
}
