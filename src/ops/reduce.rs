//! Reductions. The output gradient is reshaped to the keepdims form and expanded back to
//! the input shape, then multiplied by the local derivative of the reduction. Axes are
//! read in either form (attribute or constant input) with `reduce_axes`; an empty axes
//! list with `noop_with_empty_axes = 1` makes the op an identity.

use super::{Fold, OpDef};
use crate::onnx::fold::arg;
use crate::onnx::infer::{axis, input, same_as_input};
use crate::onnx::ir::{DType, Graph, TypeInfo};
use ndarray::{ArrayD, Axis, IxDyn};
use super::{gy0, Grads};
use crate::onnx::builder::Builder;
use crate::onnx::infer::reduce_axes;
use crate::onnx::ir::{Attr, Node};
use anyhow::Result;

pub const OPS: &[OpDef] = &[
    OpDef::rule("ReduceSum", 1, "axes as attribute (< 13) or input", infer_reduce, reduce_sum).folds(Fold::Values(fold_reduce_sum)),
    OpDef::rule("ReduceMean", 1, "axes as attribute (< 18) or input", infer_reduce, reduce_mean),
    OpDef::rule("ReduceMax", 1, "ties share the gradient", infer_reduce, reduce_max_min).folds(Fold::Values(fold_reduce_max)),
    OpDef::rule("ReduceMin", 1, "ties share the gradient", infer_reduce, reduce_max_min).folds(Fold::Values(fold_reduce_min)),
    OpDef::rule("ReduceSumSquare", 1, "", infer_reduce, reduce_sum_square),
    OpDef::rule("ReduceL1", 1, "", infer_reduce, reduce_l1),
    OpDef::rule("ReduceL2", 1, "", infer_reduce, reduce_l2),
    OpDef::rule("ReduceLogSumExp", 1, "", infer_reduce, reduce_log_sum_exp),
    OpDef::rule("CumSum", 11, "exclusive, reverse, negative axis", same_as_input, cumsum),
    OpDef::no_rule_yet("ReduceProd", 1, infer_reduce).folds(Fold::Values(fold_reduce_prod)),
    OpDef::int_bool("ArgMax", 1, infer_arg),
    OpDef::int_bool("ArgMin", 1, infer_arg),
];

fn infer_reduce(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let axes = reduce_axes(g, n, xi.rank())?;
    let keep = n.int("keepdims", 1) == 1;
    let mut s = Vec::new();
    for (i, &d) in xi.shape.iter().enumerate() {
        if axes.contains(&i) {
            if keep {
                s.push(1);
            }
        } else {
            s.push(d);
        }
    }
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

fn infer_arg(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let a = axis(n.int("axis", 0), xi.rank())?;
    let mut s = xi.shape.clone();
    if n.int("keepdims", 1) == 1 {
        s[a] = 1;
    } else {
        s.remove(a);
    }
    Ok(vec![TypeInfo::new(DType::I64, s)])
}

/// Reduces the constant input along each reduced axis, last first.
fn fold_reduce(g: &Graph, n: &Node, shape: &[usize], reduce: impl Fn(&ArrayD<f64>, Axis) -> ArrayD<f64>) -> Result<ArrayD<f64>> {
    let data = arg(g, n, 0)?;
    let axes = reduce_axes(g, n, data.ndim())?;
    let mut cur = data;
    for &a in axes.iter().rev() {
        cur = reduce(&cur, Axis(a));
    }
    Ok(cur.into_shape_with_order(IxDyn(shape))?)
}

fn fold_reduce_sum(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_reduce(g, n, shape, |c, a| c.sum_axis(a))
}

fn fold_reduce_prod(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_reduce(g, n, shape, |c, a| c.map_axis(a, |v| v.iter().product()))
}

fn fold_reduce_max(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_reduce(g, n, shape, |c, a| c.map_axis(a, |v| v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)))
}

fn fold_reduce_min(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_reduce(g, n, shape, |c, a| c.map_axis(a, |v| v.iter().cloned().fold(f64::INFINITY, f64::min)))
}

/// The reduced axes and the input shape of a Reduce* node.
fn axes_and_shape(b: &Builder, n: &Node) -> Result<(Vec<usize>, Vec<usize>)> {
    let xs = b.shape(&n.inputs[0])?;
    let axes = reduce_axes(b.g, n, xs.len())?;
    Ok((axes, xs))
}

