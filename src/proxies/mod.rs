//! Zero-cost proxies, one module each, registered by name. A proxy is a small function
//! over the results of shared passes (`passes.rs`); `Ctx` runs each pass at most once per
//! model and batch, so proxies that need the same pass share it.

pub mod az_nas;
pub mod epe_nas;
pub mod extra_passes;
pub mod fisher;
pub mod flops;
pub mod grad_sign;
pub mod grad_norm;
pub mod grasp;
pub mod jacob_cov;
pub mod l2_norm;
pub mod linear_regions;
pub mod meco;
pub mod ntk_cond;
pub mod nwot;
pub mod params;
pub mod passes;
pub mod plain;
pub mod snip;
pub mod split;
pub mod swap;
pub mod synflow;
pub mod zen;
pub mod zico;

use crate::data::Batch;
use crate::engine::Engine;
use crate::onnx::canon::{parameter_names, BnMode, CanonOptions};
use crate::onnx::ir::{DType, Graph, Tensor};
use crate::onnx::layers::{scored_layers, ScoredLayer};
use crate::onnx::Model;
use anyhow::{anyhow, bail, Result};
use indexmap::IndexMap;
use serde::Serialize;
use std::cell::OnceCell;
use std::time::Instant;

/// A proxy's value on one model: the score, and per-layer values in scored-layer order
/// where the proxy is a sum over layers.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyValue {
    pub total: f64,
    pub per_layer: Option<Vec<f64>>,
    /// Extra numbers (e.g. GraSP's Σ|W⊙Hg|), reported with `--per-layer`.
    pub details: Option<serde_json::Value>,
}

impl ProxyValue {
    pub fn from_layers(per_layer: Vec<f64>) -> ProxyValue {
        ProxyValue { total: per_layer.iter().sum(), per_layer: Some(per_layer), details: None }
    }
    pub fn scalar(total: f64) -> ProxyValue {
        ProxyValue { total, per_layer: None, details: None }
    }
}

/// Which way a proxy ranks networks: `Higher` means a larger score predicts a better
/// network. `search`, `correlate` and `vote` read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Higher,
    Lower,
}

impl Direction {
    /// +1 for higher-is-better, −1 for lower-is-better: multiply a score by it to rank
    /// "larger is better" in either case.
    pub fn sign(self) -> f64 {
        match self {
            Direction::Higher => 1.0,
            Direction::Lower => -1.0,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Higher => "higher",
            Direction::Lower => "lower",
        }
    }
}

/// What a proxy reads of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataNeed {
    /// Weights and the input shape only (no samples).
    NoData,
    /// Input samples, not their labels.
    Inputs,
    /// Input samples and their class labels.
    InputsAndLabels,
}

impl DataNeed {
    pub fn as_str(self) -> &'static str {
        match self {
            DataNeed::NoData => "none",
            DataNeed::Inputs => "inputs",
            DataNeed::InputsAndLabels => "inputs+labels",
        }
    }
}

pub struct Proxy {
    pub name: &'static str,
    /// Where it was proposed (and, where it differs, whose code we follow).
    pub paper: &'static str,
    pub direction: Direction,
    pub data: DataNeed,
    /// One line: what it computes.
    pub about: &'static str,
    /// The passes (programs) it runs.
    pub passes: &'static str,
    pub compute: fn(&Ctx) -> Result<ProxyValue>,
}

/// The ranking direction of a proxy or of an aggregate (`az_nas`, `vote`): higher unless
/// the registry says otherwise.
pub fn direction_of(name: &str) -> Direction {
    registry().into_iter().find(|p| p.name == name).map_or(Direction::Higher, |p| p.direction)
}

