//! Canonicalisation, done once on import: one opset's node forms (opset 17), Constant →
//! initializer, Identity/Dropout removed, BatchNormalization expanded for the chosen mode,
//! the normalisations and Gelu expanded into primitive ops, optional absolute-value
//! parameters (synflow) and float64 promotion, and re-batching of shape constants that an
//! exporter baked the export batch into. Types are inferred as nodes are added.

use super::builder::Builder;
use super::fold::push_node;
use crate::ops::LowerCtx;
use super::infer::axis;
use super::ir::{Attr, DType, Graph, Node, Tensor, TypeInfo};
use super::proto::RawModel;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::{HashMap, HashSet};

/// The opset every canonical graph is written in.
pub const TARGET_OPSET: i64 = 17;

/// How BatchNormalization nodes are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BnMode {
    /// Normalise with the statistics of the current batch (training mode, as the paper).
    #[default]
    Batch,
    /// Normalise with the stored running mean and variance (inference mode).
    Running,
    /// Remove BatchNormalization (identity), as synflow does.
    Remove,
}

impl std::str::FromStr for BnMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<BnMode> {
        match s {
            "batch" | "train" => Ok(BnMode::Batch),
            "running" | "eval" => Ok(BnMode::Running),
            "remove" | "none" => Ok(BnMode::Remove),
            _ => bail!("unknown BatchNormalization mode '{s}' (batch, running or remove)"),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct CanonOptions {
    pub bn: BnMode,
    /// Replace every parameter by its absolute value (synflow).
    pub abs_params: bool,
    /// Promote every float32 tensor to float64.
    pub float64: bool,
}

/// Shapes of the graph inputs chosen for this run, and the batch the file was exported at.
#[derive(Clone, Debug)]
pub struct InputShapes {
    pub shapes: HashMap<String, Vec<usize>>,
    /// Batch size the exporter saw (first dim of the first input), if static in the file.
    pub export_batch: Option<usize>,
    pub batch: usize,
}

/// Names of the parameter initializers: weights and biases of Conv/ConvTranspose/Gemm/
/// MatMul, scale and bias of normalisations, PRelu slopes. Used for `params`, `l2_norm`
/// and synflow's absolute values.
pub fn parameter_names(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut add = |name: Option<&str>, out: &mut Vec<String>| {
        if let Some(n) = name {
            if g.initializers.contains_key(n) && seen.insert(n.to_string()) {
                out.push(n.to_string());
            }
        }
    };
    for n in &g.nodes {
        for &i in parameter_inputs(&n.op) {
            add(n.input(i), &mut out);
        }
    }
    out
}

/// The inputs of an op that hold its parameters: weights and biases of Conv/Gemm/MatMul,
/// scale and bias of the normalisations, PRelu's slopes.
pub fn parameter_inputs(op: &str) -> &'static [usize] {
    match op {
        "Conv" | "ConvTranspose" | "Gemm" => &[1, 2],
        "MatMul" | "PRelu" => &[1],
        "BatchNormalization" | "InstanceNormalization" | "LayerNormalization" | "GroupNormalization" => &[1, 2],
        _ => &[],
    }
}

/// Builds the canonical graph of `raw` for the given input shapes and options.
pub fn canonicalize(raw: &RawModel, shapes: &InputShapes, opts: &CanonOptions) -> Result<Graph> {
    let first = canonicalize_with(raw, shapes, opts, None);
    match (first, shapes.export_batch) {
        // a shape constant that the batch-0 rules of `rebatch` could not attribute: learn
        // every Reshape's shapes at the export batch and map them to the scoring batch
        (Err(e), Some(b0)) if b0 != shapes.batch => match ExportShapes::of(raw, shapes, b0, opts) {
            Some(at_export) => canonicalize_with(raw, shapes, opts, Some(&at_export)),
            None => Err(e),
        },
        (result, _) => result,
    }
}

/// Every Reshape's data and output shapes when the graph is canonicalised at the batch it
/// was exported at (where its shape constants are consistent), by node name.
pub struct ExportShapes {
    reshapes: HashMap<String, (Vec<usize>, Vec<usize>)>,
    b0: usize,
}

impl ExportShapes {
    fn of(raw: &RawModel, shapes: &InputShapes, b0: usize, opts: &CanonOptions) -> Option<ExportShapes> {
        let mut at_b0 = shapes.clone();
        for s in at_b0.shapes.values_mut() {
            if s.first() == Some(&shapes.batch) {
                s[0] = b0;
            }
        }
        at_b0.batch = b0;
        let g = canonicalize_with(raw, &at_b0, opts, None).ok()?;
        let resolve = |t: &String| g.aliases.get(t).cloned().unwrap_or_else(|| t.clone());
        let mut reshapes = HashMap::new();
        let mut seen = HashSet::new();
        for n in raw.graph.nodes.iter().filter(|n| n.op == "Reshape" && !n.name.is_empty()) {
            if !seen.insert(n.name.clone()) {
                reshapes.remove(&n.name); // names that are not unique say nothing
                continue;
            }
            let (Some(x), Some(y)) = (n.inputs.first(), n.outputs.first()) else { continue };
            if let (Ok(d), Ok(o)) = (g.shape(&resolve(x)), g.shape(&resolve(y))) {
                reshapes.insert(n.name.clone(), (d.to_vec(), o.to_vec()));
            }
        }
        Some(ExportShapes { reshapes, b0 })
    }

