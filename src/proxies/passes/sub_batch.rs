//! Parts of the batch run as batches of their own (half batches, single samples): their
//! inputs and the canonical graph at their size.

use crate::onnx::canon::CanonOptions;
use crate::onnx::ir::{Graph, Tensor};
use crate::onnx::layers::{scored_layers, ScoredLayer};
use crate::proxies::Ctx;
use anyhow::{bail, Result};
use ndarray::{Axis, Slice};

/// Samples `st..en` of the batch as the pass's input tensor.
pub fn sub_inputs(ctx: &Ctx, g: &Graph, st: usize, en: usize) -> Result<Tensor> {
    let x = ctx.batch.inputs.slice_axis(Axis(0), Slice::from(st..en)).to_owned();
    let want = g.shape(&g.inputs[0])?;
    if want != x.shape() {
        bail!("samples {st}..{en} have shape {:?}, the model's input '{}' wants {want:?}", x.shape(), g.inputs[0]);
    }
    Ok(Tensor::F32(x).cast(ctx.dtype()))
}

/// The canonical graph at batch `n` with the scoring options (BN mode, float type).
pub fn canonical_at(ctx: &Ctx, n: usize) -> Result<(Graph, Vec<ScoredLayer>)> {
    let opts = CanonOptions { bn: ctx.opts.bn, abs_params: false, float64: ctx.opts.float64 };
    let g = ctx.canonical(n, &opts)?;
    let layers = scored_layers(&g)?;
    let base = &ctx.base()?.layers;
    if layers.len() != base.len() || layers.iter().zip(base).any(|(a, b)| a.weight != b.weight) {
        bail!("the scored layers at batch {n} differ from those at batch {}", ctx.batch.len());
    }
    Ok((g, layers))
}
