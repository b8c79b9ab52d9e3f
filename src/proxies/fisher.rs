//! fisher (Theis et al. 2018; Turner et al., ICLR 2020, as in the paper's code): for each
//! scored layer's output activation a with gradient da, g[n,k] = Σ_spatial a·da and
//! Δ[k] = ½·mean_n g[n,k]². The paper's code broadcasts Δ[k] to every weight of output
//! channel k, so a layer contributes Σ_k Δ[k]·numel(W)/W.shape[0] (reproduced exactly).

use super::passes::loss::LossPass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};

pub const PROXY: Proxy = Proxy { name: "fisher", paper: "Turner et al. 2020, BlockSwap (ICLR)", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ_k ½·mean_n(Σ_spatial a·∂L/∂a)² per output channel", passes: "loss pass", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let (base, lr) = (ctx.base()?, ctx.pass(&LossPass)?);
    let layers = &base.layers;
    let mut per = Vec::with_capacity(layers.len());
    for (l, sums) in layers.iter().zip(&lr.fisher_sums) {
        let (n, k) = match sums.shape() {
            &[n, k] => (n, k),
            s => bail!("layer {}: fisher's sums have shape {s:?}", l.node),
        };
        let g = sums.to_f64_vec();
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
