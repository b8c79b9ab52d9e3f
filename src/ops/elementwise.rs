//! Elementwise arithmetic and math functions with numpy broadcasting. Each gradient is
//! summed back to its input's shape (`unbroadcast`). Conventions at kinks and ties follow
//! PyTorch: Abs'(0) = 0, Max/Min split the gradient evenly between tied inputs, Pow's
//! exponent gradient is 0 where the base is 0.

use super::{Fold, OpDef};
use crate::onnx::fold::{arg, binary, fold_binary};
use crate::onnx::infer::{broadcast, broadcast_inputs, input, same_as_input};
use crate::onnx::ir::{Graph, TypeInfo};
use anyhow::anyhow;
use ndarray::{ArrayD, IxDyn};
use super::{gy0, Grads};
use crate::onnx::builder::Builder;
use crate::onnx::ir::{DType, Node};
use anyhow::Result;

pub const OPS: &[OpDef] = &[
    OpDef::rule("Add", 7, "", broadcast_inputs, add).folds(Fold::Values(fold_add)),
    OpDef::rule("Sub", 7, "", broadcast_inputs, sub).folds(Fold::Values(fold_sub)),
    OpDef::rule("Mul", 7, "", broadcast_inputs, mul).folds(Fold::Values(fold_mul)),
    OpDef::rule("Div", 7, "", broadcast_inputs, div).folds(Fold::Values(fold_div)),
    OpDef::rule("Neg", 6, "", same_as_input, neg).folds(Fold::Values(fold_neg)),
    OpDef::rule("Pow", 7, "", broadcast_inputs, pow).folds(Fold::Values(fold_pow)),
    OpDef::rule("Abs", 6, "", same_as_input, abs).folds(Fold::Values(fold_abs)),
    OpDef::rule("Sqrt", 6, "", same_as_input, sqrt).folds(Fold::Values(fold_sqrt)),
    OpDef::rule("Reciprocal", 6, "", same_as_input, reciprocal).folds(Fold::Values(fold_reciprocal)),
    OpDef::rule("Exp", 6, "", same_as_input, exp),
    OpDef::rule("Log", 6, "", same_as_input, log),
    OpDef::rule("Erf", 9, "", same_as_input, erf),
    OpDef::rule("Sin", 7, "", same_as_input, sin),
    OpDef::rule("Cos", 7, "", same_as_input, cos),
    OpDef::rule("Tan", 7, "", same_as_input, tan).folds(Fold::Values(fold_tan)),
    OpDef::rule("Softplus", 1, "", same_as_input, softplus),
    OpDef::rule("Softsign", 1, "", same_as_input, softsign),
    OpDef::rule("Sum", 8, "variadic, broadcasting", broadcast_inputs, sum),
    OpDef::rule("Mean", 8, "variadic, broadcasting", broadcast_inputs, mean),
    OpDef::rule("Max", 8, "variadic, broadcasting; ties share the gradient", broadcast_inputs, max_min).folds(Fold::Values(fold_max)),
    OpDef::rule("Min", 8, "variadic, broadcasting; ties share the gradient", broadcast_inputs, max_min).folds(Fold::Values(fold_min)),
    OpDef::rule("Where", 9, "gradient to the two branches", infer_where, where_).folds(Fold::Values(fold_where)),
    OpDef::rule("Cast", 6, "gradient between float types only", infer_cast, cast).folds(Fold::Values(fold_identity)),
    OpDef::lowered("CastLike", 15, "Cast", "", infer_cast_like),
    OpDef::removed("Identity", 1, "its input", same_as_input).with_rule(identity).folds(Fold::Values(fold_identity)),
    OpDef::removed("Dropout", 1, "its input (inference; the mask is all ones)", infer_dropout),
];

fn infer_where(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let s = broadcast(&broadcast(&input(g, n, 0)?.shape, &input(g, n, 1)?.shape)?, &input(g, n, 2)?.shape)?;
    Ok(vec![TypeInfo::new(input(g, n, 1)?.dtype, s)])
}

fn infer_cast(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let to = DType::from_onnx(n.int("to", 1) as i32)?;
    Ok(vec![TypeInfo::new(to, input(g, n, 0)?.shape.clone())])
}

