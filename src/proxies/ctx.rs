//! `Ctx`: one model, one batch, and the passes run on them so far.
//!
//! A pass is a value of its own type implementing [`Pass`]: it builds a program from the
//! model, runs it, and returns what proxies read. Proxies (and other passes) ask for one
//! with `ctx.pass(&LossPass)`; the context runs it at most once and keeps its output, or
//! its error (a failed pass is not run again: every reader gets the same message). A pass
//! with a parameter (`SynflowPass { keep_bn }`) is one cache entry per value. Adding a pass
//! is adding a type in `passes/`; `Ctx` does not change.

use super::passes::base::{Base, BasePass};
use super::ScoreOptions;
use crate::data::Batch;
use crate::engine::Engine;
use crate::onnx::canon::{parameter_names, CanonOptions};
use crate::onnx::ir::{DType, Graph, Tensor};
use crate::onnx::Model;
use anyhow::{anyhow, bail, Result};
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Debug;
use std::rc::Rc;

/// A computation over the model and the batch whose output proxies share. Its `Debug`
/// form tells apart the values of a pass with parameters (the cache key).
pub trait Pass: Debug + 'static {
    type Output: 'static;
    /// Runs the pass; it asks `ctx` for the passes it needs.
    fn run(&self, ctx: &Ctx) -> Result<Self::Output>;
}

/// A pass's outcome, kept for the context's lifetime.
#[derive(Clone)]
enum Slot {
    Done(Rc<dyn Any>),
    Failed(String),
}

impl Slot {
    fn get<T: 'static>(&self) -> Result<Rc<T>> {
        match self {
            Slot::Done(v) => Ok(v.clone().downcast::<T>().unwrap_or_else(|_| unreachable!("a pass's key names its output type"))),
            Slot::Failed(e) => Err(anyhow!("{e}")),
        }
    }
}

/// Lazily computed passes for one model and one batch.
pub struct Ctx<'a> {
    pub model: &'a Model,
    pub batch: &'a Batch,
    pub engine: &'a dyn Engine,
    pub opts: &'a ScoreOptions,
    /// The proxies this context will be asked for (empty: unknown), so that one loss
    /// program computes every product they need from one forward pass.
    wanted: Vec<String>,
    done: RefCell<HashMap<(TypeId, String), Slot>>,
}

