//! fisher (Theis et al. 2018; Turner et al., ICLR 2020, as in the paper's code): for each
//! scored layer's output activation a with gradient da, g[n,k] = Σ_spatial a·da and
//! Δ[k] = ½·mean_n g[n,k]². The paper's code broadcasts Δ[k] to every weight of output
//! channel k, so a layer contributes Σ_k Δ[k]·numel(W)/W.shape[0] (reproduced exactly).

use super::{Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};

pub const PROXY: Proxy = Proxy { name: "fisher", about: "Σ_k ½·mean_n(Σ_spatial a·∂L/∂a)² per output channel (loss pass)", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let (layers, lr) = (ctx.layers()?, ctx.loss()?);
    let mut per = Vec::with_capacity(layers.len());
    for (l, (a, da)) in layers.iter().zip(&lr.activations) {
        let s = a.shape();
        if s.len() < 2 {
            bail!("layer {} has output of shape {s:?}", l.node);
        }
        // channels on axis 1 for Conv/Gemm outputs; for MatMul outputs, the last axis
        let (n, k) = (s[0], if l.op == "MatMul" { s[s.len() - 1] } else { s[1] });
        let (av, dv) = (a.to_f64_vec(), da.to_f64_vec());
        let mut g = vec![0.0; n * k];
        let per_sample = av.len() / n;
        for i in 0..n {
            for j in 0..per_sample {
                let idx = i * per_sample + j;
                let ch = if l.op == "MatMul" { j % k } else { j / (per_sample / k) };
                g[i * k + ch] += av[idx] * dv[idx];
            }
        }
        let numel: usize = l.weight_shape.iter().product();
        let per_channel_weights = numel as f64 / l.out_channels as f64;
        let total: f64 = (0..k)
            .map(|c| {
                let mean_sq = (0..n).map(|i| g[i * k + c].powi(2)).sum::<f64>() / n as f64;
                0.5 * mean_sq * per_channel_weights
            })
            .sum();
        per.push(total);
    }
    Ok(ProxyValue::from_layers(per))
}
