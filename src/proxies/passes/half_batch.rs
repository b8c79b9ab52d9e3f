//! ZiCo's half-batch loss passes: the loss program canonicalised at N/2, run on each half.

use super::loss_program::{loss_program, target_tensor, LossProgram, LOSS, TARGETS};
use super::output;
use super::sub_batch::{canonical_at, sub_inputs};
use crate::engine::Program;
use crate::onnx::ir::{Graph, Tensor};
use crate::proxies::{Ctx, Pass};
use anyhow::{bail, Result};
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// ZiCo's passes: ∂L/∂W per scored layer on each half of the batch (samples 0..N/2 and
/// N/2..N, as `x[st:en]` with `st = k·N//2`), each half a separate forward (its own
/// BatchNorm statistics) with the mean cross-entropy of that half.
#[derive(Debug)]
pub struct HalfBatchPass;

impl Pass for HalfBatchPass {
    type Output = [Vec<Tensor>; 2];
    fn run(&self, ctx: &Ctx) -> Result<[Vec<Tensor>; 2]> {
        half_batch_grads(ctx)
    }
}

fn half_batch_grads(ctx: &Ctx) -> Result<[Vec<Tensor>; 2]> {
    let n = ctx.batch.len();
    if n < 2 {
        bail!("two half batches need at least 2 samples (the batch has {n})");
    }
    let bounds = [(0, n / 2), (n / 2, n)];
    let mut programs: HashMap<usize, (Graph, LossProgram, Box<dyn Program>)> = HashMap::new();
    let mut res: Vec<Vec<Tensor>> = Vec::new();
    for (st, en) in bounds {
        let m = en - st;
        if let Entry::Vacant(e) = programs.entry(m) {
            let (g, layers) = canonical_at(ctx, m)?;
            let p = loss_program(&g, &layers, false, false)?;
            let prog = ctx.engine.load(&p.graph)?;
            e.insert((g, p, prog));
        }
        let (g, p, prog) = &programs[&m];
        let x = sub_inputs(ctx, g, st, en)?;
        let t = target_tensor(&ctx.batch.targets[st..en], ctx.classes(g)?, ctx.dtype())?;
        let out = prog.run(&[(&g.inputs[0], &x), (TARGETS, &t)])?;
        let loss = output(&out, LOSS)?.to_f64_vec()[0];
        if !loss.is_finite() {
            bail!("the loss on samples {st}..{en} is {loss}");
        }
        res.push(p.weight_grads.iter().map(|w| output(&out, w).cloned()).collect::<Result<_>>()?);
    }
    let second = res.pop().unwrap();
    let first = res.pop().unwrap();
    Ok([first, second])
}