    /// The target shape of Reshape `n` at the scoring batch. The data and the target are cut
    /// into groups of axes with equal products at the export batch (a Reshape only splits or
    /// merges within such a group); a group whose data grew with the batch passes the growth
    /// to its target entry, or, when the group splits an axis (batch·heads → batch, heads;
    /// sequence·batch → sequence, batch), to its outermost entry equal to the export batch,
    /// else to its outermost multiple of it.
    fn reshape_target(&self, g: &Graph, n: &Node) -> Option<Vec<i64>> {
        let (d0, t0) = self.reshapes.get(&n.name)?;
        let d = g.shape(n.input(0)?).ok()?.to_vec();
        if d.len() != d0.len() || &d == d0 || d0.contains(&0) || t0.contains(&0) {
            return None;
        }
        let mut t: Vec<usize> = t0.clone();
        let (mut p, mut i) = (0, 0);
        while p < d0.len() || i < t0.len() {
            // one group: advance the side with the smaller product until they are equal
            let (p_start, i_start) = (p, i);
            let (mut pd, mut pt) = (1usize, 1usize);
            loop {
                if pd <= pt && p < d0.len() {
                    pd *= d0[p];
                    p += 1;
                } else if i < t0.len() {
                    pt *= t0[i];
                    i += 1;
                } else {
                    break;
                }
                if pd == pt && (p == d0.len() || d0[p] != 1) && (i == t0.len() || t0[i] != 1) {
                    break;
                }
            }
            if pd != pt {
                return None;
            }
            let now: usize = d[p_start..p].iter().product();
            if now == pd {
                continue;
            }
            let fits = |k: &usize| (t0[*k] * now) % pd == 0 && t0[*k] * now / pd > 0;
            let entry = (i_start..i).filter(fits).find(|&k| t0[k] == self.b0).or_else(|| (i_start..i).filter(fits).find(|&k| t0[k] % self.b0 == 0))?;
            t[entry] = t0[entry] * now / pd;
        }
        Some(t.into_iter().map(|v| v as i64).collect())
    }
}

fn canonicalize_with(raw: &RawModel, shapes: &InputShapes, opts: &CanonOptions, at_export: Option<&ExportShapes>) -> Result<Graph> {
    let src = &raw.graph;
    let mut g = Graph {
        name: src.name.clone(),
        inputs: src.inputs.clone(),
        outputs: src.outputs.clone(),
        opset: TARGET_OPSET,
        source: src.source.clone(),
        next_id: src.next_id,
        ..Graph::default()
    };
    let params: HashSet<String> = if opts.abs_params { parameter_names(src).into_iter().collect() } else { HashSet::new() };
    let promote = |t: &Tensor| if opts.float64 && t.dtype() == DType::F32 { t.cast(DType::F64) } else { t.clone() };
    for (name, t) in &src.initializers {
        let t = if params.contains(name) { t.map_float(f64::abs) } else { t.clone() };
        g.set_initializer(name, promote(&t));
    }
    for decl in &raw.input_decls {
        let shape = shapes.shapes.get(&decl.name).ok_or_else(|| anyhow!("no shape chosen for input '{}'", decl.name))?;
        let dt = if opts.float64 && decl.dtype == DType::F32 { DType::F64 } else { decl.dtype };
        g.types.insert(decl.name.clone(), TypeInfo::new(dt, shape.clone()));
    }
    let mut alias: HashMap<String, String> = HashMap::new();
    let mut sequences = super::sequence::Sequences::default();
    for n in &src.nodes {
        let mut n = n.clone();
        for i in n.inputs.iter_mut() {
            if let Some(a) = alias.get(i) {
                *i = a.clone();
            }
        }
        if opts.float64 {
            promote_node(&mut n);
        }
        let desc = n.describe();
        let lowered = sequences.lower(&mut g, n).with_context(|| format!("{}: while importing {desc}", src.source))?;
        for n in lowered {
            canon_node(&mut g, n, src.opset, shapes, at_export, opts, &mut alias).with_context(|| format!("{}: while importing {desc}", src.source))?;
        }
    }
    for o in g.outputs.iter_mut() {
        if let Some(a) = alias.get(o) {
            *o = a.clone();
        }
    }
    for o in &g.outputs {
        if !g.types.contains_key(o) {
            bail!("{}: graph output '{o}' is never computed", g.source);
        }
    }
    g.aliases = alias;
    drop_zero_products(&mut g);
    Ok(g)
}

/// NAS-Bench-201's `none` edge is `x·0`, added into a node's sum: an addend that is exactly
/// zero. Such a product, when every consumer is an Add whose other operand already has the
/// sum's shape, is dropped with those Adds (each sum is its other operand), so neither
/// engine spends a forward and a backward pass on zeros. Gradients are unchanged: the
/// dropped path contributed zero to x's.
fn drop_zero_products(g: &mut Graph) {
    let is_zero = |g: &Graph, t: &str| g.initializers.get(t).is_some_and(|c| c.to_f64_vec().iter().all(|&v| v == 0.0));
    loop {
        let mut found = None;
        'nodes: for (mi, m) in g.nodes.iter().enumerate() {
            if m.op != "Mul" || m.inputs.len() != 2 || g.outputs.contains(&m.outputs[0]) {
                continue;
            }
            let Some(zi) = (0..2).find(|&k| is_zero(g, &m.inputs[k])) else { continue };
            let x = &m.inputs[1 - zi];
            let y = &m.outputs[0];
            if g.shape(x).ok() != g.shape(y).ok() {
                continue;
            }
            let mut adds = Vec::new();
            for (ai, a) in g.nodes.iter().enumerate() {
                if !a.inputs.contains(y) {
                    continue;
                }
                let other = a.inputs.iter().find(|i| *i != y);
                match other {
                    Some(o)
                        if a.op == "Add"
                            && a.inputs.len() == 2
                            && !g.outputs.contains(&a.outputs[0])
                            && g.shape(o).ok() == g.shape(&a.outputs[0]).ok() =>
                    {
                        adds.push((ai, a.outputs[0].clone(), o.clone()))
                    }
                    _ => continue 'nodes,
                }
            }
            found = Some((mi, adds));
            break;
        }
        let Some((mi, adds)) = found else { return };
        for (_, sum, other) in &adds {
            g.rename_uses(sum, other);
            for v in g.aliases.values_mut().filter(|v| *v == sum) {
                *v = other.clone();
            }
            g.aliases.insert(sum.clone(), other.clone());
        }
        let mut drop: Vec<usize> = adds.iter().map(|(ai, _, _)| *ai).collect();
        drop.push(mi);
        drop.sort_unstable();
        for i in drop.into_iter().rev() {
            let n = g.nodes.remove(i);
            for o in &n.outputs {
                g.types.remove(o);
            }
        }
    }
}

