//! Splitting a data pass's batch when its program would not fit the memory budget, as the
//! paper's code does on out-of-memory (`split_data`), for the passes that are exact under
//! splitting: sums over samples (the loss pass's loss and gradients, with every chunk's
//! targets carrying the whole batch's 1/N; GraSP's Hg with g the whole batch's gradient) and
//! rows per sample (fisher's sums, the input Jacobian). A graph that couples the samples
//! (BatchNormalization with batch statistics, a reduction over the batch axis) is not split:
//! the pass fails with the memory it needs, the budget and the largest batch that fits.

use super::passes::base::{base_at, Base};
use super::Ctx;
use crate::engine::Program;
use crate::memory::human;
use crate::onnx::composite::BATCH_NORM_TRAIN;
use crate::onnx::ir::{Graph, Tensor};
use anyhow::{anyhow, bail, Result};
use std::collections::HashSet;
use std::ops::Range;

/// How a pass covers the batch.
pub enum Plan<P> {
    /// One program over the whole batch (already built).
    Whole(P),
    /// Chunks of at most this many samples, one program per chunk size.
    Chunks(usize),
}

/// One chunk of the batch and the pass's program at its size.
pub struct Chunk<'c, P> {
    pub base: &'c Base,
    pub program: &'c P,
    pub run: &'c dyn Program,
    pub rows: Range<usize>,
}

/// The memory a program needs: the peak of its tensors' liveness when run in node order
/// (`Graph::tensor_bytes`), the same estimate engines check at load (`Graph::check_memory`).
pub fn program_bytes(g: &Graph) -> u128 {
    g.tensor_bytes().0
}

/// The largest batch whose program fits `budget`, from its bytes at batch 1 and at batch
/// `n`: a program's tensors grow linearly with the batch (activations and their gradients) or
/// not at all (weights and theirs). 0 when even one sample does not fit.
pub fn largest_fit(one: u128, whole: u128, n: usize, budget: u128) -> usize {
    if one > budget {
        return 0;
    }
    if n <= 1 || whole <= one {
        return n;
    }
    let per_sample = (whole - one).div_ceil((n - 1) as u128);
    (1 + (budget - one) / per_sample).min(n as u128) as usize
}

/// Chunks of at most `fit` samples, as equal as possible: the size of all but the last.
pub fn chunk_size(n: usize, fit: usize) -> usize {
    n.div_ceil(n.div_ceil(fit.max(1)))
}

/// Plans `pass` (read by the proxies `readers`) over the context's batch: the whole batch
/// when its program fits the budget, else chunks, or an error where splitting would change
/// the scores or even one sample does not fit.
pub fn plan<P>(ctx: &Ctx, pass: &str, readers: &str, build: &dyn Fn(&Base) -> Result<P>, graph: fn(&P) -> &Graph) -> Result<Plan<P>> {
    let base = ctx.base()?;
    let whole = build(&base)?;
    let needed = program_bytes(graph(&whole));
    let budget = crate::memory::budget() as u128;
    if needed <= budget {
        return Ok(Plan::Whole(whole));
    }
    drop(whole);
    let n = ctx.batch.len();
    let one = if n == 1 { needed } else { program_bytes(graph(&build(&base_at(ctx, 1)?)?)) };
    let mut fit = largest_fit(one, needed, n, budget);
    // not every tensor grows exactly linearly with the batch: check the size found
    while fit > 1 {
        let at = program_bytes(graph(&build(&base_at(ctx, fit)?)?));
        if at <= budget {
            break;
        }
        fit = largest_fit(one, at, fit, budget).min(fit - 1);
    }
    let over = format!("{readers}: {pass} at batch {n} needs {} ({needed} bytes), over the memory budget of {} (--max-memory)", human(needed), human(budget));
    if fit == 0 {
        bail!("{over}; even one sample needs {}", human(one));
    }
    if let Some(why) = batch_coupling(&base.graph) {
        let bn = if why.contains("BatchNormalization") { ", or --bn running (then the batch is split into chunks)" } else { "" };
        bail!("{over}; {why}, so splitting the batch would change the scores: use --batch-size {fit} or less{bn}");
    }
    let size = chunk_size(n, fit);
    if std::env::var_os("ZEROCOST_DEBUG").is_some() {
        eprintln!("{pass}: batch {n} needs {}, {} at one sample; split into chunks of {size}", human(needed), human(one));
    }
    Ok(Plan::Chunks(size))
}

