//! The passes of the later proxies. Like `passes.rs`, each builds a program from a canonical
//! graph and runs it; `Ctx` (mod.rs) runs each at most once per model and batch:
//! - probe pass: one forward at the batch's size whose outputs are the input of every Relu
//!   node (kept as packed binary codes, pre-activation > 0) and sample 0 of every scored
//!   layer's output (nwot, swap, linear_regions, meco);
//! - half-batch loss passes: the loss program canonicalised at N/2, run on each half (zico);
//! - per-sample loss passes: the loss program at batch 1, loaded once and run once per
//!   sample (grad_sign);
//! - per-sample output gradients: ∂(Σ_c z[n,c])/∂θ on the forward of the first 16 samples,
//!   one run of the Σ-outputs program per sample with a one-row seed (ntk_cond);
//! - Zen pass: the graph with Gaussian weights, run on two random inputs (zen).

use super::passes;
use super::Ctx;
use crate::onnx::canon::{canonicalize, BnMode, CanonOptions};
use crate::onnx::ir::{DType, Graph, Tensor};
use crate::onnx::proto::RawModel;
use crate::onnx::layers::{scored_layers, ScoredLayer};
use anyhow::{anyhow, bail, Context, Result};
use ndarray::{Axis, Slice};
use crate::engine::Program;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

// ---------------------------------------------------------------------------------------
// Binary activation codes
// ---------------------------------------------------------------------------------------

/// Binary codes of one activation: `n` rows (samples) of `units` bits, packed in u64 words.
#[derive(Clone, Debug)]
pub struct Codes {
    pub n: usize,
    pub units: usize,
    pub words: usize,
    pub bits: Vec<u64>,
}

impl Codes {
    /// Codes `v > 0` of a tensor whose first axis is the batch.
    pub fn positive(t: &Tensor) -> Codes {
        let n = t.shape()[0];
        let v = t.to_f64_vec();
        let units = v.len().checked_div(n).unwrap_or(0);
        let words = units.div_ceil(64);
        let mut bits = vec![0u64; n * words];
        for i in 0..n {
            for u in 0..units {
                if v[i * units + u] > 0.0 {
                    bits[i * words + u / 64] |= 1u64 << (u % 64);
                }
            }
        }
        Codes { n, units, words, bits }
    }

    pub fn row(&self, i: usize) -> &[u64] {
        &self.bits[i * self.words..(i + 1) * self.words]
    }

    pub fn get(&self, i: usize, u: usize) -> bool {
        self.bits[i * self.words + u / 64] >> (u % 64) & 1 == 1
    }

    /// Number of units on which samples i and j agree (`c cᵀ + (1−c)(1−c)ᵀ` entry).
    pub fn agreements(&self, i: usize, j: usize) -> u64 {
        let d: u32 = self.row(i).iter().zip(self.row(j)).map(|(a, b)| (a ^ b).count_ones()).sum();
        self.units as u64 - d as u64
    }
}

// ---------------------------------------------------------------------------------------
// Probe pass
// ---------------------------------------------------------------------------------------

/// A Relu node of the canonical graph.
#[derive(Clone, Debug)]
pub struct ReluSite {
    pub node: String,
    pub input: String,
    /// Shape of the pre-activation (batch first).
    pub shape: Vec<usize>,
    /// How many PyTorch ReLU calls this node stands for (see [`torch_relu_calls`]).
    pub calls: usize,
}

pub struct Probe {
    /// Every Relu node whose input is batched (first axis = the batch), in graph order.
    pub relus: Vec<ReluSite>,
    /// Per Relu node: codes (pre-activation > 0), one row per sample.
    pub codes: Vec<Codes>,
    /// Per scored layer: the output of sample 0 (shape without the batch axis) and its values.
    pub layer_sample0: Vec<(Vec<usize>, Vec<f64>)>,
}

