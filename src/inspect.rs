//! `zerocost inspect`: what a model holds and whether every op can be differentiated.

use crate::autodiff::rules::is_differentiable;
use crate::onnx::canon::{parameter_names, BnMode, CanonOptions};
use crate::onnx::layers::{scored_layers, ScoredLayer};
use crate::onnx::Model;
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// Ops that import rewrites away (so they need no rule of their own).
pub const REWRITTEN_ON_IMPORT: &[&str] = &[
    "Constant", "Identity", "Dropout", "BatchNormalization", "InstanceNormalization", "LayerNormalization", "Gelu",
    "Upsample", "Shape", "Size",
];

#[derive(Serialize)]
pub struct InputInfo {
    pub name: String,
    pub dims: Vec<Option<usize>>,
}

#[derive(Serialize)]
pub struct Inspection {
    pub model: String,
    pub opset: i64,
    pub inputs: Vec<InputInfo>,
    pub outputs: Vec<(String, Vec<usize>)>,
    pub scored_layers: Vec<ScoredLayer>,
    pub params: usize,
    pub macs_per_sample: u64,
    /// Op type → number of nodes in the file.
    pub ops: BTreeMap<String, usize>,
    /// Ops in the canonical graph that have no gradient rule.
    pub non_differentiable: Vec<String>,
}

pub fn inspect(model: &Model, batch: usize, input_shape: Option<&[usize]>, bn: BnMode) -> Result<Inspection> {
    let raw = &model.raw.graph;
    let mut ops = BTreeMap::new();
    for n in &raw.nodes {
        *ops.entry(n.op.clone()).or_insert(0) += 1;
    }
    let shapes = model.input_shapes(batch, input_shape)?;
    let g = model.canonical(&shapes, &CanonOptions { bn, ..Default::default() })?;
    let layers = scored_layers(&g)?;
    let mut non_diff: Vec<String> = g.nodes.iter().map(|n| n.op.clone()).filter(|op| !is_differentiable(op)).collect();
    non_diff.sort();
    non_diff.dedup();
    Ok(Inspection {
        model: model.path.display().to_string(),
        opset: raw.opset,
        inputs: model.raw.input_decls.iter().map(|d| InputInfo { name: d.name.clone(), dims: d.dims.clone() }).collect(),
        outputs: g.outputs.iter().map(|o| (o.clone(), g.shape(o).map(|s| s.to_vec()).unwrap_or_default())).collect(),
        params: parameter_names(raw).iter().map(|p| raw.initializers[p].len()).sum(),
        macs_per_sample: layers.iter().map(|l| l.macs_per_sample).sum(),
        scored_layers: layers,
        ops,
        non_differentiable: non_diff,
    })
}

pub fn render(i: &Inspection) -> String {
    let mut s = format!("model    {}\nopset    {}\n", i.model, i.opset);
    for inp in &i.inputs {
        let dims: Vec<String> = inp.dims.iter().map(|d| d.map(|v| v.to_string()).unwrap_or("?".into())).collect();
        s.push_str(&format!("input    {} [{}]\n", inp.name, dims.join(", ")));
    }
    for (o, shape) in &i.outputs {
        s.push_str(&format!("output   {o} {shape:?}\n"));
    }
    s.push_str(&format!("params   {}\nMACs     {} per sample\n", i.params, i.macs_per_sample));
    s.push_str(&format!("scored layers ({}):\n", i.scored_layers.len()));
    for l in &i.scored_layers {
        s.push_str(&format!("  {:<8} {:<48} {:?} MACs {}\n", l.op, l.weight, l.weight_shape, l.macs_per_sample));
    }
    s.push_str("ops:\n");
    for (op, n) in &i.ops {
        let status = if is_differentiable(op) || REWRITTEN_ON_IMPORT.contains(&op.as_str()) {
            "differentiable"
        } else if i.non_differentiable.contains(op) {
            "NO GRADIENT RULE"
        } else {
            "folded on import"
        };
        s.push_str(&format!("  {op:<24} {n:>5}  {status}\n"));
    }
    if !i.non_differentiable.is_empty() {
        s.push_str(&format!("ops without a gradient rule: {}\n", i.non_differentiable.join(", ")));
    }
    s
}
