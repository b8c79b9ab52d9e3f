//! ntk_cond — TE-NAS's NTK condition number (Chen, Gong & Wang, "Neural Architecture Search
//! on ImageNet in Four GPU Hours: A Theoretically Inspired Perspective", ICLR 2021), as its
//! official code (`get_ntk_n`, train mode, one batch): for each sample n the gradient
//! g_n = ∂(Σ_c z[n,c])/∂θ of that sample's summed logits, with the forward run on the whole
//! batch (train-mode BatchNorm couples the samples), θ = every parameter PyTorch names
//! `weight` (the scored Conv/Linear weights and the BatchNormalization scales γ);
//! NTK = G Gᵀ (N×N); score = λ_max / λ_min (NaN → 100000, as the code). Lower is better in
//! TE-NAS. Pass: the Σ-outputs program with a seed of ones on row n only, run once per
//! sample: N forward+backward passes at the batch's size (the cost grows as N²; about
//! N times a jacob_cov pass).

use super::{extra_passes, Ctx, Proxy, ProxyValue};
use anyhow::Result;
use nalgebra::DMatrix;

pub const PROXY: Proxy = Proxy { name: "ntk_cond", about: "λ_max/λ_min of the NTK G Gᵀ, g_n = ∂Σ_c z[n,c]/∂θ (N Σ-output passes with one-row seeds)", compute };

/// Condition number as TE-NAS: eigenvalues ascending, last / first, NaN → 1e5.
pub fn condition(ntk: DMatrix<f64>) -> (f64, f64, f64) {
    let mut ev: Vec<f64> = ntk.symmetric_eigenvalues().iter().copied().collect();
    ev.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let (lo, hi) = (ev[0], ev[ev.len() - 1]);
    let c = hi / lo;
    (if c.is_nan() { 100000.0 } else { c }, lo, hi)
}

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let (rows, n_scales) = extra_passes::per_sample_output_grads(ctx)?;
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
    Ok(ProxyValue {
        total: c,
        per_layer: None,
        details: Some(serde_json::json!({ "lambda_min": lo, "lambda_max": hi, "parameters": rows.first().map_or(0, |r| r.len()), "bn_scales": n_scales })),
    })
}