/// Relu nodes of a canonical graph at batch `n` whose input carries the batch.
pub fn relu_sites(g: &Graph, raw: &Graph, n: usize) -> Result<Vec<ReluSite>> {
    let mut out = Vec::new();
    for node in &g.nodes {
        if node.op != "Relu" {
            continue;
        }
        let Some(x) = node.input(0) else { continue };
        if g.constant(x).is_some() {
            continue;
        }
        let shape = g.shape(x)?.to_vec();
        if shape.first() != Some(&n) {
            continue;
        }
        out.push(ReluSite { node: node.name.clone(), input: x.to_string(), shape, calls: torch_relu_calls(raw, &node.name) });
    }
    Ok(out)
}

/// PyTorch ReLU calls that a Relu node of a TorchScript export stands for.
///
/// The TorchScript exporter merges identical calls (common-subexpression elimination): in a
/// NAS-Bench-201 or DARTS cell every ReLU-Conv-BN edge out of a node applies its own ReLU to
/// the same tensor, and the export keeps one Relu node named after the first edge's module
/// (`…/2_0_nor_conv_1x1/2_0_nor_conv_1x1.0/Relu`) feeding every edge's Conv. A merged call is
/// recognised by its consumer: a node in the position of the Relu's successor inside
/// another `nn.Sequential` (`…/3_0_nor_conv_1x1/3_0_nor_conv_1x1.1/Conv`) whose own ReLU
/// position (`…/3_0_nor_conv_1x1.0/`) left no node in the file. Each such consumer module
/// adds one call. Any other node counts once (exports without TorchScript's scope names,
/// e.g. the dynamo exporter's, do not merge calls).
pub fn torch_relu_calls(raw: &Graph, relu_node: &str) -> usize {
    fn seq_child(scope: &str) -> Option<(&str, usize)> {
        // "A/a.j" -> ("A", j) when the last component of A is "a"
        let (parent, leaf) = scope.rsplit_once('/')?;
        let last = parent.rsplit('/').next()?;
        let j = leaf.strip_prefix(last)?.strip_prefix('.')?.parse().ok()?;
        Some((parent, j))
    }
    let Some(node) = raw.nodes.iter().find(|n| n.name == relu_node && n.op == "Relu") else { return 1 };
    let Some((scope, _)) = node.name.rsplit_once('/') else { return 1 };
    let Some((parent, j)) = seq_child(scope) else { return 1 };
    let y = &node.outputs[0];
    let mut extra: HashSet<&str> = HashSet::new();
    for c in raw.nodes.iter().filter(|c| c.inputs.iter().any(|i| i == y)) {
        let Some((cscope, _)) = c.name.rsplit_once('/') else { continue };
        let Some((cparent, k)) = seq_child(cscope) else { continue };
        if k != j + 1 || cparent == parent || extra.contains(cparent) {
            continue;
        }
        let last = cparent.rsplit('/').next().unwrap_or("");
        let own_relu = format!("{cparent}/{last}.{j}/");
        if !raw.nodes.iter().any(|m| m.name.starts_with(&own_relu)) {
            extra.insert(cparent);
        }
    }
    1 + extra.len()
}

pub fn probe(ctx: &Ctx) -> Result<Probe> {
    let base = ctx.base()?;
    let g0 = &base.graph;
    let n = ctx.batch.len();
    let relus = relu_sites(g0, &ctx.model.raw.graph, n)?;
    let mut g = g0.clone();
    let mut outs = vec![g.outputs[0].clone()];
    outs.extend(relus.iter().map(|r| r.input.clone()));
    outs.extend(base.layers.iter().map(|l| l.output.clone()));
    let mut seen = HashSet::new();
    outs.retain(|o| seen.insert(o.clone()));
    g.outputs = outs;
    let x = ctx.input_tensor(g0)?;
    let out = passes::load_and_run(ctx.engine, &g, &[(&g0.inputs[0], &x)])?;
    let codes = relus.iter().map(|r| Ok(Codes::positive(passes::output(&out, &r.input)?))).collect::<Result<_>>()?;
    let mut layer_sample0 = Vec::new();
    for l in &base.layers {
        let t = passes::output(&out, &l.output)?;
        let s = t.shape();
        let per: usize = s[1..].iter().product();
        let v = t.to_f64_vec();
        layer_sample0.push((s[1..].to_vec(), v[..per].to_vec()));
    }
    Ok(Probe { relus, codes, layer_sample0 })
}

