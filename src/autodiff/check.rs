//! Finite-difference checks of gradient programs in float64, used by the rule tests.
//!
//! For a graph with float64 inputs `x` and seeded outputs `y_k` with fixed random seeds
//! `r_k`, the gradient program gives `∇ f` of `f(x) = Σ_k <y_k(x), r_k>`. Each input is
//! checked along random directions `v` against the central difference
//! `(f(x+εv) - f(x-εv)) / 2ε`. The second-order check applies the same test to the
//! gradient program itself (its outputs seeded with random tensors).
//!
//! The checks run on the engine they are given (`check_*_on`); the crate's own tests use
//! tract through `check_op`, `check_lowered` and `check_graph`.

use super::append_gradients;
use crate::engine::Engine;
use crate::onnx::builder::{Attrs, Builder};
use crate::onnx::fold::push_node;
use crate::onnx::ir::{DType, Graph, Node, Tensor};
use anyhow::{bail, Context, Result};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// An input of the op under test.
#[derive(Clone, Debug)]
pub enum Arg {
    /// A float64 input that is differentiated (a graph input).
    Var(Tensor),
    /// A constant input (initializer), e.g. a shape or an index tensor; not differentiated.
    Const(Tensor),
    /// An optional input left out.
    Absent,
}

impl Arg {
    /// A differentiated input of `shape`, [`rand_tensor`] with `seed`.
    pub fn var(shape: &[usize], seed: u64) -> Arg {
        Arg::Var(rand_tensor(shape, seed))
    }
}

/// Random float64 tensor, uniform in [-1, 1), deterministic for a seed.
pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    Tensor::F64(ArrayD::from_shape_vec(IxDyn(shape), (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()).unwrap())
}

/// Random float64 tensor whose entries stay at least `gap` away from zero (for ops with a
/// kink at zero, so that ±ε does not cross it).
pub fn rand_away_from_zero(shape: &[usize], seed: u64, gap: f64) -> Tensor {
    rand_tensor(shape, seed).map_float(|v| if v >= 0.0 { v + gap } else { v - gap })
}

/// Random float64 tensor with distinct entries spaced by at least `gap` in absolute
/// value (for max-like ops, so that ties and near-ties cannot occur).
pub fn rand_distinct(shape: &[usize], seed: u64, gap: f64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        idx.swap(i, rng.gen_range(0..=i));
    }
    let vals: Vec<f64> = idx.iter().map(|&k| (k as f64 - n as f64 / 2.0) * gap).collect();
    Tensor::F64(ArrayD::from_shape_vec(IxDyn(shape), vals).unwrap())
}

/// Outcome of a check: the worst relative error over inputs and directions.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub max_rel_err: f64,
    pub details: Vec<String>,
}

/// A graph holding one node of `op` over `args` (float64 Vars as graph inputs).
pub fn single_op_graph(op: &str, args: &[Arg], attrs: Attrs, n_outputs: usize) -> Result<(Graph, Vec<String>)> {
    let mut g = Graph { opset: crate::onnx::canon::TARGET_OPSET, source: format!("check:{op}"), ..Graph::default() };
    let (node, outputs) = op_node(op, args, attrs, n_outputs, |name, a| match a {
        Arg::Var(t) => {
            g.inputs.push(name.to_string());
            g.types.insert(name.to_string(), t.info());
        }
        Arg::Const(t) => g.set_initializer(name, t.clone()),
        Arg::Absent => {}
    });
    push_node(&mut g, node)?;
    g.outputs = outputs.clone();
    Ok((g, outputs))
}

/// One `op` node over `args` (inputs `in0`…, an absent one ""; outputs `out0`…), and its
/// outputs; `bind` is told each argument with its input name, to declare it in a graph.
fn op_node(op: &str, args: &[Arg], attrs: Attrs, n_outputs: usize, mut bind: impl FnMut(&str, &Arg)) -> (Node, Vec<String>) {
    let mut inputs = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let name = if matches!(a, Arg::Absent) { String::new() } else { format!("in{i}") };
        bind(&name, a);
        inputs.push(name);
    }
    let outputs: Vec<String> = (0..n_outputs).map(|k| format!("out{k}")).collect();
    let mut node = Node::new("op", op, inputs, outputs.clone());
    for (k, v) in attrs {
        node.attrs.insert(k.to_string(), v);
    }
    (node, outputs)
}

