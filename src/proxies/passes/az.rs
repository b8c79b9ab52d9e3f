//! AZ-NAS's pass (the proxies are in `az_nas.rs`): every scored weight redrawn as
//! Kaiming-normal fan-in, one train-mode forward of the batch with every block output f_l
//! as an output, plus L backward passes, each seeded at f_l with ±1 and differentiated
//! w.r.t. f_{l−1} only (so no backward goes past its block); then each block output's
//! spectrum entropy and each block's trainability term.

use super::reinit::{fan_in, normal_stream, reinitialised};
use super::{distinct, load_and_run, output, SEED as SEED_INPUT};
use crate::onnx::blocks::block_outputs;
use crate::onnx::canon::{canonicalize, BnMode, CanonOptions};
use crate::onnx::ir::Tensor;
use crate::proxies::{Ctx, Pass};
use anyhow::{bail, Context, Result};
use nalgebra::{DMatrix, DMatrixView};

pub const SEED: u64 = 0;
/// Stream of the ±1 gradient seeded on block output l: `SEED_STREAM + l`.
pub const SEED_STREAM: u64 = 1 << 33;

/// What the pass returns.
pub struct AzBlocks {
    /// The boundary tensors (canonical names).
    pub features: Vec<String>,
    /// Entropy of each feature's covariance spectrum.
    pub entropies: Vec<f64>,
    /// Per block l = 1..L (in forward order): 2 − σ − 1/(σ + 1e-6), or −∞ for an identity block.
    pub block_scores: Vec<f64>,
}

/// Entropy of the normalised eigenvalues of the channel covariance of an [N, C, H, W] map
/// (or [N, C]: positions = samples).
pub fn spectrum_entropy(t: &Tensor) -> Result<f64> {
    let s = t.shape();
    if s.len() < 2 {
        bail!("a block output of shape {s:?} has no channel axis");
    }
    let (n, c) = (s[0], s[1]);
    let hw: usize = s[2..].iter().product();
    let mut v = t.to_f64_vec();
    let rows = (n * hw) as f64;
    // centre each channel over the b·h·w positions
    for ch in 0..c {
        let m = (0..n).map(|b| v[(b * c + ch) * hw..(b * c + ch + 1) * hw].iter().sum::<f64>()).sum::<f64>() / rows;
        for b in 0..n {
            v[(b * c + ch) * hw..(b * c + ch + 1) * hw].iter_mut().for_each(|x| *x -= m);
        }
    }
    // Σ_b X_bᵀ X_b: sample b's [C, HW] block, row-major, is X_b (HW × C) column-major
    let mut sigma = DMatrix::<f64>::zeros(c, c);
    for b in 0..n {
        let x = DMatrixView::from_slice(&v[b * c * hw..(b + 1) * c * hw], hw, c);
        sigma += x.transpose() * x;
    }
    sigma /= rows;
    let ev = sigma.symmetric_eigenvalues();
    let sum: f64 = ev.iter().sum();
    Ok(ev.iter().map(|e| e / sum).map(|p| -p * (p + 1e-8).ln()).sum())
}

/// PyTorch's `nn.PixelUnshuffle(r)` of an [N, C, H, W] array: [N, C·r², H/r, W/r], channel
/// c·r² + i·r + j holding position (i, j) of each r×r patch.
fn pixel_unshuffle(v: &[f64], s: &[usize], r: usize) -> Result<(Vec<f64>, Vec<usize>)> {
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    if r == 0 || h % r != 0 || w % r != 0 {
        bail!("cannot PixelUnshuffle a {h}×{w} map by {r}");
    }
    let (ho, wo) = (h / r, w / r);
    let co = c * r * r;
    let mut out = vec![0.0; v.len()];
    for b in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let oc = ch * r * r + (y % r) * r + (x % r);
                    out[((b * co + oc) * ho + y / r) * wo + x / r] = v[((b * c + ch) * h + y) * w + x];
                }
            }
        }
    }
    Ok((out, vec![n, co, ho, wo]))
}

