//! Training-mode BatchNormalization, the composite `zerocost.BatchNormTrain` (x, scale,
//! bias) → (y, mean, var): the analytic backward pass (as PyTorch's `batch_norm_backward`)
//! instead of the gradients of the mean and variance ops it would otherwise expand into.
//! With M values per channel, r = (var + ε)^-½ and x̂ = (x − mean)·r:
//!   dbias = Σ gy, dscale = Σ gy·x̂,
//!   dx = scale·r·(gy − dbias/M − x̂·dscale/M) + gmean/M + gvar·2(x − mean)/M,
//! where gmean and gvar are the gradients reaching the statistics outputs (only a second
//! differentiation sends any: the backward pass reads them). Everything is written with
//! ops that have rules, so the backward pass can be differentiated again.

use super::OpDef;
use crate::onnx::composite::{self, STOP_GRADIENT};
use crate::onnx::infer::{axis, input, same_as_input};
use crate::onnx::ir::{Graph, TypeInfo};
use super::Grads;
use crate::onnx::builder::Builder;
use crate::onnx::composite::BATCH_NORM_TRAIN;
use crate::onnx::ir::{Attr, Node, Tensor};
use anyhow::{anyhow, bail, Result};
use super::{first_output_only, LowerCtx};
use crate::onnx::canon::BnMode;

pub const OPS: &[OpDef] = &[
    OpDef::internal(BATCH_NORM_TRAIN, composite::infer, batch_norm_train),
    // a value that gradients do not flow through (the running statistics of a lowering)
    OpDef::internal(STOP_GRADIENT, composite::infer, super::no_gradient),
    OpDef::lowered(
        "BatchNormalization",
        9,
        "zerocost.BatchNormTrain (batch statistics), Mul+Add (running) or nothing (--bn remove)",
        "",
        infer_statistics_per_channel,
    )
    .lowers(lower_batch_norm),
    OpDef::lowered("InstanceNormalization", 6, "ReduceMean, Sub, Mul, Sqrt, Div, Add", "", infer_statistics_per_channel).lowers(lower_instance_norm),
    OpDef::lowered("LayerNormalization", 17, "ReduceMean, Sub, Mul, Sqrt, Div, Add", "any axis; Mean and InvStdDev outputs unsupported", infer_layer_norm)
        .lowers(lower_layer_norm),
    OpDef::lowered("GroupNormalization", 18, "Reshape and the LayerNormalization ops", "scale/bias per group (18) or per channel (21)", same_as_input)
        .lowers(lower_group_norm),
    OpDef::lowered("LRN", 1, "Mul, AveragePool over channels, Pow, Div", "", same_as_input).lowers(lower_lrn),
];

/// The normalised output, then a vector per channel for each statistics output.
fn infer_statistics_per_channel(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let x = input(g, n, 0)?;
    let mut v = vec![x.clone()];
    let c = x.shape[1];
    for _ in 1..n.outputs.len() {
        v.push(TypeInfo::new(x.dtype, vec![c]));
    }
    Ok(v)
}

/// The normalised output, then the statistics over the axes from `axis` on (kept as 1s).
fn infer_layer_norm(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let a = axis(n.int("axis", -1), xi.rank())?;
    let mut v = vec![xi.clone()];
    let mut rs = xi.shape.clone();
    for d in rs.iter_mut().skip(a) {
        *d = 1;
    }
    for _ in 1..n.outputs.len() {
        v.push(TypeInfo::new(xi.dtype, rs.clone()));
    }
    Ok(v)
}

