//! Ops whose value is known before running: Constant (an initializer after import), the
//! shape queries Shape and Size, and the generators ConstantOfShape, Range and OneHot. No
//! gradient flows through them; Shape and Size fold from the input's shape alone.

use super::{Fold, OpDef};
use crate::onnx::fold::arg;
use crate::onnx::infer::{axis, const_floats, const_ints, input};
use crate::onnx::ir::{Attr, DType, Graph, Node, Tensor, TypeInfo};
use anyhow::{anyhow, bail, Result};
use ndarray::{ArrayD, IxDyn};

pub const OPS: &[OpDef] = &[
    OpDef::removed("Constant", 1, "an initializer", infer_constant),
    OpDef::int_bool("Shape", 1, infer_shape).folds(Fold::Shape(fold_shape)),
    OpDef::int_bool("Size", 1, infer_size).folds(Fold::Shape(fold_size)),
    OpDef::constant("ConstantOfShape", 9, "a constant", infer_constant_of_shape).folds(Fold::Fill(fold_constant_of_shape)),
    OpDef::constant("Range", 11, "a constant", infer_range).folds(Fold::Values(fold_range)),
    OpDef::constant("OneHot", 9, "a constant of the indices", infer_one_hot),
];

fn infer_constant(_: &Graph, _: &Node) -> Result<Vec<TypeInfo>> {
    bail!("Constant nodes are turned into initializers on import")
}

fn infer_shape(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let r = input(g, n, 0)?.rank() as i64;
    let norm = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
    let start = norm(n.int("start", 0));
    let end = norm(n.int("end", r));
    Ok(vec![TypeInfo::new(DType::I64, vec![(end - start).max(0) as usize])])
}

fn infer_size(_: &Graph, _: &Node) -> Result<Vec<TypeInfo>> {
    Ok(vec![TypeInfo::new(DType::I64, vec![])])
}

fn infer_constant_of_shape(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let shape = const_ints(g, n, 0)?.ok_or_else(|| anyhow!("ConstantOfShape without shape"))?;
    let dtype = match n.attrs.get("value") {
        Some(Attr::Tensor(t)) => t.dtype(),
        _ => DType::F32,
    };
    Ok(vec![TypeInfo::new(dtype, shape.iter().map(|&v| v as usize).collect())])
}

fn infer_range(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let scalar = |i: usize| -> Result<f64> {
        const_floats(g, n, i)?.and_then(|v| v.first().copied()).ok_or_else(|| anyhow!("Range without input #{i}"))
    };
    let (s, l, d) = (scalar(0)?, scalar(1)?, scalar(2)?);
    let len = ((l - s) / d).ceil().max(0.0) as usize;
    Ok(vec![TypeInfo::new(input(g, n, 0)?.dtype, vec![len])])
}

fn infer_one_hot(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let ii = input(g, n, 0)?;
    let depth = const_ints(g, n, 1)?.and_then(|v| v.first().copied()).ok_or_else(|| anyhow!("OneHot without depth"))?.max(0) as usize;
    let r = ii.rank() + 1;
    let a = axis(n.int("axis", -1), r)?;
    let mut s = ii.shape.clone();
    s.insert(a, depth);
    Ok(vec![TypeInfo::new(input(g, n, 2)?.dtype, s)])
}

/// The dimensions of the input.
fn input_dims(g: &Graph, n: &Node) -> Result<Vec<i64>> {
    let s = g.shape(n.input(0).ok_or_else(|| anyhow!("{} without input", n.describe()))?)?;
    Ok(s.iter().map(|&d| d as i64).collect())
}

fn fold_shape(g: &Graph, n: &Node) -> Result<Tensor> {
    let v = input_dims(g, n)?;
    let r = v.len() as i64;
    let norm = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) } as usize;
    let (a, b) = (norm(n.int("start", 0)), norm(n.int("end", r)));
    Ok(Tensor::from_i64(&v[a..b.max(a)]))
}

fn fold_size(g: &Graph, n: &Node) -> Result<Tensor> {
    let v = input_dims(g, n)?;
    Ok(Tensor::I64(ArrayD::from_elem(IxDyn(&[]), v.iter().product())))
}

fn fold_constant_of_shape(_: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let v = match n.attrs.get("value") {
        Some(Attr::Tensor(t)) => t.to_f64_vec().first().copied().unwrap_or(0.0),
        _ => 0.0,
    };
    Ok(ArrayD::from_elem(IxDyn(shape), v))
}

fn fold_range(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let s = arg(g, n, 0)?.iter().next().copied().unwrap_or(0.0);
    let d = arg(g, n, 2)?.iter().next().copied().unwrap_or(1.0);
    Ok(ArrayD::from_shape_vec(IxDyn(shape), (0..shape[0]).map(|i| s + d * i as f64).collect())?)
}
