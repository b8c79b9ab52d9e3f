//! zen — Zen-NAS's Zen-score (Lin, Wang, Sun, Chen, Sun, Qian, Li & Jin, "Zen-NAS: A
//! Zero-Shot NAS for High-Performance Image Recognition", ICCV 2021), as the authors'
//! `compute_zen_score` (repeat = 1, mixup_gamma = 0.01, train mode): every Conv/Linear
//! weight redrawn from N(0,1), biases 0, BatchNorm scale 1 and bias 0; x, ε ~ N(0,1) of the
//! batch's shape (the data batch itself is not used, only its shape); f = the feature map
//! entering the global average pooling; Δ = mean_n Σ_{c,h,w} |f(x) − f(x + 0.01·ε)|;
//! score = ln Δ + Σ_BN ln √(mean_c running_var), the running variances of every BatchNorm
//! on a 4-D map after the two train-mode forwards (PyTorch's update with momentum 0.1 from
//! the file's running_var, unbiased batch variance). The random draws come from
//! `passes::reinit::normal_stream` with seed 0 (weights: stream = scored-layer index; x and ε:
//! streams 2³² and 2³²+1), so the score is reproducible. Pass: the re-initialised graph's
//! forward, run twice.

use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};

pub const PROXY: Proxy = Proxy { name: "zen", paper: "Lin et al. 2021, Zen-NAS (ICCV)", direction: Direction::Higher, data: DataNeed::NoData, about: "ln mean_n Σ|f(x)−f(x+0.01ε)| + Σ_BN ln √mean(running_var), Gaussian weights, f = pre-GAP map", passes: "2 forwards", compute };

pub const SEED: u64 = 0;
pub const MIXUP_GAMMA: f64 = 1e-2;

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let z = super::passes::zen::zen_pass(ctx, SEED, MIXUP_GAMMA)?;
    if z.feature_diff.is_nan() || z.feature_diff <= 0.0 {
        bail!("the pre-GAP feature map does not respond to the input perturbation (Δ = {})", z.feature_diff);
    }
    let bn: f64 = z.bn_running_var.iter().map(|(_, v)| v.sqrt().ln()).sum();
    Ok(ProxyValue::with_details(z.feature_diff.ln() + bn, serde_json::json!({ "log_feature_diff": z.feature_diff.ln(), "log_bn_scaling": bn, "bn_nodes": z.bn_running_var.len() })))
}
