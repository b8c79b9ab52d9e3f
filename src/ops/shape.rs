//! Data movement: reshapes, transposes, slicing, concatenation, padding, gathering,
//! broadcasting. Every gradient moves the output gradient back to where each input element
//! went (summing where an element was copied several times); shape, index and axis
//! inputs get none.

use super::{Fold, OpDef};
use crate::onnx::fold::arg;
use crate::onnx::infer::{broadcast, input, reshape_target, same_as_input, split_sizes};
use crate::onnx::ir::{DType, Graph, TypeInfo};
use anyhow::anyhow;
use ndarray::{Axis, SliceInfoElem};
use super::{gy0, Grads};
use crate::onnx::builder::Builder;
use crate::onnx::infer::{axis, const_ints, slice_len, slice_params};
use crate::onnx::ir::{Attr, Node, Tensor};
use anyhow::{bail, Result};
use ndarray::{ArrayD, IxDyn};
use super::{first_output_only, LowerCtx};

pub const OPS: &[OpDef] = &[
    OpDef::rule("Reshape", 5, "shape must be a constant", infer_reshape, reshape).folds(Fold::Values(fold_reshape)),
    OpDef::rule("Flatten", 1, "", infer_flatten, reshape).folds(Fold::Values(fold_reshape)),
    OpDef::rule("Squeeze", 1, "", infer_squeeze, reshape).folds(Fold::Values(fold_reshape)),
    OpDef::rule("Unsqueeze", 1, "", infer_unsqueeze, reshape).folds(Fold::Values(fold_reshape)),
    OpDef::rule("Transpose", 1, "", infer_transpose, transpose).folds(Fold::Values(fold_transpose)),
    OpDef::rule("Concat", 4, "", infer_concat, concat).folds(Fold::Values(fold_concat)),
    OpDef::rule("Split", 2, "sizes as attribute, input or num_outputs", infer_split, split),
    OpDef::rule("Slice", 1, "constant starts/ends/axes/steps", infer_slice, slice).folds(Fold::Values(fold_slice)),
    OpDef::rule("Gather", 1, "constant indices", infer_gather, gather).folds(Fold::Values(fold_gather)),
    OpDef::rule("Pad", 2, "constant mode only", infer_pad, pad),
    OpDef::rule("Expand", 8, "", infer_expand, expand).folds(Fold::Fill(fold_expand)),
    OpDef::rule("Tile", 6, "", infer_tile, tile).folds(Fold::Fill(fold_tile)),
    OpDef::lowered("DepthToSpace", 1, "Reshape, Transpose, Reshape", "DCR and CRD", infer_depth_space).lowers(lower_depth_space),
    OpDef::lowered("SpaceToDepth", 1, "Reshape, Transpose, Reshape", "", infer_depth_space).lowers(lower_depth_space),
    OpDef::no_rule_yet("GatherElements", 11, infer_gather_elements),
    OpDef::no_rule_yet("ScatterElements", 11, same_as_input),
    OpDef::no_rule_yet("ScatterND", 11, same_as_input),
    // sequences from a split (onnx/sequence.rs), before shape inference sees them
    OpDef::lowered("SplitToSequence", 11, "nothing itself: each SequenceAt of it becomes a Slice", "only read by SequenceAt at constant positions", sequence_op),
    OpDef::lowered("SequenceAt", 11, "Slice of the split input (and Squeeze where keepdims=0)", "of a SplitToSequence; other sequence ops are refused", sequence_op),
];

/// Sequence ops never reach shape inference (`onnx/sequence.rs` rewrites or refuses them
/// first); one that did would be refused as unsupported, as any unknown op.
fn sequence_op(_: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    bail!("operator {} is not supported (`zerocost ops` lists the supported ones)", n.op)
}

fn infer_reshape(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let spec = const_ints(g, n, 1)?.ok_or_else(|| anyhow!("Reshape without shape"))?;
    Ok(vec![TypeInfo::new(xi.dtype, reshape_target(&xi.shape, &spec, n.int("allowzero", 0) == 1)?)])
}

