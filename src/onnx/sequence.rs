//! Tensor sequences from a split. PyTorch's dynamo exporter writes `torch.split`/`chunk`
//! (ShuffleNet's channel split, MixNet's mixed kernels) as `SplitToSequence` followed by
//! one `SequenceAt` per piece. Neither engine's gradient programs need sequences for that:
//! each `SequenceAt` with a constant position becomes a `Slice` of the split tensor (and a
//! `Squeeze` where the split drops the axis), so the graph stays one of plain tensors.

use super::ir::{Graph, Node, Tensor};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;

/// A `SplitToSequence` seen earlier in the graph: what its pieces are cut from.
struct Split {
    input: String,
    /// The `split` input's name (a constant), or None: pieces of size 1.
    sizes: Option<String>,
    axis: i64,
    keepdims: bool,
}

/// The sequences of the graph being canonicalised, by name.
#[derive(Default)]
pub struct Sequences {
    splits: HashMap<String, Split>,
}

impl Sequences {
    /// The nodes that replace `n`: none for a `SplitToSequence` (remembered), a Slice (and
    /// Squeeze) for a `SequenceAt` of one, `n` itself otherwise.
    pub fn lower(&mut self, g: &mut Graph, n: Node) -> Result<Vec<Node>> {
        match n.op.as_str() {
            "SplitToSequence" => {
                let input = n.input(0).ok_or_else(|| anyhow!("{} without input", n.describe()))?.to_string();
                let sizes = n.input(1).map(str::to_string);
                let split = Split { input, sizes, axis: n.int("axis", 0), keepdims: n.int("keepdims", 1) != 0 };
                self.splits.insert(n.outputs[0].clone(), split);
                Ok(vec![])
            }
            "SequenceAt" => {
                let seq = n.input(0).unwrap_or_default();
                let Some(split) = self.splits.get(seq) else {
                    bail!("{}: sequence '{seq}' is not made by a SplitToSequence (the only sequences supported)", n.describe())
                };
                self.slice(g, &n, split)
            }
            op if op.starts_with("Sequence") || op.ends_with("FromSequence") => {
                bail!("{}: operator {op} is not supported (of the sequence ops only SplitToSequence followed by SequenceAt with constant positions)", n.describe())
            }
            _ => Ok(vec![n]),
        }
    }

