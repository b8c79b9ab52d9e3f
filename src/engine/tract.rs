//! The embedded CPU engine: tract. The graph is handed over as an ONNX protobuf, every
//! input shape pinned, then optimised once into a runnable plan.

use super::{Engine, Outputs, Program};
use crate::onnx::builder::Builder;
use crate::onnx::composite::{program_for, Target};
use crate::onnx::ir::{Attr, DType, Graph, Tensor};
use crate::onnx::proto::to_model_proto;
use anyhow::{anyhow, bail, Result};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use tract_onnx::prelude::*;

#[derive(Default)]
pub struct TractEngine {
    /// Threads for matrix products (0 or 1 = single-threaded).
    pub threads: usize,
    /// Run tract's declutter and optimisation passes on each program. They make a run
    /// about 3× faster but cost seconds on gradient programs of thousands of nodes
    /// (resnet20's loss pass: 9 s to optimise, then 0.18 s a run, against 0.06 s and
    /// 0.58 s unoptimised), so they pay off only for programs run many times.
    pub optimize: bool,
}

impl TractEngine {
    pub fn with_threads(threads: usize) -> TractEngine {
        if threads > 1 {
            tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
        }
        TractEngine { threads, optimize: false }
    }

    /// Same engine, optimising every program it loads.
    pub fn optimized(mut self) -> TractEngine {
        self.optimize = true;
        self
    }
}

type Plan = Arc<TypedRunnableModel>;

struct TractProgram {
    plan: Plan,
    inputs: Vec<String>,
    outputs: Vec<String>,
    source: String,
}

fn datum(d: DType) -> DatumType {
    match d {
        DType::F32 => f32::datum_type(),
        DType::F64 => f64::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::Bool => bool::datum_type(),
    }
}

impl Engine for TractEngine {
    fn name(&self) -> String {
        "tract".into()
    }

    fn load(&self, graph: &Graph) -> Result<Box<dyn Program>> {
        graph.check_memory()?;
        let graph = &program_for(graph, Target::Tract)?;
        let graph = &*adapt(graph)?;
        let proto = to_model_proto(graph);
        let mut facts = Vec::new();
        for name in &graph.inputs {
            let info = graph.info(name)?;
            facts.push(InferenceFact::dt_shape(datum(info.dtype), info.shape.iter().map(|&d| d as i64).collect::<Vec<_>>()));
        }
        let start = std::time::Instant::now();
        let optimize = self.optimize;
        let built = catch_unwind(AssertUnwindSafe(|| -> TractResult<Plan> {
            let mut model = tract_onnx::onnx().model_for_proto_model(&proto)?;
            for (i, f) in facts.into_iter().enumerate() {
                model = model.with_input_fact(i, f)?;
            }
            let typed = model.into_typed()?;
            if optimize {
                typed.into_decluttered()?.into_optimized()?.into_runnable()
            } else {
                typed.into_runnable()
            }
        }));
        let plan = match built {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => bail!("{}: tract could not prepare the program: {e:#}", graph.source),
            Err(p) => bail!("{}: tract panicked while preparing the program: {}", graph.source, crate::memory::panic_message(p)),
        };
        if std::env::var_os("ZEROCOST_DEBUG").is_some() {
            eprintln!("tract: prepared {} nodes in {:.3}s", graph.nodes.len(), start.elapsed().as_secs_f64());
        }
        Ok(Box::new(TractProgram {
            plan,
            inputs: graph.inputs.clone(),
            outputs: graph.outputs.clone(),
            source: graph.source.clone(),
        }))
    }
}

fn to_tract(t: &Tensor) -> TValue {
    match t {
        Tensor::F32(a) => a.clone().into_tensor().into(),
        Tensor::F64(a) => a.clone().into_tensor().into(),
        Tensor::I64(a) => a.clone().into_tensor().into(),
        Tensor::I32(a) => a.clone().into_tensor().into(),
        Tensor::Bool(a) => a.clone().into_tensor().into(),
    }
}

fn from_tract(t: &tract_onnx::prelude::Tensor) -> Result<Tensor> {
    let dt = t.datum_type();
    Ok(if dt == f32::datum_type() {
        Tensor::F32(t.to_plain_array_view::<f32>()?.to_owned())
    } else if dt == f64::datum_type() {
        Tensor::F64(t.to_plain_array_view::<f64>()?.to_owned())
    } else if dt == i64::datum_type() {
        Tensor::I64(t.to_plain_array_view::<i64>()?.to_owned())
    } else if dt == i32::datum_type() {
        Tensor::I32(t.to_plain_array_view::<i32>()?.to_owned())
    } else if dt == bool::datum_type() {
        Tensor::Bool(t.to_plain_array_view::<bool>()?.to_owned())
    } else {
        bail!("unsupported output type {dt:?}")
    })
}

impl Program for TractProgram {
    fn engine(&self) -> String {
        "tract".into()
    }

    fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Outputs> {
        let mut values = TVec::new();
        for name in &self.inputs {
            let t = inputs
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| anyhow!("{}: no value bound for input '{name}'", self.source))?
                .1;
            values.push(to_tract(t));
        }
        let res = catch_unwind(AssertUnwindSafe(|| self.plan.run(values)));
        let out = match res {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => bail!("{}: tract run failed: {e:#}", self.source),
            Err(p) => bail!("{}: tract panicked while running: {}", self.source, crate::memory::panic_message(p)),
        };
        let mut map = Outputs::new();
        for (name, v) in self.outputs.iter().zip(out.iter()) {
            map.insert(name.clone(), from_tract(v)?);
        }
        Ok(map)
    }
}