fn batch_norm_train(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let (x, scale) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (mean, var) = (n.outputs[1].as_str(), n.outputs[2].as_str());
    let xs = b.shape(x)?;
    let (rank, c) = (xs.len(), xs[1]);
    let m = (xs.iter().product::<usize>() / c) as f64;
    let axes: Vec<usize> = (0..rank).filter(|&a| a != 1).collect();
    let mut bcast = vec![1; rank];
    bcast[1] = c;
    let per_channel = |b: &mut Builder, v: &str| b.reshape(v, &bcast);
    let mean_b = per_channel(b, mean)?;
    let centred = b.sub(x, &mean_b)?;
    let mut out = vec![None; n.inputs.len()];
    let mut dx_parts = Vec::new();
    if let Some(g) = gy.first().and_then(|g| g.as_deref()) {
        let eps = b.scalar_like(var, n.float("epsilon", 1e-5) as f64)?;
        let ve = b.add(var, &eps)?;
        let sd = b.op("Sqrt", &[&ve], vec![])?;
        let r = b.op("Reciprocal", &[&sd], vec![])?;
        let r_b = per_channel(b, &r)?;
        let xhat = b.mul(&centred, &r_b)?;
        let dbias = b.reduce_sum(g, &axes, false)?;
        let gx = b.mul(g, &xhat)?;
        let dscale = b.reduce_sum(&gx, &axes, false)?;
        if wants[0] {
            let mean_g = b.mul_scalar(&dbias, 1.0 / m)?;
            let mean_g = per_channel(b, &mean_g)?;
            let mean_gx = b.mul_scalar(&dscale, 1.0 / m)?;
            let mean_gx = per_channel(b, &mean_gx)?;
            let t = b.sub(g, &mean_g)?;
            let u = b.mul(&xhat, &mean_gx)?;
            let t = b.sub(&t, &u)?;
            let k = b.mul(scale, &r)?;
            let k = per_channel(b, &k)?;
            dx_parts.push(b.mul(&t, &k)?);
        }
        if wants[1] {
            out[1] = Some(dscale);
        }
        if wants.get(2) == Some(&true) {
            out[2] = Some(dbias);
        }
    }
    if wants[0] {
        if let Some(gm) = gy.get(1).and_then(|g| g.as_deref()) {
            let v = b.mul_scalar(gm, 1.0 / m)?;
            let v = per_channel(b, &v)?;
            dx_parts.push(b.expand(&v, &xs)?);
        }
        if let Some(gv) = gy.get(2).and_then(|g| g.as_deref()) {
            let v = b.mul_scalar(gv, 2.0 / m)?;
            let v = per_channel(b, &v)?;
            dx_parts.push(b.mul(&centred, &v)?);
        }
        if !dx_parts.is_empty() {
            out[0] = Some(if dx_parts.len() == 1 { dx_parts.remove(0) } else { b.sum(&dx_parts)? });
        }
    }
    Ok(out)
}

/// BatchNormalization as `--bn` asks: batch statistics, folded running statistics or removed.
fn lower_batch_norm(b: &mut Builder, n: &Node, cx: &LowerCtx) -> Result<Option<String>> {
    let x = n.input(0).unwrap();
    let r = b.shape(x)?.len();
    let eps = n.float("epsilon", 1e-5);
    let y = match cx.bn {
        BnMode::Remove => x.to_string(),
        BnMode::Batch => {
            // one composite op: its analytic backward pass and, on ONNX Runtime, the native
            // kernel (`onnx/composite.rs`)
            let attrs = vec![("epsilon", Attr::Float(eps))];
            let (scale, bias) = (n.input(1).unwrap(), n.input(2).unwrap());
            b.node(BATCH_NORM_TRAIN, &[x, scale, bias], attrs, 3)?.remove(0)
        }
        BnMode::Running => {
            let (sc, bi, mu, var) = (n.input(1).unwrap(), n.input(2).unwrap(), n.input(3).unwrap(), n.input(4).unwrap());
            let consts: Option<Vec<Vec<f64>>> =
                [sc, bi, mu, var].iter().map(|k| b.g.constant(k).map(|t| t.to_f64_vec())).collect();
            let consts = consts.ok_or_else(|| anyhow!("running-statistics BatchNormalization needs constant parameters"))?;
            let c = consts[0].len();
            let a: Vec<f64> = (0..c).map(|k| consts[0][k] / (consts[3][k] + eps as f64).sqrt()).collect();
            let sh: Vec<f64> = (0..c).map(|k| consts[1][k] - consts[2][k] * a[k]).collect();
            let dt = b.dtype(x)?;
            let mut s = vec![1; r];
            s[1] = c;
            let an = b.constant(Tensor::from_f64(dt, &s, a));
            let bn = b.constant(Tensor::from_f64(dt, &s, sh));
            let m = b.mul(x, &an)?;
            b.add(&m, &bn)?
        }
    };
    Ok(Some(y))
}