fn promote_node(n: &mut Node) {
    if n.op == "Cast" && n.int("to", 0) == DType::F32.onnx_code() as i64 {
        n.attrs.insert("to".into(), Attr::Int(DType::F64.onnx_code() as i64));
    }
    for v in n.attrs.values_mut() {
        if let Attr::Tensor(t) = v {
            if t.dtype() == DType::F32 {
                *t = t.cast(DType::F64);
            }
        }
    }
}

/// Moves attribute `key` into input slot `slot` as an int64 constant (opset upgrades).
fn attr_to_input(g: &mut Graph, n: &mut Node, key: &str, slot: usize) {
    if let Some(v) = n.ints(key) {
        n.attrs.remove(key);
        let name = g.fresh(&format!("{}/{key}", n.name));
        g.set_initializer(&name, Tensor::from_i64(&v));
        while n.inputs.len() < slot {
            n.inputs.push(String::new());
        }
        if n.inputs.len() == slot {
            n.inputs.push(name);
        } else {
            n.inputs[slot] = name;
        }
    }
}

fn float_attr_to_input(g: &mut Graph, n: &mut Node, key: &str, slot: usize, dtype: DType) {
    if let Some(Attr::Float(v)) = n.attrs.remove(key) {
        let name = g.fresh(&format!("{}/{key}", n.name));
        g.set_initializer(&name, Tensor::scalar(dtype, v as f64));
        while n.inputs.len() <= slot {
            n.inputs.push(String::new());
        }
        n.inputs[slot] = name;
    }
}

