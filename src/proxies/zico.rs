//! zico — ZiCo (Li, Shao, Wang, Wang & Marculescu, "ZiCo: Zero-shot NAS via Inverse
//! Coefficient of Variation on Gradients", ICLR 2023), as its official code
//! (`ZeroShotProxy/compute_zico.py`): the batch is cut into 2 halves (`x[k·N//2:(k+1)·N//2]`),
//! each run forward and backward (mean cross-entropy of that half, train-mode BatchNorm with
//! that half's statistics) without zeroing the gradients in between, so the second recorded
//! gradient is the sum of both halves'. Per scored layer, over the 2 recorded gradients g:
//! s_l = Σ over weights with std(g) ≠ 0 of mean|g| / std(g) (population std); score =
//! Σ over layers with s_l ≠ 0 of ln s_l (a layer with s_l = 0 reports 0).
//! `zico_paper`: the same with the two halves' independent gradients (the paper's formula).
//! Passes: the loss program at batch N/2, run on each half.

use super::passes::half_batch::HalfBatchPass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "zico", paper: "Li et al. 2023, ZiCo (ICLR), official code", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ_l ln Σ mean|g|/std(g) over 2 half-batch gradients, accumulated as the official code", passes: "2 half-batch loss passes", compute };
pub const PROXY_PAPER: Proxy = Proxy { name: "zico_paper", paper: "Li et al. 2023, ZiCo (ICLR), as the paper writes it", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "zico with independent half-batch gradients", passes: "2 half-batch loss passes", compute: compute_paper };

/// Per-layer ln Σ mean|g|/std(g) over two recorded gradients (numpy's mean and std).
pub fn layer_value(g1: &[f64], g2: &[f64]) -> f64 {
    let mut s = 0.0;
    for (&a, &b) in g1.iter().zip(g2) {
        let m = (a + b) / 2.0;
        let std = (((a - m).powi(2) + (b - m).powi(2)) / 2.0).sqrt();
        if std != 0.0 {
            s += ((a.abs() + b.abs()) / 2.0) / std;
        }
    }
    if s == 0.0 {
        0.0
    } else {
        s.ln()
    }
}

fn zico(ctx: &Ctx, cumulative: bool) -> Result<ProxyValue> {
    let halves = ctx.pass(&HalfBatchPass)?;
    let [h1, h2] = &*halves;
    let per = h1
        .iter()
        .zip(h2)
        .map(|(a, b)| {
            let a = a.to_f64_vec();
            let mut b = b.to_f64_vec();
            if cumulative {
                b.iter_mut().zip(&a).for_each(|(y, x)| *y += x);
            }
            layer_value(&a, &b)
        })
        .collect();
    Ok(ProxyValue::from_layers(per))
}

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    zico(ctx, true)
}

fn compute_paper(ctx: &Ctx) -> Result<ProxyValue> {
    zico(ctx, false)
}