fn infer_cast_like(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    Ok(vec![TypeInfo::new(input(g, n, 1)?.dtype, input(g, n, 0)?.shape.clone())])
}

/// The data output and, when asked for, the mask.
fn infer_dropout(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let t = input(g, n, 0)?.clone();
    let mut v = vec![t.clone()];
    if n.outputs.len() > 1 {
        v.push(TypeInfo::new(DType::Bool, t.shape));
    }
    Ok(v)
}

fn fold_identity(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    arg(g, n, 0)
}

fn fold_add(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| a + b)
}

fn fold_sub(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| a - b)
}

fn fold_mul(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, |a, b| a * b)
}

/// Integer division truncates.
fn fold_div(g: &Graph, n: &Node, shape: &[usize], dtype: DType) -> Result<ArrayD<f64>> {
    let int = !dtype.is_float();
    fold_binary(g, n, shape, |a, b| if int { (a / b).trunc() } else { a / b })
}

fn fold_pow(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, f64::powf)
}

/// The first two inputs (exporters' shape arithmetic has no more).
fn fold_max(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, f64::max)
}

fn fold_min(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    fold_binary(g, n, shape, f64::min)
}

fn fold_neg(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(|a| -a))
}

fn fold_abs(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(f64::abs))
}

fn fold_sqrt(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(f64::sqrt))
}

fn fold_reciprocal(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(|a| 1.0 / a))
}

fn fold_where(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let c = arg(g, n, 0)?;
    let c = c.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?.to_owned();
    let a = arg(g, n, 1)?;
    let b = arg(g, n, 2)?;
    let t = binary(&c, &a, shape, |c, a| if c != 0.0 { a } else { f64::NAN })?;
    binary(&t, &b, shape, |t, b| if t.is_nan() { b } else { t })
}

fn input_shape(b: &Builder, n: &Node, i: usize) -> Result<Vec<usize>> {
    b.shape(&n.inputs[i])
}

/// d(a+b): g to both, summed over broadcast axes.
fn add(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let mut out = vec![None, None];
    for i in 0..2 {
        if wants[i] {
            let s = input_shape(b, n, i)?;
            out[i] = Some(b.unbroadcast(g, &s)?);
        }
    }
    Ok(out)
}

/// d(a-b): g, -g.
fn sub(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let mut out = vec![None, None];
    if wants[0] {
        let s = input_shape(b, n, 0)?;
        out[0] = Some(b.unbroadcast(g, &s)?);
    }
    if wants[1] {
        let s = input_shape(b, n, 1)?;
        let ng = b.neg(g)?;
        out[1] = Some(b.unbroadcast(&ng, &s)?);
    }
    Ok(out)
}

/// d(a*b): g*b, g*a.
fn mul(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let mut out = vec![None, None];
    for i in 0..2 {
        if wants[i] {
            let other = n.inputs[1 - i].clone();
            let p = b.mul(g, &other)?;
            let s = input_shape(b, n, i)?;
            out[i] = Some(b.unbroadcast(&p, &s)?);
        }
    }
    Ok(out)
}

/// d(a/b): g/b, -g*a/b².
fn div(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let (x, y) = (n.inputs[0].clone(), n.inputs[1].clone());
    let mut out = vec![None, None];
    let gdb = b.div(g, &y)?;
    if wants[0] {
        let s = input_shape(b, n, 0)?;
        out[0] = Some(b.unbroadcast(&gdb, &s)?);
    }
    if wants[1] {
        // -g*a/b² = -(g/b) * (a/b)
        let q = b.div(&x, &y)?;
        let p = b.mul(&gdb, &q)?;
        let np = b.neg(&p)?;
        let s = input_shape(b, n, 1)?;
        out[1] = Some(b.unbroadcast(&np, &s)?);
    }
    Ok(out)
}

fn neg(b: &mut Builder, _n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    Ok(vec![Some(b.neg(gy0(gy)?)?)])
}

/// `g` summed back to the shape of every wanted input (the variadic ops).
fn to_each(b: &mut Builder, n: &Node, g: &str, wants: &[bool]) -> Grads {
    let mut out = Vec::new();
    for (i, &w) in wants.iter().enumerate() {
        out.push(if w {
            let s = input_shape(b, n, i)?;
            Some(b.unbroadcast(g, &s)?)
        } else {
            None
        });
    }
    Ok(out)
}