/// One block's trainability term from its ±1 output gradient and the input gradient.
pub fn block_score(g_out: &Tensor, g_in: &Tensor) -> Result<f64> {
    let (so, si) = (g_out.shape().to_vec(), g_in.shape().to_vec());
    let (vo, mut vi) = (g_out.to_f64_vec(), g_in.to_f64_vec());
    if so == si && vo == vi {
        return Ok(f64::NEG_INFINITY);
    }
    if so.len() != 4 || si.len() != 4 {
        bail!("block gradients must be 4-D feature maps, got {so:?} and {si:?}");
    }
    let mut si = si;
    if so[2] != si[2] || so[3] != si[3] {
        let (v, s) = pixel_unshuffle(&vi, &si, si[2] / so[2].max(1))?;
        vi = v;
        si = s;
    }
    if si[0] != so[0] || si[2] != so[2] || si[3] != so[3] {
        bail!("a block's input gradient {si:?} does not match its output gradient {so:?} after PixelUnshuffle");
    }
    let (n, co, ci, hw) = (so[0], so[1], si[1], so[2] * so[3]);
    // mat = G_inᵀ G_out / positions, G = positions × channels: per sample, the [C, HW]
    // row-major blocks are HW × C column-major matrices
    let mut mat = DMatrix::<f64>::zeros(ci, co);
    for b in 0..n {
        let gi = DMatrixView::from_slice(&vi[b * ci * hw..(b + 1) * ci * hw], hw, ci);
        let go = DMatrixView::from_slice(&vo[b * co * hw..(b + 1) * co * hw], hw, co);
        mat += gi.transpose() * go;
    }
    mat /= (n * hw) as f64;
    let sigma = mat.singular_values().iter().copied().fold(0.0, f64::max);
    Ok(-sigma - 1.0 / (sigma + 1e-6) + 2.0)
}

/// ±1 with probability ½ each: the signs of a reproducible normal stream.
pub fn rademacher(seed: u64, stream: u64, len: usize) -> Vec<f64> {
    normal_stream(seed, stream, len).into_iter().map(|v| if v > 0.0 { 1.0 } else { -1.0 }).collect()
}

/// AZ-NAS's pass: Kaiming re-initialisation, block outputs and per-block gradients.
#[derive(Debug)]
pub struct AzPass;

impl Pass for AzPass {
    type Output = AzBlocks;
    fn run(&self, ctx: &Ctx) -> Result<AzBlocks> {
        az_pass(ctx)
    }
}

