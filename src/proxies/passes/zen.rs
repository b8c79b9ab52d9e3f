//! The Zen pass: the graph with Gaussian weights, run on two random inputs (zen).

use super::reinit::{normal_stream, reinitialised};
use super::{distinct, output};
use crate::onnx::canon::{canonicalize, BnMode, CanonOptions};
use crate::onnx::ir::{DType, Graph, Tensor};
use crate::proxies::Ctx;
use anyhow::{anyhow, bail, Context, Result};

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

/// What the Zen pass returns.
pub struct ZenResults {
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
pub fn zen_pass(ctx: &Ctx, seed: u64, gamma: f64) -> Result<ZenResults> {
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
    g.outputs = distinct(outs);
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
    let f1 = output(&o1, &feat)?.to_f64_vec();
    let f2 = output(&o2, &feat)?.to_f64_vec();
    let feature_diff = f1.iter().zip(&f2).map(|(a, b)| (a - b).abs()).sum::<f64>() / n as f64;
    let mut bn_running_var = Vec::new();
    for (name, x, rv0, m) in bns {
        let v1 = channel_var_unbiased(output(&o1, &x)?)?;
        let v2 = channel_var_unbiased(output(&o2, &x)?)?;
        if v1.len() != rv0.len() {
            bail!("zen: BatchNormalization {name} has {} running variances for {} channels", rv0.len(), v1.len());
        }
        let rv: Vec<f64> = (0..rv0.len()).map(|c| (1.0 - m) * ((1.0 - m) * rv0[c] + m * v1[c]) + m * v2[c]).collect();
        bn_running_var.push((name, rv.iter().sum::<f64>() / rv.len() as f64));
    }
    Ok(ZenResults { feature_diff, bn_running_var })
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