/// Every registered proxy, in report order.
pub fn registry() -> Vec<Proxy> {
    vec![
        grad_norm::PROXY,
        snip::PROXY,
        grasp::PROXY,
        fisher::PROXY,
        jacob_cov::PROXY,
        plain::PROXY,
        synflow::PROXY,
        synflow::PROXY_BN,
        l2_norm::PROXY,
        params::PROXY,
        flops::PROXY,
        // later proxies (README "Later proxies")
        nwot::PROXY,
        zico::PROXY,
        zico::PROXY_PAPER,
        meco::PROXY,
        epe_nas::PROXY,
        swap::PROXY,
        grad_sign::PROXY,
        ntk_cond::PROXY,
        linear_regions::PROXY,
        zen::PROXY,
        az_nas::EXPRESSIVITY,
        az_nas::PROGRESSIVITY,
        az_nas::TRAINABILITY,
        az_nas::COMPLEXITY,
    ]
}

/// The default set: the paper's proxies and the params/flops baselines (`--proxy all`
/// runs every registered proxy).
pub const PAPER_PROXIES: &[&str] =
    &["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow", "synflow_bn", "l2_norm", "params", "flops"];

pub fn proxy_names() -> Vec<&'static str> {
    registry().iter().map(|p| p.name).collect()
}

/// Resolves user-given names ("all" expands to every proxy, "az_nas" to AZ-NAS's four
/// components); unknown names are an error.
pub fn resolve_names(names: &[String]) -> Result<Vec<&'static str>> {
    let all = proxy_names();
    if names.is_empty() {
        return Ok(PAPER_PROXIES.to_vec());
    }
    let mut out = Vec::new();
    for n in names.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        if n == "all" {
            for a in &all {
                if !out.contains(a) {
                    out.push(*a);
                }
            }
            continue;
        }
        if n == az_nas::NAME {
            for c in az_nas::COMPONENTS {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            continue;
        }
        let p = all.iter().find(|a| **a == n).ok_or_else(|| anyhow!("unknown proxy '{n}' (known: {})", all.join(", ")))?;
        if !out.contains(p) {
            out.push(*p);
        }
    }
    Ok(out)
}

/// How a model is scored.
#[derive(Clone, Debug)]
pub struct ScoreOptions {
    pub bn: BnMode,
    /// Full input shape for models with symbolic dimensions (batch entry is replaced).
    pub input_shape: Option<Vec<usize>>,
    /// Run the data passes in float64 (default false: float32, as the paper's code). float32
    /// rounding moves cancelling sums (plain, grasp, fisher) by up to 1e-3 relative on deep
    /// networks; float64 gives the values float32 approximates, at 2-3× the time on tract
    /// (ONNX Runtime's CPU provider has no float64 convolution: such programs run on tract).
    /// synflow always runs in float64.
    pub float64: bool,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        ScoreOptions { bn: BnMode::Batch, input_shape: None, float64: false }
    }
}

/// Result of one proxy on one model.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyResult {
    pub value: Option<ProxyValue>,
    pub error: Option<String>,
    pub seconds: f64,
    /// The engine(s) that ran the programs this proxy started, where that is not the
    /// engine it was scored with (synflow's float64 program on tract under ONNX Runtime).
    pub engine: Option<String>,
}

/// An engine that notes which engine each program it loads runs on.
struct Recording<'e> {
    inner: &'e dyn Engine,
    used: std::sync::Mutex<Vec<String>>,
}

impl Engine for Recording<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn load(&self, graph: &Graph) -> Result<Box<dyn crate::engine::Program>> {
        let p = self.inner.load(graph)?;
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if !used.contains(&p.engine()) {
            used.push(p.engine());
        }
        Ok(p)
    }
}

/// The canonical graph a data pass runs on, with its scored layers and their weights.
pub struct Base {
    pub graph: Graph,
    pub layers: Vec<ScoredLayer>,
    pub weights: Vec<Tensor>,
}

pub struct LossResults {
    pub loss: f64,
    pub weight_grads: Vec<Tensor>,
    /// Per scored layer: Σ over the non-channel axes of a·∂L/∂a, [N, channels] (fisher).
    pub fisher_sums: Vec<Tensor>,
    /// GraSP's Hg, when the run computed it with the loss.
    hg: Option<Vec<Tensor>>,
    /// ∂(Σ outputs)/∂input, when the run computed it with the loss.
    jacobian: Option<Tensor>,
}