impl<'a> Ctx<'a> {
    pub fn new(model: &'a Model, batch: &'a Batch, engine: &'a dyn Engine, opts: &'a ScoreOptions) -> Ctx<'a> {
        Ctx::for_proxies(model, batch, engine, opts, &[])
    }

    /// A context that will be asked for the proxies `names`.
    pub fn for_proxies(model: &'a Model, batch: &'a Batch, engine: &'a dyn Engine, opts: &'a ScoreOptions, names: &[&str]) -> Ctx<'a> {
        Ctx { model, batch, engine, opts, wanted: names.iter().map(|s| s.to_string()).collect(), done: RefCell::new(HashMap::new()) }
    }

    /// The output of `pass` on this model and batch, run the first time it is asked for.
    pub fn pass<P: Pass>(&self, pass: &P) -> Result<Rc<P::Output>> {
        let key = (TypeId::of::<P>(), format!("{pass:?}"));
        if let Some(slot) = self.done.borrow().get(&key) {
            return slot.get();
        }
        // no borrow is held while the pass runs: it may ask for other passes
        let slot = match pass.run(self) {
            Ok(v) => Slot::Done(Rc::new(v)),
            Err(e) => Slot::Failed(format!("{e:#}")),
        };
        let slot = self.done.borrow_mut().entry(key).or_insert(slot).clone();
        slot.get()
    }

    /// The canonical graph at the batch's size (BN as chosen, float32 unless float64).
    pub fn base(&self) -> Result<Rc<Base>> {
        self.pass(&BasePass)
    }

    /// The float type of the data passes.
    pub fn dtype(&self) -> DType {
        if self.opts.float64 { DType::F64 } else { DType::F32 }
    }

    /// The model canonicalised at batch size `batch` with `opts`.
    pub fn canonical(&self, batch: usize, opts: &CanonOptions) -> Result<Graph> {
        let shapes = self.model.input_shapes(batch, self.opts.input_shape.as_deref())?;
        self.model.canonical(&shapes, opts)
    }

    /// The batch's inputs in the pass's float type, checked against the model's input.
    pub fn input_tensor(&self, g: &Graph) -> Result<Tensor> {
        self.input_rows(g, 0..self.batch.len())
    }

    /// Samples `rows` of the batch's inputs (a chunk), as [`Ctx::input_tensor`].
    pub fn input_rows(&self, g: &Graph, rows: std::ops::Range<usize>) -> Result<Tensor> {
        let want = g.shape(&g.inputs[0])?;
        let x = self.batch.inputs.slice_axis(ndarray::Axis(0), ndarray::Slice::from(rows));
        if want != x.shape() {
            bail!("the batch has shape {:?}, the model's input '{}' wants {want:?}", x.shape(), g.inputs[0]);
        }
        Ok(Tensor::F32(x.to_owned()).cast(self.dtype()))
    }

    /// The number of classes of the model's output in `g`.
    pub fn classes(&self, g: &Graph) -> Result<usize> {
        let s = g.shape(&g.outputs[0])?;
        Ok(s[1..].iter().product())
    }

    /// Whether any of `names` is among the wanted proxies.
    pub fn wants(&self, names: &[&str]) -> bool {
        self.wanted.iter().any(|w| names.contains(&w.as_str()))
    }

    /// Whether the proxies wanted are unknown (every product is then computed).
    pub fn wants_unknown(&self) -> bool {
        self.wanted.is_empty()
    }

    /// The wanted proxies among `names` (all of `names` when the wanted set is unknown), for
    /// messages about a pass they share.
    pub fn readers(&self, names: &[&str]) -> String {
        let wanted: Vec<&str> = names.iter().copied().filter(|n| self.wanted.is_empty() || self.wants(&[n])).collect();
        if wanted.is_empty() { names.join(", ") } else { wanted.join(", ") }
    }

    /// Parameter initializers of the file as read (for params and l2_norm).
    pub fn parameter_names(&self) -> Vec<String> {
        parameter_names(&self.model.raw.graph)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tract::TractEngine;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static RUNS: AtomicUsize = AtomicUsize::new(0);

    /// A pass with a parameter that fails on 0.
    #[derive(Debug)]
    struct Square(u32);

    impl Pass for Square {
        type Output = u32;
        fn run(&self, _: &Ctx) -> Result<u32> {
            RUNS.fetch_add(1, Ordering::SeqCst);
            if self.0 == 0 {
                bail!("no square of 0 here");
            }
            Ok(self.0 * self.0)
        }
    }

    /// A pass that needs two others.
    #[derive(Debug)]
    struct SumOfSquares;

    impl Pass for SumOfSquares {
        type Output = u32;
        fn run(&self, ctx: &Ctx) -> Result<u32> {
            Ok(*ctx.pass(&Square(2))? + *ctx.pass(&Square(3))?)
        }
    }

    #[test]
    fn each_pass_value_runs_once_and_a_failure_is_kept() {
        let model = Model::load("models/tiny_mlp.onnx").unwrap();
        let batch = Batch { inputs: ndarray::ArrayD::zeros(ndarray::IxDyn(&[1])), targets: vec![] };
        let (engine, opts) = (TractEngine::default(), ScoreOptions::default());
        let ctx = Ctx::new(&model, &batch, &engine, &opts);
        assert_eq!(*ctx.pass(&SumOfSquares).unwrap(), 13);
        assert_eq!(RUNS.load(Ordering::SeqCst), 2, "one run per parameter value");
        assert_eq!(*ctx.pass(&SumOfSquares).unwrap(), 13);
        assert_eq!(*ctx.pass(&Square(3)).unwrap(), 9);
        assert_eq!(RUNS.load(Ordering::SeqCst), 2, "outputs are kept");
        let e1 = ctx.pass(&Square(0)).unwrap_err().to_string();
        let e2 = ctx.pass(&Square(0)).unwrap_err().to_string();
        assert_eq!((e1.as_str(), RUNS.load(Ordering::SeqCst)), ("no square of 0 here", 3), "a failed pass is not run again");
        assert_eq!(e1, e2);
    }
}
