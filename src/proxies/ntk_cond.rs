//! ntk_cond — TE-NAS's NTK condition number (Chen, Gong & Wang, "Neural Architecture Search
//! on ImageNet in Four GPU Hours: A Theoretically Inspired Perspective", ICLR 2021), as its
//! official code (`get_ntk_n`, train mode, one batch of `--batch_size 16`, the code's "batch
//! size for ntk"): the first min(N, 16) samples form the batch (their own forward,
//! train-mode BatchNorm coupling them); for each sample n, g_n = ∂(Σ_c z[n,c])/∂θ, the
//! gradient of that sample's summed logits, θ = every parameter PyTorch names `weight` (the
//! scored Conv/Linear weights and the BatchNormalization scales γ); NTK = G Gᵀ; score =
//! λ_max / λ_min (NaN → 100000, as the code). Lower is better in TE-NAS.
//! Pass: the forward at batch 16 followed by 4 backward passes, each seeded with ones on one
//! row only, run 4 times: 16 vector-Jacobian products for 4 forwards (about 3 loss passes at
//! batch 64; the per-sample gradients cannot come from one backward pass because train-mode
//! BatchNorm couples the samples).

use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;
use nalgebra::DMatrix;

pub const PROXY: Proxy = Proxy { name: "ntk_cond", paper: "Chen et al. 2021, TE-NAS (ICLR)", direction: Direction::Lower, data: DataNeed::Inputs, about: "λ_max/λ_min of the NTK G Gᵀ, g_n = ∂Σ_c z[n,c]/∂θ on the first 16 samples", passes: "16 Σ-output passes with one-row seeds", compute };

/// Condition number as TE-NAS: eigenvalues ascending, last / first, NaN → 1e5.
pub fn condition(ntk: DMatrix<f64>) -> (f64, f64, f64) {
    let mut ev: Vec<f64> = ntk.symmetric_eigenvalues().iter().copied().collect();
    ev.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let (lo, hi) = (ev[0], ev[ev.len() - 1]);
    let c = hi / lo;
    (if c.is_nan() { 100000.0 } else { c }, lo, hi)
}

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let (rows, n_scales) = super::passes::per_sample_output::per_sample_output_grads(ctx)?;
    let n = rows.len();
    let mut k = DMatrix::<f64>::zeros(n, n);
    for i in 0..n {
        for j in i..n {
            let v: f64 = rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum();
            k[(i, j)] = v;
            k[(j, i)] = v;
        }
    }
    let (c, lo, hi) = condition(k);
    Ok(ProxyValue::with_details(c, serde_json::json!({ "lambda_min": lo, "lambda_max": hi, "samples": n, "parameters": rows.first().map_or(0, |r| r.len()), "bn_scales": n_scales })))
}
