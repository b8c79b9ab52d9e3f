//! epe_nas — EPE-NAS (Lopes, Alirezazadeh & Alexandre, "EPE-NAS: Efficient Performance
//! Estimation Without Training for Neural Architecture Search", ICANN 2021), as its
//! official code (`eval_score_perclass`): J = ∂(Σ outputs)/∂input, one row per sample (the
//! Jacobian pass jacob_cov uses); the rows of each class (targets) form a matrix whose
//! Pearson correlation matrix C_c gives s_c = Σ_ij ln(|C_c[i,j]| + 1e-5) (a class with one
//! sample: C_c = 1). With at most 100 classes (the model's outputs) the score is Σ_c |s_c|;
//! with more, s_c is divided by the class's sample count (classes with one sample are
//! skipped, as the code's exception handler does) and the score is
//! Σ_c Σ_c' |s_c − s_c'| / (number of classes seen).

use super::passes::jacobian::JacobianPass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};

pub const PROXY: Proxy = Proxy { name: "epe_nas", paper: "Lopes et al. 2021, EPE-NAS (ICANN)", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ_class |Σ ln(|corrcoef(J rows of the class)| + 1e-5)|, J = ∂Σy/∂x", passes: "Jacobian pass", compute };

/// The score from the Jacobian rows (n × d), their labels and the number of classes.
pub fn score(j: &[f64], n: usize, d: usize, labels: &[i64], n_classes: usize) -> Result<f64> {
    let k = 1e-5;
    let mut order: Vec<i64> = Vec::new();
    for &l in labels {
        if !order.contains(&l) {
            order.push(l);
        }
    }
    let mut s = Vec::new();
    for c in order {
        let idx: Vec<usize> = (0..n).filter(|&i| labels[i] == c).collect();
        let m = idx.len();
        if m == 1 {
            if n_classes > 100 {
                continue;
            }
            s.push((1.0f64 + k).ln());
            continue;
        }
        let rows: Vec<f64> = idx.iter().flat_map(|&i| j[i * d..(i + 1) * d].iter().copied()).collect();
        let corr = match super::jacob_cov::corrcoef(&rows, m, d) {
            Ok(c) => c,
            Err(_) => bail!("the correlation of the Jacobian rows of class {c} is undefined (a constant row)"),
        };
        let mut v: f64 = corr.iter().map(|&r| (r.abs() + k).ln()).sum();
        if n_classes > 100 {
            v /= m as f64;
        }
        s.push(v);
    }
    Ok(if n_classes <= 100 {
        s.iter().map(|v| v.abs()).sum()
    } else if s.is_empty() {
        0.0
    } else {
        let mut t = 0.0;
        for a in &s {
            for b in &s {
                t += (a - b).abs();
            }
        }
        t / s.len() as f64
    })
}

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let j = ctx.pass(&JacobianPass)?;
    let n = j.shape()[0];
    let d = j.len() / n;
    let base = ctx.base()?;
    let out = base.graph.shape(&base.graph.outputs[0])?;
    let n_classes = *out.last().unwrap_or(&1);
    Ok(ProxyValue::scalar(score(&j.to_f64_vec(), n, d, &ctx.batch.targets, n_classes)?))
}