/// InstanceNormalization: statistics over the spatial axes of each sample and channel.
fn lower_instance_norm(b: &mut Builder, n: &Node, _: &LowerCtx) -> Result<Option<String>> {
    let x = n.input(0).unwrap();
    let r = b.shape(x)?.len();
    let axes: Vec<usize> = (2..r).collect();
    let xhat = normalize(b, x, &axes, n.float("epsilon", 1e-5))?;
    let s = channel_vector(b, n.input(1).unwrap(), r)?;
    let bias = channel_vector(b, n.input(2).unwrap(), r)?;
    let m = b.mul(&xhat, &s)?;
    let y = b.add(&m, &bias)?;
    Ok(Some(y))
}

/// LayerNormalization: statistics over the axes from `axis` on.
fn lower_layer_norm(b: &mut Builder, n: &Node, _: &LowerCtx) -> Result<Option<String>> {
    let x = n.input(0).unwrap();
    let r = b.shape(x)?.len();
    let a = axis(n.int("axis", -1), r)?;
    let axes: Vec<usize> = (a..r).collect();
    let xhat = normalize(b, x, &axes, n.float("epsilon", 1e-5))?;
    let mut y = b.mul(&xhat, n.input(1).unwrap())?;
    if let Some(bias) = n.input(2) {
        y = b.add(&y, bias)?;
    }
    Ok(Some(y))
}

/// Per-channel vector `v` [C] reshaped to broadcast over axis 1 of a rank-`r` tensor.
fn channel_vector(b: &mut Builder, v: &str, r: usize) -> Result<String> {
    let c = b.shape(v)?;
    let mut s = vec![1; r];
    s[1] = c.iter().product();
    if let Some(t) = b.g.constant(v).cloned() {
        let name = b.g.fresh(&format!("{v}/bcast"));
        let t = match t {
            Tensor::F32(a) => Tensor::F32(a.into_shape_with_order(ndarray::IxDyn(&s))?),
            Tensor::F64(a) => Tensor::F64(a.into_shape_with_order(ndarray::IxDyn(&s))?),
            other => bail!("normalisation parameter of type {:?}", other.dtype()),
        };
        b.g.set_initializer(&name, t);
        return Ok(name);
    }
    b.reshape(v, &s)
}