fn infer_flatten(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    // axis in [-r, r]; a negative one counts from r (not r + 1)
    let (a, r) = (n.int("axis", 1), xi.rank() as i64);
    if r > 0 && (a < -r || a > r) {
        bail!("Flatten axis {a} out of range for rank {r}");
    }
    let a = if r == 0 { 0 } else if a < 0 { a + r } else { a } as usize;
    let outer: usize = xi.shape[..a].iter().product();
    let inner: usize = xi.shape[a..].iter().product();
    Ok(vec![TypeInfo::new(xi.dtype, vec![outer, inner])])
}

fn infer_transpose(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let perm: Vec<usize> = match n.ints("perm") {
        Some(p) => p.iter().map(|&v| v as usize).collect(),
        None => (0..xi.rank()).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..xi.rank()).collect::<Vec<_>>() {
        bail!("Transpose perm {:?} is not a permutation of the {} axes", n.ints("perm").unwrap_or_default(), xi.rank());
    }
    Ok(vec![TypeInfo::new(xi.dtype, perm.iter().map(|&p| xi.shape[p]).collect())])
}

fn infer_squeeze(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let axes = n.ints("axes").or(const_ints(g, n, 1)?);
    let s = match axes {
        Some(a) => {
            let a: Vec<usize> = a.iter().map(|&v| axis(v, xi.rank())).collect::<Result<_>>()?;
            for &i in &a {
                if xi.shape[i] != 1 {
                    bail!("cannot squeeze axis {i} of size {}", xi.shape[i]);
                }
            }
            xi.shape.iter().enumerate().filter(|(i, _)| !a.contains(i)).map(|(_, &d)| d).collect()
        }
        None => xi.shape.iter().copied().filter(|&d| d != 1).collect(),
    };
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

fn infer_unsqueeze(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let axes = n.ints("axes").or(const_ints(g, n, 1)?).ok_or_else(|| anyhow!("Unsqueeze without axes"))?;
    let r = xi.rank() + axes.len();
    let mut a: Vec<usize> = axes.iter().map(|&v| axis(v, r)).collect::<Result<_>>()?;
    a.sort();
    let mut s = Vec::with_capacity(r);
    let mut it = xi.shape.iter();
    for i in 0..r {
        if a.contains(&i) {
            s.push(1);
        } else {
            s.push(*it.next().ok_or_else(|| anyhow!("bad Unsqueeze axes"))?);
        }
    }
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

fn infer_concat(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let first = input(g, n, 0)?;
    let a = axis(n.int("axis", 0), first.rank())?;
    let mut s = first.shape.clone();
    s[a] = 0;
    for i in 0..n.inputs.len() {
        let t = input(g, n, i)?;
        if t.rank() != s.len() {
            bail!("Concat inputs of different ranks");
        }
        for (k, (&d, &e)) in t.shape.iter().zip(first.shape.iter()).enumerate() {
            if k != a && d != e {
                bail!("Concat input #{i} has shape {:?}, first {:?}", t.shape, first.shape);
            }
        }
        s[a] += t.shape[a];
    }
    Ok(vec![TypeInfo::new(first.dtype, s)])
}

fn infer_split(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let a = axis(n.int("axis", 0), xi.rank())?;
    Ok(split_sizes(g, n, xi.shape[a])?
        .into_iter()
        .map(|d| {
            let mut s = xi.shape.clone();
            s[a] = d;
            TypeInfo::new(xi.dtype, s)
        })
        .collect())
}

fn infer_slice(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let p = slice_params(g, n, &xi.shape)?;
    Ok(vec![TypeInfo::new(xi.dtype, p.iter().map(|&(s, e, st)| slice_len(s, e, st)).collect())])
}

fn infer_gather(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let (xi, ii) = (input(g, n, 0)?, input(g, n, 1)?);
    let a = axis(n.int("axis", 0), xi.rank())?;
    let mut s = xi.shape[..a].to_vec();
    s.extend(&ii.shape);
    s.extend(&xi.shape[a + 1..]);
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

fn infer_gather_elements(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    Ok(vec![TypeInfo::new(input(g, n, 0)?.dtype, input(g, n, 1)?.shape.clone())])
}

fn infer_pad(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let pads = n.ints("pads").or(const_ints(g, n, 1)?).ok_or_else(|| anyhow!("Pad without pads"))?;
    let r = xi.rank();
    let axes: Vec<usize> = match const_ints(g, n, 3)? {
        Some(a) => a.iter().map(|&v| axis(v, r)).collect::<Result<_>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        bail!("Pad: {} pads for {} axes", pads.len(), axes.len());
    }
    let mut s = xi.shape.clone();
    for (k, &a) in axes.iter().enumerate() {
        let v = s[a] as i64 + pads[k] + pads[k + axes.len()];
        if v < 0 {
            bail!("Pad makes axis {a} negative");
        }
        s[a] = v as usize;
    }
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

fn infer_expand(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let target = const_ints(g, n, 1)?.ok_or_else(|| anyhow!("Expand without shape"))?;
    let t: Vec<usize> = target.iter().map(|&v| v.max(0) as usize).collect();
    Ok(vec![TypeInfo::new(xi.dtype, broadcast(&xi.shape, &t)?)])
}

fn infer_tile(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let reps = const_ints(g, n, 1)?.ok_or_else(|| anyhow!("Tile without repeats"))?;
    if reps.len() != xi.rank() {
        bail!("Tile repeats {reps:?} do not match rank {}", xi.rank());
    }
    Ok(vec![TypeInfo::new(xi.dtype, xi.shape.iter().zip(&reps).map(|(&d, &r)| d * r as usize).collect())])
}

fn infer_depth_space(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let k = n.int("blocksize", 0).max(1) as usize;
    if xi.rank() != 4 {
        bail!("{} wants a rank-4 input, got {:?}", n.op, xi.shape);
    }
    let s = &xi.shape;
    let out = if n.op == "DepthToSpace" {
        vec![s[0], s[1] / (k * k), s[2] * k, s[3] * k]
    } else {
        vec![s[0], s[1] * k * k, s[2] / k, s[3] / k]
    };
    Ok(vec![TypeInfo::new(xi.dtype, out)])
}

/// The same values at the inferred shape (Reshape, Flatten, Squeeze, Unsqueeze).
fn fold_reshape(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.into_shape_with_order(IxDyn(shape))?)
}

fn fold_transpose(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let data = arg(g, n, 0)?;
    let perm: Vec<usize> = match n.ints("perm") {
        Some(p) => p.iter().map(|&v| v as usize).collect(),
        None => (0..data.ndim()).rev().collect(),
    };
    Ok(data.permuted_axes(IxDyn(&perm)).as_standard_layout().to_owned())
}

fn fold_concat(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let a = axis(n.int("axis", 0), shape.len())?;
    let parts: Vec<ArrayD<f64>> = (0..n.inputs.len()).map(|i| arg(g, n, i)).collect::<Result<_>>()?;
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    Ok(ndarray::concatenate(Axis(a), &views)?)
}

fn fold_slice(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let data = arg(g, n, 0)?;
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
    Ok(data.slice(info.as_slice()).to_owned())
}

fn fold_gather(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let data = arg(g, n, 0)?;
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
    let stacked = if views.is_empty() { ArrayD::zeros(IxDyn(shape)) } else { ndarray::stack(Axis(a), &views)? };
    Ok(stacked.into_shape_with_order(IxDyn(shape))?)
}

fn fold_expand(g: &Graph, n: &Node, shape: &[usize], _: DType) -> Result<ArrayD<f64>> {
    Ok(arg(g, n, 0)?.broadcast(IxDyn(shape)).ok_or_else(|| anyhow!("broadcast"))?.to_owned())
}

fn fold_tile(g: &Graph, n: &Node, _: &[usize], _: DType) -> Result<ArrayD<f64>> {
    let data = arg(g, n, 0)?;
    let reps = arg(g, n, 1)?;
    let mut cur = data;
    for (a, &r) in reps.iter().enumerate() {
        let views: Vec<_> = (0..r as usize).map(|_| cur.view()).collect();
        cur = ndarray::concatenate(Axis(a), &views)?;
    }
    Ok(cur)
}

/// One gradient for input 0, None for the other (integer) inputs.
fn first_only(n: &Node, g: String) -> Grads {
    let mut out = vec![None; n.inputs.len()];
    out[0] = Some(g);
    Ok(out)
}

/// Reshape, Flatten, Squeeze, Unsqueeze keep the elements in order: reshape g back.
fn reshape(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let s = b.shape(&n.inputs[0])?;
    let g = b.reshape(gy0(gy)?, &s)?;
    first_only(n, g)
}

/// y = transpose(x, p): dx = transpose(g, p⁻¹).
fn transpose(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let r = b.shape(&n.inputs[0])?.len();
    let perm: Vec<usize> = match n.ints("perm") {
        Some(p) => p.iter().map(|&v| axis(v, r)).collect::<Result<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut inv = vec![0; r];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let g = b.transpose(gy0(gy)?, &inv)?;
    first_only(n, g)
}

/// y = concat(x_0, x_1, ...): dx_i = g[.., off_i : off_i + len_i, ..] along the axis.
fn concat(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let r = b.shape(&n.inputs[0])?.len();
    let a = axis(n.int("axis", 0), r)?;
    let mut out = Vec::with_capacity(n.inputs.len());
    let mut off = 0i64;
    for (i, x) in n.inputs.iter().enumerate() {
        let len = b.shape(x)?[a] as i64;
        out.push(if wants[i] { Some(b.slice(g, &[a], &[off], &[off + len], &[1])?) } else { None });
        off += len;
    }
    Ok(out)
}

/// (y_0, y_1, ...) = split(x): dx = concat(g_0, g_1, ...), zeros for outputs without gradient.
fn split(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let r = b.shape(&n.inputs[0])?.len();
    let a = axis(n.int("axis", 0), r)?;
    let mut parts = Vec::with_capacity(n.outputs.len());
    for (k, o) in n.outputs.iter().enumerate() {
        parts.push(match gy.get(k).cloned().flatten() {
            Some(g) => g,
            None => {
                let info = b.info(o)?;
                b.zeros(&info)
            }
        });
    }
    let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
    let g = if refs.len() == 1 {
        parts[0].clone()
    } else {
        b.op("Concat", &refs, vec![("axis", Attr::Int(a as i64))])?
    };
    first_only(n, g)
}

/// y = x[s : e : k] per axis: dx scatters g back to positions s + k·t (zeros elsewhere).
/// A negative step k visits s, s + k, ...: reversing g turns it into the positive step -k
/// from the last position visited.
fn slice(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let xs = b.shape(&n.inputs[0])?;
    let params = slice_params(b.g, n, &xs)?;
    let mut g = gy0(gy)?.to_string();
    for (a, &(s, e, k)) in params.iter().enumerate() {
        let m = slice_len(s, e, k) as i64;
        let dim = xs[a];
        if k == 1 && s == 0 && m == dim as i64 {
            continue;
        }
        if k > 0 {
            g = b.unslice_axis(&g, a, s as usize, k as usize, dim)?;
        } else {
            g = reverse_axis(b, &g, a)?;
            let first = if m == 0 { 0 } else { s + k * (m - 1) };
            g = b.unslice_axis(&g, a, first as usize, (-k) as usize, dim)?;
        }
    }
    first_only(n, g)
}

/// x reversed along `a` (a Slice with step -1).
fn reverse_axis(b: &mut Builder, x: &str, a: usize) -> Result<String> {
    let d = b.shape(x)?[a] as i64;
    if d <= 1 {
        return Ok(x.to_string());
    }
    b.slice(x, &[a], &[d - 1], &[-d - 1], &[-1])
}

/// y = gather(x, idx, axis) with constant idx: dx[.., d, ..] = Σ_{j: idx_j = d} g[.., j, ..],
/// computed as the product with the constant one-hot matrix Mᵀ[d, j] = [idx_j = d]
/// (repeated indices add up): g as [pre, N, post], dx = Mᵀ · g as [pre, D, post].
fn gather(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let xi = b.info(&n.inputs[0])?;
    let a = axis(n.int("axis", 0), xi.rank())?;
    let Some(idx) = const_ints(b.g, n, 1)? else { bail!("Gather indices must be constant") };
    let d = xi.shape[a];
    let mut onehot = vec![0.0; d * idx.len()];
    for (j, &i) in idx.iter().enumerate() {
        let i = if i < 0 { i + d as i64 } else { i };
        if i < 0 || i >= d as i64 {
            bail!("Gather index {i} out of range for axis of size {d}");
        }
        onehot[i as usize * idx.len() + j] = 1.0;
    }
    let m = b.constant(Tensor::F64(ArrayD::from_shape_vec(IxDyn(&[d, idx.len()]), onehot)?).cast(xi.dtype));
    let pre: usize = xi.shape[..a].iter().product();
    let post: usize = xi.shape[a + 1..].iter().product();
    let g3 = b.reshape(g, &[pre, idx.len(), post])?;
    let dx = b.op("MatMul", &[&m, &g3], vec![])?;
    let dx = b.reshape(&dx, &xi.shape)?;
    first_only(n, dx)
}

/// Constant-mode Pad: dx = g with the pads cropped off (a Slice). The pad value is a
/// constant (tract requires it), so it never asks for a gradient.
fn pad(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    if n.string("mode").unwrap_or("constant") != "constant" {
        bail!("only constant-mode Pad has a gradient");
    }
    if wants.get(2).copied().unwrap_or(false) {
        bail!("no gradient for Pad's value input (it must be a constant)");
    }
    let r = b.shape(&n.inputs[0])?.len();
    let Some(pads) = const_ints(b.g, n, 1)? else { bail!("Pad without pads") };
    let axes: Vec<usize> = match const_ints(b.g, n, 3)? {
        Some(v) => v.iter().map(|&x| axis(x, r)).collect::<Result<_>>()?,
        None => (0..r).collect(),
    };
    let (mut begin, mut end) = (vec![0i64; r], vec![0i64; r]);
    for (k, &a) in axes.iter().enumerate() {
        begin[a] = -pads[k];
        end[a] = -pads[k + axes.len()];
    }
    let dx = b.pad_or_crop(gy0(gy)?, &begin, &end)?;
    first_only(n, dx)
}

/// y = expand(x, shape): dx = g summed over the broadcast axes.
fn expand(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let s = b.shape(&n.inputs[0])?;
    let g = b.unbroadcast(gy0(gy)?, &s)?;
    first_only(n, g)
}

/// y = tile(x, r): y's axis i has index t·d_i + j (t < r_i, j < d_i), so dx = the sum over t
/// of g reshaped to [r_0, d_0, r_1, d_1, ...].
fn tile(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let xs = b.shape(&n.inputs[0])?;
    let Some(reps) = const_ints(b.g, n, 1)? else { bail!("Tile repeats must be constant") };
    let mut split = Vec::with_capacity(2 * xs.len());
    for (&d, &r) in xs.iter().zip(&reps) {
        split.push(r as usize);
        split.push(d);
    }
    let g = b.reshape(gy0(gy)?, &split)?;
    let rep_axes: Vec<usize> = (0..xs.len()).map(|i| 2 * i).filter(|&i| split[i] != 1).collect();
    let g = b.reduce_sum(&g, &rep_axes, true)?;
    let g = b.reshape(&g, &xs)?;
    first_only(n, g)
}

/// DepthToSpace (DCR or CRD) and SpaceToDepth on [N, C, H, W].
fn lower_depth_space(b: &mut Builder, n: &Node, _: &LowerCtx) -> Result<Option<String>> {
    let x = n.input(0).unwrap();
    let xs = b.shape(x)?;
    let bs = n.int("blocksize", 0);
    if xs.len() != 4 || bs < 1 {
        bail!("{} wants a rank-4 input and a positive blocksize, got {xs:?} and {bs}", n.op);
    }
    let k = bs as usize;
    let (nn, c, h, w) = (xs[0], xs[1], xs[2], xs[3]);
    let (split, perm, out): (Vec<usize>, [usize; 6], Vec<usize>) = if n.op == "DepthToSpace" {
        if c % (k * k) != 0 {
            bail!("DepthToSpace: {c} channels are not a multiple of blocksize² = {}", k * k);
        }
        let co = c / (k * k);
        match n.string("mode").unwrap_or("DCR") {
            "DCR" => (vec![nn, k, k, co, h, w], [0, 3, 4, 1, 5, 2], vec![nn, co, h * k, w * k]),
            "CRD" => (vec![nn, co, k, k, h, w], [0, 1, 4, 2, 5, 3], vec![nn, co, h * k, w * k]),
            other => bail!("DepthToSpace mode '{other}' (DCR or CRD)"),
        }
    } else {
        if h % k != 0 || w % k != 0 {
            bail!("SpaceToDepth: spatial size {h}x{w} is not a multiple of blocksize {k}");
        }
        (vec![nn, c, h / k, k, w / k, k], [0, 3, 5, 1, 2, 4], vec![nn, c * k * k, h / k, w / k])
    };
    let r = b.reshape(x, &split)?;
    let t = b.transpose(&r, &perm)?;
    let y = b.reshape(&t, &out)?;
    first_output_only(n, y)
}

#[cfg(test)]
pub(super) mod tests {
    /// Finite-difference checks (float64, first and second order) of the lowerings above: the ops each becomes, differentiated by their rules.
    mod lowered {
        use crate::autodiff::check::{check_lowered, Arg};
        #[allow(unused_imports)]
        use crate::onnx::ir::{Attr, DType, Tensor};

        const TOL: f64 = 1e-6;


        fn s(v: &str) -> Attr {
            Attr::Str(v.into())
        }

        #[test]
        fn depth_to_space_and_back() {
            for mode in ["DCR", "CRD"] {
                let attrs = vec![("blocksize", Attr::Int(2)), ("mode", s(mode))];
                check_lowered("DepthToSpace", &[Arg::var(&[2, 8, 2, 3], 1)], attrs, 13, true, TOL).unwrap();
            }
            check_lowered("SpaceToDepth", &[Arg::var(&[2, 2, 4, 6], 1)], vec![("blocksize", Attr::Int(2))], 13, true, TOL).unwrap();
        }
    }

    use crate::autodiff::check::{check_graph, check_op, single_op_graph, Arg};
    use crate::onnx::builder::Attrs;
    use crate::onnx::fold::push_node;
    use crate::onnx::ir::{Attr, DType, Node, Tensor};

    const TOL: f64 = 1e-6;

    /// Checks `op` to second order twice: alone, and with its outputs squared. An op
    /// linear in its inputs has a gradient program that does not depend on them, so only
    /// the squared form (g = 2·r·y) makes the second order differentiate the emitted ops.
    pub(in crate::ops) fn check(op: &str, args: &[Arg], attrs: Attrs, n_outputs: usize) {
        check_op(op, args, attrs.clone(), n_outputs, true, TOL).unwrap();
        let (mut g, outs) = single_op_graph(op, args, attrs, n_outputs).unwrap();
        let squares: Vec<String> = outs.iter().map(|o| format!("{o}_squared")).collect();
        for (o, s) in outs.iter().zip(&squares) {
            push_node(&mut g, Node::new(s.clone(), "Mul", vec![o.clone(), o.clone()], vec![s.clone()])).unwrap();
        }
        g.outputs = squares.clone();
        let values: Vec<(String, Tensor)> = args
            .iter()
            .enumerate()
            .filter_map(|(i, a)| match a {
                Arg::Var(t) => Some((format!("in{i}"), t.clone())),
                _ => None,
            })
            .collect();
        check_graph(&g, &squares, &values, true, TOL).unwrap();
    }

    fn ints(v: &[i64]) -> Arg {
        Arg::Const(Tensor::from_i64(v))
    }


    #[test]
    fn reshape() {
        check("Reshape", &[Arg::var(&[2, 3, 4], 1), ints(&[4, -1])], vec![], 1);
        check("Reshape", &[Arg::var(&[2, 3, 4], 1), ints(&[0, 12])], vec![], 1);
    }

    #[test]
    fn reshape_allowzero() {
        check("Reshape", &[Arg::var(&[2, 3], 1), ints(&[3, 2])], vec![("allowzero", Attr::Int(1))], 1);
    }

    #[test]
    fn flatten() {
        check("Flatten", &[Arg::var(&[2, 3, 4], 1)], vec![("axis", Attr::Int(2))], 1);
        check("Flatten", &[Arg::var(&[2, 3, 4], 1)], vec![("axis", Attr::Int(-1))], 1);
    }

    #[test]
    fn squeeze_unsqueeze() {
        check("Squeeze", &[Arg::var(&[2, 1, 3, 1], 1), ints(&[1, -1])], vec![], 1);
        check("Unsqueeze", &[Arg::var(&[2, 3], 1), ints(&[0, -1])], vec![], 1);
    }

    #[test]
    fn transpose() {
        check("Transpose", &[Arg::var(&[2, 3, 4], 1)], vec![("perm", Attr::Ints(vec![1, 2, 0]))], 1);
        check("Transpose", &[Arg::var(&[2, 3, 4], 1)], vec![], 1);
    }

    #[test]
    fn concat() {
        let args = [Arg::var(&[2, 1, 3], 1), Arg::var(&[2, 4, 3], 2), Arg::var(&[2, 2, 3], 3)];
        check("Concat", &args, vec![("axis", Attr::Int(-2))], 1);
    }

    #[test]
    fn split() {
        check("Split", &[Arg::var(&[2, 6, 3], 1), ints(&[1, 3, 2])], vec![("axis", Attr::Int(1))], 3);
    }

    #[test]
    fn slice_positive_steps() {
        // axis 1: 1..6 step 2, axis 2: -4..-1, axis 0 untouched
        let args = [Arg::var(&[2, 7, 5], 1), ints(&[1, -4]), ints(&[6, -1]), ints(&[1, 2]), ints(&[2, 1])];
        check("Slice", &args, vec![], 1);
        check("Slice", &[Arg::var(&[3, 4], 2), ints(&[1]), ints(&[i64::MAX]), Arg::Absent, Arg::Absent], vec![], 1);
    }

    #[test]
    fn slice_negative_steps() {
        // axis 0 reversed whole, axis 1: 5 down to 1 (exclusive) step -3 -> {5, 2}
        let args = [Arg::var(&[3, 7], 1), ints(&[-1, 5]), ints(&[i64::MIN, 1]), ints(&[0, 1]), ints(&[-1, -3])];
        check("Slice", &args, vec![], 1);
    }

    #[test]
    fn gather() {
        // repeated and negative indices
        check("Gather", &[Arg::var(&[3, 4, 2], 1), ints(&[3, 0, -1, 1])], vec![("axis", Attr::Int(1))], 1);
        let idx = Tensor::I64(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 2]), vec![0, 2, 2, 1]).unwrap());
        check("Gather", &[Arg::var(&[3, 2], 2), Arg::Const(idx)], vec![], 1);
    }

    #[test]
    fn gather_scalar_index() {
        let idx = Tensor::I64(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), 1));
        check("Gather", &[Arg::var(&[2, 3, 4], 1), Arg::Const(idx)], vec![("axis", Attr::Int(-1))], 1);
    }

    #[test]
    fn pad() {
        let args = [Arg::var(&[2, 3, 4], 1), ints(&[0, 1, 2, 1, 0, 3]), Arg::Const(Tensor::scalar(DType::F64, 0.5))];
        check("Pad", &args, vec![], 1);
        check("Pad", &[Arg::var(&[3, 2], 1), ints(&[2, 0, 0, 1])], vec![], 1);
    }

    #[test]
    fn expand() {
        check("Expand", &[Arg::var(&[3, 1], 1), ints(&[2, 3, 4])], vec![], 1);
        check("Expand", &[Arg::var(&[2, 1, 4], 1), ints(&[3, 1])], vec![], 1);
    }

    #[test]
    fn tile() {
        check("Tile", &[Arg::var(&[2, 3, 1], 1), ints(&[3, 1, 2])], vec![], 1);
    }
}