pub struct SynflowResults {
    pub weights: Vec<Tensor>,
    pub weight_grads: Vec<Tensor>,
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
    base: OnceCell<Result<Base, String>>,
    loss: OnceCell<Result<LossResults, String>>,
    hg: OnceCell<Result<Vec<Tensor>, String>>,
    jacobian: OnceCell<Result<Tensor, String>>,
    synflow: [OnceCell<Result<SynflowResults, String>>; 2],
    probe: OnceCell<Result<extra_passes::Probe, String>>,
    halves: OnceCell<Result<[Vec<Tensor>; 2], String>>,
    az: OnceCell<Result<az_nas::AzPass, String>>,
}

fn cached<T>(cell: &OnceCell<Result<T, String>>, f: impl FnOnce() -> Result<T>) -> Result<&T> {
    cell.get_or_init(|| f().map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow!("{e}"))
}

impl<'a> Ctx<'a> {
    pub fn new(model: &'a Model, batch: &'a Batch, engine: &'a dyn Engine, opts: &'a ScoreOptions) -> Ctx<'a> {
        Ctx::for_proxies(model, batch, engine, opts, &[])
    }

    /// A context that will be asked for the proxies `names`.
    pub fn for_proxies(model: &'a Model, batch: &'a Batch, engine: &'a dyn Engine, opts: &'a ScoreOptions, names: &[&str]) -> Ctx<'a> {
        Ctx {
            model,
            batch,
            engine,
            opts,
            wanted: names.iter().map(|s| s.to_string()).collect(),
            base: OnceCell::new(),
            loss: OnceCell::new(),
            hg: OnceCell::new(),
            jacobian: OnceCell::new(),
            synflow: [OnceCell::new(), OnceCell::new()],
            probe: OnceCell::new(),
            halves: OnceCell::new(),
            az: OnceCell::new(),
        }
    }

    fn dtype(&self) -> DType {
        if self.opts.float64 { DType::F64 } else { DType::F32 }
    }

    fn canonical(&self, batch: usize, opts: &CanonOptions) -> Result<Graph> {
        let shapes = self.model.input_shapes(batch, self.opts.input_shape.as_deref())?;
        self.model.canonical(&shapes, opts)
    }

    /// The canonical graph at the batch's size (BN as chosen, float32 unless float64).
    pub fn base(&self) -> Result<&Base> {
        cached(&self.base, || self.base_at(self.batch.len()))
    }

    /// The canonical graph at `n` samples (a chunk of the batch), as [`Ctx::base`].
    pub fn base_at(&self, n: usize) -> Result<Base> {
        let opts = CanonOptions { bn: self.opts.bn, abs_params: false, float64: self.opts.float64 };
        let graph = self.canonical(n, &opts)?;
        let layers = scored_layers(&graph)?;
        let weights = layers.iter().map(|l| graph.initializers[&l.weight].clone()).collect();
        Ok(Base { graph, layers, weights })
    }

    pub fn layers(&self) -> Result<&[ScoredLayer]> {
        Ok(&self.base()?.layers)
    }

    /// The batch's inputs in the pass's float type, checked against the model's input.
    fn input_tensor(&self, g: &Graph) -> Result<Tensor> {
        self.input_rows(g, 0..self.batch.len())
    }

    /// Samples `rows` of the batch's inputs (a chunk), as [`Ctx::input_tensor`].
    fn input_rows(&self, g: &Graph, rows: std::ops::Range<usize>) -> Result<Tensor> {
        let want = g.shape(&g.inputs[0])?;
        let x = self.batch.inputs.slice_axis(ndarray::Axis(0), ndarray::Slice::from(rows));
        if want != x.shape() {
            bail!("the batch has shape {:?}, the model's input '{}' wants {want:?}", x.shape(), g.inputs[0]);
        }
        Ok(Tensor::F32(x.to_owned()).cast(self.dtype()))
    }

    fn classes(&self, g: &Graph) -> Result<usize> {
        let s = g.shape(&g.outputs[0])?;
        Ok(s[1..].iter().product())
    }

    fn wants(&self, names: &[&str]) -> bool {
        self.wanted.iter().any(|w| names.contains(&w.as_str()))
    }

    /// Whether the loss pass will run (a proxy that reads it is wanted).
    fn loss_planned(&self) -> bool {
        self.wants(&["grad_norm", "snip", "grasp", "fisher", "plain"])
    }

    /// Cross-entropy on the batch; gradients w.r.t. scored weights; fisher's sums (unless
    /// the proxies wanted are known and fisher is not among them); and, sharing the forward
    /// pass, GraSP's Hg and the input Jacobian when those are wanted too.
    pub fn loss(&self) -> Result<&LossResults> {
        cached(&self.loss, || {
            self.run_loss(passes::LossExtras {
                fisher: self.wanted.is_empty() || self.wants(&["fisher"]),
                input_grad: false,
                grasp: self.wants(&["grasp"]),
                jacobian: self.wants(&["jacob_cov", "epe_nas"]),
                grasp_given: false,
            })
        })
    }

    /// The wanted proxies among `names` (all of `names` when the wanted set is unknown), for
    /// messages about a pass they share.
    fn readers(&self, names: &[&str]) -> String {
        let wanted: Vec<&str> = names.iter().copied().filter(|n| self.wanted.is_empty() || self.wants(&[n])).collect();
        if wanted.is_empty() { names.join(", ") } else { wanted.join(", ") }
    }

    /// Builds and runs a loss program with `extras` on the batch, in chunks when the whole
    /// batch's program would not fit the memory budget (`split.rs`). Split, GraSP runs a
    /// second pass over the chunks: its g is the whole batch's gradient from the first.
    fn run_loss(&self, extras: passes::LossExtras) -> Result<LossResults> {
        let build = |b: &Base| passes::loss_program_with(&b.graph, &b.layers, extras);
        let mut readers = vec!["grad_norm", "snip", "plain"];
        readers.extend(extras.fisher.then_some("fisher"));
        readers.extend(extras.grasp.then_some("grasp"));
        readers.extend(if extras.jacobian { &["jacob_cov", "epe_nas"][..] } else { &[] });
        let plan = split::plan(self, "the loss pass", &self.readers(&readers), &build, |p| &p.graph)?;
        let size = match plan {
            split::Plan::Chunks(size) => size,
            whole => return self.finish_loss(split::run(self, whole, &build, |p| &p.graph, |c| self.loss_chunk(c, None), merge_loss)?),
        };
        let first = passes::LossExtras { grasp: false, ..extras };
        let second = passes::LossExtras { grasp: true, grasp_given: true, ..Default::default() };
        let runs = [first, second];
        let size = self.fitting_chunk(size, &runs[..if extras.grasp { 2 } else { 1 }])?;
        let build = |b: &Base| passes::loss_program_with(&b.graph, &b.layers, first);
        let mut r = split::run(self, split::Plan::Chunks(size), &build, |p| &p.graph, |c| self.loss_chunk(c, None), merge_loss)?;
        if extras.grasp {
            let build = |b: &Base| passes::loss_program_with(&b.graph, &b.layers, second);
            let g = &r.weight_grads;
            let hg = |c: &split::Chunk<passes::LossProgram>| self.loss_chunk(c, Some(g))?.hg.ok_or_else(|| anyhow!("the GraSP program returned no Hg"));
            r.hg = Some(split::run(self, split::Plan::Chunks(size), &build, |p| &p.graph, hg, split::add_all)?);
        }
        self.finish_loss(r)
    }

    /// The chunk size, at most `size`, at which each program a split loss pass runs fits the
    /// budget: the plan sized the whole loss program, but a split GraSP runs two others (the
    /// second takes g as inputs, live throughout, so it can hold more at once).
    fn fitting_chunk(&self, mut size: usize, runs: &[passes::LossExtras]) -> Result<usize> {
        let budget = crate::memory::budget() as u128;
        let fits = |n: usize| -> Result<bool> {
            let b = self.base_at(n)?;
            for e in runs {
                if split::program_bytes(&passes::loss_program_with(&b.graph, &b.layers, *e)?.graph) > budget {
                    return Ok(false);
                }
            }
            Ok(true)
        };
        while size > 1 && !fits(size)? {
            size = (size * 3 / 4).min(size - 1).max(1);
        }
        Ok(split::chunk_size(self.batch.len(), size))
    }

    fn finish_loss(&self, r: LossResults) -> Result<LossResults> {
        if !r.loss.is_finite() {
            bail!("the loss is {} (NaN or infinite) on this batch", r.loss);
        }
        Ok(r)
    }

    /// Runs a loss program on a chunk of the batch (targets scaled by the whole batch's 1/N);
    /// `grasp_g` binds GraSP's g where the program takes it as inputs.
    fn loss_chunk(&self, c: &split::Chunk<passes::LossProgram>, grasp_g: Option<&Vec<Tensor>>) -> Result<LossResults> {
        let (p, g) = (c.program, &c.base.graph);
        let x = self.input_rows(g, c.rows.clone())?;
        let t = passes::target_tensor_of(&self.batch.targets[c.rows.clone()], self.classes(g)?, self.batch.len(), self.dtype())?;
        let mut bind: Vec<(&str, &Tensor)> = vec![(&g.inputs[0], &x), (passes::TARGETS, &t)];
        let seed = if p.extras.jacobian { Some(passes::seed_ones(g)?) } else { None };
        bind.extend(seed.iter().map(|s| (passes::SEED, s)));
        if !p.grasp_g.is_empty() {
            let given = grasp_g.ok_or_else(|| anyhow!("GraSP's g was not given"))?;
            bind.extend(p.grasp_g.iter().map(String::as_str).zip(given));
        }
        let mut out = c.run.run(&bind)?;
        let loss = passes::output(&out, passes::LOSS)?.to_f64_vec()[0];
        let mut take = |n: &String| out.shift_remove(n).ok_or_else(|| anyhow!("program output '{n}' missing"));
        let weight_grads = p.weight_grads.iter().map(&mut take).collect::<Result<_>>()?;
        let fisher_sums = p.fisher_sums.iter().map(&mut take).collect::<Result<_>>()?;
        let hg = if p.extras.grasp { Some(p.hg.iter().map(&mut take).collect::<Result<_>>()?) } else { None };
        let jacobian = p.jacobian.as_ref().map(&mut take).transpose()?;
        Ok(LossResults { loss, weight_grads, fisher_sums, hg, jacobian })
    }

    /// GraSP's Hessian-gradient product per scored layer (g = the loss pass's dW): from the
    /// loss pass when grasp was among the wanted proxies, else from a loss program of its own.
    pub fn hessian_grad(&self) -> Result<&Vec<Tensor>> {
        if let Some(hg) = &self.loss()?.hg {
            return Ok(hg);
        }
        cached(&self.hg, || {
            let extras = passes::LossExtras { grasp: true, ..Default::default() };
            self.run_loss(extras)?.hg.ok_or_else(|| anyhow!("the GraSP program returned no Hg"))
        })
    }

    /// ∂(Σ outputs)/∂input, one row per sample.
    pub fn jacobian(&self) -> Result<&Tensor> {
        if self.loss_planned() {
            if let Some(j) = &self.loss()?.jacobian {
                return Ok(j);
            }
        }
        cached(&self.jacobian, || {
            let build = |b: &Base| passes::sum_output_program(&b.graph, &b.graph.inputs[..1]);
            let readers = self.readers(&["jacob_cov", "epe_nas"]);
            let plan = split::plan(self, "the Jacobian pass", &readers, &build, |p| &p.0)?;
            let rows = |c: &split::Chunk<(Graph, Vec<String>)>| {
                let g = &c.base.graph;
                let x = self.input_rows(g, c.rows.clone())?;
                let seed = passes::seed_ones(g)?;
                let out = c.run.run(&[(&g.inputs[0], &x), (passes::SEED, &seed)])?;
                passes::output(&out, &c.program.1[0]).cloned()
            };
            split::run(self, plan, &build, |p| &p.0, rows, |a, b| split::concat_rows(&a, &b))
        })
    }

    /// synflow's pass: |parameters|, float64, one all-ones sample; BN removed unless `keep_bn`.
    pub fn synflow(&self, keep_bn: bool) -> Result<&SynflowResults> {
        cached(&self.synflow[keep_bn as usize], || {
            let opts = CanonOptions { bn: if keep_bn { BnMode::Batch } else { BnMode::Remove }, abs_params: true, float64: true };
            let graph = self.canonical(1, &opts)?;
            let layers = scored_layers(&graph)?;
            let wrt: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
            let (g, grads) = passes::sum_output_program(&graph, &wrt)?;
            let input = graph.inputs[0].clone();
            let x = passes::ones(graph.shape(&input)?, DType::F64);
            let seed = passes::seed_ones(&graph)?;
            let out = passes::load_and_run(self.engine, &g, &[(&input, &x), (passes::SEED, &seed)])?;
            Ok(SynflowResults {
                weights: wrt.iter().map(|w| graph.initializers[w].clone()).collect(),
                weight_grads: grads.iter().map(|n| passes::output(&out, n).cloned()).collect::<Result<_>>()?,
            })
        })
    }

    /// One forward at the batch's size: binary codes of every Relu input and sample 0 of
    /// every scored layer's output (nwot, swap, linear_regions, meco).
    pub fn probe(&self) -> Result<&extra_passes::Probe> {
        cached(&self.probe, || extra_passes::probe(self))
    }

    /// ∂L/∂W per scored layer on each half of the batch, each half its own forward (zico).
    pub fn half_grads(&self) -> Result<&[Vec<Tensor>; 2]> {
        cached(&self.halves, || extra_passes::half_batch_grads(self))
    }

    /// AZ-NAS's pass: Kaiming re-initialisation, block outputs and per-block gradients.
    pub fn az(&self) -> Result<&az_nas::AzPass> {
        cached(&self.az, || az_nas::az_pass(self))
    }

    /// Parameter initializers of the file as read (for params and l2_norm).
    pub fn parameter_names(&self) -> Vec<String> {
        parameter_names(&self.model.raw.graph)
    }
}

