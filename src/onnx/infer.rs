//! Static shape and type inference, one op at a time. Every tensor of a canonical graph
//! (and of the gradient program appended to it) gets a fully known shape.

use super::geometry::{conv_transpose_window, window};
use super::ir::{DType, Graph, Node, TypeInfo};
use anyhow::{anyhow, bail, Context, Result};

/// Broadcast two shapes the numpy way.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => bail!("shapes {a:?} and {b:?} do not broadcast"),
        };
    }
    Ok(out)
}

/// Normalises a possibly negative axis.
pub fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r.max(1) && !(r == 0 && v == 0) {
        bail!("axis {a} out of range for rank {rank}");
    }
    Ok(v as usize)
}

fn input<'a>(g: &'a Graph, n: &Node, i: usize) -> Result<&'a TypeInfo> {
    let name = n.input(i).ok_or_else(|| anyhow!("missing input #{i}"))?;
    g.info(name)
}

/// Integer values of a constant input (None when the input is absent).
pub fn const_ints(g: &Graph, n: &Node, i: usize) -> Result<Option<Vec<i64>>> {
    match n.input(i) {
        None => Ok(None),
        Some(name) => match g.constant(name) {
            Some(t) => Ok(Some(t.to_i64_vec())),
            None => bail!("input #{i} ('{name}') must be a constant known before running (it is computed at run time)"),
        },
    }
}

pub fn const_floats(g: &Graph, n: &Node, i: usize) -> Result<Option<Vec<f64>>> {
    match n.input(i) {
        None => Ok(None),
        Some(name) => match g.constant(name) {
            Some(t) => Ok(Some(t.to_f64_vec())),
            None => bail!("input #{i} ('{name}') must be a constant known before running"),
        },
    }
}

/// Reduction axes of a Reduce* node (attribute or input form), normalised and sorted.
pub fn reduce_axes(g: &Graph, n: &Node, rank: usize) -> Result<Vec<usize>> {
    let axes = match n.ints("axes") {
        Some(a) => Some(a),
        None => const_ints(g, n, 1)?,
    };
    let mut axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&x| axis(x, rank)).collect::<Result<_>>()?,
        _ => {
            if n.int("noop_with_empty_axes", 0) == 1 {
                vec![]
            } else {
                (0..rank).collect()
            }
        }
    };
    axes.sort();
    axes.dedup();
    Ok(axes)
}

/// Target shape of Reshape given the input shape and the requested shape.
pub fn reshape_target(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 => {
                if infer_at.is_some() {
                    bail!("shape {spec:?} has two -1 entries");
                }
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| anyhow!("0 in shape {spec:?} past input rank"))?),
            d if d >= 0 => out.push(d as usize),
            d => bail!("invalid dimension {d} in shape {spec:?}"),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer_at {
        if known == 0 || total % known != 0 {
            bail!("cannot reshape {input:?} ({total} elements) to {spec:?}");
        }
        out[i] = total / known;
    } else if known != total {
        bail!("cannot reshape {input:?} ({total} elements) to {spec:?}");
    }
    Ok(out)
}

