//! Re-initialisation of the file's weights from a reproducible normal stream (Zen-NAS,
//! AZ-NAS).

use crate::onnx::ir::{Graph, Tensor};
use crate::onnx::layers::ScoredLayer;
use crate::onnx::proto::RawModel;
use crate::proxies::Ctx;
use anyhow::{anyhow, Result};

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

/// The file's model with every scored weight redrawn by `draw(k, layer, weight)` (k = the
/// scored-layer index), Conv/Gemm/Linear biases 0, and BatchNormalization scale 1 and bias
/// 0 (running statistics kept): the re-initialisation of Zen-NAS and AZ-NAS.
pub fn reinitialised(ctx: &Ctx, draw: impl Fn(usize, &ScoredLayer, &Tensor) -> Result<Vec<f64>>) -> Result<RawModel> {
    let mut raw = ctx.model.raw.clone();
    let layers = ctx.base()?.layers.clone();
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
