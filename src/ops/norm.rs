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
use crate::onnx::ir::Node;
use anyhow::Result;

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
    ),
    OpDef::lowered("InstanceNormalization", 6, "ReduceMean, Sub, Mul, Sqrt, Div, Add", "", infer_statistics_per_channel),
    OpDef::lowered("LayerNormalization", 17, "ReduceMean, Sub, Mul, Sqrt, Div, Add", "any axis; Mean and InvStdDev outputs unsupported", infer_layer_norm),
    OpDef::lowered("GroupNormalization", 18, "Reshape and the LayerNormalization ops", "scale/bias per group (18) or per channel (21)", same_as_input),
    OpDef::lowered("LRN", 1, "Mul, AveragePool over channels, Pow, Div", "", same_as_input),
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

#[cfg(test)]
mod tests {
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
