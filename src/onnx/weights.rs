//! Weights that are not plain initializers. A weight is any constant expression: exporters
//! write them as initializers, but also as `Constant` nodes (onnx.helper, older exporters),
//! `ConstantOfShape(shape)` (the Caffe2-era `light_*.onnx` of the ONNX model zoo), a `Cast`
//! of a float16/bfloat16 initializer, `Identity`, `DequantizeLinear` of an integer
//! initializer (QDQ quantisation), or `Transpose`/`Reshape`/`Unsqueeze`/`Squeeze` of one of
//! these (tf2onnx's MatMul weights). Every such expression feeding a parameter slot (the
//! weight and bias of Conv/ConvTranspose/Gemm, MatMul's and PRelu's second operand) is
//! folded at load into a float initializer named after the slot's tensor: then it is scored,
//! counted by `params` and replaced by the re-initialising proxies like any other.
//!
//! The normalisations' slots (scale, bias and BatchNormalization's running statistics) are
//! folded the same way, except when they are a bare `Constant` node: a non-affine
//! BatchNorm's fixed scale and bias are exported as those, and they are not parameters.
//!
//! QDQ models: a `QuantizeLinear → DequantizeLinear` pair on an activation is removed (the
//! model is scored as the dequantized float network). Where the pair's zero point is the
//! bottom of the quantised range (uint8 with zero point 0), the pair clamps at zero: the
//! quantiser has fused a Relu into it, so a Relu takes its place, unless its input is
//! already non-negative.

use super::ir::{Attr, DType, Graph, Node, Tensor};
use anyhow::{anyhow, bail, Context, Result};
use indexmap::IndexMap;
use ndarray::{ArrayD, IxDyn};
use std::collections::{HashMap, HashSet};

/// Ops whose output is a constant when their inputs are.
const FOLDABLE: &[&str] = &["Constant", "ConstantOfShape", "Cast", "Identity", "DequantizeLinear", "Transpose", "Reshape", "Unsqueeze", "Squeeze"];

/// The slots folded whatever their expression (parameters of the scored and linear ops).
fn weight_inputs(op: &str) -> &'static [usize] {
    match op {
        "Conv" | "ConvTranspose" | "Gemm" => &[1, 2],
        "MatMul" | "PRelu" => &[1],
        _ => &[],
    }
}

/// The normalisations' slots: folded unless a bare `Constant` node.
fn norm_inputs(op: &str) -> &'static [usize] {
    match op {
        "BatchNormalization" => &[1, 2, 3, 4],
        "InstanceNormalization" | "LayerNormalization" => &[1, 2],
        _ => &[],
    }
}

/// Turns every `ConstantOfShape` (and other constant expression) that feeds a parameter slot
/// into an initializer of that name. Returns the names it made.
pub fn materialize_constant_weights(g: &mut Graph) -> Result<Vec<String>> {
    let origins = fold_constant_weights(g, &HashMap::new())?;
    Ok(origins.into_iter().filter(|(_, o)| o != "initializer").map(|(n, _)| n).collect())
}

