//! meco — MeCo (Jiang, Wang & Bie, "MeCo: Zero-Shot NAS with One Data and Single Forward
//! Pass via Minimum Eigenvalue of Correlation", NeurIPS 2023). The official code
//! (`measures/meco.py`) hooks modules and, for each, takes the output of the first sample,
//! `fea = out[0].reshape(C, −1)` (channels × positions), its Pearson correlation matrix
//! (`torch.corrcoef`, NaN and ±inf entries set to 0) and the minimum real eigenvalue;
//! the score is the sum over hooked modules (NaN results dropped).
//! An ONNX graph does not record PyTorch modules, so the hooked layers here are the scored
//! layers (every Conv, Gemm and weight MatMul, the paper's "layers"); a 2-D output gives a
//! C×1 matrix whose correlation is undefined, hence 0, as in the code. Train-mode BatchNorm
//! over the whole batch, forward only (probe pass).

use super::passes::probe::ProbePass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;
use nalgebra::DMatrix;

pub const PROXY: Proxy = Proxy { name: "meco", paper: "Jiang et al. 2023, MeCo (NeurIPS)", direction: Direction::Higher, data: DataNeed::Inputs, about: "Σ_layers λ_min(corrcoef(channels × positions of sample 0's output)) over scored layers", passes: "probe pass", compute };

/// `torch.corrcoef` of the rows of a (rows × cols) matrix with NaN/inf entries set to 0.
pub fn corrcoef_nan0(v: &[f64], rows: usize, cols: usize) -> DMatrix<f64> {
    let mut c = DMatrix::<f64>::zeros(rows, rows);
    let mut centred = vec![0.0; rows * cols];
    for i in 0..rows {
        let r = &v[i * cols..(i + 1) * cols];
        let m = r.iter().sum::<f64>() / cols as f64;
        for j in 0..cols {
            centred[i * cols + j] = r[j] - m;
        }
    }
    let cov = |i: usize, j: usize| -> f64 {
        let (a, b) = (&centred[i * cols..(i + 1) * cols], &centred[j * cols..(j + 1) * cols]);
        a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>()
    };
    let var: Vec<f64> = (0..rows).map(|i| cov(i, i)).collect();
    for i in 0..rows {
        for j in i..rows {
            let r = cov(i, j) / (var[i].sqrt() * var[j].sqrt());
            let r = if r.is_finite() { r.clamp(-1.0, 1.0) } else { 0.0 };
            c[(i, j)] = r;
            c[(j, i)] = r;
        }
    }
    c
}

/// Minimum eigenvalue of a layer's sample-0 output (`shape` without the batch axis).
pub fn layer_value(shape: &[usize], v: &[f64]) -> f64 {
    let rows = shape.first().copied().unwrap_or(1).max(1);
    let cols = v.len() / rows;
    let c = corrcoef_nan0(v, rows, cols);
    c.symmetric_eigenvalues().iter().copied().fold(f64::INFINITY, f64::min)
}

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let p = ctx.pass(&ProbePass)?;
    let per: Vec<f64> = p.layer_sample0.iter().map(|(s, v)| layer_value(s, v)).map(|x| if x.is_nan() { 0.0 } else { x }).collect();
    Ok(ProxyValue::from_layers(per))
}
