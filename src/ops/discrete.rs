//! Elementwise ops with integer, boolean or piecewise-constant results: comparisons,
//! logic, rounding, Sign and Mod. No gradient flows through them (Mod has no rule yet).

use super::{Fold, OpDef};
use crate::onnx::fold::{arg, fold_binary};
use crate::onnx::infer::{broadcast, broadcast_inputs, input, same_as_input};
use crate::onnx::ir::{DType, Graph, Node, TypeInfo};
use anyhow::Result;
use ndarray::ArrayD;

pub const OPS: &[OpDef] = &[
    OpDef::int_bool("Equal", 1, compare).folds(Fold::Values(fold_equal)),
    OpDef::int_bool("Less", 1, compare).folds(Fold::Values(fold_less)),
    OpDef::int_bool("Greater", 1, compare).folds(Fold::Values(fold_greater)),
    OpDef::int_bool("LessOrEqual", 12, compare),
    OpDef::int_bool("GreaterOrEqual", 12, compare),
    OpDef::int_bool("Not", 1, same_as_input).folds(Fold::Values(fold_not)),
    OpDef::int_bool("And", 1, broadcast_inputs).folds(Fold::Values(fold_and)),
    OpDef::int_bool("Or", 1, broadcast_inputs).folds(Fold::Values(fold_or)),
    OpDef::int_bool("Xor", 1, broadcast_inputs),
    OpDef::int_bool("IsNaN", 9, is_class),
    OpDef::int_bool("IsInf", 10, is_class),
    OpDef::piecewise("Floor", 6, same_as_input).folds(Fold::Values(fold_floor)),
    OpDef::piecewise("Ceil", 6, same_as_input).folds(Fold::Values(fold_ceil)),
    OpDef::piecewise("Round", 11, same_as_input),
    OpDef::piecewise("Sign", 9, same_as_input).folds(Fold::Values(fold_sign)),
    OpDef::no_rule_yet("Mod", 10, broadcast_inputs).folds(Fold::Values(fold_mod)),
];

/// A boolean at the two inputs' broadcast shape.
fn compare(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    Ok(vec![TypeInfo::new(DType::Bool, broadcast(&input(g, n, 0)?.shape, &input(g, n, 1)?.shape)?)])
}

/// A boolean per element (IsNaN, IsInf).
fn is_class(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    Ok(vec![TypeInfo::new(DType::Bool, input(g, n, 0)?.shape.clone())])
}

fn fold_equal(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| (a == b) as u8 as f64)
}

fn fold_less(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| (a < b) as u8 as f64)
}

fn fold_greater(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| (a > b) as u8 as f64)
}

fn fold_and(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| (a != 0.0 && b != 0.0) as u8 as f64)
}

fn fold_or(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| (a != 0.0 || b != 0.0) as u8 as f64)
}

fn fold_not(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(|a| (a == 0.0) as u8 as f64))
}

fn fold_floor(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(f64::floor))
}

fn fold_ceil(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(f64::ceil))
}

fn fold_sign(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(|a| if a > 0.0 { 1.0 } else if a < 0.0 { -1.0 } else { 0.0 }))
}

/// fmod = 0: the sign of the divisor (Python's %, integers only); 1: C's fmod.
fn fold_mod(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    if n.int("fmod", 0) != 0 {
        return fold_binary(g, n, shape, |a, b| a % b);
    }
    fold_binary(g, n, shape, |a, b| {
        let r = a % b;
        if r != 0.0 && (r < 0.0) != (b < 0.0) { r + b } else { r }
    })
}
