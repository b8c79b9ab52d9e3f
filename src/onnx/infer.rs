//! Static shape and type inference, one op at a time (each op's own inference is in its
//! family module under `ops`), and the helpers those share. Every tensor of a canonical
//! graph (and of the gradient program appended to it) gets a fully known shape.

use super::ir::{Graph, Node, TypeInfo};
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

/// The type of input #i.
pub fn input<'a>(g: &'a Graph, n: &Node, i: usize) -> Result<&'a TypeInfo> {
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

/// Output types of one node, from its inputs' types (and constant inputs where needed),
/// by the op's shape inference in the registry (`ops`).
pub fn infer_node(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let infer = match crate::ops::def(&n.op) {
        Some(d) => d.infer,
        None => unsupported,
    };
    infer(g, n).with_context(|| format!("{}: shape inference failed for {}", g.source, n.describe()))
}

fn unsupported(_: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    bail!("operator {} is not supported (`zerocost ops` lists the supported ones)", n.op)
}

/// One output of the input's type (unary ops).
pub fn same_as_input(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    Ok(vec![input(g, n, 0)?.clone()])
}

/// One output of the first input's type, at all inputs' broadcast shape.
pub fn broadcast_inputs(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let x = input(g, n, 0)?;
    let mut shape = x.shape.clone();
    for i in 1..n.inputs.len() {
        shape = broadcast(&shape, &input(g, n, i)?.shape)?;
    }
    Ok(vec![TypeInfo::new(x.dtype, shape)])
}