/// The canonical float64 graph of one `op` node of a model at `opset` over `args`: what
/// import makes of it (lowered ops become primitive ones). Returns the graph and its outputs.
pub fn lowered_graph(op: &str, args: &[Arg], attrs: Attrs, n_outputs: usize, opset: i64) -> Result<(Graph, Vec<String>)> {
    use crate::onnx::canon::{canonicalize, CanonOptions, InputShapes};
    use crate::onnx::proto::{InputDecl, RawModel};
    let mut src = Graph { opset, source: format!("check:{op}"), ..Graph::default() };
    let mut decls = Vec::new();
    let mut shapes = std::collections::HashMap::new();
    let (node, outputs) = op_node(op, args, attrs, n_outputs, |name, a| match a {
        Arg::Var(t) => {
            src.inputs.push(name.to_string());
            decls.push(InputDecl { name: name.to_string(), dtype: t.dtype(), dims: t.shape().iter().map(|&d| Some(d)).collect(), dim_names: vec![] });
            shapes.insert(name.to_string(), t.shape().to_vec());
        }
        Arg::Const(t) => src.set_initializer(name, t.clone()),
        Arg::Absent => {}
    });
    src.nodes.push(node);
    src.outputs = outputs;
    let raw = RawModel { graph: src, input_decls: decls };
    let shapes = InputShapes { shapes, export_batch: None, batch: 1 };
    let g = canonicalize(&raw, &shapes, &CanonOptions { float64: true, ..Default::default() })?;
    let outs = g.outputs.clone();
    Ok((g, outs))
}

/// [`check_op_on`] for an op as import leaves it (`lowered_graph`): the ops it is lowered
/// to, differentiated through their own rules.
pub fn check_lowered_on(engine: &dyn Engine, op: &str, args: &[Arg], attrs: Attrs, opset: i64, second_order: bool, tol: f64) -> Result<CheckReport> {
    let (g, outs) = lowered_graph(op, args, attrs, 1, opset)?;
    if g.nodes.iter().any(|n| n.op == op) {
        bail!("{op} was not lowered at import");
    }
    check_graph_on(engine, &g, &outs, &var_values(args), second_order, tol)
}

fn var_values(args: &[Arg]) -> Vec<(String, Tensor)> {
    args.iter()
        .enumerate()
        .filter_map(|(i, a)| match a {
            Arg::Var(t) => Some((format!("in{i}"), t.clone())),
            _ => None,
        })
        .collect()
}

/// Checks first-order (and, with `second_order`, second-order) gradients of one op
/// against central finite differences. Fails if any relative error exceeds `tol`.
pub fn check_op_on(engine: &dyn Engine, op: &str, args: &[Arg], attrs: Attrs, n_outputs: usize, second_order: bool, tol: f64) -> Result<CheckReport> {
    let (g, outs) = single_op_graph(op, args, attrs, n_outputs)?;
    let values = var_values(args);
    check_graph_on(engine, &g, &outs, &values, second_order, tol)
}

/// Same as [`check_op_on`] for any float64 graph: `seeded` are the graph tensors whose
/// weighted sum is differentiated, `values` binds every graph input.
pub fn check_graph_on(engine: &dyn Engine, g: &Graph, seeded: &[String], values: &[(String, Tensor)], second_order: bool, tol: f64) -> Result<CheckReport> {
    let wrt: Vec<String> = values.iter().map(|(n, _)| n.clone()).collect();
    let (grad_graph, grads) = gradient_program(g, seeded, &wrt, 101)?;
    let mut report = directional_check(engine, &grad_graph, seeded, &grads, values, 202)?;
    if second_order {
        let (g2, g2_grads) = gradient_program(&grad_graph, &grads, &wrt, 303)?;
        let r2 = directional_check(engine, &g2, &grads, &g2_grads, values, 404).context("second order")?;
        report.max_rel_err = report.max_rel_err.max(r2.max_rel_err);
        report.details.extend(r2.details.into_iter().map(|d| format!("2nd order: {d}")));
    }
    if !(report.max_rel_err < tol) {
        bail!("gradient check failed (max relative error {:.3e} > {tol:.0e}):\n{}", report.max_rel_err, report.details.join("\n"));
    }
    Ok(report)
}

#[cfg(test)]
pub use on_tract::{check_graph, check_lowered, check_op};

