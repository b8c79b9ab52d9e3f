//! Shape inference over a whole graph, folding what is known before running: `Shape` of a
//! static tensor, and the small index arithmetic exporters build from it (Gather, Concat,
//! Unsqueeze, Cast, ...). Folded nodes become initializers, so every Reshape/Expand/Slice
//! input that carries a shape is a constant once a batch size is fixed. Which ops fold, and
//! how, is each op's `fold` in the registry (`ops`); this is the driver.

use super::infer::infer_node;
use super::ir::{DType, Graph, Node, Tensor};
use crate::ops::{Eval, Fold};
use anyhow::{anyhow, bail, Context, Result};
use ndarray::{ArrayD, IxDyn};

/// Largest tensor a constant-producing op (ConstantOfShape, Expand, Tile) is folded into.
pub const MAX_FOLDED_FILL: usize = 1 << 16;

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

fn try_fold(g: &Graph, n: &Node) -> Result<Option<Vec<Tensor>>> {
    let eval = match crate::ops::def(&n.op).and_then(|d| d.fold) {
        None => return Ok(None),
        Some(Fold::Shape(f)) => return Ok(Some(vec![f(g, n)?])),
        Some(Fold::Values(f) | Fold::Fill(f)) => f,
    };
    if n.outputs.len() != 1 {
        return Ok(None);
    }
    if !n.inputs.iter().all(|i| i.is_empty() || g.constant(i).is_some()) {
        return Ok(None);
    }
    let info = infer_node(g, n)?;
    let fills = matches!(crate::ops::def(&n.op).and_then(|d| d.fold), Some(Fold::Fill(_)));
    if fills && info[0].numel() > MAX_FOLDED_FILL {
        return Ok(None);
    }
    crate::memory::check(format!("{}: folding {} into a constant {:?}", g.source, n.describe(), info[0].shape), info[0].bytes().saturating_mul(2))?;
    let t = evaluate(g, n, eval, &info[0].shape, info[0].dtype)
        .with_context(|| format!("{}: cannot fold constant {}", g.source, n.describe()))?;
    Ok(Some(vec![t]))
}

/// The value of constant input #i, as f64.
pub fn arg(g: &Graph, n: &Node, i: usize) -> Result<ArrayD<f64>> {
    let name = n.input(i).ok_or_else(|| anyhow!("missing input #{i}"))?;
    Ok(g.constant(name).ok_or_else(|| anyhow!("input not constant"))?.to_f64_array())
}

/// `f` of `a` and `b` elementwise, both broadcast to `shape`.
pub fn binary(a: &ArrayD<f64>, b: &ArrayD<f64>, shape: &[usize], f: impl Fn(f64, f64) -> f64) -> Result<ArrayD<f64>> {
    let a = a.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?;
    let b = b.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?;
    let mut out = ArrayD::zeros(IxDyn(shape));
    ndarray::Zip::from(&mut out).and(&a).and(&b).for_each(|o, &x, &y| *o = f(x, y));
    Ok(out)
}

/// `f` of the node's first two (constant) inputs, at the output's shape.
pub fn fold_binary(g: &Graph, n: &Node, shape: &[usize], f: impl Fn(f64, f64) -> f64) -> Result<ArrayD<f64>> {
    binary(&arg(g, n, 0)?, &arg(g, n, 1)?, shape, f)
}

/// The op's value, checked against the inferred shape and cast to the inferred type.
fn evaluate(g: &Graph, n: &Node, eval: Eval, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let out = eval(g, n, shape, dtype)?;
    if out.shape() != shape {
        bail!("folded value has shape {:?}, inferred {:?}", out.shape(), shape);
    }
    Ok(Tensor::F64(out).cast(dtype))
}