/// Variadic Sum: g to every input.
fn sum(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    to_each(b, n, gy0(gy)?, wants)
}

fn identity(_b: &mut Builder, _n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    Ok(vec![Some(gy0(gy)?.to_string())])
}

/// Variadic Mean: g/N to every input.
fn mean(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = b.mul_scalar(gy0(gy)?, 1.0 / n.inputs.len() as f64)?;
    to_each(b, n, &g, wants)
}

/// Variadic Max/Min: g·[x_i = y] / #{k : x_k = y} to input i (ties split evenly).
fn max_min(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    if n.inputs.len() == 1 {
        return Ok(vec![Some(g.to_string())]);
    }
    let y = &n.outputs[0];
    let mut masks = Vec::new();
    for x in &n.inputs {
        let eq = b.op("Equal", &[x, y], vec![])?;
        masks.push(b.mask(&eq, y)?);
    }
    let count = b.sum(&masks)?;
    let share = b.div(g, &count)?;
    let mut out = Vec::new();
    for (i, m) in masks.iter().enumerate() {
        out.push(if wants[i] {
            let p = b.mul(&share, m)?;
            let s = input_shape(b, n, i)?;
            Some(b.unbroadcast(&p, &s)?)
        } else {
            None
        });
    }
    Ok(out)
}

/// y = a^p: da = g·p·a^(p−1) (0 where p = 0, as PyTorch's `pow_backward`),
/// dp = g·y·log a (0 where a = 0; NaN for a < 0, as PyTorch).
fn pow(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let (a, p) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let dt = b.dtype(a)?;
    let mut out = vec![None, None];
    if wants[0] {
        let d = match b.g.constant(p).map(|t| t.cast(dt)) {
            // constant exponent: p = 2 needs no Pow, and the zero mask is known
            Some(pc) => {
                let vals = pc.to_f64_vec();
                let coef = b.constant(pc.clone());
                let ga = b.mul(g, &coef)?;
                if vals.iter().all(|&v| v == 2.0) {
                    b.mul(&ga, a)?
                } else {
                    let pm1 = b.constant(pc.map_float(|v| v - 1.0));
                    let ap = b.op("Pow", &[a, &pm1], vec![])?;
                    let d = b.mul(&ga, &ap)?;
                    if vals.iter().all(|&v| v != 0.0) {
                        d
                    } else {
                        let is0 = b.constant(pc.map_float(|v| (v == 0.0) as u8 as f64).cast(DType::Bool));
                        let zero = b.scalar_like(a, 0.0)?;
                        b.op("Where", &[&is0, &zero, &d], vec![])?
                    }
                }
            }
            None => {
                let pf = b.cast(p, dt)?;
                let one = b.scalar_like(a, 1.0)?;
                let pm1 = b.sub(&pf, &one)?;
                let ap = b.op("Pow", &[a, &pm1], vec![])?;
                let d = b.mul(&pf, &ap)?;
                let d = b.mul(g, &d)?;
                let zero = b.scalar_like(a, 0.0)?;
                let is0 = b.op("Equal", &[&pf, &zero], vec![])?;
                b.op("Where", &[&is0, &zero, &d], vec![])?
            }
        };
        let s = input_shape(b, n, 0)?;
        out[0] = Some(b.unbroadcast(&d, &s)?);
    }
    if wants[1] {
        // log of the base with 1 put where the base is 0, so the product is 0 there
        let zero = b.scalar_like(a, 0.0)?;
        let one = b.scalar_like(a, 1.0)?;
        let is0 = b.op("Equal", &[a, &zero], vec![])?;
        let safe = b.op("Where", &[&is0, &one, a], vec![])?;
        let la = b.op("Log", &[&safe], vec![])?;
        let gyv = b.mul(g, &n.outputs[0])?;
        let d = b.mul(&gyv, &la)?;
        let s = input_shape(b, n, 1)?;
        out[1] = Some(b.unbroadcast(&d, &s)?);
    }
    Ok(out)
}