/// GroupNormalization: statistics over each group of C/G channels and the spatial axes.
/// Scale and bias have C entries from opset 21, G before.
fn lower_group_norm(b: &mut Builder, n: &Node, cx: &LowerCtx) -> Result<Option<String>> {
    let per_channel = cx.opset >= 21;
    let x = n.input(0).unwrap();
    let xs = b.shape(x)?;
    if xs.len() < 2 {
        bail!("GroupNormalization wants an input of rank >= 2, got {xs:?}");
    }
    let groups = n.int("num_groups", 0);
    let c = xs[1];
    if groups < 1 || c % groups as usize != 0 {
        bail!("GroupNormalization: num_groups {groups} does not divide the {c} channels");
    }
    let groups = groups as usize;
    let (scale, bias) = (n.input(1).ok_or_else(|| anyhow!("no scale"))?, n.input(2).ok_or_else(|| anyhow!("no bias"))?);
    let want = if per_channel { c } else { groups };
    for v in [scale, bias] {
        let len: usize = b.shape(v)?.iter().product();
        if len != want {
            bail!(
                "GroupNormalization: '{v}' has {len} entries, {} wants {want} ({})",
                if per_channel { "opset 21" } else { "opset 18" },
                if per_channel { "one per channel" } else { "one per group" }
            );
        }
    }
    let spatial: usize = xs[2..].iter().product();
    let flat = b.reshape(x, &[xs[0], groups, c / groups * spatial])?;
    let xhat = normalize(b, &flat, &[2], n.float("epsilon", 1e-5))?;
    let (y, param_shape) = if per_channel {
        let mut s = vec![1; xs.len()];
        s[1] = c;
        (b.reshape(&xhat, &xs)?, s)
    } else {
        (xhat, vec![1, groups, 1])
    };
    let s = b.reshape(scale, &param_shape)?;
    let bi = b.reshape(bias, &param_shape)?;
    let m = b.mul(&y, &s)?;
    let y = b.add(&m, &bi)?;
    let y = b.reshape(&y, &xs)?;
    first_output_only(n, y)
}

/// LRN across channels: square_sum[c] sums x² over channels c - ⌊(size-1)/2⌋ ..= c + ⌈(size-1)/2⌉;
/// y = x / (bias + alpha/size · square_sum)^beta. The window sum divided by size is an
/// AveragePool (count_include_pad) over x² reshaped to [N, 1, C, S].
fn lower_lrn(b: &mut Builder, n: &Node, _: &LowerCtx) -> Result<Option<String>> {
    let x = n.input(0).unwrap();
    let xs = b.shape(x)?;
    if xs.len() < 2 {
        bail!("LRN wants an input of rank >= 2, got {xs:?}");
    }
    let size = n.int("size", 0);
    if size < 1 {
        bail!("LRN needs a positive size, got {size}");
    }
    let size = size as usize;
    let (alpha, beta, bias) = (n.float("alpha", 1e-4) as f64, n.float("beta", 0.75) as f64, n.float("bias", 1.0) as f64);
    let lo = (size - 1) / 2;
    let hi = size - 1 - lo;
    let spatial: usize = xs[2..].iter().product();
    let sq = b.mul(x, x)?;
    let r = b.reshape(&sq, &[xs[0], 1, xs[1], spatial])?;
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    let attrs = vec![
        ("kernel_shape", ints(&[size as i64, 1])),
        ("pads", ints(&[lo as i64, 0, hi as i64, 0])),
        ("count_include_pad", Attr::Int(1)),
    ];
    let avg = b.op("AveragePool", &[&r], attrs)?;
    let avg = b.reshape(&avg, &xs)?;
    let scaled = b.mul_scalar(&avg, alpha)?;
    let k = b.scalar_like(x, bias)?;
    let base = b.add(&scaled, &k)?;
    let e = b.scalar_like(x, beta)?;
    let den = b.op("Pow", &[&base, &e], vec![])?;
    let y = b.div(x, &den)?;
    first_output_only(n, y)
}

/// Normalises `x` over `axes` with batch statistics: (x - mean) / sqrt(var + eps).
fn normalize(b: &mut Builder, x: &str, axes: &[usize], eps: f32) -> Result<String> {
    let mean = b.reduce_mean(x, axes, true)?;
    let d = b.sub(x, &mean)?;
    let sq = b.mul(&d, &d)?;
    let var = b.reduce_mean(&sq, axes, true)?;
    let e = b.scalar_like(x, eps as f64)?;
    let ve = b.add(&var, &e)?;
    let sd = b.op("Sqrt", &[&ve], vec![])?;
    b.div(&d, &sd)
}

#[cfg(test)]
mod tests {
    /// Finite-difference checks (float64, first and second order) of the lowerings above: the ops each becomes, differentiated by their rules.
    mod lowered {
        use crate::autodiff::check::{check_lowered, rand_tensor, Arg};
        #[allow(unused_imports)]
        use crate::onnx::ir::{Attr, DType, Tensor};