/// The loss pass's results on two consecutive chunks as one: losses and gradients add (each
/// chunk's targets carry the whole batch's 1/N), per-sample rows stack.
fn merge_loss(a: LossResults, b: LossResults) -> Result<LossResults> {
    let stack = |x: Vec<Tensor>, y: Vec<Tensor>| x.iter().zip(&y).map(|(x, y)| split::concat_rows(x, y)).collect::<Result<Vec<_>>>();
    Ok(LossResults {
        loss: a.loss + b.loss,
        weight_grads: split::add_all(a.weight_grads, b.weight_grads)?,
        fisher_sums: stack(a.fisher_sums, b.fisher_sums)?,
        hg: a.hg.zip(b.hg).map(|(x, y)| split::add_all(x, y)).transpose()?,
        jacobian: a.jacobian.zip(b.jacobian).map(|(x, y)| split::concat_rows(&x, &y)).transpose()?,
    })
}

/// Σ over elements of f(w, g) in f64.
pub fn sum_pairs(w: &Tensor, g: &Tensor, f: impl Fn(f64, f64) -> f64) -> f64 {
    w.to_f64_vec().iter().zip(g.to_f64_vec()).map(|(&a, b)| f(a, b)).sum()
}

/// Scores `model` on `batch` with the named proxies (the paper's `find_measures`).
/// A proxy that fails gets an error and the others still run.
pub fn find_measures(model: &Model, batch: &Batch, names: &[&str], engine: &dyn Engine, opts: &ScoreOptions) -> IndexMap<String, ProxyResult> {
    let recording = Recording { inner: engine, used: Default::default() };
    let ctx = Ctx::for_proxies(model, batch, &recording, opts, names);
    let reg = registry();
    let mut out = IndexMap::new();
    let nonfinite = OnceCell::new();
    for name in names {
        let start = Instant::now();
        let res = match reg.iter().find(|p| p.name == *name) {
            None => Err(anyhow!("unknown proxy '{name}'")),
            // a panic (a bug, or a file no check foresaw) is this proxy's error, not the process's
            Some(p) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (p.compute)(&ctx)))
                .unwrap_or_else(|e| Err(anyhow!("internal error (panic): {}", crate::memory::panic_message(e))))
                .and_then(|v| {
                if v.total.is_finite() {
                    Ok(v)
                } else {
                    Err(anyhow!("the score is {} (NaN or infinite)", v.total))
                }
            }),
        };
        let seconds = start.elapsed().as_secs_f64();
        let (value, error) = match res {
            Ok(v) => (Some(v), None),
            // a NaN or infinity in the file or the batch is the reason, whatever it broke
            Err(e) => match nonfinite.get_or_init(|| nonfinite_values(model, batch)) {
                Some(why) => (None, Some(format!("{}; {why}", crate::error_text::one_line(&e)))),
                None => (None, Some(crate::error_text::one_line(&e))),
            },
        };
        let used = std::mem::take(&mut *recording.used.lock().unwrap_or_else(|p| p.into_inner()));
        let engine = if used.iter().any(|e| *e != recording.name()) { Some(used.join("+")) } else { None };
        out.insert(name.to_string(), ProxyResult { value, error, seconds, engine });
    }
    out
}