// ---------------------------------------------------------------------------------------
// Sub-batches
// ---------------------------------------------------------------------------------------

/// Samples `st..en` of the batch as the pass's input tensor.
fn sub_inputs(ctx: &Ctx, g: &Graph, st: usize, en: usize) -> Result<Tensor> {
    let x = ctx.batch.inputs.slice_axis(Axis(0), Slice::from(st..en)).to_owned();
    let want = g.shape(&g.inputs[0])?;
    if want != x.shape() {
        bail!("samples {st}..{en} have shape {:?}, the model's input '{}' wants {want:?}", x.shape(), g.inputs[0]);
    }
    Ok(Tensor::F32(x).cast(ctx.dtype()))
}

/// The canonical graph at batch `n` with the scoring options (BN mode, float type).
fn canonical_at(ctx: &Ctx, n: usize) -> Result<(Graph, Vec<ScoredLayer>)> {
    let opts = CanonOptions { bn: ctx.opts.bn, abs_params: false, float64: ctx.opts.float64 };
    let g = ctx.canonical(n, &opts)?;
    let layers = scored_layers(&g)?;
    let base = ctx.layers()?;
    if layers.len() != base.len() || layers.iter().zip(base).any(|(a, b)| a.weight != b.weight) {
        bail!("the scored layers at batch {n} differ from those at batch {}", ctx.batch.len());
    }
    Ok((g, layers))
}

/// ZiCo's passes: ∂L/∂W per scored layer on each half of the batch (samples 0..N/2 and
/// N/2..N, as `x[st:en]` with `st = k·N//2`), each half a separate forward (its own
/// BatchNorm statistics) with the mean cross-entropy of that half.
pub fn half_batch_grads(ctx: &Ctx) -> Result<[Vec<Tensor>; 2]> {
    let n = ctx.batch.len();
    if n < 2 {
        bail!("two half batches need at least 2 samples (the batch has {n})");
    }
    let bounds = [(0, n / 2), (n / 2, n)];
    let mut programs: HashMap<usize, (Graph, passes::LossProgram, Box<dyn Program>)> = HashMap::new();
    let mut res: Vec<Vec<Tensor>> = Vec::new();
    for (st, en) in bounds {
        let m = en - st;
        if let Entry::Vacant(e) = programs.entry(m) {
            let (g, layers) = canonical_at(ctx, m)?;
            let p = passes::loss_program(&g, &layers, false, false)?;
            let prog = ctx.engine.load(&p.graph)?;
            e.insert((g, p, prog));
        }
        let (g, p, prog) = &programs[&m];
        let x = sub_inputs(ctx, g, st, en)?;
        let t = passes::target_tensor(&ctx.batch.targets[st..en], ctx.classes(g)?, ctx.dtype())?;
        let out = prog.run(&[(&g.inputs[0], &x), (passes::TARGETS, &t)])?;
        let loss = passes::output(&out, passes::LOSS)?.to_f64_vec()[0];
        if !loss.is_finite() {
            bail!("the loss on samples {st}..{en} is {loss}");
        }
        res.push(p.weight_grads.iter().map(|w| passes::output(&out, w).cloned()).collect::<Result<_>>()?);
    }
    let second = res.pop().unwrap();
    let first = res.pop().unwrap();
    Ok([first, second])
}

/// GradSign's passes: each sample alone (a batch of one, its own BatchNorm statistics),
/// cross-entropy of that sample, ∂L/∂W per scored layer. The batch-1 program is loaded
/// once and run N times; `visit(sample, grads)` sees each sample's gradients.
pub fn per_sample_loss_grads(ctx: &Ctx, mut visit: impl FnMut(usize, &[&Tensor]) -> Result<()>) -> Result<()> {
    let n = ctx.batch.len();
    let (g, layers) = canonical_at(ctx, 1)?;
    let p = passes::loss_program(&g, &layers, false, false)?;
    let prog = ctx.engine.load(&p.graph)?;
    let classes = ctx.classes(&g)?;
    for i in 0..n {
        let x = sub_inputs(ctx, &g, i, i + 1)?;
        let t = passes::target_tensor(&ctx.batch.targets[i..i + 1], classes, ctx.dtype())?;
        let out = prog.run(&[(&g.inputs[0], &x), (passes::TARGETS, &t)])?;
        let grads: Vec<&Tensor> = p.weight_grads.iter().map(|w| passes::output(&out, w)).collect::<Result<_>>()?;
        visit(i, &grads)?;
    }
    Ok(())
}

