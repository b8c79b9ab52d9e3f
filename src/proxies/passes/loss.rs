//! The loss pass: the loss program (`loss_program.rs`) run on the batch, in chunks when the
//! whole batch's program would not fit the memory budget (`split.rs`).

use super::base::{base_at, Base};
use super::loss_program::{loss_program_with, target_tensor_of, LossExtras, LossProgram, LOSS, TARGETS};
use crate::onnx::ir::Tensor;
use crate::proxies::{split, Ctx, Pass};
use anyhow::{anyhow, bail, Result};
use std::rc::Rc;

/// The proxies whose being wanted makes the loss pass run.
const READERS: [&str; 5] = ["grad_norm", "snip", "grasp", "fisher", "plain"];

pub struct LossResults {
    pub loss: f64,
    pub weight_grads: Vec<Tensor>,
    /// Per scored layer: Σ over the non-channel axes of a·∂L/∂a, [N, channels] (fisher).
    pub fisher_sums: Vec<Tensor>,
    /// GraSP's Hessian-gradient product, when the run computed it with the loss.
    pub hessian_grad: Option<Rc<Vec<Tensor>>>,
    /// ∂(Σ outputs)/∂input, when the run computed it with the loss.
    pub jacobian: Option<Rc<Tensor>>,
}

/// Cross-entropy on the batch; gradients w.r.t. scored weights; fisher's sums (unless
/// the proxies wanted are known and fisher is not among them); and, sharing the forward
/// pass, GraSP's Hessian-gradient product and the input Jacobian when those are wanted too.
#[derive(Debug)]
pub struct LossPass;

impl Pass for LossPass {
    type Output = LossResults;
    fn run(&self, ctx: &Ctx) -> Result<LossResults> {
        run_loss(
            ctx,
            LossExtras {
                fisher: ctx.wants_unknown() || ctx.wants(&["fisher"]),
                input_grad: false,
                grasp: ctx.wants(&["grasp"]),
                jacobian: ctx.wants(&["jacob_cov", "epe_nas"]),
                grasp_given: false,
            },
        )
    }
}

/// Whether the loss pass will run (a proxy that reads it is wanted).
pub fn loss_planned(ctx: &Ctx) -> bool {
    ctx.wants(&READERS)
}

/// Builds and runs a loss program with `extras` on the batch, in chunks when the whole
/// batch's program would not fit the memory budget (`split.rs`). Split, GraSP runs a
/// second pass over the chunks: its g is the whole batch's gradient from the first.
pub fn run_loss(ctx: &Ctx, extras: LossExtras) -> Result<LossResults> {
    let build = |b: &Base| loss_program_with(&b.graph, &b.layers, extras);
    let mut readers = vec!["grad_norm", "snip", "plain"];
    readers.extend(extras.fisher.then_some("fisher"));
    readers.extend(extras.grasp.then_some("grasp"));
    readers.extend(if extras.jacobian { &["jacob_cov", "epe_nas"][..] } else { &[] });
    let plan = split::plan(ctx, "the loss pass", &ctx.readers(&readers), &build, |p| &p.graph)?;
    let size = match plan {
        split::Plan::Chunks(size) => size,
        whole => return finish_loss(split::run(ctx, whole, &build, |p| &p.graph, |c| loss_chunk(ctx, c, None), merge_loss)?),
    };
    let first = LossExtras { grasp: false, ..extras };
    let second = LossExtras { grasp: true, grasp_given: true, ..Default::default() };
    let runs = [first, second];
    let size = fitting_chunk(ctx, size, &runs[..if extras.grasp { 2 } else { 1 }])?;
    let build = |b: &Base| loss_program_with(&b.graph, &b.layers, first);
    let mut r = split::run(ctx, split::Plan::Chunks(size), &build, |p| &p.graph, |c| loss_chunk(ctx, c, None), merge_loss)?;
    if extras.grasp {
        let build = |b: &Base| loss_program_with(&b.graph, &b.layers, second);
        let g = &r.weight_grads;
        let hg = |c: &split::Chunk<LossProgram>| loss_chunk(ctx, c, Some(g))?.hessian_grad.map(unwrap).ok_or_else(|| anyhow!("the GraSP program returned no Hg"));
        r.hessian_grad = Some(Rc::new(split::run(ctx, split::Plan::Chunks(size), &build, |p| &p.graph, hg, split::add_all)?));
    }
    finish_loss(r)
}

