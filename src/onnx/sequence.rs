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
            op if op.starts_with("Sequence") || op.ends_with("FromSequence") || op == "SplitToSequence" => {
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