/// Where the model's weights or the batch hold NaN or ±∞ (the first such tensor), if
/// anywhere: the reason a proxy over them has no finite value.
fn nonfinite_values(model: &Model, batch: &Batch) -> Option<String> {
    for (name, t) in &model.raw.graph.initializers {
        if !t.dtype().is_float() {
            continue;
        }
        let v = t.to_f64_vec();
        let bad = v.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            let kind = if v.iter().any(|x| x.is_nan()) { "NaN" } else { "infinite values" };
            return Some(format!("weight '{name}' holds {kind} ({bad} of {} values)", v.len()));
        }
    }
    let per_sample = batch.inputs.len() / batch.len().max(1);
    let bad: Vec<usize> = batch.inputs.iter().enumerate().filter(|(_, x)| !x.is_finite()).map(|(i, _)| i / per_sample.max(1)).collect();
    match bad.first() {
        Some(s) => Some(format!("the input batch holds NaN or infinite values ({} of them, the first in sample {s})", bad.len())),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's defaults are the command line's (README, examples/find_measures.rs).
    #[test]
    fn default_options_are_float32_batch_statistics() {
        let o = ScoreOptions::default();
        assert!(!o.float64);
        assert!(matches!(o.bn, BnMode::Batch));
        assert!(o.input_shape.is_none());
    }

    #[test]
    fn every_proxy_declares_its_direction_and_names_are_unique() {
        let reg = registry();
        let mut names: Vec<&str> = reg.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), reg.len());
        assert_eq!(direction_of("ntk_cond"), Direction::Lower);
        assert_eq!(direction_of("synflow"), Direction::Higher);
        for p in &reg {
            assert!(!p.paper.is_empty() && !p.passes.is_empty() && !p.about.is_empty(), "{}", p.name);
        }
        for p in PAPER_PROXIES {
            assert!(names.contains(p), "{p}");
        }
    }
}