/// The single input's gradient g·f, f the local derivative.
fn times(b: &mut Builder, gy: &[Option<String>], f: &str) -> Grads {
    Ok(vec![Some(b.mul(gy0(gy)?, f)?)])
}

/// |x|' = sign(x), 0 at 0.
fn abs(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let s = b.op("Sign", &[&n.inputs[0]], vec![])?;
    times(b, gy, &s)
}

/// √x' = 1 / (2y).
fn sqrt(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let q = b.div(gy0(gy)?, &n.outputs[0])?;
    Ok(vec![Some(b.mul_scalar(&q, 0.5)?)])
}

/// (1/x)' = −y².
fn reciprocal(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let y = &n.outputs[0];
    let y2 = b.mul(y, y)?;
    let f = b.neg(&y2)?;
    times(b, gy, &f)
}

/// exp' = y.
fn exp(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    times(b, gy, &n.outputs[0])
}

/// log' = 1/x.
fn log(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    Ok(vec![Some(b.div(gy0(gy)?, &n.inputs[0])?)])
}

/// erf'(x) = 2/√π · exp(−x²).
fn erf(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let x = &n.inputs[0];
    let x2 = b.mul(x, x)?;
    let nx2 = b.neg(&x2)?;
    let e = b.op("Exp", &[&nx2], vec![])?;
    let f = b.mul_scalar(&e, std::f64::consts::FRAC_2_SQRT_PI)?;
    times(b, gy, &f)
}

/// sin' = cos.
fn sin(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let c = b.op("Cos", &[&n.inputs[0]], vec![])?;
    times(b, gy, &c)
}

/// cos' = −sin.
fn cos(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let s = b.op("Sin", &[&n.inputs[0]], vec![])?;
    let f = b.neg(&s)?;
    times(b, gy, &f)
}

/// tan' = 1 + tan², from the forward output.
fn tan(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let y = &n.outputs[0];
    let y2 = b.mul(y, y)?;
    let one = b.scalar_like(y, 1.0)?;
    let d = b.add(&y2, &one)?;
    times(b, gy, &d)
}

fn fold_tan(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.mapv(f64::tan))
}

/// softplus(x) = log(1 + eˣ): softplus' = sigmoid(x) = e^(x − y) (no Sigmoid op: tract
/// has none in float64).
fn softplus(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let d = b.sub(&n.inputs[0], &n.outputs[0])?;
    let s = b.op("Exp", &[&d], vec![])?;
    times(b, gy, &s)
}

/// softsign(x) = x / (1 + |x|): softsign' = 1 / (1 + |x|)².
fn softsign(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let x = &n.inputs[0];
    let ax = b.op("Abs", &[x], vec![])?;
    let one = b.scalar_like(x, 1.0)?;
    let d = b.add(&ax, &one)?;
    let d2 = b.mul(&d, &d)?;
    Ok(vec![Some(b.div(gy0(gy)?, &d2)?)])
}

/// Where(c, x, y): Where(c, g, 0) to x, Where(c, 0, g) to y; none to the condition.
fn where_(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let c = &n.inputs[0];
    let zero = b.scalar_like(g, 0.0)?;
    let mut out = vec![None, None, None];
    for i in 1..3 {
        if wants[i] {
            let picked = if i == 1 { [c, g, &zero] } else { [c, &zero, g] };
            let p = b.op("Where", &picked, vec![])?;
            let s = input_shape(b, n, i)?;
            out[i] = Some(b.unbroadcast(&p, &s)?);
        }
    }
    Ok(out)
}

/// Cast between float types: the gradient cast back to the input's type. Casts to or
/// from integers and booleans carry no gradient.
fn cast(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let (xt, yt) = (b.dtype(&n.inputs[0])?, b.dtype(&n.outputs[0])?);
    if !xt.is_float() || !yt.is_float() {
        return Ok(vec![None]);
    }
    Ok(vec![Some(b.cast(gy0(gy)?, xt)?)])
}

#[cfg(test)]
pub(super) mod tests {
    /// Finite-difference check of CastLike's rewrite at import (into Cast).
    mod lowered {
        use crate::autodiff::check::{check_lowered, rand_tensor, Arg};
        use crate::onnx::ir::{DType, Tensor};