    fn slice(&self, g: &mut Graph, n: &Node, split: &Split) -> Result<Vec<Node>> {
        let shape = g.shape(&split.input)?.to_vec();
        let rank = shape.len() as i64;
        let axis = if split.axis < 0 { split.axis + rank } else { split.axis };
        if !(0..rank).contains(&axis) {
            bail!("{}: split axis {} out of range for rank {rank}", n.describe(), split.axis);
        }
        let dim = shape[axis as usize];
        let constant = |name: &str| {
            g.constant(name).map(Tensor::to_i64_vec).ok_or_else(|| anyhow!("{}: '{name}' must be a constant known before running", n.describe()))
        };
        let sizes: Vec<usize> = match &split.sizes {
            None => vec![1; dim],
            Some(s) => {
                let v = constant(s)?;
                let scalar = g.constant(s).is_some_and(|t| t.shape().is_empty());
                if v.iter().any(|&x| x <= 0) {
                    bail!("{}: split sizes {v:?} must be positive", n.describe());
                }
                if scalar {
                    let c = v[0] as usize;
                    (0..dim.div_ceil(c)).map(|i| c.min(dim - i * c)).collect()
                } else {
                    v.iter().map(|&x| x as usize).collect()
                }
            }
        };
        let pos = constant(n.input(1).ok_or_else(|| anyhow!("{} without position", n.describe()))?)?;
        let pos = *pos.first().ok_or_else(|| anyhow!("{}: empty position", n.describe()))?;
        let k = sizes.len() as i64;
        let at = if pos < 0 { pos + k } else { pos };
        if !(0..k).contains(&at) {
            bail!("{}: position {pos} of a sequence of {k} tensors", n.describe());
        }
        let start: usize = sizes[..at as usize].iter().sum();
        let end = start + sizes[at as usize];
        let mut int = |suffix: &str, v: &[i64]| {
            let name = g.fresh(&format!("{}/{suffix}", n.name));
            g.set_initializer(&name, Tensor::from_i64(v));
            name
        };
        let (starts, ends, axes) = (int("starts", &[start as i64]), int("ends", &[end as i64]), int("axes", &[axis]));
        let out = n.outputs[0].clone();
        if split.sizes.is_none() && !split.keepdims {
            let squeeze_axes = int("squeeze_axes", &[axis]);
            let sliced = g.fresh(&format!("{}/piece", n.name));
            Ok(vec![
                Node::new(format!("{}/slice", n.name), "Slice", vec![split.input.clone(), starts, ends, axes], vec![sliced.clone()]),
                Node::new(format!("{}/squeeze", n.name), "Squeeze", vec![sliced, squeeze_axes], vec![out]),
            ])
        } else {
            Ok(vec![Node::new(format!("{}/slice", n.name), "Slice", vec![split.input.clone(), starts, ends, axes], vec![out])])
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_graph, rand_tensor};
    use crate::onnx::canon::{canonicalize, CanonOptions, InputShapes};
    use crate::onnx::ir::{Attr, DType, Graph, Node, Tensor};
    use crate::onnx::proto::{InputDecl, RawModel};

    /// x [2, 5, 3] split along axis 1 three ways (sizes [1, 3, 1]; scalar 2, the last piece
    /// shorter; no split with keepdims 0, each piece losing the axis), pieces picked by
    /// positive and negative positions and recombined: the graph import leaves (Slice,
    /// Squeeze) against finite differences, first and second order ("SplitToSequence" and
    /// "SequenceAt" checked here).
    #[test]
    fn split_pieces_have_exact_gradients() {
        let x = rand_tensor(&[2, 5, 3], 7);
        let mut g = Graph { opset: 17, source: "check:SplitToSequence".into(), ..Graph::default() };
        g.inputs.push("x".into());
        g.set_initializer("sizes", Tensor::from_i64(&[1, 3, 1]));
        g.set_initializer("two", Tensor::scalar(DType::I64, 2.0));
        for (k, v) in [("p0", 0.0), ("p1", 1.0), ("m1", -1.0), ("p2", 2.0)] {
            g.set_initializer(k, Tensor::scalar(DType::I64, v));
        }
        let mut node = |op: &str, ins: &[&str], out: &str, attrs: &[(&str, i64)]| {
            let mut n = Node::new(out, op, ins.iter().map(|s| s.to_string()).collect(), vec![out.to_string()]);
            for (k, v) in attrs {
                n.attrs.insert(k.to_string(), Attr::Int(*v));
            }
            g.nodes.push(n);
        };
        node("SplitToSequence", &["x", "sizes"], "s", &[("axis", 1)]);
        node("SequenceAt", &["s", "p1"], "a", &[]); // [2, 3, 3]
        node("SequenceAt", &["s", "m1"], "b", &[]); // [2, 1, 3]
        node("SplitToSequence", &["x", "two"], "t", &[("axis", -2)]);
        node("SequenceAt", &["t", "m1"], "c", &[]); // the short last piece [2, 1, 3]
        node("SequenceAt", &["t", "p0"], "d", &[]); // [2, 2, 3]
        node("SplitToSequence", &["x"], "u", &[("axis", 2), ("keepdims", 0)]);
        node("SequenceAt", &["u", "p2"], "e", &[]); // [2, 5]
        node("Mul", &["b", "c"], "bc", &[]);
        node("Mul", &["a", "a"], "aa", &[]);
        node("Mul", &["d", "d"], "dd", &[]);
        g.outputs = vec!["aa".into(), "bc".into(), "dd".into(), "e".into()];
        let decl = InputDecl { name: "x".into(), dtype: DType::F64, dims: vec![Some(2), Some(5), Some(3)], dim_names: vec![] };
        let raw = RawModel { graph: g, input_decls: vec![decl] };
        let shapes = InputShapes { shapes: [("x".to_string(), vec![2, 5, 3])].into(), export_batch: None, batch: 2 };
        let c = canonicalize(&raw, &shapes, &CanonOptions { float64: true, ..Default::default() }).unwrap();
        assert!(!c.nodes.iter().any(|n| n.op.contains("Sequence")), "sequence ops left after import");
        assert_eq!(c.shape(&c.outputs[3]).unwrap(), [2, 5]);
        let outs = c.outputs.clone();
        let r = check_graph(&c, &outs, &[("x".into(), x)], true, 1e-6).unwrap();
        assert!(r.max_rel_err < 1e-6, "{r:?}");
    }

    /// Sequence ops other than a split read at constant positions are refused by name.
    #[test]
    fn other_sequence_ops_are_refused() {
        let mut seqs = super::Sequences::default();
        let mut g = Graph::default();
        let n = Node::new("n", "ConcatFromSequence", vec!["s".into()], vec!["y".into()]);
        let e = format!("{:#}", seqs.lower(&mut g, n).unwrap_err());
        assert!(e.contains("ConcatFromSequence is not supported"), "{e}");
    }
}