fn canon_node(
    g: &mut Graph,
    mut n: Node,
    src_opset: i64,
    shapes: &InputShapes,
    at_export: Option<&ExportShapes>,
    opts: &CanonOptions,
    alias: &mut HashMap<String, String>,
) -> Result<()> {
    let x_dtype = n.input(0).and_then(|x| g.types.get(x)).map(|t| t.dtype).unwrap_or(DType::F32);
    if upgrade_form(g, &mut n, src_opset, x_dtype, opts, alias)? || lower_node(g, &n, src_opset, opts, alias)? {
        return Ok(());
    }
    rebatch(g, &mut n, shapes, at_export)?;
    rebatch_concat_constants(g, &mut n, shapes)?;
    if let (Some(b0), true) = (shapes.export_batch, matches!(n.op.as_str(), "Reshape" | "Expand" | "Tile" | "ConstantOfShape" | "Slice")) {
        if b0 != shapes.batch {
            if let Err(e) = super::infer::infer_node(g, &n) {
                bail!(
                    "{e:#}; the file was exported at batch {b0} and is scored at batch {}: a shape constant of {} holds a size that could not be attributed to the batch (export the model with a dynamic batch axis, or score it at batch {b0})",
                    shapes.batch,
                    n.describe()
                );
            }
        }
    }
    if matches!(n.op.as_str(), "ReduceMean" | "ReduceSum") && x_dtype == DType::F32 && large_reduction(g, &n)? {
        return reduce_in_float64(g, n);
    }
    push_node(g, n)
}