        #[test]
        fn cast_like() {
            let like = Arg::Const(Tensor::scalar(DType::F64, 0.0));
            check_lowered("CastLike", &[Arg::Var(rand_tensor(&[3, 2], 1)), like], vec![], 15, true, 1e-6).unwrap();
        }
    }

    use crate::autodiff::check::{check_graph, check_op, rand_away_from_zero, rand_tensor, single_op_graph, Arg};
    use crate::onnx::builder::Builder;
    use crate::onnx::ir::{Attr, DType, Tensor};

    const TOL: f64 = 1e-6;

    fn unary(op: &str, x: Tensor) {
        check_op(op, &[Arg::Var(x)], vec![], 1, true, TOL).unwrap();
    }

    /// Checks `op` on float32 between two casts, for ops tract only runs in float32
    /// (Sigmoid, LeakyRelu, HardSwish, Erf). Float32 rounding (~1e-7) is amplified
    /// by central differences (ε = 1e-5) to ~1e-2, hence the loose tolerance: this
    /// catches wrong formulas, not last-digit errors.
    pub(in crate::ops) fn check_via_f32(op: &str, x: Tensor, attrs: Vec<(&'static str, Attr)>) {
        let to = |d: DType| vec![("to", Attr::Int(d.onnx_code() as i64))];
        let (mut g, _) = single_op_graph("Cast", &[Arg::Var(x.clone())], to(DType::F32), 1).unwrap();
        let mut b = Builder::new(&mut g, "f32");
        let y = b.op(op, &["out0"], attrs).unwrap();
        let y = b.op("Cast", &[&y], to(DType::F64)).unwrap();
        g.outputs = vec![y.clone()];
        check_graph(&g, &[y], &[("in0".into(), x)], true, 5e-2).unwrap();
    }

    /// Uniform in [lo, hi).
    fn rand_in(shape: &[usize], seed: u64, lo: f64, hi: f64) -> Tensor {
        rand_tensor(shape, seed).map_float(|v| lo + (hi - lo) * (v + 1.0) / 2.0)
    }

    #[test]
    fn add_sub_mul_broadcast() {
        for op in ["Add", "Sub", "Mul"] {
            let args = [Arg::Var(rand_tensor(&[2, 3, 4], 1)), Arg::Var(rand_tensor(&[3, 1], 2))];
            check_op(op, &args, vec![], 1, true, TOL).unwrap();
        }
    }

    #[test]
    fn div_second_order() {
        let args = [Arg::Var(rand_tensor(&[2, 3], 1)), Arg::Var(rand_away_from_zero(&[3], 2, 0.5))];
        check_op("Div", &args, vec![], 1, true, TOL).unwrap();
    }

    #[test]
    fn neg_sum() {
        check_op("Neg", &[Arg::Var(rand_tensor(&[4], 1))], vec![], 1, true, TOL).unwrap();
        let args = [Arg::Var(rand_tensor(&[2, 3], 1)), Arg::Var(rand_tensor(&[3], 2)), Arg::Var(rand_tensor(&[2, 1], 3))];
        check_op("Sum", &args, vec![], 1, true, TOL).unwrap();
    }

    #[test]
    fn mean_variadic_broadcast() {
        let args = [Arg::Var(rand_tensor(&[2, 3], 1)), Arg::Var(rand_tensor(&[3], 2)), Arg::Var(rand_tensor(&[2, 1], 3))];
        check_op("Mean", &args, vec![], 1, true, TOL).unwrap();
    }

    #[test]
    fn max_min_variadic_broadcast() {
        for op in ["Max", "Min"] {
            let args =
                [Arg::Var(rand_tensor(&[2, 3, 4], 1)), Arg::Var(rand_tensor(&[3, 1], 2)), Arg::Var(rand_tensor(&[4], 3))];
            check_op(op, &args, vec![], 1, true, TOL).unwrap();
            check_op(op, &args[..1], vec![], 1, true, TOL).unwrap();
        }
    }

    /// Max(x, x) = x: each tied input gets g/2, which sum to g.
    #[test]
    fn max_min_ties_split_evenly() {
        for op in ["Max", "Min"] {
            let x = rand_tensor(&[2, 3], 1);
            let (mut g, outs) = single_op_graph(op, &[Arg::Var(x.clone()), Arg::Var(x.clone())], vec![], 1).unwrap();
            g.nodes[0].inputs[1] = "in0".into();
            g.inputs.retain(|i| i != "in1");
            check_graph(&g, &outs, &[("in0".into(), x)], true, TOL).unwrap();
        }
    }

    #[test]
    fn pow_both_inputs() {
        let args = [Arg::Var(rand_in(&[2, 3], 1, 0.5, 2.0)), Arg::Var(rand_tensor(&[3], 2))];
        check_op("Pow", &args, vec![], 1, true, TOL).unwrap();
    }

    #[test]
    fn pow_constant_exponent() {
        let x = rand_away_from_zero(&[2, 3], 1, 0.3);
        for p in [Tensor::scalar(DType::F64, 2.0), Tensor::scalar(DType::F64, 3.0), Tensor::from_f64(DType::F64, &[3], vec![0.0, 1.0, -2.0])] {
            check_op("Pow", &[Arg::Var(x.clone()), Arg::Const(p)], vec![], 1, true, TOL).unwrap();
        }
    }

    #[test]
    fn abs() {
        unary("Abs", rand_away_from_zero(&[2, 3], 1, 0.05));
    }

    #[test]
    fn sqrt() {
        unary("Sqrt", rand_in(&[2, 3], 1, 0.2, 2.0));
    }

    #[test]
    fn reciprocal() {
        unary("Reciprocal", rand_away_from_zero(&[2, 3], 1, 0.3));
    }

    #[test]
    fn exp() {
        unary("Exp", rand_tensor(&[2, 3], 1));
    }

    #[test]
    fn log() {
        unary("Log", rand_in(&[2, 3], 1, 0.2, 2.0));
    }

    #[test]
    fn erf() {
        check_via_f32("Erf", rand_tensor(&[2, 3], 1).map_float(|v| 2.0 * v), vec![]);
    }

    #[test]
    fn sin_cos() {
        unary("Sin", rand_tensor(&[2, 3], 1).map_float(|v| 3.0 * v));
        unary("Cos", rand_tensor(&[2, 3], 1).map_float(|v| 3.0 * v));
        unary("Tan", rand_tensor(&[2, 3], 1));
    }

    #[test]
    fn softplus() {
        unary("Softplus", rand_tensor(&[2, 3], 1).map_float(|v| 3.0 * v));
    }

    #[test]
    fn softsign() {
        unary("Softsign", rand_away_from_zero(&[2, 3], 1, 0.05));
    }

    #[test]
    fn where_broadcast() {
        let c = Tensor::from_f64(DType::F64, &[2, 1, 4], vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]).cast(DType::Bool);
        let args = [Arg::Const(c), Arg::Var(rand_tensor(&[3, 1], 1)), Arg::Var(rand_tensor(&[2, 3, 4], 2))];
        check_op("Where", &args, vec![], 1, true, TOL).unwrap();
    }

    /// x → Cast(to) → Cast(float64): the gradient crosses the first cast.
    fn cast_round_trip(to: DType, tol: f64) {
        let x = rand_tensor(&[2, 3], 1);
        let to_attr = |d: DType| vec![("to", Attr::Int(d.onnx_code() as i64))];
        let (mut g, _) = single_op_graph("Cast", &[Arg::Var(x.clone())], to_attr(to), 1).unwrap();
        let y = Builder::new(&mut g, "back").op("Cast", &["out0"], to_attr(DType::F64)).unwrap();
        g.outputs = vec![y.clone()];
        check_graph(&g, &[y], &[("in0".into(), x)], true, tol).unwrap();
    }

    #[test]
    fn cast_float64() {
        cast_round_trip(DType::F64, TOL);
    }

    /// Through float32 the function itself is only accurate to ~1e-7, which central
    /// differences with ε = 1e-5 amplify to ~1e-2.
    #[test]
    fn cast_float32() {
        cast_round_trip(DType::F32, 5e-2);
    }

    /// Through an integer the gradient is zero (no gradient flows).
    #[test]
    fn cast_int64() {
        cast_round_trip(DType::I64, TOL);
    }
}