        const TOL: f64 = 1e-6;


        #[test]
        fn lrn_odd_and_even_windows() {
            for size in [3, 4, 1] {
                let attrs = vec![("size", Attr::Int(size)), ("alpha", Attr::Float(0.5)), ("beta", Attr::Float(0.75)), ("bias", Attr::Float(1.5))];
                check_lowered("LRN", &[Arg::var(&[2, 5, 3, 2], 1)], attrs, 13, true, TOL).unwrap();
            }
        }

        #[test]
        fn group_normalization_per_group_and_per_channel() {
            let attrs = || vec![("num_groups", Attr::Int(3)), ("epsilon", Attr::Float(1e-3))];
            let per_group = [Arg::var(&[2, 6, 3, 2], 1), Arg::var(&[3], 2), Arg::var(&[3], 3)];
            check_lowered("GroupNormalization", &per_group, attrs(), 18, true, TOL).unwrap();
            let per_channel = [Arg::var(&[2, 6, 3, 2], 1), Arg::var(&[6], 2), Arg::var(&[6], 3)];
            check_lowered("GroupNormalization", &per_channel, attrs(), 21, true, TOL).unwrap();
            // opset 21 with per-group parameters is refused with the reason
            let e = check_lowered("GroupNormalization", &per_group, attrs(), 21, false, TOL).unwrap_err();
            assert!(format!("{e:#}").contains("one per channel"), "{e:#}");
        }

        #[test]
        fn instance_normalization() {
            let args = [Arg::var(&[2, 3, 4, 3], 1), Arg::var(&[3], 2), Arg::var(&[3], 3)];
            check_lowered("InstanceNormalization", &args, vec![("epsilon", Attr::Float(1e-3))], 17, true, TOL).unwrap();
        }

        #[test]
        fn layer_normalization_every_axis() {
            let xs = [2usize, 3, 4];
            for a in [-3i64, -2, -1, 0, 1, 2] {
                let first = if a < 0 { (a + 3) as usize } else { a as usize };
                let p = &xs[first..];
                let args = [Arg::var(&xs, 1), Arg::var(p, 2), Arg::var(p, 3)];
                check_lowered("LayerNormalization", &args, vec![("axis", Attr::Int(a))], 17, true, TOL).unwrap();
            }
            // without the optional bias
            check_lowered("LayerNormalization", &[Arg::var(&xs, 1), Arg::var(&[4], 2)], vec![], 17, true, TOL).unwrap();
        }

        #[test]
        fn batch_normalization_batch_statistics() {
            let c = |seed| Arg::Const(rand_tensor(&[3], seed).map_float(|v| v.abs() + 0.5));
            let args = [Arg::var(&[4, 3, 2, 2], 1), Arg::var(&[3], 2), Arg::var(&[3], 3), c(4), c(5)];
            check_lowered("BatchNormalization", &args, vec![], 15, true, TOL).unwrap();
        }
    }

    use crate::autodiff::check::{check_op, rand_tensor, Arg};
    use crate::onnx::composite::BATCH_NORM_TRAIN;
    use crate::onnx::ir::Attr;

    /// Every output seeded (y, mean, variance), first and second order.
    fn check(x: &[usize], seed: u64) {
        let c = x[1];
        let scale = rand_tensor(&[c], seed + 1).map_float(|v| v + 1.5);
        let args = [Arg::Var(rand_tensor(x, seed)), Arg::Var(scale), Arg::Var(rand_tensor(&[c], seed + 2))];
        check_op(BATCH_NORM_TRAIN, &args, vec![("epsilon", Attr::Float(1e-3))], 3, true, 1e-6).unwrap();
    }

    #[test]
    fn batch_norm_train_4d() {
        check(&[3, 2, 3, 2], 11);
    }

    #[test]
    fn batch_norm_train_2d() {
        check(&[5, 3], 21);
    }
}