/// Reads the node forms of other opsets as opset 17 writes them: attributes moved to inputs
/// and back, Upsample and Resize-10 as Resize, Softmax before opset 13, Constant and
/// Identity/Dropout removed. True when the node is fully handled (an initializer or alias).
fn upgrade_form(g: &mut Graph, n: &mut Node, src_opset: i64, x_dtype: DType, opts: &CanonOptions, alias: &mut HashMap<String, String>) -> Result<bool> {
    let op = n.op.clone();
    match op.as_str() {
        "Constant" => {
            let t = match n.attrs.iter().next() {
                Some((_, Attr::Tensor(t))) => t.clone(),
                Some((k, Attr::Float(f))) if k == "value_float" => Tensor::scalar(DType::F32, *f as f64),
                Some((k, Attr::Floats(f))) if k == "value_floats" => {
                    Tensor::from_f64(DType::F32, &[f.len()], f.iter().map(|&v| v as f64).collect())
                }
                Some((k, Attr::Int(i))) if k == "value_int" => Tensor::scalar(DType::I64, *i as f64),
                Some((k, Attr::Ints(v))) if k == "value_ints" => Tensor::from_i64(v),
                _ => bail!("unsupported Constant form"),
            };
            let t = if opts.float64 && t.dtype() == DType::F32 { t.cast(DType::F64) } else { t };
            g.set_initializer(&n.outputs[0], t);
            return Ok(true);
        }
        "CastLike" => {
            // a Cast to the element type of the second input (the dynamo exporter writes
            // them around constants); one op fewer for every engine and rule table
            let like = n.input(1).ok_or_else(|| anyhow!("{}: CastLike without its second input", n.describe()))?;
            let to = g.info(like)?.dtype;
            n.op = "Cast".into();
            n.inputs.truncate(1);
            n.attrs.clear();
            n.attrs.insert("to".into(), Attr::Int(to.onnx_code() as i64));
        }
        "Identity" | "Dropout" => {
            if n.outputs.len() > 1 && !n.outputs[1].is_empty() && op == "Dropout" {
                // the mask of an identity dropout is all ones
                let x = n.input(0).unwrap();
                let shape = g.shape(x)?.to_vec();
                g.set_initializer(&n.outputs[1], Tensor::full(DType::Bool, &shape, 1.0));
            }
            alias.insert(n.outputs[0].clone(), n.inputs[0].clone());
            return Ok(true);
        }
        "ReduceSum" => attr_to_input(g, n, "axes", 1),
        "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceProd" | "ReduceL2" | "ReduceL1" | "ReduceSumSquare"
        | "ReduceLogSumExp" => {
            // opset 18 moved axes to an input (and added noop_with_empty_axes); opset 17
            // keeps them as an attribute
            let axes = match n.input(1) {
                Some(_) => super::infer::const_ints(g, n, 1)?.unwrap_or_default(),
                None => n.ints("axes").unwrap_or_default(),
            };
            let noop = n.attrs.remove("noop_with_empty_axes").is_some_and(|a| a == Attr::Int(1));
            n.inputs.truncate(1);
            if axes.is_empty() && noop {
                alias.insert(n.outputs[0].clone(), n.inputs[0].clone());
                return Ok(true);
            }
            if !axes.is_empty() {
                n.attrs.insert("axes".into(), Attr::Ints(axes));
            }
        }
        "Squeeze" | "Unsqueeze" => attr_to_input(g, n, "axes", 1),
        "Split" => {
            attr_to_input(g, n, "split", 1);
            if n.attrs.remove("num_outputs").is_some() || n.input(1).is_none() {
                let x = n.input(0).unwrap();
                let shape = g.shape(x)?.to_vec();
                let a = axis(n.int("axis", 0), shape.len())?;
                let sizes = super::infer::split_sizes(g, n, shape[a])?;
                let name = g.fresh(&format!("{}/split", n.name));
                g.set_initializer(&name, Tensor::from_i64(&sizes.iter().map(|&v| v as i64).collect::<Vec<_>>()));
                n.inputs.truncate(1);
                n.inputs.push(name);
            }
        }
        "Clip" => {
            float_attr_to_input(g, n, "min", 1, x_dtype);
            float_attr_to_input(g, n, "max", 2, x_dtype);
        }
        "Pad" => upgrade_pad(g, n, x_dtype)?,
        "Slice" => {
            if n.ints("starts").is_some() {
                attr_to_input(g, n, "starts", 1);
                attr_to_input(g, n, "ends", 2);
                attr_to_input(g, n, "axes", 3);
            }
        }
        "Upsample" | "Resize" if op == "Upsample" || src_opset < 11 => upgrade_upsample(g, n)?,
        "Softmax" | "LogSoftmax" | "Hardmax" if src_opset < 13 => {
            // before opset 13 the op works on the input coerced to 2-D at `axis` (default 1)
            let x = n.input(0).unwrap().to_string();
            let shape = g.shape(&x)?.to_vec();
            let a = axis(n.int("axis", 1), shape.len())?;
            n.attrs.insert("axis".into(), Attr::Int(-1));
            if a != shape.len() - 1 {
                let mut b = Builder::new(g, n.name.clone());
                let outer: usize = shape[..a].iter().product();
                let flat = b.reshape(&x, &[outer, shape[a..].iter().product()])?;
                let y = b.op(&op, &[&flat], vec![("axis", Attr::Int(-1))])?;
                let y = b.reshape(&y, &shape)?;
                alias.insert(n.outputs[0].clone(), y);
                return Ok(true);
            }
        }
        _ => {}
    }
    Ok(false)
}

/// Pad with `pads`/`value` attributes (before opset 11) or an `axes` input (opset 18) as opset 17's.
fn upgrade_pad(g: &mut Graph, n: &mut Node, x_dtype: DType) -> Result<()> {
    if let Some(p) = n.ints("pads") {
        n.attrs.remove("pads");
        let name = g.fresh(&format!("{}/pads", n.name));
        g.set_initializer(&name, Tensor::from_i64(&p));
        let value = n.float("value", 0.0);
        n.attrs.remove("value");
        let v = g.fresh(&format!("{}/value", n.name));
        g.set_initializer(&v, Tensor::scalar(x_dtype, value as f64));
        n.inputs = vec![n.inputs[0].clone(), name, v];
    }
    if n.input(3).is_some() {
        // opset 18 axes input: expand pads to every axis
        let x = n.input(0).unwrap();
        let r = g.shape(x)?.len();
        let axes: Vec<usize> = super::infer::const_ints(g, n, 3)?
            .unwrap()
            .iter()
            .map(|&a| axis(a, r))
            .collect::<Result<_>>()?;
        let p = super::infer::const_ints(g, n, 1)?.unwrap();
        let mut full = vec![0i64; 2 * r];
        for (k, &a) in axes.iter().enumerate() {
            full[a] = p[k];
            full[a + r] = p[k + axes.len()];
        }
        let name = g.fresh(&format!("{}/pads", n.name));
        g.set_initializer(&name, Tensor::from_i64(&full));
        n.inputs[1] = name;
        n.inputs.truncate(3);
    }
    if n.string("mode").unwrap_or("constant") != "constant" {
        bail!("only constant-mode Pad is supported");
    }
    Ok(())
}