/// Folds the constant expressions of every parameter slot into float initializers.
/// `stored`: tensors whose file type differs from the one they are computed in (see
/// `proto::ImportInfo::stored`). Returns, for every parameter slot's tensor, where it came
/// from ("initializer", "Constant", "ConstantOfShape", "Cast from float16",
/// "DequantizeLinear of int8", "Transpose of Constant", …), in graph order.
pub fn fold_constant_weights(g: &mut Graph, stored: &HashMap<String, &'static str>) -> Result<IndexMap<String, String>> {
    let producers = g.producers();
    let mut folder = Folder { g, producers: &producers, stored, memo: HashMap::new(), used_nodes: HashSet::new(), leaves: HashSet::new() };
    let mut wanted: Vec<(String, bool)> = Vec::new(); // (tensor, is a weight slot)
    for n in &folder.g.nodes {
        for &i in weight_inputs(&n.op) {
            if let Some(x) = n.input(i) {
                wanted.push((x.to_string(), true));
            }
        }
        for &i in norm_inputs(&n.op) {
            if let Some(x) = n.input(i) {
                wanted.push((x.to_string(), false));
            }
        }
    }
    let mut origins = IndexMap::new();
    let mut folded: Vec<(String, Tensor)> = Vec::new();
    let mut seen = HashSet::new();
    for (name, weight) in &wanted {
        if !seen.insert(name.clone()) && origins.contains_key(name) {
            continue;
        }
        if folder.g.initializers.contains_key(name) {
            let origin = match stored.get(name) {
                Some(ty) => format!("initializer ({ty})"),
                None => "initializer".to_string(),
            };
            origins.insert(name.clone(), origin);
            continue;
        }
        let Some((t, origin)) = folder.eval(name).with_context(|| format!("{}: constant weight '{name}'", folder.g.source))? else { continue };
        let bare_constant = origin == "Constant" || origin == "Identity of Constant";
        if (!*weight && bare_constant) || !t.dtype().is_float() {
            continue;
        }
        folder.mark(name);
        origins.insert(name.clone(), origin);
        folded.push((name.clone(), t));
    }
    let Folder { used_nodes, leaves, .. } = folder;
    if folded.is_empty() {
        return Ok(origins);
    }
    let made: HashSet<String> = folded.iter().map(|(n, _)| n.clone()).collect();
    // the nodes that produced a folded tensor go; so do the expression's nodes and leaves
    // that nothing else reads any more
    g.nodes.retain(|n| !n.outputs.iter().any(|o| made.contains(o.as_str())));
    for (name, t) in folded {
        g.set_initializer(&name, t);
    }
    loop {
        let uses = g.use_counts();
        let before = g.nodes.len();
        g.nodes.retain(|n| !(used_nodes.contains(&n.name) && FOLDABLE.contains(&n.op.as_str()) && n.outputs.iter().all(|o| o.is_empty() || !uses.contains_key(o))));
        if g.nodes.len() == before {
            let dead: Vec<String> = leaves.iter().filter(|l| !uses.contains_key(*l) && !made.contains(*l)).cloned().collect();
            for l in dead {
                g.initializers.shift_remove(&l);
                g.types.remove(&l);
            }
            break;
        }
    }
    Ok(origins)
}

struct Folder<'a> {
    g: &'a Graph,
    producers: &'a HashMap<String, usize>,
    stored: &'a HashMap<String, &'static str>,
    memo: HashMap<String, Option<(Tensor, String)>>,
    used_nodes: HashSet<String>,
    leaves: HashSet<String>,
}

