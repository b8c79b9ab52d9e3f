//! The base pass: the model canonicalised at the batch's size, its scored layers and their
//! weights. Every data pass starts from it.

use crate::onnx::canon::CanonOptions;
use crate::onnx::ir::{Graph, Tensor};
use crate::onnx::layers::{scored_layers, ScoredLayer};
use crate::proxies::{Ctx, Pass};
use anyhow::Result;

/// The canonical graph a data pass runs on, with its scored layers and their weights.
pub struct Base {
    pub graph: Graph,
    pub layers: Vec<ScoredLayer>,
    pub weights: Vec<Tensor>,
}

/// The canonical graph at the batch's size (BN as chosen, float32 unless float64).
#[derive(Debug)]
pub struct BasePass;

impl Pass for BasePass {
    type Output = Base;
    fn run(&self, ctx: &Ctx) -> Result<Base> {
        base_at(ctx, ctx.batch.len())
    }
}

/// The canonical graph at `n` samples (a chunk of the batch), as [`BasePass`].
pub fn base_at(ctx: &Ctx, n: usize) -> Result<Base> {
    let opts = CanonOptions { bn: ctx.opts.bn, abs_params: false, float64: ctx.opts.float64 };
    let graph = ctx.canonical(n, &opts)?;
    let layers = scored_layers(&graph)?;
    let weights = layers.iter().map(|l| graph.initializers[&l.weight].clone()).collect();
    Ok(Base { graph, layers, weights })
}
