//! The passes proxies share, one file each; `Ctx` (ctx.rs) runs each at most once per
//! model and batch and keeps its output:
//! - base (`base.rs`): the canonical graph at the batch's size and its scored layers;
//! - loss (`loss.rs`): the loss program (`loss_program.rs`) on the batch: cross-entropy,
//!   ∂L/∂W per scored layer, fisher's sums, and in the same program what else the wanted
//!   proxies read: GraSP's Hessian-gradient product, the input Jacobian; in chunks when the
//!   whole batch's program exceeds the memory budget (`split.rs`);
//! - Hessian-gradient product (`hessian_grad.rs`): GraSP's Hg, from the loss pass or its own;
//! - Jacobian (`jacobian.rs`): ∂(Σ outputs)/∂input in a program of its own, when no loss pass runs;
//! - synflow (`synflow.rs`): BN removed (or kept), |parameters|, float64, one all-ones sample;
//! - probe (`probe.rs`): one forward keeping every Relu's sign pattern and sample 0 of every
//!   scored layer's output (nwot, swap, linear_regions, meco);
//! - half batches (`half_batch.rs`): ∂L/∂W on each half of the batch (zico);
//! - AZ-NAS (`az.rs`): Kaiming re-initialisation, block outputs and per-block gradients.
//!
//! Not cached (one proxy each, run when it asks): per-sample loss gradients
//! (`per_sample_loss.rs`, grad_sign), per-sample output gradients (`per_sample_output.rs`,
//! ntk_cond), the Zen pass (`zen.rs`). `reinit.rs` redraws weights (Zen-NAS, AZ-NAS);
//! `sub_batch.rs` gives parts of the batch run as batches of their own.

pub mod az;
pub mod base;
pub mod half_batch;
pub mod hessian_grad;
pub mod jacobian;
pub mod loss;
pub mod loss_program;
pub mod per_sample_loss;
pub mod per_sample_output;
pub mod probe;
pub mod reinit;
pub mod sub_batch;
pub mod synflow;
pub mod zen;

pub use loss_program::{add_loss, grad_graph, logits_2d, loss_program, loss_program_with, target_tensor, target_tensor_of, LossExtras, LossProgram, GRASP_G, LOSS, TARGETS};

use crate::autodiff::append_gradients;
use crate::engine::{Engine, Outputs};
use crate::onnx::ir::{DType, Graph, Tensor};
use anyhow::{anyhow, Result};

/// `names` without repeats, in order of first appearance: engines want distinct output
/// names, so a tensor listed twice among a program's outputs is exposed once.
pub fn distinct(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().filter(|o| seen.insert(o.clone())).collect()
}

/// Graph input holding the seed of Σ outputs (ones). An input rather than a constant:
/// with a constant seed, tract's constant propagation evaluates whole stretches of the
/// backward pass eagerly at load time, which took minutes.
pub const SEED: &str = "zerocost/seed";

/// Gradient of Σ outputs w.r.t. the input (jacob_cov) or w.r.t. the weights (synflow).
/// Bind [`SEED`] to ones shaped like the output (see [`seed_ones`]).
pub fn sum_output_program(base: &Graph, wrt: &[String]) -> Result<(Graph, Vec<String>)> {
    let mut g = base.clone();
    let out = g.outputs[0].clone();
    let info = g.info(&out)?.clone();
    g.inputs.push(SEED.into());
    g.types.insert(SEED.into(), info);
    let grads = append_gradients(&mut g, &[(out.clone(), SEED.into())], wrt)?;
    g.outputs = vec![out];
    g.outputs.extend(grads.iter().cloned());
    g.outputs = distinct(std::mem::take(&mut g.outputs));
    Ok((g, grads))
}

/// Ones shaped like the first output of `g`, for [`SEED`].
pub fn seed_ones(g: &Graph) -> Result<Tensor> {
    let info = g.info(&g.outputs[0])?;
    Ok(Tensor::full(info.dtype, &info.shape, 1.0))
}

/// Fetches an output by name.
pub fn output<'o>(out: &'o Outputs, name: &str) -> Result<&'o Tensor> {
    out.get(name).ok_or_else(|| anyhow!("program output '{name}' missing"))
}

/// Loads and runs a program in one go.
pub fn load_and_run(engine: &dyn Engine, g: &Graph, bindings: &[(&str, &Tensor)]) -> Result<Outputs> {
    let prog = engine.load(g)?;
    prog.run(bindings)
}

/// All-ones input of the given shape and type (synflow).
pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::full(dtype, shape, 1.0)
}