/// `t` (shaped like the reduction's output) broadcast back to the input shape `xs`.
fn expand_back(b: &mut Builder, t: &str, axes: &[usize], xs: &[usize]) -> Result<String> {
    let keep: Vec<usize> = xs.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
    let r = b.reshape(t, &keep)?;
    b.expand(&r, xs)
}

/// Only input 0 (the data) gets a gradient; the axes input, if any, is integer.
fn data_only(n: &Node, gx: String) -> Vec<Option<String>> {
    let mut out = vec![None; n.inputs.len()];
    out[0] = Some(gx);
    out
}

/// The output gradient expanded to the input shape.
fn expanded_gy(b: &mut Builder, n: &Node, gy: &[Option<String>]) -> Result<(String, Vec<usize>, Vec<usize>)> {
    let (axes, xs) = axes_and_shape(b, n)?;
    let g = expand_back(b, gy0(gy)?, &axes, &xs)?;
    Ok((g, axes, xs))
}

/// y = Σ_A x: dx = expand(g).
fn reduce_sum(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (g, _, _) = expanded_gy(b, n, gy)?;
    Ok(data_only(n, g))
}

/// y = Σ_A x / N: dx = expand(g) / N, N the number of reduced elements.
fn reduce_mean(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (g, axes, xs) = expanded_gy(b, n, gy)?;
    let count: usize = axes.iter().map(|&a| xs[a]).product();
    let gx = if count == 1 { g } else { b.mul_scalar(&g, 1.0 / count as f64)? };
    Ok(data_only(n, gx))
}

/// y = max_A x (or min): dx = expand(g)·[x = y] / #{x = y}, the gradient split evenly
/// between tied extrema (PyTorch's `amax`/`amin` convention; `max(dim)` would route it
/// to a single index instead).
fn reduce_max_min(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (g, axes, xs) = expanded_gy(b, n, gy)?;
    let y = expand_back(b, &n.outputs[0], &axes, &xs)?;
    let x = &n.inputs[0];
    let eq = b.op("Equal", &[x, &y], vec![])?;
    let m = b.mask(&eq, x)?;
    let count = b.reduce_sum(&m, &axes, true)?;
    let share = b.div(&m, &count)?;
    Ok(data_only(n, b.mul(&g, &share)?))
}

/// y = Σ_A x²: dx = 2x·expand(g).
fn reduce_sum_square(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (g, _, _) = expanded_gy(b, n, gy)?;
    let x2 = b.mul_scalar(&n.inputs[0], 2.0)?;
    Ok(data_only(n, b.mul(&g, &x2)?))
}

/// y = Σ_A |x|: dx = sign(x)·expand(g) (sign(0) = 0, as PyTorch).
fn reduce_l1(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (g, _, _) = expanded_gy(b, n, gy)?;
    let s = b.op("Sign", &[&n.inputs[0]], vec![])?;
    Ok(data_only(n, b.mul(&g, &s)?))
}

/// y = √(Σ_A x²): dx = x·expand(g / y), and 0 where y = 0 (PyTorch's `norm_backward`).
/// There x = 0, so dividing by y + [y = 0] instead of y gives exactly that.
fn reduce_l2(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (axes, xs) = axes_and_shape(b, n)?;
    let y = &n.outputs[0];
    let zero = b.scalar_like(y, 0.0)?;
    let is0 = b.op("Equal", &[y, &zero], vec![])?;
    let m = b.mask(&is0, y)?;
    let denom = b.add(y, &m)?;
    let q = b.div(gy0(gy)?, &denom)?;
    let q = expand_back(b, &q, &axes, &xs)?;
    Ok(data_only(n, b.mul(&q, &n.inputs[0])?))
}

/// y = log Σ_A exp x: dx = expand(g)·exp(x − expand(y)).
fn reduce_log_sum_exp(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (g, axes, xs) = expanded_gy(b, n, gy)?;
    let y = expand_back(b, &n.outputs[0], &axes, &xs)?;
    let d = b.sub(&n.inputs[0], &y)?;
    let p = b.op("Exp", &[&d], vec![])?;
    Ok(data_only(n, b.mul(&g, &p)?))
}