/// Upsample (opset 7: `scales` attribute; 9: scales input) and Resize-10 (X, scales) are
/// Resize-11+ with asymmetric coordinates and floor rounding.
fn upgrade_upsample(g: &mut Graph, n: &mut Node) -> Result<()> {
    n.op = "Resize".into();
    if n.string("mode") == Some("bilinear") {
        n.attrs.insert("mode".into(), Attr::Str("linear".into()));
    }
    n.attrs.insert("coordinate_transformation_mode".into(), Attr::Str("asymmetric".into()));
    n.attrs.insert("nearest_mode".into(), Attr::Str("floor".into()));
    let scales = match n.attrs.remove("scales") {
        Some(Attr::Floats(f)) => Some(f),
        _ => None,
    };
    let scales_name = match scales {
        Some(f) => {
            let name = g.fresh(&format!("{}/scales", n.name));
            g.set_initializer(&name, Tensor::from_f64(DType::F32, &[f.len()], f.iter().map(|&v| v as f64).collect()));
            name
        }
        None => n.inputs.get(1).cloned().unwrap_or_default(),
    };
    n.inputs = vec![n.inputs[0].clone(), String::new(), scales_name];
    Ok(())
}

/// Lowers `n` into primitive ops that have rules, where its op has a lowering in the
/// registry (`ops::OpDef::lower`); true when it did.
fn lower_node(g: &mut Graph, n: &Node, src_opset: i64, opts: &CanonOptions, alias: &mut HashMap<String, String>) -> Result<bool> {
    let Some(lower) = crate::ops::def(&n.op).and_then(|d| d.lower) else { return Ok(false) };
    let mut b = Builder::new(g, n.name.clone());
    let Some(y) = lower(&mut b, n, &LowerCtx { opset: src_opset, bn: opts.bn })? else { return Ok(false) };
    alias.insert(n.outputs[0].clone(), y);
    Ok(true)
}

/// Reductions over more values than this are accumulated in float64 in float32 graphs.
const LARGE_REDUCTION: usize = 256;

fn large_reduction(g: &Graph, n: &Node) -> Result<bool> {
    let shape = g.shape(n.input(0).unwrap())?.to_vec();
    let axes = super::infer::reduce_axes(g, n, shape.len())?;
    Ok(axes.iter().map(|&a| shape[a]).product::<usize>() > LARGE_REDUCTION)
}

/// tract sums a reduction in one running float32 accumulator, whose error grows with the
/// count: batch statistics over 16×32×32 values moved gradients by ~5e-3 against PyTorch
/// and ONNX Runtime. The reduction runs on a float64 copy instead.
fn reduce_in_float64(g: &mut Graph, mut n: Node) -> Result<()> {
    let y = n.outputs[0].clone();
    let mut b = Builder::new(g, n.name.clone());
    let x64 = b.cast(n.input(0).unwrap(), DType::F64)?;
    n.inputs[0] = x64;
    n.outputs[0] = b.g.fresh(&format!("{}/f64", n.name));
    let r64 = n.outputs[0].clone();
    push_node(b.g, n)?;
    let mut b = Builder::new(g, "reduce");
    let r = b.cast(&r64, DType::F32)?;
    b.g.types.insert(y.clone(), b.info(&r)?);
    b.g.nodes.push(Node::new(format!("{y}/name"), "Identity", vec![r], vec![y]));
    Ok(())
}