/// Slice parameters resolved to per-axis (start, end, step) over a shape, clamped as ONNX does.
pub fn slice_params(g: &Graph, n: &Node, shape: &[usize]) -> Result<Vec<(i64, i64, i64)>> {
    let r = shape.len();
    let starts = const_ints(g, n, 1)?.ok_or_else(|| anyhow!("Slice without starts"))?;
    let ends = const_ints(g, n, 2)?.ok_or_else(|| anyhow!("Slice without ends"))?;
    let axes = const_ints(g, n, 3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = const_ints(g, n, 4)?.unwrap_or_else(|| vec![1; starts.len()]);
    let mut params: Vec<(i64, i64, i64)> = shape.iter().map(|&d| (0, d as i64, 1)).collect();
    for k in 0..starts.len() {
        let a = axis(axes[k], r)?;
        let dim = shape[a] as i64;
        let step = steps[k];
        if step == 0 {
            bail!("Slice step 0");
        }
        let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
        let norm = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (s, e) = if step > 0 {
            (clamp(norm(starts[k]), 0, dim), clamp(norm(ends[k]), 0, dim))
        } else {
            (clamp(norm(starts[k]), 0, dim - 1), clamp(norm(ends[k]), -1, dim - 1))
        };
        params[a] = (s, e, step);
    }
    Ok(params)
}

pub fn slice_len(s: i64, e: i64, step: i64) -> usize {
    if step > 0 {
        if e > s { ((e - s + step - 1) / step) as usize } else { 0 }
    } else if s > e {
        ((s - e + (-step) - 1) / (-step)) as usize
    } else {
        0
    }
}

/// Output sizes of Split.
pub fn split_sizes(g: &Graph, n: &Node, dim: usize) -> Result<Vec<usize>> {
    if let Some(s) = const_ints(g, n, 1)?.or_else(|| n.ints("split")) {
        if s.iter().map(|&x| x as usize).sum::<usize>() != dim {
            bail!("split sizes {s:?} do not add up to {dim}");
        }
        return Ok(s.iter().map(|&x| x as usize).collect());
    }
    let parts = n.int("num_outputs", n.outputs.len() as i64) as usize;
    let chunk = dim.div_ceil(parts);
    let mut sizes = vec![chunk; parts];
    let last = dim as i64 - (chunk * (parts - 1)) as i64;
    if last < 0 {
        bail!("cannot split {dim} into {parts} parts");
    }
    sizes[parts - 1] = last as usize;
    Ok(sizes)
}

/// Parses an Einsum equation into (input subscripts, output subscripts).
pub fn einsum_terms(n: &Node, n_inputs: usize) -> Result<(Vec<Vec<char>>, Vec<char>)> {
    let eq: String = n.string("equation").ok_or_else(|| anyhow!("Einsum without equation"))?.replace(' ', "");
    if eq.contains("...") {
        bail!("Einsum with ellipsis is not supported");
    }
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let ins: Vec<Vec<char>> = lhs.split(',').map(|s| s.chars().collect()).collect();
    if ins.len() != n_inputs {
        bail!("Einsum equation has {} operands, node has {n_inputs} inputs", ins.len());
    }
    let out: Vec<char> = match rhs {
        Some(r) => r.chars().collect(),
        None => {
            let mut counts = std::collections::BTreeMap::new();
            for c in ins.iter().flatten() {
                *counts.entry(*c).or_insert(0) += 1;
            }
            counts.into_iter().filter(|(_, k)| *k == 1).map(|(c, _)| c).collect()
        }
    };
    Ok((ins, out))
}

/// Output types of one node, from its inputs' types (and constant inputs where needed).
pub fn infer_node(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    infer_inner(g, n).with_context(|| format!("{}: shape inference failed for {}", g.source, n.describe()))
}

fn same(t: &TypeInfo) -> Vec<TypeInfo> {
    vec![t.clone()]
}

fn infer_inner(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let x = || input(g, n, 0);
    let op = n.op.as_str();
    if super::composite::is_composite(op) {
        return super::composite::infer(g, n);
    }
    Ok(match op {
        // unary, same type
        "Relu" | "LeakyRelu" | "Sigmoid" | "HardSigmoid" | "HardSwish" | "Tanh" | "Exp" | "Log" | "Sqrt"
        | "Reciprocal" | "Abs" | "Neg" | "Erf" | "Softmax" | "LogSoftmax" | "Identity" | "Clip" | "Floor"
        | "Ceil" | "Sign" | "Selu" | "Elu" | "Softplus" | "Softsign" | "Round" | "Sin" | "Cos" | "Celu" | "Mish"
        | "Gelu" | "CumSum" | "Not" | "LRN" | "ThresholdedRelu" | "GroupNormalization" => same(x()?),
        "DepthToSpace" | "SpaceToDepth" => {
            let xi = x()?;
            let k = n.int("blocksize", 0).max(1) as usize;
            if xi.rank() != 4 {
                bail!("{op} wants a rank-4 input, got {:?}", xi.shape);
            }
            let s = &xi.shape;
            let out = if op == "DepthToSpace" {
                vec![s[0], s[1] / (k * k), s[2] * k, s[3] * k]
            } else {
                vec![s[0], s[1] * k * k, s[2] / k, s[3] / k]
            };
            vec![TypeInfo::new(xi.dtype, out)]
        }
        "Dropout" => {
            let t = x()?.clone();
            let mut v = vec![t.clone()];
            if n.outputs.len() > 1 {
                v.push(TypeInfo::new(DType::Bool, t.shape));
            }
            v
        }
        "IsNaN" | "IsInf" => vec![TypeInfo::new(DType::Bool, x()?.shape.clone())],
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" | "And" | "Or" | "Xor" | "Mod" => {
            let mut shape = x()?.shape.clone();
            for i in 1..n.inputs.len() {
                shape = broadcast(&shape, &input(g, n, i)?.shape)?;
            }
            vec![TypeInfo::new(x()?.dtype, shape)]
        }
        "PRelu" => {
            broadcast(&x()?.shape, &input(g, n, 1)?.shape)?;
            same(x()?)
        }
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" => {
            vec![TypeInfo::new(DType::Bool, broadcast(&x()?.shape, &input(g, n, 1)?.shape)?)]
        }
        "Where" => {
            let s = broadcast(&broadcast(&x()?.shape, &input(g, n, 1)?.shape)?, &input(g, n, 2)?.shape)?;
            vec![TypeInfo::new(input(g, n, 1)?.dtype, s)]
        }
        "Cast" => {
            let to = DType::from_onnx(n.int("to", 1) as i32)?;
            vec![TypeInfo::new(to, x()?.shape.clone())]
        }
        "CastLike" => vec![TypeInfo::new(input(g, n, 1)?.dtype, x()?.shape.clone())],
        "Conv" => {
            let (xi, w) = (x()?, input(g, n, 1)?);
            if xi.rank() < 3 || w.rank() != xi.rank() {
                bail!("Conv wants input and weight of equal rank >= 3, got {:?} and {:?}", xi.shape, w.shape);
            }
            let group = group_of(n)?;
            if xi.shape[1] != w.shape[1] * group || w.shape[0] % group != 0 {
                bail!("Conv channels do not match: input {:?}, weight {:?}, group {group}", xi.shape, w.shape);
            }
            let win = window(n, &xi.shape[2..], &w.shape[2..], false)?;
            let mut s = vec![xi.shape[0], w.shape[0]];
            s.extend(win.out);
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "ConvTranspose" => {
            let (xi, w) = (x()?, input(g, n, 1)?);
            if xi.rank() < 3 || w.rank() != xi.rank() {
                bail!("ConvTranspose wants input and weight of equal rank >= 3, got {:?} and {:?}", xi.shape, w.shape);
            }
            let group = group_of(n)?;
            if xi.shape[1] != w.shape[0] {
                bail!("ConvTranspose channels do not match: input {:?}, weight {:?}", xi.shape, w.shape);
            }
            let win = conv_transpose_window(n, &xi.shape[2..], &w.shape[2..])?;
            let mut s = vec![xi.shape[0], w.shape[1] * group];
            s.extend(win.out);
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "MaxPool" | "AveragePool" | "LpPool" => {
            let xi = x()?;
            if xi.rank() < 3 {
                bail!("{} wants an input of rank >= 3, got {:?}", n.op, xi.shape);
            }
            let k: Vec<usize> = n
                .ints("kernel_shape")
                .ok_or_else(|| anyhow!("pooling without kernel_shape"))?
                .iter()
                .map(|&v| v as usize)
                .collect();
            let win = window(n, &xi.shape[2..], &k, n.int("ceil_mode", 0) == 1)?;
            let mut s = xi.shape[..2].to_vec();
            s.extend(win.out);
            let mut v = vec![TypeInfo::new(xi.dtype, s.clone())];
            if n.outputs.len() > 1 {
                v.push(TypeInfo::new(DType::I64, s));
            }
            v
        }
        "GlobalAveragePool" | "GlobalMaxPool" => {
            let xi = x()?;
            let mut s = xi.shape[..2].to_vec();
            s.extend(std::iter::repeat_n(1, xi.rank() - 2));
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "Gemm" => {
            let (a, b) = (x()?, input(g, n, 1)?);
            if a.rank() != 2 || b.rank() != 2 {
                bail!("Gemm wants 2-D operands, got {:?} and {:?}", a.shape, b.shape);
            }
            let (m, ka) = if n.int("transA", 0) == 1 { (a.shape[1], a.shape[0]) } else { (a.shape[0], a.shape[1]) };
            let (kb, nn) = if n.int("transB", 0) == 1 { (b.shape[1], b.shape[0]) } else { (b.shape[0], b.shape[1]) };
            if ka != kb {
                bail!("Gemm inner dimensions differ: {:?} x {:?}", a.shape, b.shape);
            }
            if let Some(c) = n.input(2) {
                broadcast(&[m, nn], &g.info(c)?.shape)?;
            }
            vec![TypeInfo::new(a.dtype, vec![m, nn])]
        }
        "MatMul" => {
            let (a, b) = (x()?, input(g, n, 1)?);
            vec![TypeInfo::new(a.dtype, matmul_shape(&a.shape, &b.shape)?)]
        }
        "Einsum" => {
            let (terms, out) = einsum_terms(n, n.inputs.len())?;
            let mut sizes: std::collections::HashMap<char, usize> = std::collections::HashMap::new();
            for (i, t) in terms.iter().enumerate() {
                let s = &input(g, n, i)?.shape;
                if s.len() != t.len() {
                    bail!("Einsum operand {i} has rank {}, subscripts {t:?}", s.len());
                }
                for (c, &d) in t.iter().zip(s) {
                    if let Some(&prev) = sizes.get(c) {
                        if prev != d && prev != 1 && d != 1 {
                            bail!("Einsum subscript {c} has sizes {prev} and {d}");
                        }
                        sizes.insert(*c, prev.max(d));
                    } else {
                        sizes.insert(*c, d);
                    }
                }
            }
            let s = out.iter().map(|c| sizes.get(c).copied().ok_or_else(|| anyhow!("Einsum output {c} not in inputs"))).collect::<Result<_>>()?;
            vec![TypeInfo::new(x()?.dtype, s)]
        }
        "BatchNormalization" | "InstanceNormalization" => {
            let mut v = same(x()?);
            let c = x()?.shape[1];
            for _ in 1..n.outputs.len() {
                v.push(TypeInfo::new(x()?.dtype, vec![c]));
            }
            v
        }
        "LayerNormalization" => {
            let xi = x()?;
            let a = axis(n.int("axis", -1), xi.rank())?;
            let mut v = same(xi);
            let mut rs = xi.shape.clone();
            for d in rs.iter_mut().skip(a) {
                *d = 1;
            }
            for _ in 1..n.outputs.len() {
                v.push(TypeInfo::new(xi.dtype, rs.clone()));
            }
            v
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2" | "ReduceL1"
        | "ReduceSumSquare" | "ReduceLogSumExp" => {
            let xi = x()?;
            let axes = reduce_axes(g, n, xi.rank())?;
            let keep = n.int("keepdims", 1) == 1;
            let mut s = Vec::new();
            for (i, &d) in xi.shape.iter().enumerate() {
                if axes.contains(&i) {
                    if keep {
                        s.push(1);
                    }
                } else {
                    s.push(d);
                }
            }
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "ArgMax" | "ArgMin" => {
            let xi = x()?;
            let a = axis(n.int("axis", 0), xi.rank())?;
            let mut s = xi.shape.clone();
            if n.int("keepdims", 1) == 1 {
                s[a] = 1;
            } else {
                s.remove(a);
            }
            vec![TypeInfo::new(DType::I64, s)]
        }
        "Reshape" => {
            let xi = x()?;
            let spec = const_ints(g, n, 1)?.ok_or_else(|| anyhow!("Reshape without shape"))?;
            vec![TypeInfo::new(xi.dtype, reshape_target(&xi.shape, &spec, n.int("allowzero", 0) == 1)?)]
        }
        "Flatten" => {
            let xi = x()?;
            // axis in [-r, r]; a negative one counts from r (not r + 1)
            let (a, r) = (n.int("axis", 1), xi.rank() as i64);
            if r > 0 && (a < -r || a > r) {
                bail!("Flatten axis {a} out of range for rank {r}");
            }
            let a = if r == 0 { 0 } else if a < 0 { a + r } else { a } as usize;
            let outer: usize = xi.shape[..a].iter().product();
            let inner: usize = xi.shape[a..].iter().product();
            vec![TypeInfo::new(xi.dtype, vec![outer, inner])]
        }
        "Transpose" => {
            let xi = x()?;
            let perm: Vec<usize> = match n.ints("perm") {
                Some(p) => p.iter().map(|&v| v as usize).collect(),
                None => (0..xi.rank()).rev().collect(),
            };
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..xi.rank()).collect::<Vec<_>>() {
                bail!("Transpose perm {:?} is not a permutation of the {} axes", n.ints("perm").unwrap_or_default(), xi.rank());
            }
            vec![TypeInfo::new(xi.dtype, perm.iter().map(|&p| xi.shape[p]).collect())]
        }
        "Squeeze" => {
            let xi = x()?;
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
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "Unsqueeze" => {
            let xi = x()?;
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
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "Concat" => {
            let first = x()?;
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
            vec![TypeInfo::new(first.dtype, s)]
        }
        "Split" => {
            let xi = x()?;
            let a = axis(n.int("axis", 0), xi.rank())?;
            split_sizes(g, n, xi.shape[a])?
                .into_iter()
                .map(|d| {
                    let mut s = xi.shape.clone();
                    s[a] = d;
                    TypeInfo::new(xi.dtype, s)
                })
                .collect()
        }
        "Slice" => {
            let xi = x()?;
            let p = slice_params(g, n, &xi.shape)?;
            vec![TypeInfo::new(xi.dtype, p.iter().map(|&(s, e, st)| slice_len(s, e, st)).collect())]
        }
        "Gather" => {
            let (xi, ii) = (x()?, input(g, n, 1)?);
            let a = axis(n.int("axis", 0), xi.rank())?;
            let mut s = xi.shape[..a].to_vec();
            s.extend(&ii.shape);
            s.extend(&xi.shape[a + 1..]);
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "GatherElements" => vec![TypeInfo::new(x()?.dtype, input(g, n, 1)?.shape.clone())],
        "ScatterElements" | "ScatterND" => same(x()?),
        "Pad" => {
            let xi = x()?;
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
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "Expand" => {
            let xi = x()?;
            let target = const_ints(g, n, 1)?.ok_or_else(|| anyhow!("Expand without shape"))?;
            let t: Vec<usize> = target.iter().map(|&v| v.max(0) as usize).collect();
            vec![TypeInfo::new(xi.dtype, broadcast(&xi.shape, &t)?)]
        }
        "Tile" => {
            let xi = x()?;
            let reps = const_ints(g, n, 1)?.ok_or_else(|| anyhow!("Tile without repeats"))?;
            if reps.len() != xi.rank() {
                bail!("Tile repeats {reps:?} do not match rank {}", xi.rank());
            }
            vec![TypeInfo::new(xi.dtype, xi.shape.iter().zip(&reps).map(|(&d, &r)| d * r as usize).collect())]
        }
        "Resize" | "Upsample" => {
            let xi = x()?;
            let (scales_idx, sizes_idx) = if op == "Upsample" { (1, usize::MAX) } else { (2, 3) };
            let sizes = if sizes_idx != usize::MAX { const_ints(g, n, sizes_idx)? } else { None };
            let s = match sizes.filter(|v| !v.is_empty()) {
                Some(sz) => sz.iter().map(|&v| v as usize).collect(),
                None => {
                    let scales = match n.attrs.get("scales") {
                        Some(super::ir::Attr::Floats(f)) => f.iter().map(|&v| v as f64).collect(),
                        _ => const_floats(g, n, scales_idx)?.ok_or_else(|| anyhow!("{op} without scales or sizes"))?,
                    };
                    if scales.len() != xi.rank() {
                        bail!("{op} scales {scales:?} do not match rank {}", xi.rank());
                    }
                    xi.shape.iter().zip(&scales).map(|(&d, &sc)| (d as f64 * sc).floor() as usize).collect()
                }
            };
            vec![TypeInfo::new(xi.dtype, s)]
        }
        "Shape" => {
            let r = x()?.rank() as i64;
            let norm = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
            let start = norm(n.int("start", 0));
            let end = norm(n.int("end", r));
            vec![TypeInfo::new(DType::I64, vec![(end - start).max(0) as usize])]
        }
        "Size" => vec![TypeInfo::new(DType::I64, vec![])],
        "ConstantOfShape" => {
            let shape = const_ints(g, n, 0)?.ok_or_else(|| anyhow!("ConstantOfShape without shape"))?;
            let dtype = match n.attrs.get("value") {
                Some(super::ir::Attr::Tensor(t)) => t.dtype(),
                _ => DType::F32,
            };
            vec![TypeInfo::new(dtype, shape.iter().map(|&v| v as usize).collect())]
        }
        "Range" => {
            let scalar = |i: usize| -> Result<f64> {
                const_floats(g, n, i)?.and_then(|v| v.first().copied()).ok_or_else(|| anyhow!("Range without input #{i}"))
            };
            let (s, l, d) = (scalar(0)?, scalar(1)?, scalar(2)?);
            let len = ((l - s) / d).ceil().max(0.0) as usize;
            vec![TypeInfo::new(x()?.dtype, vec![len])]
        }
        "OneHot" => {
            let ii = x()?;
            let depth = const_ints(g, n, 1)?.and_then(|v| v.first().copied()).ok_or_else(|| anyhow!("OneHot without depth"))?.max(0) as usize;
            let r = ii.rank() + 1;
            let a = axis(n.int("axis", -1), r)?;
            let mut s = ii.shape.clone();
            s.insert(a, depth);
            vec![TypeInfo::new(input(g, n, 2)?.dtype, s)]
        }
        "Constant" => bail!("Constant nodes are turned into initializers on import"),
        _ => bail!("operator {op} is not supported (`zerocost ops` lists the supported ones)"),
    })
}

pub fn matmul_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    if a.is_empty() || b.is_empty() {
        bail!("MatMul of a scalar");
    }
    let a2: Vec<usize> = if a.len() == 1 { vec![1, a[0]] } else { a.to_vec() };
    let b2: Vec<usize> = if b.len() == 1 { vec![b[0], 1] } else { b.to_vec() };
    let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
    let (k2, nn) = (b2[b2.len() - 2], b2[b2.len() - 1]);
    if k != k2 {
        bail!("MatMul inner dimensions differ: {a:?} x {b:?}");
    }
    let mut s = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        s.push(m);
    }
    if b.len() > 1 {
        s.push(nn);
    }
    Ok(s)
}

/// The `group` attribute of Conv/ConvTranspose: at least 1 (0 would divide by zero).
fn group_of(n: &Node) -> Result<usize> {
    match n.int("group", 1) {
        g if (1..=1 << 31).contains(&g) => Ok(g as usize),
        g => bail!("{}: group {g} out of range", n.describe()),
    }
}
