//! nwot — NASWOT (Mellor, Turner, Storkey & Crowley, "Neural Architecture Search without
//! Training", ICML 2021), as its official code: a forward hook on every ReLU records the
//! binary code c = (ReLU input > 0) of each sample; K = Σ_ReLU c cᵀ + (1−c)(1−c)ᵀ (an N×N
//! matrix: the number of units on which two samples agree); score = log|det K| (slogdet,
//! float64). Only `Relu` nodes count (not Clip/ReLU6, PRelu, LeakyRelu or HardSwish); a node
//! that stands for several PyTorch calls merged by the TorchScript exporter counts once per
//! call (`passes::probe::torch_relu_calls`). Train-mode BatchNorm, no gradients (probe pass).

use super::passes::probe::ProbePass;
use super::passes::probe::Codes;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};
use nalgebra::DMatrix;

pub const PROXY: Proxy = Proxy { name: "nwot", paper: "Mellor et al. 2021, NASWOT (ICML)", direction: Direction::Higher, data: DataNeed::Inputs, about: "log|det K|, K = Σ_ReLU c cᵀ + (1−c)(1−c)ᵀ, c = (ReLU input > 0) per sample", passes: "probe pass", compute };

/// Σ over activations of weight × (units on which samples i and j agree).
pub fn kernel(codes: &[(&Codes, usize)], n: usize) -> DMatrix<f64> {
    let mut k = DMatrix::<f64>::zeros(n, n);
    for (c, w) in codes {
        for i in 0..n {
            for j in i..n {
                let a = c.agreements(i, j) as f64 * *w as f64;
                k[(i, j)] += a;
                if i != j {
                    k[(j, i)] += a;
                }
            }
        }
    }
    k
}

/// (sign, ln|det|) of a square matrix by LU with partial pivoting, as numpy's slogdet.
pub fn slogdet(m: DMatrix<f64>) -> (f64, f64) {
    let lu = m.lu();
    let u = lu.u();
    let mut sign = if lu.p().determinant::<f64>() < 0.0 { -1.0 } else { 1.0 };
    let mut ld = 0.0;
    for i in 0..u.nrows() {
        let d = u[(i, i)];
        if d == 0.0 {
            return (0.0, f64::NEG_INFINITY);
        }
        if d < 0.0 {
            sign = -sign;
        }
        ld += d.abs().ln();
    }
    (sign, ld)
}

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let p = ctx.pass(&ProbePass)?;
    if p.relus.is_empty() {
        bail!("the model has no Relu node");
    }
    let n = ctx.batch.len();
    let weighted: Vec<(&Codes, usize)> = p.codes.iter().zip(&p.relus).map(|(c, r)| (c, r.calls)).collect();
    let (sign, ld) = slogdet(kernel(&weighted, n));
    let unique: Vec<(&Codes, usize)> = p.codes.iter().map(|c| (c, 1)).collect();
    let (sign_u, ld_u) = slogdet(kernel(&unique, n));
    let calls: usize = p.relus.iter().map(|r| r.calls).sum();
    let units: usize = p.codes.iter().zip(&p.relus).map(|(c, r)| c.units * r.calls).sum();
    let details = serde_json::json!({
        "sign": sign,
        "relu_nodes": p.relus.len(),
        "relu_calls": calls,
        "units": units,
        "value_each_node_once": ld_u,
        "sign_each_node_once": sign_u,
    });
    Ok(ProxyValue::with_details(ld, details))
}
