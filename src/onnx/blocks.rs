//! Block boundaries: the feature maps between a network's blocks (cells, residual units),
//! which AZ-NAS scores. A PyTorch model knows its blocks; an ONNX graph does not, so they
//! are found from the graph's structure:
//!
//! 1. the *data* tensors are the input and everything computed from its values (a `Shape`
//!    or `Size` of a data tensor is not data: it only depends on the fixed shapes);
//! 2. a *cut* is a data tensor that every path from the input to the output passes
//!    through (no data edge jumps over it in topological order);
//! 3. a boundary is a rank-4 cut that a merge produces (a node with two or more data
//!    inputs: the `Add` of a residual unit or of a cell's edges, a `Concat`), or that two or
//!    more nodes consume (the input of a block with a skip path or several edges);
//! 4. a boundary followed by a chain of single-consumer activations (`Relu` after a
//!    residual `Add`) moves to the end of the chain, so a residual unit's boundary is its
//!    activated output, as the unit's module returns it.
//!
//! A network without merges or branches (a plain chain of layers) has none of these; its
//! boundaries are then the outputs of its activations on rank-4 maps (every layer a block).
//! On NAS-Bench-201 this gives exactly AZ-NAS's `extract_cell_features`: the stem's output
//! and the output of each of the 17 cells and reduction blocks.

use super::ir::Graph;
use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};

/// Element-wise activations and pass-throughs a boundary moves across (4.).
const ACTIVATIONS: &[&str] =
    &["Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Gelu", "Mish", "Softplus", "Identity", "Dropout"];

