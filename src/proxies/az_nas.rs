//! az_nas — AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network
//! Architecture Search", CVPR 2024), as the authors' `NB201/ZeroShotProxy/compute_az_nas_score.py`.
//! Four components per model, each its own proxy; their combination ranks a population,
//! so it is done where the population is (`correlate`, `search`): Σ over the four of
//! ln(rank / n), ranks ascending with ties averaged (`scipy.stats.rankdata`).
//!
//! The pass (`passes/az.rs`): every scored weight redrawn as Kaiming-normal fan-in (N(0, 2/fan_in), the
//! draws of `passes::reinit::normal_stream`, stream = scored-layer index, seed 0), biases 0,
//! BatchNorm scale 1 and bias 0; one train-mode forward of the batch; the features
//! f_0..f_L are the block boundaries (`onnx::blocks`: on NAS-Bench-201 the stem and the 17
//! cells, as the authors' `extract_cell_features`).
//! - `az_expressivity` = Σ_l H_l, H_l the entropy Σ −p ln(p + 1e-8) of the normalised
//!   eigenvalues p = s/Σs of the channel covariance of f_l (positions × channels, centred,
//!   divided by the number of positions b·h·w);
//! - `az_progressivity` = min_l (H_l − H_{l−1});
//! - `az_trainability` = mean over l = L..1 of 2 − σ − 1/(σ + 1e-6), σ the largest singular
//!   value of G_inᵀ G_out / (b·h_o·w_o), G_out = a random ±1 (Bernoulli ½) gradient on f_l
//!   and G_in = its vector-Jacobian product on f_{l−1} (PixelUnshuffle'd to f_l's size when
//!   the block downsamples). A block that passes G_out through unchanged (an identity
//!   block) makes the code's score −∞, and so it is here: a value
//!   ([`ProxyValue::minus_infinity`], JSON `"-inf"`) that `correlate` and `search` rank
//!   last. So does a NaN entropy for expressivity and progressivity.
//!   The ±1 draws are the signs of `normal_stream(0, 2³³ + l, ·)`, not PyTorch's stream.
//! - `az_complexity` = `flops` (the code takes NAS-Bench-201's FLOPs from its API).
//!
//! The pass is one program: the forward with every f_l as an output plus L backward passes,
//! each seeded at f_l and differentiated w.r.t. f_{l−1} only (so no backward goes past its
//! block).

use super::passes::az::AzPass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const EXPRESSIVITY: Proxy =
    Proxy { name: "az_expressivity", paper: "Lee & Ham 2024, AZ-NAS (CVPR)", direction: Direction::Higher, data: DataNeed::Inputs, about: "AZ-NAS: Σ over block outputs of the entropy of the channel-covariance spectrum", passes: "forward, Kaiming re-init", compute: expressivity };
pub const PROGRESSIVITY: Proxy =
    Proxy { name: "az_progressivity", paper: "Lee & Ham 2024, AZ-NAS (CVPR)", direction: Direction::Higher, data: DataNeed::Inputs, about: "AZ-NAS: min over blocks of the increase of that entropy", passes: "forward, Kaiming re-init", compute: progressivity };
pub const TRAINABILITY: Proxy = Proxy {
    name: "az_trainability",
    paper: "Lee & Ham 2024, AZ-NAS (CVPR)",
    direction: Direction::Higher,
    data: DataNeed::Inputs,
    about: "AZ-NAS: mean over blocks of 2 − σ − 1/σ, σ = spectral norm of the block's ±1-seeded input-output gradient product",
    passes: "one backward per block",
    compute: trainability,
};
pub const COMPLEXITY: Proxy = Proxy { name: "az_complexity", paper: "Lee & Ham 2024, AZ-NAS (CVPR)", direction: Direction::Higher, data: DataNeed::NoData, about: "AZ-NAS: the flops of the model", passes: "none", compute: complexity };

/// The four components, in the order the aggregate lists them.
pub const COMPONENTS: [&str; 4] = ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity"];
/// The name of the rank aggregate (`correlate`, `search`) and of the four components together.
pub const NAME: &str = "az_nas";

/// AZ-NAS's combination of its components over a population: Σ ln(rank / n).
pub const AGGREGATE: super::Aggregate = super::Aggregate { name: NAME, components: &COMPONENTS, combine: crate::rank::log_rank_sum };

/// Why expressivity and progressivity are −∞ (the code's score of a NaN entropy).
const NAN_ENTROPY: &str = "a block output has no variance or a covariance with negative eigenvalues, its entropy is NaN";

fn expressivity(ctx: &Ctx) -> Result<ProxyValue> {
    let a = ctx.pass(&AzPass)?;
    let total: f64 = a.entropies.iter().sum();
    let details = serde_json::json!({ "features": a.features, "entropies": a.entropies });
    if total.is_nan() {
        return Ok(ProxyValue::minus_infinity(NAN_ENTROPY, Some(details)));
    }
    Ok(ProxyValue::with_details(total, details))
}

fn progressivity(ctx: &Ctx) -> Result<ProxyValue> {
    let a = ctx.pass(&AzPass)?;
    if a.entropies.iter().any(|h| h.is_nan()) {
        return Ok(ProxyValue::minus_infinity(NAN_ENTROPY, None));
    }
    let total = a.entropies.windows(2).map(|w| w[1] - w[0]).fold(f64::INFINITY, f64::min);
    Ok(ProxyValue::scalar(total))
}

fn trainability(ctx: &Ctx) -> Result<ProxyValue> {
    let a = ctx.pass(&AzPass)?;
    let details = serde_json::json!({ "blocks": a.block_scores });
    if let Some(l) = a.block_scores.iter().position(|s| *s == f64::NEG_INFINITY) {
        let why = format!("block {} ('{}' → '{}') passes the gradient through unchanged (an identity block)", l + 1, a.features[l], a.features[l + 1]);
        return Ok(ProxyValue::minus_infinity(why, Some(details)));
    }
    let total = a.block_scores.iter().sum::<f64>() / a.block_scores.len() as f64;
    Ok(ProxyValue::with_details(total, details))
}

fn complexity(ctx: &Ctx) -> Result<ProxyValue> {
    Ok(ProxyValue::scalar(ctx.base()?.layers.iter().map(|l| l.macs_per_sample as f64).sum()))
}