/// The checks on tract, as the crate's tests run them.
#[cfg(test)]
mod on_tract {
    use super::*;
    use crate::engine::tract::TractEngine;

    pub fn check_op(op: &str, args: &[Arg], attrs: Attrs, n_outputs: usize, second_order: bool, tol: f64) -> Result<CheckReport> {
        check_op_on(&TractEngine::default(), op, args, attrs, n_outputs, second_order, tol)
    }

    pub fn check_lowered(op: &str, args: &[Arg], attrs: Attrs, opset: i64, second_order: bool, tol: f64) -> Result<CheckReport> {
        check_lowered_on(&TractEngine::default(), op, args, attrs, opset, second_order, tol)
    }

    pub fn check_graph(g: &Graph, seeded: &[String], values: &[(String, Tensor)], second_order: bool, tol: f64) -> Result<CheckReport> {
        check_graph_on(&TractEngine::default(), g, seeded, values, second_order, tol)
    }
}

/// `g` plus the reverse pass of Σ <seeded_k, r_k> with fixed random r_k; outputs are the
/// seeded tensors followed by the gradients.
fn gradient_program(g: &Graph, seeded: &[String], wrt: &[String], seed: u64) -> Result<(Graph, Vec<String>)> {
    let mut p = g.clone();
    let mut seeds = Vec::new();
    {
        let mut b = Builder::new(&mut p, "check/seed");
        for (k, t) in seeded.iter().enumerate() {
            let info = b.info(t)?;
            if info.dtype != DType::F64 {
                bail!("tensor '{t}' is {:?}; checks run in float64", info.dtype);
            }
            let r = b.constant(rand_tensor(&info.shape, seed + k as u64));
            seeds.push((t.clone(), r));
        }
    }
    let grads = append_gradients(&mut p, &seeds, wrt)?;
    p.outputs = seeded.iter().chain(grads.iter()).cloned().collect();
    // keep the seeds reachable for the directional check: store them as extra outputs
    for (_, r) in &seeds {
        p.outputs.push(r.clone());
    }
    Ok((p, grads))
}

fn dot(a: &Tensor, b: &Tensor) -> f64 {
    a.to_f64_vec().iter().zip(b.to_f64_vec()).map(|(x, y)| x * y).sum()
}

fn directional_check(engine: &dyn Engine, p: &Graph, seeded: &[String], grads: &[String], values: &[(String, Tensor)], seed: u64) -> Result<CheckReport> {
    let prog = engine.load(p)?;
    let bind = |vals: &[(String, Tensor)]| -> Result<crate::engine::Outputs> {
        let refs: Vec<(&str, &Tensor)> = vals.iter().map(|(n, t)| (n.as_str(), t)).collect();
        prog.run(&refs)
    };
    let base = bind(values)?;
    let seeds: Vec<Tensor> = p.outputs[seeded.len() + grads.len()..].iter().map(|r| base[r].clone()).collect();
    let f = |out: &crate::engine::Outputs| -> f64 { seeded.iter().zip(&seeds).map(|(t, r)| dot(&out[t], r)).sum() };
    let eps = 1e-5;
    let mut report = CheckReport { max_rel_err: 0.0, details: Vec::new() };
    for (i, (name, x)) in values.iter().enumerate() {
        let g = &base[&grads[i]];
        for d in 0..3u64 {
            let v = rand_tensor(x.shape(), seed + 17 * i as u64 + d);
            let analytic = dot(g, &v);
            let shifted = |sign: f64| -> Result<f64> {
                let mut vals = values.to_vec();
                let xv = x.to_f64_vec();
                let vv = v.to_f64_vec();
                vals[i].1 = Tensor::F64(
                    ArrayD::from_shape_vec(IxDyn(x.shape()), xv.iter().zip(&vv).map(|(a, b)| a + sign * eps * b).collect()).unwrap(),
                );
                Ok(f(&bind(&vals)?))
            };
            let numeric = (shifted(1.0)? - shifted(-1.0)?) / (2.0 * eps);
            let scale = analytic.abs().max(numeric.abs()).max(1e-3);
            let rel = (analytic - numeric).abs() / scale;
            report.max_rel_err = report.max_rel_err.max(rel);
            report.details.push(format!("input {name}: direction {d}: analytic {analytic:.10e}, numeric {numeric:.10e}, rel {rel:.2e}"));
        }
    }
    Ok(report)
}
