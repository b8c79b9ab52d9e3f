//! Shape inference over a whole graph, folding what is known before running: `Shape` of a
//! static tensor, and the small index arithmetic exporters build from it (Gather, Concat,
//! Unsqueeze, Cast, ...). Folded nodes become initializers, so every Reshape/Expand/Slice
//! input that carries a shape is a constant once a batch size is fixed.

use super::infer::{axis, infer_node, slice_params};
use super::ir::{DType, Graph, Node, Tensor};
use anyhow::{anyhow, bail, Context, Result};
use ndarray::{ArrayD, Axis, IxDyn, SliceInfoElem};

/// Largest tensor a constant-producing op (ConstantOfShape, Expand, Tile) is folded into.
const MAX_FOLDED_FILL: usize = 1 << 16;

/// Infers the type of every tensor and folds constant sub-expressions, in node order.
pub fn infer_and_fold(g: &mut Graph) -> Result<()> {
    let nodes = std::mem::take(&mut g.nodes);
    for n in nodes {
        push_node(g, n)?;
    }
    Ok(())
}

/// Appends `n` to `g`: as initializers when it folds to constants, else as a node with
/// its output types inferred.
pub fn push_node(g: &mut Graph, n: Node) -> Result<()> {
    if let Some(values) = try_fold(g, &n)? {
        for (name, t) in n.outputs.iter().zip(values) {
            g.set_initializer(name, t);
        }
        return Ok(());
    }
    let infos = infer_node(g, &n)?;
    for (name, info) in n.outputs.iter().zip(infos) {
        if !name.is_empty() {
            g.types.insert(name.clone(), info);
        }
    }
    g.nodes.push(n);
    Ok(())
}

fn foldable(op: &str) -> bool {
    matches!(
        op,
        "Identity" | "Cast" | "Gather" | "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" | "Concat" | "Slice"
            | "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Neg" | "Abs" | "Floor" | "Ceil" | "Sqrt"
            | "Reciprocal" | "Equal" | "Less" | "Greater" | "Not" | "And" | "Or" | "Where" | "ConstantOfShape"
            | "Range" | "Expand" | "Tile" | "Transpose" | "ReduceProd" | "ReduceSum" | "ReduceMax" | "ReduceMin"
            | "Sign" | "Pow" | "Mod"
    )
}

fn try_fold(g: &Graph, n: &Node) -> Result<Option<Vec<Tensor>>> {
    if n.op == "Shape" || n.op == "Size" {
        let s = g.shape(n.input(0).ok_or_else(|| anyhow!("{} without input", n.describe()))?)?;
        let v: Vec<i64> = s.iter().map(|&d| d as i64).collect();
        if n.op == "Size" {
            return Ok(Some(vec![Tensor::I64(ArrayD::from_elem(IxDyn(&[]), v.iter().product()))]));
        }
        let r = v.len() as i64;
        let norm = |x: i64| if x < 0 { (x + r).max(0) } else { x.min(r) } as usize;
        let (a, b) = (norm(n.int("start", 0)), norm(n.int("end", r)));
        return Ok(Some(vec![Tensor::from_i64(&v[a..b.max(a)])]));
    }
    if !foldable(&n.op) || n.outputs.len() != 1 {
        return Ok(None);
    }
    if !n.inputs.iter().all(|i| i.is_empty() || g.constant(i).is_some()) {
        return Ok(None);
    }
    let info = infer_node(g, n)?;
    if matches!(n.op.as_str(), "ConstantOfShape" | "Expand" | "Tile") && info[0].numel() > MAX_FOLDED_FILL {
        return Ok(None);
    }
    crate::memory::check(format!("{}: folding {} into a constant {:?}", g.source, n.describe(), info[0].shape), info[0].bytes().saturating_mul(2))?;
    let t = eval(g, n, &info[0].shape, info[0].dtype)
        .with_context(|| format!("{}: cannot fold constant {}", g.source, n.describe()))?;
    Ok(Some(vec![t]))
}

fn arg(g: &Graph, n: &Node, i: usize) -> Result<ArrayD<f64>> {
    let name = n.input(i).ok_or_else(|| anyhow!("missing input #{i}"))?;
    Ok(g.constant(name).ok_or_else(|| anyhow!("input not constant"))?.to_f64_array())
}

fn binary(a: &ArrayD<f64>, b: &ArrayD<f64>, shape: &[usize], f: impl Fn(f64, f64) -> f64) -> Result<ArrayD<f64>> {
    let a = a.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?;
    let b = b.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?;
    let mut out = ArrayD::zeros(IxDyn(shape));
    ndarray::Zip::from(&mut out).and(&a).and(&b).for_each(|o, &x, &y| *o = f(x, y));
    Ok(out)
}

