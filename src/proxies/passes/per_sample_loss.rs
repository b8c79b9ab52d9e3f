//! GradSign's per-sample loss passes: the loss program at batch 1, loaded once and run
//! once per sample.

use super::loss_program::{loss_program, target_tensor, TARGETS};
use super::output;
use super::sub_batch::{canonical_at, sub_inputs};
use crate::onnx::ir::Tensor;
use crate::proxies::Ctx;
use anyhow::Result;

/// GradSign's passes: each sample alone (a batch of one, its own BatchNorm statistics),
/// cross-entropy of that sample, ∂L/∂W per scored layer. The batch-1 program is loaded
/// once and run N times; `visit(sample, grads)` sees each sample's gradients.
pub fn per_sample_loss_grads(ctx: &Ctx, mut visit: impl FnMut(usize, &[&Tensor]) -> Result<()>) -> Result<()> {
    let n = ctx.batch.len();
    let (g, layers) = canonical_at(ctx, 1)?;
    let p = loss_program(&g, &layers, false, false)?;
    let prog = ctx.engine.load(&p.graph)?;
    let classes = ctx.classes(&g)?;
    for i in 0..n {
        let x = sub_inputs(ctx, &g, i, i + 1)?;
        let t = target_tensor(&ctx.batch.targets[i..i + 1], classes, ctx.dtype())?;
        let out = prog.run(&[(&g.inputs[0], &x), (TARGETS, &t)])?;
        let grads: Vec<&Tensor> = p.weight_grads.iter().map(|w| output(&out, w)).collect::<Result<_>>()?;
        visit(i, &grads)?;
    }
    Ok(())
}