impl Folder<'_> {
    /// Records the nodes and initializers of a folded expression (for removal once unused).
    fn mark(&mut self, name: &str) {
        if self.g.initializers.contains_key(name) {
            self.leaves.insert(name.to_string());
            return;
        }
        let Some(&i) = self.producers.get(name) else { return };
        let n = &self.g.nodes[i];
        if self.used_nodes.insert(n.name.clone()) {
            for x in n.inputs.iter().filter(|x| !x.is_empty()).cloned().collect::<Vec<_>>() {
                self.mark(&x);
            }
        }
    }

    /// The value of a tensor and where it came from, when it is a constant expression.
    fn eval(&mut self, name: &str) -> Result<Option<(Tensor, String)>> {
        if let Some(v) = self.memo.get(name) {
            return Ok(v.clone());
        }
        let v = self.eval_uncached(name)?;
        self.memo.insert(name.to_string(), v.clone());
        Ok(v)
    }

    fn eval_uncached(&mut self, name: &str) -> Result<Option<(Tensor, String)>> {
        if let Some(t) = self.g.initializers.get(name) {
            return Ok(Some((t.clone(), "initializer".into())));
        }
        let Some(&i) = self.producers.get(name) else { return Ok(None) };
        let n = self.g.nodes[i].clone();
        if !FOLDABLE.contains(&n.op.as_str()) || n.outputs.first().map(String::as_str) != Some(name) {
            return Ok(None);
        }
        let mut args = Vec::new();
        for x in &n.inputs {
            if x.is_empty() {
                args.push(None);
                continue;
            }
            match self.eval(x)? {
                Some(v) => args.push(Some(v)),
                None => return Ok(None),
            }
        }
        let arg = |k: usize| args.get(k).and_then(|a| a.as_ref());
        let input_type = |k: usize| -> String {
            let x = n.input(k).unwrap_or_default();
            match self.stored.get(x) {
                Some(ty) => ty.to_string(),
                None => arg(k).map(|(t, _)| t.dtype().name().to_string()).unwrap_or_default(),
            }
        };
        let from = |k: usize| arg(k).map(|(_, o)| o.clone()).unwrap_or_default();
        let what = || n.describe();
        let out = match n.op.as_str() {
            "Constant" => {
                let t = constant_value(&n).ok_or_else(|| anyhow!("{}: no value", what()))?;
                let origin = match self.stored.get(name) {
                    Some(ty) => format!("Constant ({ty})"),
                    None => "Constant".into(),
                };
                (t, origin)
            }
            "ConstantOfShape" => {
                let dims = arg(0).ok_or_else(|| anyhow!("{}: no shape", what()))?.0.to_i64_vec();
                (fill(&dims, n.attrs.get("value")).with_context(what)?, "ConstantOfShape".into())
            }
            "Identity" => {
                let (t, o) = arg(0).cloned().ok_or_else(|| anyhow!("{}: no input", what()))?;
                (t, if o == "initializer" { o } else { format!("Identity of {o}") })
            }
            "Cast" => {
                let to = match n.attrs.get("to") {
                    Some(Attr::Int(c)) => *c as i32,
                    _ => bail!("{}: no 'to'", what()),
                };
                let dtype = match to {
                    1 | 10 | 16 => DType::F32,
                    c => DType::from_onnx(c)?,
                };
                let t = arg(0).ok_or_else(|| anyhow!("{}: no input", what()))?.0.cast(dtype);
                (t, format!("Cast from {}", input_type(0)))
            }
            "DequantizeLinear" => {
                if n.int("block_size", 0) != 0 {
                    return Ok(None);
                }
                let x = &arg(0).ok_or_else(|| anyhow!("{}: no input", what()))?.0;
                let scale = &arg(1).ok_or_else(|| anyhow!("{}: no scale", what()))?.0;
                let zero = arg(2).map(|a| &a.0);
                (dequantize(x, scale, zero, n.int("axis", 1)).with_context(what)?, format!("DequantizeLinear of {}", input_type(0)))
            }
            "Transpose" => {
                let t = &arg(0).ok_or_else(|| anyhow!("{}: no input", what()))?.0;
                let rank = t.shape().len();
                let perm: Vec<usize> = match n.ints("perm") {
                    Some(p) => p.iter().map(|&a| usize::try_from(a).map_err(|_| anyhow!("{}: bad perm", what()))).collect::<Result<_>>()?,
                    None => (0..rank).rev().collect(),
                };
                let mut sorted = perm.clone();
                sorted.sort();
                if sorted != (0..rank).collect::<Vec<_>>() {
                    bail!("{}: perm {perm:?} is not a permutation of {rank} axes", what());
                }
                let a = t.to_f64_array().permuted_axes(IxDyn(&perm));
                let shape = a.shape().to_vec();
                (Tensor::from_f64(t.dtype(), &shape, a.iter().copied().collect()), format!("Transpose of {}", from(0)))
            }
            "Reshape" | "Unsqueeze" | "Squeeze" => {
                let t = &arg(0).ok_or_else(|| anyhow!("{}: no input", what()))?.0;
                let shape = match n.op.as_str() {
                    "Reshape" => reshape_to(t.shape(), &arg(1).ok_or_else(|| anyhow!("{}: no shape", what()))?.0.to_i64_vec(), n.int("allowzero", 0) != 0),
                    op => {
                        let axes = match (arg(1), n.ints("axes")) {
                            (Some((a, _)), _) => Some(a.to_i64_vec()),
                            (None, a) => a,
                        };
                        squeeze_to(t.shape(), axes, op == "Unsqueeze")
                    }
                }
                .with_context(what)?;
                (Tensor::from_f64(t.dtype(), &shape, t.to_f64_vec()), format!("{} of {}", n.op, from(0)))
            }
            _ => return Ok(None),
        };
        Ok(Some(out))
    }
}

