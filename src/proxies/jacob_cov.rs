//! jacob_cov (Mellor et al. 2020, v1, as in the paper's code): J = ∂(Σ outputs)/∂input, one
//! row per sample; C = corrcoef(J); score = −Σ (ln(v + 1e-5) + 1/(v + 1e-5)) over the
//! eigenvalues v of C. Undefined correlations (a constant row) give an error, not a number.

use super::passes::jacobian::JacobianPass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};
use nalgebra::DMatrix;

pub const PROXY: Proxy = Proxy { name: "jacob_cov", paper: "Mellor et al. 2020, NASWOT v1 (arXiv 2006.04647)", direction: Direction::Higher, data: DataNeed::Inputs, about: "−Σ(ln(v+k)+1/(v+k)), v = eig(corrcoef(∂Σy/∂x))", passes: "Jacobian pass", compute };

/// Pearson correlation matrix of the rows of `rows` (n × d), as numpy's corrcoef. Not
/// shared with meco's `corrcoef_nan0`: that one sums each covariance in order and divides by
/// √a·√b, this one takes a matrix product and √(a·b); one function for both would move one
/// of the two proxies' scores in the last bits.
pub fn corrcoef(rows: &[f64], n: usize, d: usize) -> Result<DMatrix<f64>> {
    let mut centered = DMatrix::<f64>::zeros(n, d);
    for i in 0..n {
        let r = &rows[i * d..(i + 1) * d];
        let mean = r.iter().sum::<f64>() / d as f64;
        for j in 0..d {
            centered[(i, j)] = r[j] - mean;
        }
    }
    let cov = &centered * centered.transpose();
    let mut c = DMatrix::<f64>::zeros(n, n);
    for i in 0..n {
        for j in 0..n {
            let denom = (cov[(i, i)] * cov[(j, j)]).sqrt();
            if denom == 0.0 || !denom.is_finite() {
                bail!("the correlation matrix is undefined: sample {} has a constant Jacobian row", if cov[(i, i)] == 0.0 { i } else { j });
            }
            // numpy clips to [-1, 1]
            c[(i, j)] = (cov[(i, j)] / denom).clamp(-1.0, 1.0);
        }
    }
    Ok(c)
}

pub fn score_from_correlation(c: DMatrix<f64>) -> f64 {
    let k = 1e-5;
    let eig = c.symmetric_eigenvalues();
    -eig.iter().map(|&v| (v + k).ln() + 1.0 / (v + k)).sum::<f64>()
}

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let j = ctx.pass(&JacobianPass)?;
    let n = j.shape()[0];
    let d = j.len() / n;
    let c = corrcoef(&j.to_f64_vec(), n, d)?;
    let v = score_from_correlation(c);
    if !v.is_finite() {
        bail!("jacob_cov is {v}: the correlation matrix has eigenvalues at or below -1e-5");
    }
    Ok(ProxyValue::scalar(v))
}