fn az_pass(ctx: &Ctx) -> Result<AzBlocks> {
    let n = ctx.batch.len();
    let base = ctx.base()?;
    let raw = reinitialised(ctx, |k, l, t| {
        let std = (2.0 / fan_in(&base.graph, l).max(1) as f64).sqrt();
        Ok(normal_stream(SEED, k as u64, t.len()).into_iter().map(|v| v * std).collect())
    })?;
    let shapes = ctx.model.input_shapes(n, ctx.opts.input_shape.as_deref())?;
    let opts = CanonOptions { bn: BnMode::Batch, abs_params: false, float64: ctx.opts.float64 };
    let g0 = canonicalize(&raw, &shapes, &opts).context("az_nas: canonicalising the re-initialised graph")?;
    let mut features = block_outputs(&ctx.model.raw.graph, &g0)?;
    for f in features.iter_mut() {
        *f = g0.resolve(f).to_string();
        if g0.info(f).is_err() {
            bail!("az_nas: the block output '{f}' is not a tensor of the canonical graph");
        }
    }
    features.dedup();
    if features.len() < 2 {
        bail!(
            "az_nas needs at least two block outputs (4-D feature maps between blocks); found {} in {}",
            features.len(),
            ctx.model.path.display()
        );
    }
    let mut g = g0.clone();
    let mut seeds = Vec::new();
    let mut grads = Vec::new();
    for l in 1..features.len() {
        let s = format!("{}az{l}", SEED_INPUT);
        g.inputs.push(s.clone());
        g.types.insert(s.clone(), g0.info(&features[l])?.clone());
        let gr = crate::autodiff::append_gradients(&mut g, &[(features[l].clone(), s.clone())], &[features[l - 1].clone()])?;
        seeds.push(s);
        grads.push(gr[0].clone());
    }
    let mut outs = features.clone();
    outs.extend(grads.iter().cloned());
    g.outputs = distinct(outs);
    g.prune();
    let x = ctx.input_tensor(&g0)?;
    let seed_values: Vec<Tensor> = (1..features.len())
        .map(|l| {
            let info = g0.info(&features[l])?;
            Ok(Tensor::from_f64(info.dtype, &info.shape, rademacher(SEED, SEED_STREAM + l as u64, info.numel())))
        })
        .collect::<Result<_>>()?;
    let mut bind: Vec<(&str, &Tensor)> = vec![(&g0.inputs[0], &x)];
    for (s, v) in seeds.iter().zip(&seed_values) {
        bind.push((s, v));
    }
    let out = load_and_run(ctx.engine, &g, &bind)?;
    let entropies = features
        .iter()
        .map(|f| spectrum_entropy(output(&out, f)?).with_context(|| format!("az_nas: block output '{f}'")))
        .collect::<Result<Vec<_>>>()?;
    let block_scores = (1..features.len())
        .map(|l| block_score(&seed_values[l - 1], output(&out, &grads[l - 1])?).with_context(|| format!("az_nas: block {l}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(AzBlocks { features, entropies, block_scores })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::ir::DType;

    #[test]
    fn pixel_unshuffle_matches_torch_layout() {
        // torch.arange(16.).reshape(1,1,4,4) -> PixelUnshuffle(2): channel 1 = (0,1) offsets
        let v: Vec<f64> = (0..16).map(f64::from).collect();
        let (o, s) = pixel_unshuffle(&v, &[1, 1, 4, 4], 2).unwrap();
        assert_eq!(s, [1, 4, 2, 2]);
        assert_eq!(&o[..4], &[0.0, 2.0, 8.0, 10.0]);
        assert_eq!(&o[4..8], &[1.0, 3.0, 9.0, 11.0]);
    }

    #[test]
    fn identity_block_is_minus_infinity_and_scaled_is_finite() {
        let g = Tensor::from_f64(DType::F64, &[1, 2, 2, 2], rademacher(0, 5, 8));
        assert_eq!(block_score(&g, &g).unwrap(), f64::NEG_INFINITY);
        let g2 = g.map_float(|v| 2.0 * v);
        // G_out is 4 positions × 2 channels of ±1: mat = 2·G_outᵀG_out/4 = [[2, d/2], [d/2, 2]]
        // with d the dot product of the two channels, so its largest singular value is
        // 2 + |d|/2 and the score 2 - σ - 1/(σ + 1e-6)
        let v = g.to_f64_vec();
        let d: f64 = (0..4).map(|k| v[k] * v[4 + k]).sum();
        let sigma = 2.0 + d.abs() / 2.0;
        let want = 2.0 - sigma - 1.0 / (sigma + 1e-6);
        let s = block_score(&g, &g2).unwrap();
        assert!((s - want).abs() < 1e-12, "score {s}, expected {want} (d = {d})");
    }

    #[test]
    fn entropy_of_isotropic_channels_is_log_c() {
        // two channels, ±1 patterns that are uncorrelated with equal variance
        let v = vec![1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0, -1.0];
        let t = Tensor::from_f64(DType::F64, &[1, 2, 2, 2], v);
        let h = spectrum_entropy(&t).unwrap();
        assert!((h - 2f64.ln()).abs() < 1e-6, "{h}");
    }
}
