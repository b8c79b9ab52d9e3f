//! Scored layers (SPEC §1): every Conv, Gemm, and MatMul whose second operand is a weight
//! initializer, in graph order; only the weight counts, never the bias.

use super::ir::Graph;
use anyhow::Result;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ScoredLayer {
    /// Initializer name of the weight.
    pub weight: String,
    pub node: String,
    pub op: String,
    pub weight_shape: Vec<usize>,
    /// The layer's output activation (for fisher: the output before any normalisation;
    /// for MatMul followed by a bias Add, the Add's output, as a Linear module's).
    pub output: String,
    /// Output channels/features (PyTorch's `W.shape[0]`).
    pub out_channels: usize,
    /// Multiply-accumulates for one sample.
    pub macs_per_sample: u64,
}

/// Scored layers of a canonical graph (types inferred).
pub fn scored_layers(g: &Graph) -> Result<Vec<ScoredLayer>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (idx, n) in g.nodes.iter().enumerate() {
        let Some(w) = n.input(1) else { continue };
        if !matches!(n.op.as_str(), "Conv" | "Gemm" | "MatMul") || g.constant(w).is_none() {
            continue;
        }
        let ws = g.shape(w)?.to_vec();
        let y = &n.outputs[0];
        let ys = g.shape(y)?.to_vec();
        let batch = ys.first().copied().unwrap_or(1).max(1);
        let (out_channels, macs) = match n.op.as_str() {
            "Conv" => {
                let per_out: usize = ws[1..].iter().product();
                (ws[0], (ys.iter().product::<usize>() / batch * per_out) as u64)
            }
            "Gemm" => {
                let (k, o) = if n.int("transB", 0) == 1 { (ws[1], ws[0]) } else { (ws[0], ws[1]) };
                (o, (k * o) as u64)
            }
            _ => {
                if ws.len() != 2 {
                    continue; // batched weights are not a fully-connected layer
                }
                let xs = g.shape(n.input(0).unwrap())?;
                let rows: usize = xs[..xs.len() - 1].iter().product::<usize>() / batch;
                (ws[1], (rows * ws[0] * ws[1]) as u64)
            }
        };
        let mut output = y.clone();
        if n.op == "MatMul" || (n.op == "Gemm" && n.input(2).is_none()) {
            // a Linear exported as MatMul + Add(bias): PyTorch's activation includes the bias
            if let Some(next) = g.nodes[idx + 1..].iter().find(|m| m.inputs.iter().any(|i| i == y)) {
                let other = next.inputs.iter().find(|i| *i != y);
                if next.op == "Add" && other.is_some_and(|o| g.constant(o).is_some_and(|t| t.shape() == [out_channels])) {
                    output = next.outputs[0].clone();
                }
            }
        }
        if !seen.insert(w.to_string()) {
            continue; // a shared weight is one layer
        }
        out.push(ScoredLayer {
            weight: w.to_string(),
            node: n.name.clone(),
            op: n.op.clone(),
            weight_shape: ws,
            output,
            out_channels,
            macs_per_sample: macs,
        });
    }
    Ok(out)
}
