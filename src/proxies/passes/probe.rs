//! The probe pass: one forward at the batch's size whose outputs are the input of every
//! Relu node (kept as packed binary codes, pre-activation > 0) and sample 0 of every scored
//! layer's output (nwot, swap, linear_regions, meco).

use super::{distinct, load_and_run, output};
use crate::onnx::ir::{Graph, Tensor};
use crate::proxies::{Ctx, Pass};
use anyhow::Result;
use std::collections::HashSet;

/// Binary codes of one activation: `n` rows (samples) of `units` bits, packed in u64 words.
#[derive(Clone, Debug)]
pub struct Codes {
    pub n: usize,
    pub units: usize,
    pub words: usize,
    pub bits: Vec<u64>,
}

impl Codes {
    /// Codes `v > 0` of a tensor whose first axis is the batch.
    pub fn positive(t: &Tensor) -> Codes {
        let n = t.shape()[0];
        let v = t.to_f64_vec();
        let units = v.len().checked_div(n).unwrap_or(0);
        let words = units.div_ceil(64);
        let mut bits = vec![0u64; n * words];
        for i in 0..n {
            for u in 0..units {
                if v[i * units + u] > 0.0 {
                    bits[i * words + u / 64] |= 1u64 << (u % 64);
                }
            }
        }
        Codes { n, units, words, bits }
    }

    pub fn row(&self, i: usize) -> &[u64] {
        &self.bits[i * self.words..(i + 1) * self.words]
    }

    pub fn get(&self, i: usize, u: usize) -> bool {
        self.bits[i * self.words + u / 64] >> (u % 64) & 1 == 1
    }

    /// Number of units on which samples i and j agree (`c cᵀ + (1−c)(1−c)ᵀ` entry).
    pub fn agreements(&self, i: usize, j: usize) -> u64 {
        let d: u32 = self.row(i).iter().zip(self.row(j)).map(|(a, b)| (a ^ b).count_ones()).sum();
        self.units as u64 - d as u64
    }
}

/// A Relu node of the canonical graph.
#[derive(Clone, Debug)]
pub struct ReluSite {
    pub node: String,
    pub input: String,
    /// Shape of the pre-activation (batch first).
    pub shape: Vec<usize>,
    /// How many PyTorch ReLU calls this node stands for (see [`torch_relu_calls`]).
    pub calls: usize,
}

pub struct Probe {
    /// Every Relu node whose input is batched (first axis = the batch), in graph order.
    pub relus: Vec<ReluSite>,
    /// Per Relu node: codes (pre-activation > 0), one row per sample.
    pub codes: Vec<Codes>,
    /// Per scored layer: the output of sample 0 (shape without the batch axis) and its values.
    pub layer_sample0: Vec<(Vec<usize>, Vec<f64>)>,
}

/// Relu nodes of a canonical graph at batch `n` whose input carries the batch.
pub fn relu_sites(g: &Graph, raw: &Graph, n: usize) -> Result<Vec<ReluSite>> {
    let mut out = Vec::new();
    for node in &g.nodes {
        if node.op != "Relu" {
            continue;
        }
        let Some(x) = node.input(0) else { continue };
        if g.constant(x).is_some() {
            continue;
        }
        let shape = g.shape(x)?.to_vec();
        if shape.first() != Some(&n) {
            continue;
        }
        out.push(ReluSite { node: node.name.clone(), input: x.to_string(), shape, calls: torch_relu_calls(raw, &node.name) });
    }
    Ok(out)
}

/// PyTorch ReLU calls that a Relu node of a TorchScript export stands for.
///
/// The TorchScript exporter merges identical calls (common-subexpression elimination): in a
/// NAS-Bench-201 or DARTS cell every ReLU-Conv-BN edge out of a node applies its own ReLU to
/// the same tensor, and the export keeps one Relu node named after the first edge's module
/// (`…/2_0_nor_conv_1x1/2_0_nor_conv_1x1.0/Relu`) feeding every edge's Conv. A merged call is
/// recognised by its consumer: a node in the position of the Relu's successor inside
/// another `nn.Sequential` (`…/3_0_nor_conv_1x1/3_0_nor_conv_1x1.1/Conv`) whose own ReLU
/// position (`…/3_0_nor_conv_1x1.0/`) left no node in the file. Each such consumer module
/// adds one call. Any other node counts once (exports without TorchScript's scope names,
/// e.g. the dynamo exporter's, do not merge calls).
pub fn torch_relu_calls(raw: &Graph, relu_node: &str) -> usize {
    fn seq_child(scope: &str) -> Option<(&str, usize)> {
        // "A/a.j" -> ("A", j) when the last component of A is "a"
        let (parent, leaf) = scope.rsplit_once('/')?;
        let last = parent.rsplit('/').next()?;
        let j = leaf.strip_prefix(last)?.strip_prefix('.')?.parse().ok()?;
        Some((parent, j))
    }
    let Some(node) = raw.nodes.iter().find(|n| n.name == relu_node && n.op == "Relu") else { return 1 };
    let Some((scope, _)) = node.name.rsplit_once('/') else { return 1 };
    let Some((parent, j)) = seq_child(scope) else { return 1 };
    let y = &node.outputs[0];
    let mut extra: HashSet<&str> = HashSet::new();
    for c in raw.nodes.iter().filter(|c| c.inputs.iter().any(|i| i == y)) {
        let Some((cscope, _)) = c.name.rsplit_once('/') else { continue };
        let Some((cparent, k)) = seq_child(cscope) else { continue };
        if k != j + 1 || cparent == parent || extra.contains(cparent) {
            continue;
        }
        let last = cparent.rsplit('/').next().unwrap_or("");
        let own_relu = format!("{cparent}/{last}.{j}/");
        if !raw.nodes.iter().any(|m| m.name.starts_with(&own_relu)) {
            extra.insert(cparent);
        }
    }
    1 + extra.len()
}

/// One forward at the batch's size: binary codes of every Relu input and sample 0 of
/// every scored layer's output (nwot, swap, linear_regions, meco).
#[derive(Debug)]
pub struct ProbePass;

impl Pass for ProbePass {
    type Output = Probe;
    fn run(&self, ctx: &Ctx) -> Result<Probe> {
        probe(ctx)
    }
}

fn probe(ctx: &Ctx) -> Result<Probe> {
    let base = ctx.base()?;
    let g0 = &base.graph;
    let n = ctx.batch.len();
    let relus = relu_sites(g0, &ctx.model.raw.graph, n)?;
    let mut g = g0.clone();
    let mut outs = vec![g.outputs[0].clone()];
    outs.extend(relus.iter().map(|r| r.input.clone()));
    outs.extend(base.layers.iter().map(|l| l.output.clone()));
    g.outputs = distinct(outs);
    let x = ctx.input_tensor(g0)?;
    let out = load_and_run(ctx.engine, &g, &[(&g0.inputs[0], &x)])?;
    let codes = relus.iter().map(|r| Ok(Codes::positive(output(&out, &r.input)?))).collect::<Result<_>>()?;
    let mut layer_sample0 = Vec::new();
    for l in &base.layers {
        let t = output(&out, &l.output)?;
        let s = t.shape();
        let per: usize = s[1..].iter().product();
        let v = t.to_f64_vec();
        layer_sample0.push((s[1..].to_vec(), v[..per].to_vec()));
    }
    Ok(Probe { relus, codes, layer_sample0 })
}