/// Boundaries of `raw` (the graph as read, BatchNormalization still one node), in forward
/// order; `shapes` is any graph that knows the tensors' shapes (the canonical graph).
pub fn block_outputs(raw: &Graph, shapes: &Graph) -> Result<Vec<String>> {
    let mut g = raw.clone();
    g.toposort()?;
    let Some(input) = g.inputs.first().cloned() else { bail!("{}: the graph has no input", raw.source) };
    let Some(output) = g.outputs.first().cloned() else { bail!("{}: the graph has no output", raw.source) };
    // 1. data tensors and the nodes computing them
    let mut data: HashSet<String> = HashSet::from([input.clone()]);
    for n in &g.nodes {
        if n.op != "Shape" && n.op != "Size" && n.inputs.iter().any(|i| data.contains(i)) {
            data.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    // nodes the output depends on
    let mut needed: HashSet<String> = HashSet::from([output.clone()]);
    let mut live = vec![false; g.nodes.len()];
    for (k, n) in g.nodes.iter().enumerate().rev() {
        if n.outputs.iter().any(|o| needed.contains(o)) {
            live[k] = true;
            needed.extend(n.inputs.iter().cloned());
        }
    }
    // position of each data tensor's producer (the input: -1) and of its last data use
    let mut produced_at: HashMap<&str, i64> = HashMap::from([(input.as_str(), -1)]);
    let mut last_use: HashMap<&str, i64> = HashMap::new();
    let mut consumers: HashMap<&str, usize> = HashMap::new();
    let mut data_inputs = vec![0usize; g.nodes.len()];
    for (k, n) in g.nodes.iter().enumerate() {
        if !live[k] {
            continue;
        }
        let mut seen = HashSet::new();
        for i in n.inputs.iter().filter(|i| data.contains(*i)) {
            if n.op == "Shape" || n.op == "Size" {
                continue;
            }
            if seen.insert(i.as_str()) {
                data_inputs[k] += 1;
                *consumers.entry(i).or_default() += 1;
            }
            last_use.insert(i, k as i64);
        }
        for o in n.outputs.iter().filter(|o| data.contains(*o)) {
            produced_at.insert(o, k as i64);
        }
    }
    last_use.insert(output.as_str(), i64::MAX);
    // 2. cuts: no data tensor produced before position p is used after it
    let mut reach_before: Vec<i64> = vec![i64::MIN; g.nodes.len() + 1];
    // reach_before[p + 1] = max last use of data tensors produced at positions < p
    let mut by_pos: Vec<Vec<&str>> = vec![Vec::new(); g.nodes.len() + 1];
    for (t, &p) in &produced_at {
        by_pos[(p + 1) as usize].push(t);
    }
    let mut running = i64::MIN;
    for p in 0..=g.nodes.len() {
        reach_before[p] = running;
        for t in &by_pos[p] {
            running = running.max(last_use.get(t).copied().unwrap_or(i64::MIN));
        }
    }
    let is_cut = |t: &str| -> bool {
        let Some(&p) = produced_at.get(t) else { return false };
        reach_before[(p + 1) as usize] <= p
    };
    let rank4 = |t: &str| shapes.shape(shapes.resolve(t)).is_ok_and(|s| s.len() == 4);
    let producer: HashMap<&str, usize> =
        g.nodes.iter().enumerate().flat_map(|(k, n)| n.outputs.iter().map(move |o| (o.as_str(), k))).collect();
    let single_activation_consumer = |t: &str| -> Option<&str> {
        if consumers.get(t).copied().unwrap_or(0) != 1 || t == output {
            return None;
        }
        let (k, n) = g.nodes.iter().enumerate().find(|(k, n)| live[*k] && n.inputs.iter().any(|i| i == t))?;
        (ACTIVATIONS.contains(&n.op.as_str()) && data_inputs[k] == 1).then(|| n.outputs[0].as_str())
    };
    // 3. and 4.
    let mut found: Vec<String> = Vec::new();
    for (k, n) in g.nodes.iter().enumerate() {
        if !live[k] {
            continue;
        }
        for o in n.outputs.iter().filter(|o| data.contains(*o)) {
            let merge = data_inputs[k] >= 2;
            let branch = consumers.get(o.as_str()).copied().unwrap_or(0) >= 2;
            if (merge || branch) && is_cut(o) && rank4(o) {
                let mut t = o.as_str();
                while let Some(next) = single_activation_consumer(t) {
                    t = next;
                }
                if !found.iter().any(|f| f == t) {
                    found.push(t.to_string());
                }
            }
        }
    }
    if found.len() < 2 {
        found = g
            .nodes
            .iter()
            .enumerate()
            .filter(|(k, n)| live[*k] && ACTIVATIONS[..ACTIVATIONS.len() - 2].contains(&n.op.as_str()))
            .map(|(_, n)| n.outputs[0].clone())
            .filter(|o| is_cut(o) && rank4(o))
            .collect();
    }
    // keep forward order
    found.sort_by_key(|t| producer.get(t.as_str()).copied().unwrap_or(0));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::ir::{DType, Node, TypeInfo};

    fn graph(nodes: &[(&str, &[&str], &str)]) -> Graph {
        let mut g = Graph { source: "test".into(), ..Graph::default() };
        g.inputs.push("x".into());
        g.types.insert("x".into(), TypeInfo::new(DType::F32, vec![1, 2, 4, 4]));
        g.set_initializer("w", crate::onnx::ir::Tensor::full(DType::F32, &[2, 2, 1, 1], 1.0));
        for (op, ins, out) in nodes {
            g.nodes.push(Node::new(format!("n_{out}"), *op, ins.iter().map(|s| s.to_string()).collect(), vec![out.to_string()]));
            g.types.insert(out.to_string(), TypeInfo::new(DType::F32, vec![1, 2, 4, 4]));
        }
        g.outputs.push(nodes.last().unwrap().2.to_string());
        g
    }

    #[test]
    fn residual_units_end_after_their_activation() {
        // stem, two residual units (Add then Relu), head
        let g = graph(&[
            ("Conv", &["x", "w"], "s"),
            ("Relu", &["s"], "s1"),
            ("Conv", &["s1", "w"], "a"),
            ("Add", &["a", "s1"], "b"),
            ("Relu", &["b"], "u1"),
            ("Conv", &["u1", "w"], "c"),
            ("Add", &["c", "u1"], "d"),
            ("Relu", &["d"], "u2"),
            ("GlobalAveragePool", &["u2"], "p"),
        ]);
        assert_eq!(block_outputs(&g, &g).unwrap(), ["s1", "u1", "u2"]);
    }

    #[test]
    fn inner_tensors_of_a_cell_are_not_cuts() {
        // x0 -> n1; n2 = f(x0) + g(n1); out = n2 + h(x0): n1 is jumped over by x0 -> out
        let g = graph(&[
            ("Conv", &["x", "w"], "x0"),
            ("Conv", &["x0", "w"], "n1"),
            ("Conv", &["x0", "w"], "e1"),
            ("Add", &["e1", "n1"], "n2"),
            ("Conv", &["x0", "w"], "e2"),
            ("Add", &["n2", "e2"], "out3"),
            ("Shape", &["out3"], "shape"),
            ("Reshape", &["out3", "shape"], "y"),
        ]);
        assert_eq!(block_outputs(&g, &g).unwrap(), ["x0", "out3"]);
    }

    #[test]
    fn plain_chains_use_activation_outputs() {
        let g = graph(&[("Conv", &["x", "w"], "a"), ("Relu", &["a"], "r1"), ("Conv", &["r1", "w"], "b"), ("Relu", &["b"], "r2"), ("Flatten", &["r2"], "f")]);
        assert_eq!(block_outputs(&g, &g).unwrap(), ["r1", "r2"]);
    }
}