/// The chunk size, at most `size`, at which each program a split loss pass runs fits the
/// budget: the plan sized the whole loss program, but a split GraSP runs two others (the
/// second takes g as inputs, live throughout, so it can hold more at once).
fn fitting_chunk(ctx: &Ctx, mut size: usize, runs: &[LossExtras]) -> Result<usize> {
    let budget = crate::memory::budget() as u128;
    let fits = |n: usize| -> Result<bool> {
        let b = base_at(ctx, n)?;
        for e in runs {
            if split::program_bytes(&loss_program_with(&b.graph, &b.layers, *e)?.graph) > budget {
                return Ok(false);
            }
        }
        Ok(true)
    };
    while size > 1 && !fits(size)? {
        size = (size * 3 / 4).min(size - 1).max(1);
    }
    Ok(split::chunk_size(ctx.batch.len(), size))
}

fn finish_loss(r: LossResults) -> Result<LossResults> {
    if !r.loss.is_finite() {
        bail!("the loss is {} (NaN or infinite) on this batch", r.loss);
    }
    Ok(r)
}

/// Runs a loss program on a chunk of the batch (targets scaled by the whole batch's 1/N);
/// `grasp_g` binds GraSP's g where the program takes it as inputs.
fn loss_chunk(ctx: &Ctx, c: &split::Chunk<LossProgram>, grasp_g: Option<&Vec<Tensor>>) -> Result<LossResults> {
    let (p, g) = (c.program, &c.base.graph);
    let x = ctx.input_rows(g, c.rows.clone())?;
    let t = target_tensor_of(&ctx.batch.targets[c.rows.clone()], ctx.classes(g)?, ctx.batch.len(), ctx.dtype())?;
    let mut bind: Vec<(&str, &Tensor)> = vec![(&g.inputs[0], &x), (TARGETS, &t)];
    let seed = if p.extras.jacobian { Some(super::seed_ones(g)?) } else { None };
    bind.extend(seed.iter().map(|s| (super::SEED, s)));
    if !p.grasp_g.is_empty() {
        let given = grasp_g.ok_or_else(|| anyhow!("GraSP's g was not given"))?;
        bind.extend(p.grasp_g.iter().map(String::as_str).zip(given));
    }
    let mut out = c.run.run(&bind)?;
    let loss = super::output(&out, LOSS)?.to_f64_vec()[0];
    let mut take = |n: &String| out.shift_remove(n).ok_or_else(|| anyhow!("program output '{n}' missing"));
    let weight_grads = p.weight_grads.iter().map(&mut take).collect::<Result<_>>()?;
    let fisher_sums = p.fisher_sums.iter().map(&mut take).collect::<Result<_>>()?;
    let hessian_grad = if p.extras.grasp { Some(Rc::new(p.hessian_grad.iter().map(&mut take).collect::<Result<_>>()?)) } else { None };
    let jacobian = p.jacobian.as_ref().map(&mut take).transpose()?.map(Rc::new);
    Ok(LossResults { loss, weight_grads, fisher_sums, hessian_grad, jacobian })
}

/// The loss pass's results on two consecutive chunks as one: losses and gradients add (each
/// chunk's targets carry the whole batch's 1/N), per-sample rows stack.
fn merge_loss(a: LossResults, b: LossResults) -> Result<LossResults> {
    let stack = |x: Vec<Tensor>, y: Vec<Tensor>| x.iter().zip(&y).map(|(x, y)| split::concat_rows(x, y)).collect::<Result<Vec<_>>>();
    Ok(LossResults {
        loss: a.loss + b.loss,
        weight_grads: split::add_all(a.weight_grads, b.weight_grads)?,
        fisher_sums: stack(a.fisher_sums, b.fisher_sums)?,
        hessian_grad: a.hessian_grad.zip(b.hessian_grad).map(|(x, y)| split::add_all(unwrap(x), unwrap(y)).map(Rc::new)).transpose()?,
        jacobian: a.jacobian.zip(b.jacobian).map(|(x, y)| split::concat_rows(&x, &y).map(Rc::new)).transpose()?,
    })
}

/// The vector in an `Rc` the chunk's results alone hold.
fn unwrap(v: Rc<Vec<Tensor>>) -> Vec<Tensor> {
    Rc::try_unwrap(v).unwrap_or_else(|v| (*v).clone())
}
