//! `zerocost inspect`: what a model holds and whether every op can be differentiated.

use crate::ops::is_differentiable;
use crate::onnx::canon::{parameter_names, BnMode, CanonOptions};
use crate::onnx::ir::Graph;
use crate::onnx::layers::{scored_layers, ScoredLayer};
use crate::onnx::Model;
use crate::report::{align, csv_line};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// A graph input or output at the inspected batch size.
#[derive(Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
}

/// A scored layer and where its weight's value came from in the file.
#[derive(Serialize)]
pub struct InspectedLayer {
    #[serde(flatten)]
    pub layer: ScoredLayer,
    /// "initializer", "Constant", "ConstantOfShape", "Cast from float16",
    /// "DequantizeLinear of int8", "Transpose of Constant", … (weights::fold_constant_weights)
    pub weight_from: String,
}

impl std::ops::Deref for InspectedLayer {
    type Target = ScoredLayer;
    fn deref(&self) -> &ScoredLayer {
        &self.layer
    }
}

#[derive(Serialize)]
pub struct Inspection {
    pub model: String,
    pub opset: i64,
    /// The batch size the shapes are given at (`--batch-size`).
    pub batch: usize,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub scored_layers: Vec<InspectedLayer>,
    /// What the file is scored as when it is not what it says (Model::notes).
    pub notes: Vec<String>,
    pub params: usize,
    pub macs_per_sample: u64,
    /// Op type → number of nodes in the file.
    pub ops: BTreeMap<String, usize>,
    /// Ops in the canonical graph that have no gradient rule.
    pub non_differentiable: Vec<String>,
}

fn tensor_info(g: &Graph, name: &str) -> TensorInfo {
    let (shape, dtype) = g.info(name).map(|t| (t.shape.clone(), t.dtype.name())).unwrap_or((Vec::new(), "?"));
    TensorInfo { name: name.to_string(), shape, dtype }
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
        batch,
        // both at the batch size inspected (the file's input may be declared at another)
        inputs: model.raw.input_decls.iter().map(|d| tensor_info(&g, &d.name)).collect(),
        outputs: g.outputs.iter().map(|o| tensor_info(&g, o)).collect(),
        params: parameter_names(raw).iter().map(|p| raw.initializers[p].len()).sum(),
        macs_per_sample: layers.iter().map(|l| l.macs_per_sample).sum(),
        scored_layers: layers
            .into_iter()
            .map(|l| {
                let from = model.weight_origins.get(&l.weight).cloned().unwrap_or_else(|| "initializer".into());
                InspectedLayer { layer: l, weight_from: from }
            })
            .collect(),
        notes: model.notes.clone(),
        ops,
        non_differentiable: non_diff,
    })
}

/// The text report.
pub fn render(i: &Inspection) -> String {
    let mut s = format!("model    {}\nopset    {}\nbatch    {}\n", i.model, i.opset, i.batch);
    let tensors = |kind: &str, ts: &[TensorInfo]| -> Vec<Vec<String>> {
        // the kind padded as the labels above ("model    ") so the names line up with them
        ts.iter().map(|t| vec![format!("{kind:<7}"), t.name.clone(), format!("{:?}", t.shape), t.dtype.to_string()]).collect()
    };
    let mut rows = tensors("input", &i.inputs);
    rows.extend(tensors("output", &i.outputs));
    s.push_str(&align(&rows, &[false; 4], ""));
    s.push_str(&format!("params   {}\nMACs     {} per sample\n", i.params, i.macs_per_sample));
    s.push_str(&format!("scored layers ({}):\n", i.scored_layers.len()));
    let rows: Vec<Vec<String>> = i
        .scored_layers
        .iter()
        .map(|l| vec![l.op.clone(), l.weight.clone(), format!("{:?}", l.weight_shape), format!("MACs {}", l.macs_per_sample), l.weight_from.clone()])
        .collect();
    s.push_str(&align(&rows, &[false; 5], "  "));
    for n in &i.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s.push_str("ops:\n");
    let rows: Vec<Vec<String>> = i.ops.iter().map(|(op, n)| vec![op.clone(), n.to_string(), op_status(i, op).to_string()]).collect();
    s.push_str(&align(&rows, &[false, true, false], "  "));
    if !i.non_differentiable.is_empty() {
        s.push_str(&format!("ops without a gradient rule: {}\n", i.non_differentiable.join(", ")));
    }
    s
}

/// A file op's status, from the ops table (`zerocost ops`) and the canonical graph.
fn op_status(i: &Inspection, op: &str) -> &'static str {
    let listed = crate::ops::lookup(op);
    if listed.is_none() {
        "NOT SUPPORTED (see `zerocost ops`)"
    } else if listed.is_some_and(|o| o.differentiable()) {
        "differentiable"
    } else if i.non_differentiable.iter().any(|o| o == op) {
        "NO GRADIENT RULE"
    } else {
        // integer/boolean or piecewise-constant output, or folded away at import
        "no gradient needed"
    }
}

/// Header of [`csv`].
pub const CSV_HEADER: &str = "model,layer,node,op,weight_shape,macs_per_sample\n";

/// One CSV row per scored layer (weight shape as `8x3x3x3`), after [`CSV_HEADER`].
pub fn csv(i: &Inspection) -> String {
    let mut s = CSV_HEADER.to_string();
    for l in &i.scored_layers {
        let shape: Vec<String> = l.weight_shape.iter().map(usize::to_string).collect();
        s.push_str(&csv_line(&[&i.model, &l.weight, &l.node, &l.op, &shape.join("x"), &l.macs_per_sample.to_string()]));
    }
    s
}