/// Why the samples of a batch are not independent in `g`, if they are not: the first node
/// that mixes them (BatchNormalization with batch statistics, a reduction or softmax over the
/// batch axis of a tensor computed from the input).
pub fn batch_coupling(g: &Graph) -> Option<String> {
    let mut from_input: HashSet<&str> = g.inputs.first().map(|i| i.as_str()).into_iter().collect();
    for n in &g.nodes {
        if !n.inputs.iter().any(|i| from_input.contains(i.as_str())) {
            continue;
        }
        from_input.extend(n.outputs.iter().map(|o| o.as_str()));
        if n.op == BATCH_NORM_TRAIN {
            return Some(format!("BatchNormalization '{}' normalises with the batch's statistics (--bn batch)", n.name));
        }
        let rank = n.input(0).and_then(|x| g.types.get(x)).map_or(0, |t| t.shape.len()) as i64;
        let on_batch = |axes: &[i64]| axes.iter().any(|&a| a == 0 || a == -rank);
        let couples = if n.op.starts_with("Reduce") {
            let axes = match n.input(1).filter(|a| !a.is_empty()) {
                Some(a) => g.constant(a).map(|t| t.to_f64_vec().iter().map(|&v| v as i64).collect()),
                None => n.ints("axes"),
            };
            // no axes (or axes only known at run time): every axis, the batch's among them
            let every = n.int("noop_with_empty_axes", 0) == 0;
            match axes {
                Some(a) if !a.is_empty() => on_batch(&a),
                _ => every,
            }
        } else if matches!(n.op.as_str(), "Softmax" | "LogSoftmax" | "Hardmax") {
            on_batch(&[n.int("axis", -1)])
        } else {
            false
        };
        if couples {
            return Some(format!("{} mixes the samples (it works across the batch axis)", n.describe()));
        }
    }
    None
}

/// Runs `each` on the whole batch or on every chunk of it, combining the results with
/// `merge`. `build` makes the pass's program at a chunk's size; it is loaded once per size
/// (at most two sizes: the last chunk may be smaller).
pub fn run<P, R>(
    ctx: &Ctx,
    plan: Plan<P>,
    build: &dyn Fn(&Base) -> Result<P>,
    graph: fn(&P) -> &Graph,
    mut each: impl FnMut(&Chunk<P>) -> Result<R>,
    merge: impl Fn(R, R) -> Result<R>,
) -> Result<R> {
    let n = ctx.batch.len();
    let size = match plan {
        Plan::Whole(p) => {
            let run = ctx.engine.load(graph(&p))?;
            let base = ctx.base()?;
            return each(&Chunk { base: &base, program: &p, run: run.as_ref(), rows: 0..n });
        }
        Plan::Chunks(size) => size,
    };
    let mut loaded: Option<(usize, Base, P, Box<dyn Program>)> = None;
    let mut acc: Option<R> = None;
    for start in (0..n).step_by(size.max(1)) {
        let len = size.min(n - start);
        if loaded.as_ref().map(|l| l.0) != Some(len) {
            drop(loaded.take()); // the previous program's memory goes before the next one's comes
            let base = base_at(ctx, len)?;
            let p = build(&base)?;
            let run = ctx.engine.load(graph(&p))?;
            loaded = Some((len, base, p, run));
        }
        let (_, base, program, run) = loaded.as_ref().ok_or_else(|| anyhow!("no program loaded"))?;
        let r = each(&Chunk { base, program, run: run.as_ref(), rows: start..start + len })?;
        acc = Some(match acc {
            None => r,
            Some(a) => merge(a, r)?,
        });
    }
    acc.ok_or_else(|| anyhow!("the batch is empty"))
}

/// Elementwise a + b (gradients of chunks).
pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.shape() != b.shape() {
        bail!("cannot add chunks' tensors of shapes {:?} and {:?}", a.shape(), b.shape());
    }
    let v = a.to_f64_vec().iter().zip(b.to_f64_vec()).map(|(x, y)| x + y).collect();
    Ok(Tensor::from_f64(a.dtype(), a.shape(), v))
}

/// Per-layer sums of two chunks' tensors.
pub fn add_all(a: Vec<Tensor>, b: Vec<Tensor>) -> Result<Vec<Tensor>> {
    a.iter().zip(&b).map(|(x, y)| add(x, y)).collect()
}

/// a's rows, then b's (per-sample results of consecutive chunks, along axis 0).
pub fn concat_rows(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.shape().get(1..) != b.shape().get(1..) || a.shape().is_empty() {
        bail!("cannot stack chunks' rows of shapes {:?} and {:?}", a.shape(), b.shape());
    }
    let mut shape = a.shape().to_vec();
    shape[0] += b.shape()[0];
    let mut v = a.to_f64_vec();
    v.extend(b.to_f64_vec());
    Ok(Tensor::from_f64(a.dtype(), &shape, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_fit_is_linear_between_one_sample_and_the_batch() {
        // 100 bytes of weights, 10 per sample: batch 64 needs 740
        assert_eq!(largest_fit(110, 740, 64, 740), 64);
        assert_eq!(largest_fit(110, 740, 64, 739), 63);
        assert_eq!(largest_fit(110, 740, 64, 300), 20);
        assert_eq!(largest_fit(110, 740, 64, 109), 0);
        assert_eq!(largest_fit(110, 110, 1, 100), 0);
        assert_eq!(chunk_size(64, 20), 16);
        assert_eq!(chunk_size(64, 64), 64);
        assert_eq!(chunk_size(10, 3), 3);
        assert_eq!(chunk_size(7, 1), 1);
    }

    #[test]
    fn chunks_add_and_stack() {
        let a = Tensor::from_f64(crate::onnx::ir::DType::F64, &[2, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let b = Tensor::from_f64(crate::onnx::ir::DType::F64, &[1, 2], vec![5.0, 6.0]);
        assert_eq!(add(&a, &a).unwrap().to_f64_vec(), vec![2.0, 4.0, 6.0, 8.0]);
        let c = concat_rows(&a, &b).unwrap();
        assert_eq!(c.shape(), &[3, 2]);
        assert_eq!(c.to_f64_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert!(add(&a, &b).is_err());
    }
}