/// Rewrites a shape constant that carries the export batch when scoring at another batch.
fn rebatch(g: &mut Graph, n: &mut Node, shapes: &InputShapes, at_export: Option<&ExportShapes>) -> Result<()> {
    let Some(b0) = shapes.export_batch else { return Ok(()) };
    let b = shapes.batch;
    if b0 == b {
        return Ok(());
    }
    let slot = match n.op.as_str() {
        "Reshape" | "Expand" | "Tile" => 1,
        "ConstantOfShape" => 0,
        _ => return Ok(()),
    };
    let Some(name) = n.input(slot).map(|s| s.to_string()) else { return Ok(()) };
    let Some(t) = g.constant(&name) else { return Ok(()) };
    let mut v = t.to_i64_vec();
    let data_dim0 = if slot == 1 { n.input(0).and_then(|x| g.types.get(x)).and_then(|t| t.shape.first().copied()) } else { None };
    if let Some(w) = (n.op == "Reshape").then(|| at_export.and_then(|e| e.reshape_target(g, n))).flatten() {
        let new = g.fresh(&format!("{name}/rebatched"));
        g.set_initializer(&new, Tensor::from_i64(&w));
        n.inputs[slot] = new;
        return Ok(());
    }
    if v.first() != Some(&(b0 as i64)) {
        return Ok(());
    }
    match n.op.as_str() {
        "Reshape" if data_dim0 != Some(b) => return Ok(()),
        "Tile" if data_dim0 != Some(1) => return Ok(()),
        // a 1-D Expand is a per-channel vector (the dynamo exporter's zero bias of a
        // bias=False Conv, a non-affine BatchNorm's ones), not a batch
        "Expand" if v.len() < 2 => return Ok(()),
        _ => {}
    }
    v[0] = b as i64;
    let new = g.fresh(&format!("{name}/rebatched"));
    g.set_initializer(&new, Tensor::from_i64(&v));
    n.inputs[slot] = new;
    Ok(())
}

/// A constant concatenated with the batch (a class token expanded to the export batch and
/// folded by the exporter's optimiser into an initializer [b0, …]): when its b0 slices are
/// identical, it is re-tiled to the scoring batch.
fn rebatch_concat_constants(g: &mut Graph, n: &mut Node, shapes: &InputShapes) -> Result<()> {
    let (Some(b0), b) = (shapes.export_batch, shapes.batch) else { return Ok(()) };
    if b0 == b || n.op != "Concat" {
        return Ok(());
    }
    let batched = n.inputs.iter().any(|i| g.constant(i).is_none() && g.types.get(i).is_some_and(|t| t.shape.first() == Some(&b)));
    if !batched {
        return Ok(());
    }
    for slot in 0..n.inputs.len() {
        let Some(t) = g.constant(&n.inputs[slot]).cloned() else { continue };
        let shape = t.shape().to_vec();
        if shape.first() != Some(&b0) || shape.len() < 2 {
            continue;
        }
        let v = t.to_f64_vec();
        let per = v.len() / b0;
        if per == 0 || v.chunks(per).any(|c| c != &v[..per]) {
            continue;
        }
        let mut s = shape.clone();
        s[0] = b;
        let tiled: Vec<f64> = v[..per].iter().copied().cycle().take(per * b).collect();
        let new = g.fresh(&format!("{}/rebatched", n.inputs[slot]));
        g.set_initializer(&new, Tensor::from_f64(t.dtype(), &s, tiled));
        n.inputs[slot] = new;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onnx::Model;

    /// nb201_a has 30 `none` edges (x·0 added into a cell node's sum): none is left in the
    /// canonical graph, and the file names of the sums they fed resolve to live tensors.
    #[test]
    fn none_edges_are_dropped() {
        let model = Model::load(concat!(env!("CARGO_MANIFEST_DIR"), "/models/nb201_a.onnx")).unwrap();
        let zero_products = |g: &Graph| {
            g.nodes.iter().filter(|n| n.op == "Mul" && n.inputs.iter().any(|i| g.constant(i).is_some_and(|c| c.to_f64_vec() == [0.0]))).count()
        };
        let none_edges = model.raw.graph.nodes.iter().filter(|n| n.op == "Mul" && n.name.contains("_none/")).count();
        assert_eq!(none_edges, 30);
        let shapes = model.input_shapes(2, None).unwrap();
        let g = model.canonical(&shapes, &CanonOptions::default()).unwrap();
        assert_eq!(zero_products(&g), 0);
        let produced: HashSet<&String> = g.nodes.iter().flat_map(|n| &n.outputs).chain(&g.inputs).collect();
        for (file, canonical) in &g.aliases {
            assert!(produced.contains(canonical) || g.initializers.contains_key(canonical), "{file} -> {canonical}");
        }
    }
}