/// A `Constant` node's value.
fn constant_value(n: &Node) -> Option<Tensor> {
    Some(match n.attrs.get("value").or_else(|| n.attrs.get("value_float")).or_else(|| n.attrs.get("value_floats")).or_else(|| n.attrs.get("value_int")).or_else(|| n.attrs.get("value_ints"))? {
        Attr::Tensor(t) => t.clone(),
        Attr::Float(f) => Tensor::scalar(DType::F32, *f as f64),
        Attr::Floats(v) => Tensor::from_f64(DType::F32, &[v.len()], v.iter().map(|&x| x as f64).collect()),
        Attr::Int(i) => Tensor::scalar(DType::I64, *i as f64),
        Attr::Ints(v) => Tensor::from_i64(v),
        Attr::Str(_) => return None,
    })
}

/// `(x - zero) * scale`, per tensor or per axis (1-D scale along `axis`), in the scale's type.
fn dequantize(x: &Tensor, scale: &Tensor, zero: Option<&Tensor>, axis: i64) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    let rank = shape.len() as i64;
    let s = scale.to_f64_vec();
    let z = zero.map(Tensor::to_f64_vec).unwrap_or_else(|| vec![0.0; s.len()]);
    if z.len() != s.len() {
        bail!("zero point has {} elements, scale {}", z.len(), s.len());
    }
    let xs = x.to_f64_array();
    let y: ArrayD<f64> = if s.len() == 1 && scale.shape().iter().product::<usize>() == 1 {
        xs.mapv(|v| (v - z[0]) * s[0])
    } else {
        if scale.shape().len() != 1 {
            bail!("scale of shape {:?}: only per-tensor and per-axis (1-D) scales are handled", scale.shape());
        }
        let ax = if axis < 0 { axis + rank } else { axis };
        if ax < 0 || ax >= rank || shape[ax as usize] != s.len() {
            bail!("per-axis scale of {} elements does not match axis {axis} of {shape:?}", s.len());
        }
        let mut y = xs;
        for (k, mut lane) in y.axis_iter_mut(ndarray::Axis(ax as usize)).enumerate() {
            lane.mapv_inplace(|v| (v - z[k]) * s[k]);
        }
        y
    };
    let dtype = if scale.dtype().is_float() { scale.dtype() } else { DType::F32 };
    Ok(Tensor::from_f64(dtype, &shape, y.iter().copied().collect()))
}

/// `Reshape`'s output shape (0 copies the input's dimension unless `allowzero`, -1 is inferred).
fn reshape_to(input: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &d) in target.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(k).ok_or_else(|| anyhow!("0 at {k} beyond the input's rank"))?),
            d if d >= 0 => out.push(d as usize),
            _ => bail!("bad shape {target:?}"),
        }
    }
    if let Some(k) = infer {
        let rest: usize = out.iter().product();
        if rest == 0 || total % rest != 0 {
            bail!("cannot reshape {input:?} to {target:?}");
        }
        out[k] = total / rest;
    }
    if out.iter().product::<usize>() != total {
        bail!("cannot reshape {input:?} to {target:?}");
    }
    Ok(out)
}

/// `Unsqueeze`/`Squeeze`'s output shape.
fn squeeze_to(input: &[usize], axes: Option<Vec<i64>>, unsqueeze: bool) -> Result<Vec<usize>> {
    if unsqueeze {
        let axes = axes.ok_or_else(|| anyhow!("no axes"))?;
        let rank = (input.len() + axes.len()) as i64;
        let mut ax: Vec<usize> = axes.iter().map(|&a| if a < 0 { a + rank } else { a }).map(|a| usize::try_from(a).map_err(|_| anyhow!("bad axis"))).collect::<Result<_>>()?;
        ax.sort();
        let mut out = input.to_vec();
        for a in ax {
            if a > out.len() {
                bail!("axis {a} out of range");
            }
            out.insert(a, 1);
        }
        Ok(out)
    } else {
        let rank = input.len() as i64;
        let ax: HashSet<usize> = match axes {
            Some(a) => a.iter().map(|&a| if a < 0 { a + rank } else { a }).map(|a| a as usize).collect(),
            None => (0..input.len()).filter(|&k| input[k] == 1).collect(),
        };
        Ok(input.iter().enumerate().filter(|(k, _)| !ax.contains(k)).map(|(_, &d)| d).collect())
    }
}