/// Rewrites the forms tract cannot run as ONNX means them. In float64: its Gemm applies
/// alpha and beta·C as float32 constants, and it has no float64 Sigmoid, LeakyRelu,
/// HardSwish or Erf; each is replaced by ops it runs in float64 (Erf goes through float32,
/// the only inexact one). In any type: LogSoftmax, which it evaluates as the log of a
/// softmax, so a logit far below the largest gives log(0) = −∞ and the loss's
/// −∞·0 a NaN (untrained deep networks with large logits, float32); it is replaced by
/// x − max − log Σ exp(x − max). The replaced node's output keeps its name.
fn adapt(graph: &Graph) -> Result<std::borrow::Cow<'_, Graph>> {
    let needs = |n: &crate::onnx::ir::Node| {
        let f64_in = n.input(0).and_then(|x| graph.types.get(x)).is_some_and(|t| t.dtype == DType::F64);
        match n.op.as_str() {
            "LogSoftmax" => true,
            "Gemm" => f64_in && (n.input(2).is_some() || n.float("alpha", 1.0) != 1.0),
            "Sigmoid" | "LeakyRelu" | "HardSwish" | "Erf" => f64_in,
            _ => false,
        }
    };
    if !graph.nodes.iter().any(needs) {
        return Ok(std::borrow::Cow::Borrowed(graph));
    }
    let mut g = graph.clone();
    let nodes = std::mem::take(&mut g.nodes);
    for n in nodes {
        if !needs(&n) {
            g.nodes.push(n);
            continue;
        }
        let mut b = Builder::new(&mut g, format!("{}/f64", n.name));
        let y = if n.op == "LogSoftmax" { log_softmax(&mut b, &n)? } else { float64_form(&mut b, &n)? };
        g.nodes.push(crate::onnx::ir::Node::new(format!("{}/f64/out", n.name), "Identity", vec![y], vec![n.outputs[0].clone()]));
    }
    Ok(std::borrow::Cow::Owned(g))
}

/// LogSoftmax(x) along its axis as x − m − log Σ exp(x − m), m the maximum.
fn log_softmax(b: &mut Builder, n: &crate::onnx::ir::Node) -> Result<String> {
    let x = n.input(0).unwrap();
    let axis = n.int("axis", -1);
    let m = b.op("ReduceMax", &[x], vec![("axes", Attr::Ints(vec![axis])), ("keepdims", Attr::Int(1))])?;
    let d = b.op("Sub", &[x, &m], vec![])?;
    let e = b.op("Exp", &[&d], vec![])?;
    let axes = b.ints(&[axis]);
    let s = b.op("ReduceSum", &[&e, &axes], vec![("keepdims", Attr::Int(1))])?;
    let l = b.op("Log", &[&s], vec![])?;
    b.op("Sub", &[&d, &l], vec![])
}

fn float64_form(b: &mut Builder, n: &crate::onnx::ir::Node) -> Result<String> {
    let x = n.input(0).unwrap();
    match n.op.as_str() {
        "Gemm" => {
            let attrs = vec![("transA", Attr::Int(n.int("transA", 0))), ("transB", Attr::Int(n.int("transB", 0)))];
            let mut y = b.op("Gemm", &[x, n.input(1).unwrap()], attrs)?;
            let alpha = n.float("alpha", 1.0) as f64;
            if alpha != 1.0 {
                y = b.mul_scalar(&y, alpha)?;
            }
            if let Some(c) = n.input(2) {
                let beta = n.float("beta", 1.0) as f64;
                let c = if beta != 1.0 { b.mul_scalar(c, beta)? } else { c.to_string() };
                y = b.add(&y, &c)?;
            }
            Ok(y)
        }
        "Sigmoid" => {
            let nx = b.neg(x)?;
            let e = b.op("Exp", &[&nx], vec![])?;
            let one = b.scalar_like(x, 1.0)?;
            let d = b.add(&e, &one)?;
            b.op("Reciprocal", &[&d], vec![])
        }
        "LeakyRelu" => {
            let zero = b.scalar_like(x, 0.0)?;
            let pos = b.op("Greater", &[x, &zero], vec![])?;
            let neg = b.mul_scalar(x, n.float("alpha", 0.01) as f64)?;
            b.op("Where", &[&pos, x, &neg], vec![])
        }
        "HardSwish" => {
            let h = b.mul_scalar(x, 1.0 / 6.0)?;
            let half = b.scalar_like(x, 0.5)?;
            let h = b.add(&h, &half)?;
            let (lo, hi) = (b.scalar_like(x, 0.0)?, b.scalar_like(x, 1.0)?);
            let c = b.op("Clip", &[&h, &lo, &hi], vec![])?;
            b.mul(x, &c)
        }
        _ => {
            let x32 = b.cast(x, DType::F32)?;
            let e = b.op("Erf", &[&x32], vec![])?;
            b.cast(&e, DType::F64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::check::{single_op_graph, Arg};

    /// A logit 200 below the largest: log-softmax −200, not log(0) = −∞ (tract alone
    /// computes it as the log of a softmax, which underflows in float32).
    #[test]
    fn log_softmax_of_far_apart_logits_is_finite() {
        let x = Tensor::from_f64(DType::F32, &[1, 3], vec![0.0, 200.0, 199.0]);
        let (g, outs) = single_op_graph("LogSoftmax", &[Arg::Var(x.clone())], vec![("axis", Attr::Int(1))], 1).unwrap();
        let p = TractEngine::default().load(&g).unwrap();
        let y = p.run(&[(g.inputs[0].as_str(), &x)]).unwrap()[&outs[0]].to_f64_vec();
        let l = (1.0f64 + (-1.0f64).exp()).ln();
        let want = [-200.0 - l, -l, -1.0 - l];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-4, "{y:?} vs {want:?}");
        }
    }
}