fn eval(g: &Graph, n: &Node, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let int = !dtype.is_float();
    let x = || arg(g, n, 0);
    let out: ArrayD<f64> = match n.op.as_str() {
        "Identity" | "Cast" => x()?,
        "Unsqueeze" | "Squeeze" | "Reshape" | "Flatten" => x()?.into_shape_with_order(IxDyn(shape))?,
        "Gather" => {
            let data = x()?;
            let a = axis(n.int("axis", 0), data.ndim())?;
            let idx = arg(g, n, 1)?;
            let dim = data.shape()[a] as i64;
            let mut parts = Vec::new();
            for &i in idx.iter() {
                let i = i as i64;
                let i = if i < 0 { i + dim } else { i };
                if i < 0 || i >= dim {
                    bail!("Gather index out of range");
                }
                parts.push(data.index_axis(Axis(a), i as usize).to_owned());
            }
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            let stacked = if views.is_empty() {
                ArrayD::zeros(IxDyn(shape))
            } else {
                ndarray::stack(Axis(a), &views)?
            };
            stacked.into_shape_with_order(IxDyn(shape))?
        }
        "Concat" => {
            let a = axis(n.int("axis", 0), shape.len())?;
            let parts: Vec<ArrayD<f64>> = (0..n.inputs.len()).map(|i| arg(g, n, i)).collect::<Result<_>>()?;
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            ndarray::concatenate(Axis(a), &views)?
        }
        "Slice" => {
            let data = x()?;
            let p = slice_params(g, n, data.shape())?;
            let info: Vec<SliceInfoElem> = p
                .iter()
                .map(|&(s, e, st)| {
                    if st > 0 {
                        SliceInfoElem::Slice { start: s as isize, end: Some(e as isize), step: st as isize }
                    } else {
                        // ndarray: negative step walks the range [end+1, start+1) backwards
                        SliceInfoElem::Slice { start: (e + 1) as isize, end: Some((s + 1) as isize), step: st as isize }
                    }
                })
                .collect();
            data.slice(info.as_slice()).to_owned()
        }
        "Transpose" => {
            let data = x()?;
            let perm: Vec<usize> = match n.ints("perm") {
                Some(p) => p.iter().map(|&v| v as usize).collect(),
                None => (0..data.ndim()).rev().collect(),
            };
            data.permuted_axes(IxDyn(&perm)).as_standard_layout().to_owned()
        }
        "Add" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| a + b)?,
        "Sub" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| a - b)?,
        "Mul" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| a * b)?,
        "Div" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| if int { (a / b).trunc() } else { a / b })?,
        "Pow" => binary(&x()?, &arg(g, n, 1)?, shape, f64::powf)?,
        // fmod = 0: the sign of the divisor (Python's %, integers only); 1: C's fmod
        "Mod" if n.int("fmod", 0) != 0 => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| a % b)?,
        "Mod" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| {
            let r = a % b;
            if r != 0.0 && (r < 0.0) != (b < 0.0) { r + b } else { r }
        })?,
        "Max" => binary(&x()?, &arg(g, n, 1)?, shape, f64::max)?,
        "Min" => binary(&x()?, &arg(g, n, 1)?, shape, f64::min)?,
        "Equal" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| (a == b) as u8 as f64)?,
        "Less" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| (a < b) as u8 as f64)?,
        "Greater" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| (a > b) as u8 as f64)?,
        "And" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| (a != 0.0 && b != 0.0) as u8 as f64)?,
        "Or" => binary(&x()?, &arg(g, n, 1)?, shape, |a, b| (a != 0.0 || b != 0.0) as u8 as f64)?,
        "Not" => x()?.mapv(|a| (a == 0.0) as u8 as f64),
        "Neg" => x()?.mapv(|a| -a),
        "Abs" => x()?.mapv(f64::abs),
        "Floor" => x()?.mapv(f64::floor),
        "Ceil" => x()?.mapv(f64::ceil),
        "Sqrt" => x()?.mapv(f64::sqrt),
        "Sign" => x()?.mapv(|a| if a > 0.0 { 1.0 } else if a < 0.0 { -1.0 } else { 0.0 }),
        "Reciprocal" => x()?.mapv(|a| 1.0 / a),
        "Where" => {
            let c = x()?;
            let c = c.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?.to_owned();
            let a = arg(g, n, 1)?;
            let b = arg(g, n, 2)?;
            let t = binary(&c, &a, shape, |c, a| if c != 0.0 { a } else { f64::NAN })?;
            binary(&t, &b, shape, |t, b| if t.is_nan() { b } else { t })?
        }
        "ConstantOfShape" => {
            let v = match n.attrs.get("value") {
                Some(super::ir::Attr::Tensor(t)) => t.to_f64_vec().first().copied().unwrap_or(0.0),
                _ => 0.0,
            };
            ArrayD::from_elem(IxDyn(shape), v)
        }
        "Range" => {
            let s = x()?.iter().next().copied().unwrap_or(0.0);
            let d = arg(g, n, 2)?.iter().next().copied().unwrap_or(1.0);
            ArrayD::from_shape_vec(IxDyn(shape), (0..shape[0]).map(|i| s + d * i as f64).collect())?
        }
        "Expand" => x()?.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?.to_owned(),
        "Tile" => {
            let data = x()?;
            let reps = arg(g, n, 1)?;
            let mut cur = data;
            for (a, &r) in reps.iter().enumerate() {
                let views: Vec<_> = (0..r as usize).map(|_| cur.view()).collect();
                cur = ndarray::concatenate(Axis(a), &views)?;
            }
            cur
        }
        "ReduceProd" | "ReduceSum" | "ReduceMax" | "ReduceMin" => {
            let data = x()?;
            let axes = super::infer::reduce_axes(g, n, data.ndim())?;
            let mut cur = data;
            for &a in axes.iter().rev() {
                cur = match n.op.as_str() {
                    "ReduceProd" => cur.map_axis(Axis(a), |v| v.iter().product()),
                    "ReduceSum" => cur.sum_axis(Axis(a)),
                    "ReduceMax" => cur.map_axis(Axis(a), |v| v.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
                    _ => cur.map_axis(Axis(a), |v| v.iter().cloned().fold(f64::INFINITY, f64::min)),
                };
            }
            cur.into_shape_with_order(IxDyn(shape))?
        }
        other => bail!("no constant evaluator for {other}"),
    };
    if out.shape() != shape {
        bail!("folded value has shape {:?}, inferred {:?}", out.shape(), shape);
    }
    Ok(Tensor::F64(out).cast(dtype))
}
