//! Elementwise arithmetic with numpy broadcasting. Each gradient is summed back to its
//! input's shape (`unbroadcast`).

use super::{gy0, Rule};
use crate::onnx::builder::Builder;
use crate::onnx::ir::Node;
use anyhow::Result;

type Grads = Result<Vec<Option<String>>>;

pub fn rule(op: &str) -> Option<Rule> {
    Some(match op {
        "Add" => add,
        "Sub" => sub,
        "Mul" => mul,
        "Div" => div,
        "Neg" => neg,
        "Sum" => sum,
        "Identity" => identity,
        _ => return None,
    })
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

/// Variadic Sum: g to every input.
fn sum(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let mut out = Vec::new();
    for i in 0..n.inputs.len() {
        out.push(if wants[i] {
            let s = input_shape(b, n, i)?;
            Some(b.unbroadcast(g, &s)?)
        } else {
            None
        });
    }
    Ok(out)
}

fn identity(_b: &mut Builder, _n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    Ok(vec![Some(gy0(gy)?.to_string())])
}

#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_op, rand_away_from_zero, rand_tensor, Arg};

    const TOL: f64 = 1e-6;

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
}
