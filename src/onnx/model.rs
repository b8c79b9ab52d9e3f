//! A loaded model: the file's graph as read, from which canonical graphs are made for a
//! given batch and set of options (BN mode, synflow's absolute weights, float64).

use super::canon::{canonicalize, CanonOptions, InputShapes};
use super::ir::Graph;
use super::proto::{read_model_info, ImportInfo, RawModel};
use anyhow::{bail, Result};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub struct Model {
    pub path: PathBuf,
    pub raw: RawModel,
    /// What the file is scored as, when that is not what it says: a float16 network read as
    /// float32, a QDQ model dequantized, BatchNormalization folded away by the exporter.
    /// One line each, for `inspect` and `score` (stderr) to say once.
    pub notes: Vec<String>,
    /// Every parameter slot's tensor → where its value came from ("initializer",
    /// "Constant", "ConstantOfShape", "Cast from float16", "DequantizeLinear of int8", …;
    /// see `weights::fold_constant_weights`).
    pub weight_origins: IndexMap<String, String>,
}

impl Model {
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref().to_path_buf();
        let (mut raw, info) = read_model_info(&path)?;
        let (pairs, relus) = super::weights::remove_qdq_pairs(&mut raw.graph, &info.stored);
        let weight_origins = super::weights::fold_constant_weights(&mut raw.graph, &info.stored)?;
        if raw.input_decls.is_empty() {
            bail!("{}: the model has no runtime input", path.display());
        }
        let notes = load_notes(&raw, &info, &weight_origins, pairs, relus);
        Ok(Model { path, raw, notes, weight_origins })
    }

    pub fn from_raw(path: impl Into<PathBuf>, raw: RawModel) -> Model {
        Model { path: path.into(), raw, notes: Vec::new(), weight_origins: IndexMap::new() }
    }

    /// Batch size written in the file (first dimension of the first input), if static.
    pub fn export_batch(&self) -> Option<usize> {
        self.raw.input_decls[0].dims.first().copied().flatten()
    }

    /// Per-sample input shape declared in the file, if every dimension after the first is static.
    pub fn sample_shape(&self) -> Option<Vec<usize>> {
        self.raw.input_decls[0].dims.iter().skip(1).copied().collect()
    }

    /// Input shapes for a run at `batch`. `input_shape` (full shape, batch first, as given
    /// by `--input-shape`) is required when the file has symbolic dimensions other than the batch.
    pub fn input_shapes(&self, batch: usize, input_shape: Option<&[usize]>) -> Result<InputShapes> {
        let mut shapes = HashMap::new();
        for (k, d) in self.raw.input_decls.iter().enumerate() {
            let shape: Vec<usize> = if k == 0 && input_shape.is_some() {
                let mut s = input_shape.unwrap().to_vec();
                if s.len() != d.dims.len() && !d.dims.is_empty() {
                    bail!("{}: --input-shape {:?} has rank {}, the model's input '{}' has rank {}", self.path.display(), s, s.len(), d.name, d.dims.len());
                }
                s[0] = batch;
                s
            } else {
                if d.dims.is_empty() {
                    bail!("{}: input '{}' has no declared shape; pass --input-shape (e.g. 1x3x32x32)", self.path.display(), d.name);
                }
                let symbolic: Vec<String> = d
                    .dims
                    .iter()
                    .zip(&d.dim_names)
                    .enumerate()
                    .filter(|(i, (v, _))| v.is_none() && *i > 0)
                    .map(|(i, (_, n))| if n.is_empty() || n == "?" { format!("#{i}") } else { n.clone() })
                    .collect();
                if !symbolic.is_empty() {
                    bail!(
                        "{}: input '{}' has symbolic dimensions ({}); pass --input-shape with the full shape, e.g. --input-shape 1x3x32x32",
                        self.path.display(),
                        d.name,
                        symbolic.join(", ")
                    );
                }
                let mut s: Vec<usize> = d.dims.iter().map(|v| v.unwrap_or(batch)).collect();
                s[0] = batch;
                s
            };
            // the batch is allocated from this shape: refuse what cannot fit before trying
            crate::memory::check(format!("{}: input '{}' {:?} ({:?})", self.path.display(), d.name, shape, d.dtype), crate::memory::elements(&shape).saturating_mul(d.dtype.width() as u128))?;
            shapes.insert(d.name.clone(), shape);
        }
        Ok(InputShapes { shapes, export_batch: self.export_batch(), batch })
    }

    /// The canonical graph for a run at these shapes with these options.
    pub fn canonical(&self, shapes: &InputShapes, opts: &CanonOptions) -> Result<Graph> {
        let g = canonicalize(&self.raw, shapes, opts)?;
        // every pass starts from this graph: refuse shapes that cannot be afforded here,
        // before any tensor of theirs (a seed, a batch, a constant) is allocated
        g.check_memory()?;
        Ok(g)
    }
}

/// The notes of [`Model::notes`].
fn load_notes(raw: &RawModel, info: &ImportInfo, origins: &IndexMap<String, String>, pairs: usize, relus: usize) -> Vec<String> {
    let g = &raw.graph;
    let mut notes = Vec::new();
    if !info.half_io.is_empty() || info.half_casts > 0 {
        let weights = origins.values().filter(|o| o.contains("float16") || o.contains("bfloat16")).count();
        notes.push(format!(
            "half-precision network: its float16/bfloat16 inputs and outputs ({}), weights ({weights}) and casts to float16 ({}) are read as float32; it is scored as the float32 network",
            info.half_io.join(", "),
            info.half_casts
        ));
    }
    let dequantized = origins.values().filter(|o| o.contains("DequantizeLinear")).count();
    if pairs > 0 || dequantized > 0 {
        notes.push(format!(
            "quantized (QDQ) network: weights dequantized at load ({dequantized}), QuantizeLinear→DequantizeLinear pairs on activations removed ({pairs}, of which {relus} replaced by the Relu they clamp to); it is scored as the dequantized float network"
        ));
    }
    // PyTorch's dynamo exporter with optimize=True folds inference-mode BatchNormalization
    // into the convolution before it: the fused Conv is a new node, named node_Conv_<n>,
    // whose output keeps the name of the BatchNorm's (getitem…); the exporter's own Conv
    // nodes are named after the aten op (node_conv2d…)
    if info.producer == "pytorch" {
        let folded = g
            .nodes
            .iter()
            .filter(|n| matches!(n.op.as_str(), "Conv" | "ConvTranspose"))
            .filter(|n| {
                let fused_name = n.name.strip_prefix("node_Conv_").is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
                fused_name || n.outputs.first().is_some_and(|o| o.starts_with("getitem"))
            })
            .count();
        if folded > 0 {
            notes.push(format!(
                "BatchNormalization was folded into {folded} convolution(s) by the exporter (PyTorch's dynamo exporter, optimize=True): batch statistics cannot be recovered from this file, and the scores follow the folded network (export with optimize=False to keep BatchNormalization)"
            ));
        }
    }
    notes
}
