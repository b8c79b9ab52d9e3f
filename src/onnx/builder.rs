//! Appends nodes to a graph with their types inferred on the spot. The gradient rules are
//! written against this: every helper returns the name of the new tensor.

use super::infer::infer_node;
use super::ir::{Attr, DType, Graph, Node, Tensor, TypeInfo};
use anyhow::{bail, Result};

pub struct Builder<'g> {
    pub g: &'g mut Graph,
    /// Prefix of the names of emitted nodes (e.g. "grad/conv1").
    pub scope: String,
}

/// Attribute list shorthand: `attrs![("axis", Attr::Int(1))]`.
pub type Attrs = Vec<(&'static str, Attr)>;

impl<'g> Builder<'g> {
    pub fn new(g: &'g mut Graph, scope: impl Into<String>) -> Builder<'g> {
        Builder { g, scope: scope.into() }
    }

    pub fn info(&self, name: &str) -> Result<TypeInfo> {
        Ok(self.g.info(name)?.clone())
    }

    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.g.info(name)?.shape.clone())
    }

    pub fn dtype(&self, name: &str) -> Result<DType> {
        Ok(self.g.info(name)?.dtype)
    }

    /// Adds a node with `n_out` outputs; returns their names.
    pub fn node(&mut self, op: &str, inputs: &[&str], attrs: Attrs, n_out: usize) -> Result<Vec<String>> {
        let name = self.g.fresh(&format!("{}/{op}", self.scope));
        let outputs: Vec<String> = (0..n_out).map(|i| format!("{name}:{i}")).collect();
        let mut node = Node::new(name, op, inputs.iter().map(|s| s.to_string()).collect(), outputs.clone());
        for (k, v) in attrs {
            node.attrs.insert(k.to_string(), v);
        }
        let infos = infer_node(self.g, &node)?;
        for (o, i) in outputs.iter().zip(infos) {
            self.g.types.insert(o.clone(), i);
        }
        self.g.nodes.push(node);
        Ok(outputs)
    }

    /// Adds a single-output node.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: Attrs) -> Result<String> {
        Ok(self.node(op, inputs, attrs, 1)?.remove(0))
    }

    /// Adds a constant (initializer) and returns its name.
    pub fn constant(&mut self, t: Tensor) -> String {
        let name = self.g.fresh(&format!("{}/const", self.scope));
        self.g.set_initializer(&name, t);
        name
    }

    pub fn ints(&mut self, v: &[i64]) -> String {
        self.constant(Tensor::from_i64(v))
    }

    pub fn ushape(&mut self, v: &[usize]) -> String {
        self.ints(&v.iter().map(|&d| d as i64).collect::<Vec<_>>())
    }

    /// A scalar of the same float type as `like`.
    pub fn scalar_like(&mut self, like: &str, v: f64) -> Result<String> {
        let dt = self.dtype(like)?;
        Ok(self.constant(Tensor::scalar(dt, v)))
    }

    pub fn add(&mut self, a: &str, b: &str) -> Result<String> {
        self.op("Add", &[a, b], vec![])
    }
    pub fn sub(&mut self, a: &str, b: &str) -> Result<String> {
        self.op("Sub", &[a, b], vec![])
    }
    pub fn mul(&mut self, a: &str, b: &str) -> Result<String> {
        self.op("Mul", &[a, b], vec![])
    }
    pub fn div(&mut self, a: &str, b: &str) -> Result<String> {
        self.op("Div", &[a, b], vec![])
    }
    pub fn neg(&mut self, a: &str) -> Result<String> {
        self.op("Neg", &[a], vec![])
    }
    pub fn mul_scalar(&mut self, a: &str, v: f64) -> Result<String> {
        let s = self.scalar_like(a, v)?;
        self.mul(a, &s)
    }

    /// Sum of several tensors of one shape (gradient accumulation).
    pub fn sum(&mut self, parts: &[String]) -> Result<String> {
        match parts.len() {
            0 => bail!("sum of nothing"),
            1 => Ok(parts[0].clone()),
            _ => {
                let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
                self.op("Sum", &refs, vec![])
            }
        }
    }

    pub fn reshape(&mut self, x: &str, shape: &[usize]) -> Result<String> {
        if self.shape(x)? == shape {
            return Ok(x.to_string());
        }
        let s = self.ushape(shape);
        self.op("Reshape", &[x, &s], vec![])
    }

    pub fn transpose(&mut self, x: &str, perm: &[usize]) -> Result<String> {
        if perm.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(x.to_string());
        }
        self.op("Transpose", &[x], vec![("perm", Attr::Ints(perm.iter().map(|&p| p as i64).collect()))])
    }

    /// ReduceSum over `axes` (constant axes input, as tract needs).
    pub fn reduce_sum(&mut self, x: &str, axes: &[usize], keepdims: bool) -> Result<String> {
        if axes.is_empty() {
            return Ok(x.to_string());
        }
        let a = self.ints(&axes.iter().map(|&v| v as i64).collect::<Vec<_>>());
        self.op("ReduceSum", &[x, &a], vec![("keepdims", Attr::Int(keepdims as i64))])
    }

    /// ReduceMean over `axes` (attribute form, opset 17).
    pub fn reduce_mean(&mut self, x: &str, axes: &[usize], keepdims: bool) -> Result<String> {
        if axes.is_empty() {
            return Ok(x.to_string());
        }
        self.op(
            "ReduceMean",
            &[x],
            vec![("axes", Attr::Ints(axes.iter().map(|&v| v as i64).collect())), ("keepdims", Attr::Int(keepdims as i64))],
        )
    }

    /// Sums a broadcast gradient back to `target` shape (undoes numpy broadcasting).
    pub fn unbroadcast(&mut self, grad: &str, target: &[usize]) -> Result<String> {
        let gs = self.shape(grad)?;
        if gs == target {
            return Ok(grad.to_string());
        }
        let lead = gs.len() - target.len();
        let mut axes: Vec<usize> = (0..lead).collect();
        for (i, &d) in target.iter().enumerate() {
            if d == 1 && gs[lead + i] != 1 {
                axes.push(lead + i);
            }
        }
        let r = self.reduce_sum(grad, &axes, true)?;
        self.reshape(&r, target)
    }

    /// Broadcasts `x` to `shape` (Expand with a constant shape).
    pub fn expand(&mut self, x: &str, shape: &[usize]) -> Result<String> {
        if self.shape(x)? == shape {
            return Ok(x.to_string());
        }
        let s = self.ushape(shape);
        self.op("Expand", &[x, &s], vec![])
    }

    /// 1.0 where `cond` holds, else 0.0, in the float type of `like`.
    pub fn mask(&mut self, cond: &str, like: &str) -> Result<String> {
        let dt = self.dtype(like)?;
        self.op("Cast", &[cond], vec![("to", Attr::Int(dt.onnx_code() as i64))])
    }

    pub fn cast(&mut self, x: &str, to: DType) -> Result<String> {
        if self.dtype(x)? == to {
            return Ok(x.to_string());
        }
        self.op("Cast", &[x], vec![("to", Attr::Int(to.onnx_code() as i64))])
    }

    /// Zeros of a given type (a constant).
    pub fn zeros(&mut self, info: &TypeInfo) -> String {
        self.constant(Tensor::full(info.dtype, &info.shape, 0.0))
    }

    /// Slice with constant starts/ends/axes/steps.
    pub fn slice(&mut self, x: &str, axes: &[usize], starts: &[i64], ends: &[i64], steps: &[i64]) -> Result<String> {
        let s = self.ints(starts);
        let e = self.ints(ends);
        let a = self.ints(&axes.iter().map(|&v| v as i64).collect::<Vec<_>>());
        let st = self.ints(steps);
        self.op("Slice", &[x, &s, &e, &a, &st], vec![])
    }

    /// Zero padding per axis (begin, end), all non-negative.
    pub fn pad(&mut self, x: &str, begin: &[usize], end: &[usize]) -> Result<String> {
        if begin.iter().chain(end).all(|&p| p == 0) {
            return Ok(x.to_string());
        }
        let pads: Vec<i64> = begin.iter().chain(end).map(|&p| p as i64).collect();
        let p = self.ints(&pads);
        self.op("Pad", &[x, &p], vec![])
    }

    /// Pads with zeros where `begin`/`end` are positive and crops where they are negative
    /// (tract panics on negative Pad, so cropping is a Slice).
    pub fn pad_or_crop(&mut self, x: &str, begin: &[i64], end: &[i64]) -> Result<String> {
        let shape = self.shape(x)?;
        let r = shape.len();
        let mut cur = x.to_string();
        if begin.iter().chain(end).any(|&p| p < 0) {
            let axes: Vec<usize> = (0..r).collect();
            let starts: Vec<i64> = begin.iter().map(|&b| (-b).max(0)).collect();
            let ends: Vec<i64> = (0..r).map(|i| shape[i] as i64 - (-end[i]).max(0)).collect();
            cur = self.slice(&cur, &axes, &starts, &ends, &vec![1; r])?;
        }
        let pb: Vec<usize> = begin.iter().map(|&b| b.max(0) as usize).collect();
        let pe: Vec<usize> = end.iter().map(|&e| e.max(0) as usize).collect();
        self.pad(&cur, &pb, &pe)
    }

    /// The adjoint of a strided Slice along `axis`: places g[t] at position start + step*t of
    /// a zero tensor whose `axis` has length `len` (step > 0). Interleaves zeros with
    /// Unsqueeze/Pad/Reshape, so no scatter op is needed.
    pub fn unslice_axis(&mut self, g: &str, axis: usize, start: usize, step: usize, len: usize) -> Result<String> {
        let gs = self.shape(g)?;
        let m = gs[axis];
        let mut cur = g.to_string();
        if step > 1 && m > 0 {
            let mut s1 = gs.clone();
            s1.insert(axis + 1, 1);
            cur = self.reshape(&cur, &s1)?;
            let r = s1.len();
            let mut end = vec![0; r];
            end[axis + 1] = step - 1;
            cur = self.pad(&cur, &vec![0; r], &end)?;
            let mut s2 = gs.clone();
            s2[axis] = m * step;
            cur = self.reshape(&cur, &s2)?;
        }
        let covered = if m == 0 { 0 } else { m * step } as i64;
        let r = gs.len();
        let mut b = vec![0i64; r];
        let mut e = vec![0i64; r];
        b[axis] = start as i64;
        e[axis] = len as i64 - start as i64 - covered;
        self.pad_or_crop(&cur, &b, &e)
    }
}
