//! Reverse-mode differentiation of an ONNX graph into ONNX: walks the graph backwards
//! from the seeded tensors and appends, for every node on a path between a wanted tensor
//! and a seed, the nodes of its vector-Jacobian product (the op's rule in the registry,
//! `ops`). The result is an ordinary graph, so it runs on any engine, and it can be
//! differentiated again (GraSP's Hessian-gradient product is the gradient of a gradient
//! program).

pub mod check;

use crate::onnx::builder::Builder;
use crate::onnx::ir::Graph;
use anyhow::{anyhow, bail, Result};
use std::collections::{HashMap, HashSet};

/// Appends the reverse pass to `g`.
///
/// `seeds` pairs a tensor of `g` with the tensor holding its incoming gradient (e.g. a
/// loss with a constant 1, or an output with a tensor of ones). `wrt` lists the tensors
/// whose gradients are wanted: initializers (weights), graph inputs or intermediate
/// activations. Returns the gradient tensor of each `wrt`, in order; a tensor that no
/// seed depends on gets a constant zero gradient.
pub fn append_gradients(g: &mut Graph, seeds: &[(String, String)], wrt: &[String]) -> Result<Vec<String>> {
    let n_forward = g.nodes.len();
    // tensors that depend on a wanted tensor
    let mut fwd: HashSet<String> = wrt.iter().cloned().collect();
    for n in &g.nodes[..n_forward] {
        if n.inputs.iter().any(|i| fwd.contains(i)) {
            fwd.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    // tensors a seed depends on
    let mut bwd: HashSet<String> = seeds.iter().map(|(t, _)| t.clone()).collect();
    for n in g.nodes[..n_forward].iter().rev() {
        if n.outputs.iter().any(|o| bwd.contains(o)) {
            bwd.extend(n.inputs.iter().filter(|i| !i.is_empty()).cloned());
        }
    }
    let mut acc = Accumulator::default();
    for (t, s) in seeds {
        let (ts, ss) = (g.shape(t)?.to_vec(), g.shape(s)?.to_vec());
        if ts != ss {
            bail!("seed '{s}' has shape {ss:?}, the seeded tensor '{t}' has {ts:?}");
        }
        acc.push(t, s.clone());
    }
    for idx in (0..n_forward).rev() {
        let node = g.nodes[idx].clone();
        let relevant = node.outputs.iter().any(|o| bwd.contains(o)) && node.inputs.iter().any(|i| fwd.contains(i));
        if !relevant {
            continue;
        }
        let wants: Vec<bool> = node
            .inputs
            .iter()
            .map(|i| !i.is_empty() && fwd.contains(i) && g.types.get(i).is_some_and(|t| t.dtype.is_float()))
            .collect();
        if !wants.iter().any(|&w| w) {
            continue;
        }
        let mut b = Builder::new(g, format!("grad/{}", node.name));
        let gy: Vec<Option<String>> = node.outputs.iter().map(|o| acc.total(&mut b, o)).collect::<Result<_>>()?;
        if gy.iter().all(|x| x.is_none()) {
            continue;
        }
        let rule = crate::ops::rule_for(&node.op).ok_or_else(|| {
            anyhow!("{}: no gradient rule for op {} ({}); `zerocost ops` lists how each op is handled", b.g.source, node.op, node.describe())
        })?;
        let gx = rule(&mut b, &node, &gy, &wants)
            .map_err(|e| anyhow!("{}: gradient of {} failed: {e:#}", b.g.source, node.describe()))?;
        if gx.len() > node.inputs.len() {
            bail!("rule for {} returned {} gradients for {} inputs", node.op, gx.len(), node.inputs.len());
        }
        for (i, grad) in gx.into_iter().enumerate() {
            let Some(grad) = grad else { continue };
            if !wants[i] {
                continue;
            }
            let (gs, xs) = (b.shape(&grad)?, b.shape(&node.inputs[i])?);
            if gs != xs {
                bail!("rule for {} gave a gradient of shape {gs:?} for input #{i} of shape {xs:?} ({})", node.op, node.describe());
            }
            acc.push(&node.inputs[i], grad);
        }
    }
    let mut b = Builder::new(g, "grad/result");
    let mut out = Vec::with_capacity(wrt.len());
    for w in wrt {
        let total = match acc.total(&mut b, w)? {
            Some(t) => t,
            None => {
                let info = b.info(w)?;
                b.zeros(&info)
            }
        };
        out.push(total);
    }
    Ok(out)
}

/// Gradient contributions per tensor; fan-out is accumulated with one `Sum` node.
#[derive(Default)]
struct Accumulator {
    parts: HashMap<String, Vec<String>>,
}

impl Accumulator {
    fn push(&mut self, tensor: &str, grad: String) {
        self.parts.entry(tensor.to_string()).or_default().push(grad);
    }

    /// The total gradient of `tensor` (None when nothing flows into it).
    fn total(&mut self, b: &mut Builder, tensor: &str) -> Result<Option<String>> {
        let Some(parts) = self.parts.get(tensor) else { return Ok(None) };
        if parts.len() == 1 {
            return Ok(Some(parts[0].clone()));
        }
        let s = b.sum(parts)?;
        self.parts.insert(tensor.to_string(), vec![s.clone()]);
        Ok(Some(s))
    }
}