/// Canonical names of the BatchNormalization scales (γ) of the file that are parameters
/// (initializers of the file; the composite BatchNormTrain reads them under their names).
fn bn_scale_tensors(ctx: &Ctx, g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for n in ctx.model.raw.graph.nodes.iter().filter(|n| n.op == "BatchNormalization") {
        let Some(s) = n.input(1) else { continue };
        if !ctx.model.raw.graph.initializers.contains_key(s) {
            continue;
        }
        if g.initializers.contains_key(s) && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// TE-NAS's NTK batch: `--batch_size 16` ("batch size for ntk") in `prune_tenas.py`.
pub const NTK_BATCH: usize = 16;
/// Backward passes appended to one forward in the ntk_cond program (on resnet20, 4 took
/// 20% less time than 1, and 16 no less than 4).
pub const NTK_SEEDS_PER_RUN: usize = 4;

/// A loaded multi-seed program: its seed inputs and, per seed, the gradient outputs.
type SeedProgram = (Vec<String>, Vec<Vec<String>>, Box<dyn Program>);

/// The forward of `g0` followed by `k` backward passes of its first output, each seeded by
/// its own input (`zerocost/seed{j}`, shaped like the output), differentiating w.r.t. `wrt`.
/// One run gives k vector-Jacobian products for the price of one forward.
pub fn multi_seed_program(g0: &Graph, wrt: &[String], k: usize) -> Result<(Graph, Vec<String>, Vec<Vec<String>>)> {
    let mut g = g0.clone();
    let out = g.outputs[0].clone();
    let info = g.info(&out)?.clone();
    let mut seeds = Vec::with_capacity(k);
    let mut grads = Vec::with_capacity(k);
    for j in 0..k {
        let s = format!("{}{j}", passes::SEED);
        g.inputs.push(s.clone());
        g.types.insert(s.clone(), info.clone());
        grads.push(crate::autodiff::append_gradients(&mut g, &[(out.clone(), s.clone())], wrt)?);
        seeds.push(s);
    }
    let mut seen = HashSet::new();
    g.outputs = grads.iter().flatten().filter(|o| seen.insert(o.to_string())).cloned().collect();
    Ok((g, seeds, grads))
}

/// TE-NAS's per-sample gradients: on the first min(N, 16) samples as one batch (its own
/// forward, train-mode BatchNorm with their statistics, which couples the samples), for each
/// sample n the gradient ∂(Σ_c z[n,c])/∂θ, θ = the scored weights and the BatchNormalization
/// scales (PyTorch's parameters named `weight`). One run of the Σ-outputs program per sample,
/// seeded with ones on row n only. Returns the rows of G (samples × parameters) and the
/// number of BN scales included. The runs carry 4 seeds each (`multi_seed_program`).
pub fn per_sample_output_grads(ctx: &Ctx) -> Result<(Vec<Vec<f64>>, usize)> {
    let n = ctx.batch.len().min(NTK_BATCH);
    let (g0, layers) = canonical_at(ctx, n)?;
    let mut wrt: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
    let scales = bn_scale_tensors(ctx, &g0);
    let n_scales = scales.len();
    wrt.extend(scales);
    let x = sub_inputs(ctx, &g0, 0, n)?;
    let info = g0.info(&g0.outputs[0])?.clone();
    let per_row: usize = info.shape[1..].iter().product();
    let k = NTK_SEEDS_PER_RUN.clamp(1, n);
    let mut rows = Vec::with_capacity(n);
    let mut programs: HashMap<usize, SeedProgram> = HashMap::new();
    let t0 = std::time::Instant::now();
    for start in (0..n).step_by(k) {
        let m = k.min(n - start);
        if let Entry::Vacant(e) = programs.entry(m) {
            let (g, seeds, grads) = multi_seed_program(&g0, &wrt, m)?;
            e.insert((seeds, grads, ctx.engine.load(&g)?));
        }
        let (seeds, grads, prog) = &programs[&m];
        let seed_values: Vec<Tensor> = (start..start + m)
            .map(|i| {
                let mut v = vec![0.0; n * per_row];
                v[i * per_row..(i + 1) * per_row].iter_mut().for_each(|a| *a = 1.0);
                Tensor::from_f64(info.dtype, &info.shape, v)
            })
            .collect();
        let mut bind: Vec<(&str, &Tensor)> = vec![(&g0.inputs[0], &x)];
        for (s, v) in seeds.iter().zip(&seed_values) {
            bind.push((s, v));
        }
        let out = prog.run(&bind)?;
        for gs in grads {
            let mut row = Vec::new();
            for name in gs {
                row.extend(passes::output(&out, name)?.to_f64_vec());
            }
            rows.push(row);
        }
    }
    if std::env::var_os("ZEROCOST_DEBUG").is_some() {
        eprintln!("ntk_cond: {n} samples, {k} seeds per run, {:.2}s", t0.elapsed().as_secs_f64());
    }
    Ok((rows, n_scales))
}

// ---------------------------------------------------------------------------------------
// Zen-NAS
// ---------------------------------------------------------------------------------------

/// A reproducible standard-normal stream: value k of stream `stream` under `seed` is
/// Box–Muller on two uniforms from splitmix64 (documented so that an independent
/// implementation, models/make_fixtures.py, draws the same numbers).
pub fn normal_stream(seed: u64, stream: u64, len: usize) -> Vec<f64> {
    fn splitmix64(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let key = splitmix64(seed ^ splitmix64(stream.wrapping_mul(0x0100_0000_01B3).wrapping_add(1)));
    let uniform = |k: u64| ((splitmix64(key.wrapping_add(k)) >> 11) as f64 + 0.5) / 9_007_199_254_740_992.0;
    (0..len as u64)
        .map(|i| {
            let (u1, u2) = (uniform(2 * i), uniform(2 * i + 1));
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        })
        .collect()
}

/// Stream ids of the Zen pass: weights use the scored-layer index, the inputs these.
pub const ZEN_STREAM_INPUT: u64 = 1 << 32;
pub const ZEN_STREAM_MIX: u64 = (1 << 32) + 1;

/// The tensor fed to the network's global average pooling (the last GlobalAveragePool,
/// ReduceMean over the spatial axes, or AveragePool whose kernel covers the whole map,
/// with a rank-4 input), as Zen-NAS's `forward_pre_GAP`.
pub fn pre_gap_tensor(g: &Graph) -> Result<String> {
    let mut found = None;
    for n in &g.nodes {
        let Some(x) = n.input(0) else { continue };
        let Ok(s) = g.shape(x) else { continue };
        if s.len() != 4 {
            continue;
        }
        let global = match n.op.as_str() {
            "GlobalAveragePool" => true,
            "ReduceMean" => {
                let axes = n.ints("axes").unwrap_or_default();
                let mut a: Vec<i64> = axes.iter().map(|&v| if v < 0 { v + 4 } else { v }).collect();
                a.sort();
                a == [2, 3]
            }
            "AveragePool" => {
                let k = n.ints("kernel_shape").unwrap_or_default();
                let pads = n.ints("pads").unwrap_or_default();
                k.len() == 2 && k[0] as usize == s[2] && k[1] as usize == s[3] && pads.iter().all(|&p| p == 0)
            }
            _ => false,
        };
        if global {
            found = Some(x.to_string());
        }
    }
    found.ok_or_else(|| anyhow!("no global average pooling of a feature map found (Zen-NAS scores the feature map before it)"))
}

/// The file's model with every scored weight redrawn by `draw(k, layer, weight)` (k = the
/// scored-layer index), Conv/Gemm/Linear biases 0, and BatchNormalization scale 1 and bias
/// 0 (running statistics kept): the re-initialisation of Zen-NAS and AZ-NAS.
pub fn reinitialised(ctx: &Ctx, draw: impl Fn(usize, &ScoredLayer, &Tensor) -> Result<Vec<f64>>) -> Result<RawModel> {
    let mut raw = ctx.model.raw.clone();
    let layers = ctx.layers()?.to_vec();
    for (k, l) in layers.iter().enumerate() {
        let t = raw.graph.initializers.get(&l.weight).ok_or_else(|| anyhow!("weight '{}' is not an initializer of the file", l.weight))?;
        let nt = Tensor::from_f64(t.dtype(), t.shape(), draw(k, l, t)?);
        raw.graph.set_initializer(&l.weight, nt);
    }
    let mut zero = Vec::new();
    let mut one = Vec::new();
    for node in &raw.graph.nodes {
        match node.op.as_str() {
            "Conv" | "Gemm" => zero.extend(node.input(2).map(str::to_string)),
            "Add" if layers.iter().any(|l| l.op == "MatMul" && node.outputs[0] == l.output) => {
                zero.extend(node.inputs.iter().filter(|i| raw.graph.initializers.contains_key(*i)).cloned())
            }
            "BatchNormalization" => {
                one.extend(node.input(1).map(str::to_string));
                zero.extend(node.input(2).map(str::to_string));
            }
            _ => {}
        }
    }
    for (names, v) in [(zero, 0.0), (one, 1.0)] {
        for name in names {
            if let Some(t) = raw.graph.initializers.get(&name) {
                let nt = Tensor::full(t.dtype(), t.shape(), v);
                raw.graph.set_initializer(&name, nt);
            }
        }
    }
    Ok(raw)
}

/// PyTorch's fan-in of a scored weight (`nn.init._calculate_fan_in_and_fan_out`): Conv
/// [O, I/g, k...] → I/g·Πk; Linear (Gemm with transB, [out, in]) → in; Gemm without
/// transB and MatMul ([in, out]) → in.
pub fn fan_in(g: &Graph, layer: &ScoredLayer) -> usize {
    let s = &layer.weight_shape;
    let trans_b = g.nodes.iter().find(|n| n.name == layer.node).map(|n| n.int("transB", 0)).unwrap_or(0);
    match layer.op.as_str() {
        "Gemm" if trans_b != 0 => s.get(1).copied().unwrap_or(1),
        "Gemm" | "MatMul" => s.get(s.len().saturating_sub(2)).copied().unwrap_or(1),
        _ => s[1..].iter().product(),
    }
}

/// What the Zen pass returns.
pub struct ZenPass {
    /// mean_n Σ_{c,h,w} |f(x) − f(x + γ·ε)| of the pre-GAP feature map.
    pub feature_diff: f64,
    /// Per BatchNormalization node on a 4-D map with constant running statistics: (node
    /// name, mean_c running_var after the two forwards).
    pub bn_running_var: Vec<(String, f64)>,
}

/// Zen-NAS's computation (`compute_zen_score`, repeat = 1): every scored weight redrawn from
/// N(0, 1) (stream = its scored-layer index), Conv/Gemm/Linear biases 0, BatchNormalization
/// scale 1 and bias 0 (running statistics kept), inputs x = N(0,1) and ε = N(0,1) of the
/// batch's shape, two train-mode forwards f(x) and f(x + γ·ε), BatchNorm running variances
/// updated by PyTorch's rule (momentum 1 − the node's ONNX momentum, unbiased batch variance).
pub fn zen_pass(ctx: &Ctx, seed: u64, gamma: f64) -> Result<ZenPass> {
    let n = ctx.batch.len();
    let raw = reinitialised(ctx, |k, _, t| Ok(normal_stream(seed, k as u64, t.len())))?;
    let shapes = ctx.model.input_shapes(n, ctx.opts.input_shape.as_deref())?;
    let opts = CanonOptions { bn: BnMode::Batch, abs_params: false, float64: ctx.opts.float64 };
    let g0 = canonicalize(&raw, &shapes, &opts).context("zen: canonicalising the re-initialised graph")?;
    let feat = pre_gap_tensor(&g0)?;
    // BatchNormalization nodes with a rank-4 input, their input as a canonical tensor
    let mut bns = Vec::new();
    for node in raw.graph.nodes.iter().filter(|m| m.op == "BatchNormalization") {
        let x = g0.resolve(node.input(0).unwrap_or_default());
        // a BatchNorm without running statistics (track_running_stats=False) is exported
        // with its batch statistics computed in the graph and fed as "running" inputs; the
        // code's `running_var` does not exist for it, and it does not count
        let Some(rv) = node.input(4).and_then(|v| raw.graph.initializers.get(v)).map(Tensor::to_f64_vec) else { continue };
        let Ok(s) = g0.shape(x) else {
            bail!("zen: the input '{x}' of BatchNormalization {} is not a tensor of the canonical graph", node.name)
        };
        if s.len() != 4 {
            continue;
        }
        // PyTorch's momentum m: running = (1 − m)·running + m·batch (ONNX writes 1 − m, as float32)
        let m = ((1.0 - node.float("momentum", 0.9) as f64) * 1e6).round() / 1e6;
        bns.push((node.name.clone(), x.to_string(), rv, m));
    }
    let mut g = g0.clone();
    let mut outs = vec![feat.clone()];
    outs.extend(bns.iter().map(|b| b.1.clone()));
    let mut seen = HashSet::new();
    outs.retain(|o| seen.insert(o.clone()));
    g.outputs = outs;
    let prog = ctx.engine.load(&g)?;
    let info = g0.info(&g0.inputs[0])?.clone();
    let numel = info.numel();
    // PyTorch's code draws float32 inputs: round the draws to float32, form x + γ·ε in
    // float64 and round it to float32 again
    let f32r = |v: Vec<f64>| -> Vec<f64> { v.into_iter().map(|a| a as f32 as f64).collect() };
    let x1 = f32r(normal_stream(seed, ZEN_STREAM_INPUT, numel));
    let e = f32r(normal_stream(seed, ZEN_STREAM_MIX, numel));
    let xm: Vec<f64> = x1.iter().zip(&e).map(|(a, b)| a + gamma * b).collect();
    let to_input = |v: Vec<f64>| Tensor::from_f64(DType::F32, &info.shape, v).cast(info.dtype);
    let o1 = prog.run(&[(&g0.inputs[0], &to_input(x1))])?;
    let o2 = prog.run(&[(&g0.inputs[0], &to_input(xm))])?;
    let f1 = passes::output(&o1, &feat)?.to_f64_vec();
    let f2 = passes::output(&o2, &feat)?.to_f64_vec();
    let feature_diff = f1.iter().zip(&f2).map(|(a, b)| (a - b).abs()).sum::<f64>() / n as f64;
    let mut bn_running_var = Vec::new();
    for (name, x, rv0, m) in bns {
        let v1 = channel_var_unbiased(passes::output(&o1, &x)?)?;
        let v2 = channel_var_unbiased(passes::output(&o2, &x)?)?;
        if v1.len() != rv0.len() {
            bail!("zen: BatchNormalization {name} has {} running variances for {} channels", rv0.len(), v1.len());
        }
        let rv: Vec<f64> = (0..rv0.len()).map(|c| (1.0 - m) * ((1.0 - m) * rv0[c] + m * v1[c]) + m * v2[c]).collect();
        bn_running_var.push((name, rv.iter().sum::<f64>() / rv.len() as f64));
    }
    Ok(ZenPass { feature_diff, bn_running_var })
}

/// Unbiased per-channel variance of an [N, C, ...] tensor (over every axis but 1).
fn channel_var_unbiased(t: &Tensor) -> Result<Vec<f64>> {
    let s = t.shape();
    if s.len() < 2 {
        bail!("a per-channel variance needs rank ≥ 2, got {s:?}");
    }
    let (n, c) = (s[0], s[1]);
    let inner: usize = s[2..].iter().product();
    let v = t.to_f64_vec();
    let m = n * inner;
    let mut out = Vec::with_capacity(c);
    for ch in 0..c {
        let vals = (0..n).flat_map(|i| (0..inner).map(move |k| (i * c + ch) * inner + k));
        let mean = vals.clone().map(|idx| v[idx]).sum::<f64>() / m as f64;
        let ss: f64 = vals.map(|idx| (v[idx] - mean).powi(2)).sum();
        out.push(ss / (m as f64 - 1.0).max(1.0));
    }
    Ok(out)
}