/// `ConstantOfShape`'s tensor: `dims` filled with its `value` (0.0 float32 by default).
fn fill(dims: &[i64], value: Option<&Attr>) -> Result<Tensor> {
    let shape: Vec<usize> = dims.iter().map(|&d| usize::try_from(d).map_err(|_| anyhow!("negative dimension {d}"))).collect::<Result<_>>()?;
    let (dtype, v) = match value {
        Some(Attr::Tensor(t)) => (t.dtype(), t.to_f64_vec().first().copied().unwrap_or(0.0)),
        _ => (DType::F32, 0.0),
    };
    crate::memory::check(format!("a constant of shape {shape:?}"), crate::memory::elements(&shape).saturating_mul(dtype.width() as u128))?;
    Ok(Tensor::full(dtype, &shape, v))
}

/// Removes the `QuantizeLinear → DequantizeLinear` pairs on activations (see the module's
/// documentation). Returns (pairs removed, Relus put in their place).
pub fn remove_qdq_pairs(g: &mut Graph, stored: &HashMap<String, &'static str>) -> (usize, usize) {
    let producers = g.producers();
    let mut nonneg: HashSet<String> = HashSet::new();
    // DequantizeLinear node index → (the QuantizeLinear's input, a Relu in its place)
    let mut pairs: HashMap<usize, (String, bool)> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let x = n.input(0).unwrap_or_default();
        let out = n.outputs.first().cloned().unwrap_or_default();
        match n.op.as_str() {
            "Relu" | "Sigmoid" | "Softmax" | "Abs" | "Exp" => {
                nonneg.insert(out);
            }
            "MaxPool" | "AveragePool" | "GlobalAveragePool" | "GlobalMaxPool" | "Flatten" | "Reshape" | "Identity" | "Squeeze" | "Unsqueeze" | "Transpose" | "Concat" => {
                if n.inputs.iter().filter(|s| !s.is_empty()).take(if n.op == "Concat" { usize::MAX } else { 1 }).all(|s| nonneg.contains(s)) {
                    nonneg.insert(out);
                }
            }
            "DequantizeLinear" => {
                let Some(q) = producers.get(x).map(|&k| &g.nodes[k]).filter(|q| q.op == "QuantizeLinear") else { continue };
                let Some(src) = q.input(0) else { continue };
                if g.initializers.contains_key(src) {
                    // a float weight written as QuantizeLinear → DequantizeLinear: the weight
                    pairs.insert(i, (src.to_string(), false));
                    continue;
                }
                let clamps = match q.input(2) {
                    None => true, // uint8, zero point 0
                    Some(z) => match g.initializers.get(z) {
                        Some(t) => {
                            let qmin = match stored.get(z).copied() {
                                Some("int8") => -128.0,
                                Some("int16") => -32768.0,
                                _ => 0.0,
                            };
                            t.to_f64_vec().iter().all(|&v| v == qmin)
                        }
                        None => false,
                    },
                };
                let relu = clamps && !nonneg.contains(src);
                if clamps || nonneg.contains(src) {
                    nonneg.insert(out);
                }
                pairs.insert(i, (src.to_string(), relu));
            }
            _ => {}
        }
    }
    if pairs.is_empty() {
        return (0, 0);
    }
    let read = g.use_counts();
    let relus = pairs.iter().filter(|(&i, (_, r))| *r && read.contains_key(&g.nodes[i].outputs[0])).count();
    let outputs: HashSet<String> = g.outputs.iter().cloned().collect();
    let uses = g.use_counts();
    let mut renames = Vec::new();
    let mut params: HashSet<String> = HashSet::new();
    let nodes = std::mem::take(&mut g.nodes);
    for (i, n) in nodes.into_iter().enumerate() {
        if pairs.contains_key(&i) {
            params.extend(n.inputs.iter().skip(1).cloned());
        }
        match pairs.get(&i) {
            // nothing reads it (a training-mode BatchNorm's running statistics): it goes
            Some(_) if !uses.contains_key(&n.outputs[0]) => {}
            Some((src, true)) => g.nodes.push(Node::new(n.name.clone(), "Relu", vec![src.clone()], vec![n.outputs[0].clone()])),
            Some((src, false)) if outputs.contains(&n.outputs[0]) => g.nodes.push(Node::new(n.name.clone(), "Identity", vec![src.clone()], vec![n.outputs[0].clone()])),
            Some((src, false)) => renames.push((n.outputs[0].clone(), src.clone())),
            None => g.nodes.push(n),
        }
    }
    for (from, to) in &renames {
        g.rename_uses(from, to);
    }
    // the QuantizeLinear nodes nothing reads any more, and their scales and zero points
    let uses = g.use_counts();
    g.nodes.retain(|n| {
        let dead = n.op == "QuantizeLinear" && n.outputs.iter().all(|o| !uses.contains_key(o));
        if dead {
            params.extend(n.inputs.iter().skip(1).cloned());
        }
        !dead
    });
    let uses = g.use_counts();
    for p in params.iter().filter(|p| !uses.contains_key(*p)) {
        g.initializers.shift_remove(p);
        g.types.remove(p);
    }
    (pairs.len(), relus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dequantize_per_tensor_and_per_axis() {
        let x = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![-128, 0, 10, 127]).unwrap());
        let s = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[]), vec![0.5]).unwrap());
        let z = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[]), vec![2]).unwrap());
        assert_eq!(dequantize(&x, &s, Some(&z), 1).unwrap().to_f64_vec(), [-65.0, -1.0, 4.0, 62.5]);
        let s = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![1.0, 0.25]).unwrap());
        let z = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2]), vec![0, 2]).unwrap());
        // axis 0: rows scaled by 1 and 0.25, zero points 0 and 2
        assert_eq!(dequantize(&x, &s, Some(&z), 0).unwrap().to_f64_vec(), [-128.0, 0.0, 2.0, 31.25]);
        // axis 1 (the default): columns
        assert_eq!(dequantize(&x, &s, Some(&z), 1).unwrap().to_f64_vec(), [-128.0, -0.5, 10.0, 31.25]);
        assert!(dequantize(&x, &Tensor::F32(ArrayD::zeros(IxDyn(&[3]))), None, 0).is_err());
    }

    #[test]
    fn half_precision_bits() {
        use crate::onnx::proto::{bf16_to_f32, f16_to_f32};
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite() && f16_to_f32(0x7e00).is_nan());
        assert_eq!(bf16_to_f32(0x3f80), 1.0);
        assert_eq!(bf16_to_f32(0xc040), -3.0);
    }

    #[test]
    fn constant_chains_fold_into_parameters_but_a_bn_constant_does_not() {
        let mut g = Graph { source: "test".into(), opset: 17, ..Graph::default() };
        g.inputs.push("x".into());
        let w = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap());
        g.nodes.push(Node::new("c", "Constant", vec![], vec!["wt".into()]).with_attr("value", Attr::Tensor(w)));
        g.nodes.push(Node::new("t", "Transpose", vec!["wt".into()], vec!["w".into()]).with_attr("perm", Attr::Ints(vec![1, 0])));
        g.nodes.push(Node::new("mm", "MatMul", vec!["x".into(), "w".into()], vec!["y".into()]));
        g.nodes.push(Node::new("s", "Constant", vec![], vec!["scale".into()]).with_attr("value", Attr::Tensor(Tensor::full(DType::F32, &[2], 1.0))));
        g.nodes.push(Node::new("bn", "BatchNormalization", vec!["y".into(), "scale".into(), "scale".into(), "scale".into(), "scale".into()], vec!["z".into()]));
        g.outputs.push("z".into());
        let origins = fold_constant_weights(&mut g, &HashMap::new()).unwrap();
        assert_eq!(origins.get("w").map(String::as_str), Some("Transpose of Constant"));
        assert_eq!(g.initializers["w"].shape(), [3, 2]);
        assert_eq!(g.initializers["w"].to_f64_vec(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        // the Constant and Transpose went; the BatchNorm's Constant stays a node
        assert_eq!(g.nodes.iter().map(|n| n.op.as_str()).collect::<Vec<_>>(), ["MatMul", "Constant", "BatchNormalization"]);
        assert!(!g.initializers.contains_key("scale"));
    }
}
