//! synflow's pass: |parameters|, float64, one all-ones sample; BatchNorm removed unless
//! `keep_bn` (synflow_bn).

use super::{load_and_run, ones, output, seed_ones, sum_output_program, SEED};
use crate::onnx::canon::{BnMode, CanonOptions};
use crate::onnx::ir::{DType, Tensor};
use crate::onnx::layers::scored_layers;
use crate::proxies::{Ctx, Pass};
use anyhow::Result;

pub struct SynflowResults {
    pub weights: Vec<Tensor>,
    pub weight_grads: Vec<Tensor>,
}

#[derive(Debug)]
pub struct SynflowPass {
    pub keep_bn: bool,
}

impl Pass for SynflowPass {
    type Output = SynflowResults;
    fn run(&self, ctx: &Ctx) -> Result<SynflowResults> {
        let opts = CanonOptions { bn: if self.keep_bn { BnMode::Batch } else { BnMode::Remove }, abs_params: true, float64: true };
        let graph = ctx.canonical(1, &opts)?;
        let layers = scored_layers(&graph)?;
        let wrt: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
        let (g, grads) = sum_output_program(&graph, &wrt)?;
        let input = graph.inputs[0].clone();
        let x = ones(graph.shape(&input)?, DType::F64);
        let seed = seed_ones(&graph)?;
        let out = load_and_run(ctx.engine, &g, &[(&input, &x), (SEED, &seed)])?;
        Ok(SynflowResults {
            weights: wrt.iter().map(|w| graph.initializers[w].clone()).collect(),
            weight_grads: grads.iter().map(|n| output(&out, n).cloned()).collect::<Result<_>>()?,
        })
    }
}