/// CumSum along `axis`: each input feeds the outputs after it (or, reversed, before it),
/// so dx is the cumulative sum of gy in the other direction, with `exclusive` kept.
fn cumsum(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let reverse = n.int("reverse", 0) == 1;
    let attrs = vec![("exclusive", Attr::Int(n.int("exclusive", 0))), ("reverse", Attr::Int(!reverse as i64))];
    let dx = b.op("CumSum", &[g, &n.inputs[1]], attrs)?;
    Ok(vec![Some(dx), None])
}

#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_op, rand_away_from_zero, rand_distinct, rand_tensor, Arg};
    use crate::onnx::ir::{Attr, DType, Tensor};

    const TOL: f64 = 1e-6;

    fn axes_attr(a: &[i64]) -> (&'static str, Attr) {
        ("axes", Attr::Ints(a.to_vec()))
    }

    fn keep(k: i64) -> (&'static str, Attr) {
        ("keepdims", Attr::Int(k))
    }

    #[test]
    fn reduce_sum_axes_input_keepdims() {
        for k in [0, 1] {
            let args = [Arg::Var(rand_tensor(&[2, 3, 4], 1)), Arg::Const(Tensor::from_i64(&[0, -1]))];
            check_op("ReduceSum", &args, vec![keep(k)], 1, true, TOL).unwrap();
        }
    }

    #[test]
    fn reduce_sum_all_axes() {
        for k in [0, 1] {
            check_op("ReduceSum", &[Arg::Var(rand_tensor(&[2, 3], 1))], vec![keep(k)], 1, true, TOL).unwrap();
        }
    }

    #[test]
    fn reduce_sum_noop_with_empty_axes() {
        let args = [Arg::Var(rand_tensor(&[2, 3], 1)), Arg::Const(Tensor::from_i64(&[]))];
        check_op("ReduceSum", &args, vec![("noop_with_empty_axes", Attr::Int(1))], 1, true, TOL).unwrap();
    }

    #[test]
    fn reduce_mean_keepdims() {
        for k in [0, 1] {
            let args = [Arg::Var(rand_tensor(&[2, 3, 4], 1))];
            check_op("ReduceMean", &args, vec![axes_attr(&[1]), keep(k)], 1, true, TOL).unwrap();
            check_op("ReduceMean", &args, vec![axes_attr(&[0, 2]), keep(k)], 1, true, TOL).unwrap();
        }
    }

    #[test]
    fn reduce_max_min_keepdims() {
        for op in ["ReduceMax", "ReduceMin"] {
            for k in [0, 1] {
                let args = [Arg::Var(rand_distinct(&[2, 3, 4], 1, 0.1))];
                check_op(op, &args, vec![axes_attr(&[1]), keep(k)], 1, true, TOL).unwrap();
                check_op(op, &args, vec![keep(k)], 1, true, TOL).unwrap();
            }
        }
    }

    #[test]
    fn reduce_sum_square() {
        let args = [Arg::Var(rand_tensor(&[2, 3, 4], 1))];
        check_op("ReduceSumSquare", &args, vec![axes_attr(&[0, 2]), keep(0)], 1, true, TOL).unwrap();
    }

    #[test]
    fn reduce_l1() {
        let args = [Arg::Var(rand_away_from_zero(&[2, 3, 4], 1, 0.1))];
        check_op("ReduceL1", &args, vec![axes_attr(&[1]), keep(1)], 1, true, TOL).unwrap();
    }

    #[test]
    fn reduce_l2() {
        let args = [Arg::Var(rand_tensor(&[2, 3, 4], 1))];
        check_op("ReduceL2", &args, vec![axes_attr(&[2]), keep(0)], 1, true, TOL).unwrap();
    }

    #[test]
    fn reduce_log_sum_exp() {
        let args = [Arg::Var(rand_tensor(&[2, 3, 4], 1))];
        check_op("ReduceLogSumExp", &args, vec![axes_attr(&[0, 1]), keep(1)], 1, true, TOL).unwrap();
    }

    #[test]
    fn cumsum_exclusive_reverse_negative_axis() {
        let x = rand_tensor(&[2, 3, 4], 1);
        for (ax, excl, rev) in [(1, 0, 0), (-1, 1, 0), (0, 0, 1), (-2, 1, 1), (2, 1, 1)] {
            let args = [Arg::Var(x.clone()), Arg::Const(Tensor::scalar(DType::I64, ax as f64))];
            let attrs = vec![("exclusive", Attr::Int(excl)), ("reverse", Attr::Int(rev))];
            check_op("CumSum", &args, attrs, 1, true, TOL).unwrap();
        }
    }
}
