//! Composite ops: operations of a gradient program that are not ONNX operators. The reverse
//! pass emits them where one op with its own rules is much cheaper than the standard ops it
//! stands for, above all once differentiated again (GraSP): the convolution's data and
//! weight gradients, whose adjoints are again convolutions, and a stop-gradient marker.
//! They live in the program until it is handed to an engine or written out, when [`lower`]
//! replaces each by standard ONNX ops (`Engine::load`, `proto::write_model`).
//!
//! | op | inputs | output | lowered to |
//! |---|---|---|---|
//! | `zerocost.ConvGradX` | gy [N,O,P..], W [O,C/G,K..] | ∂⟨gy, Conv(x, W)⟩/∂x, [N,C,S..] | stride 1: Conv with the flipped kernel; else ConvTranspose, cropped/padded to x |
//! | `zerocost.ConvGradW` | gy [N,O,P..], x [N,C,S..] | ∂⟨gy, Conv(x, W)⟩/∂W, [O,C/G,K..] | ONNX Runtime: one MatMul per kernel offset; tract: a Conv with batch and channels exchanged (group 1) |
//! | `zerocost.BatchNormTrain` | x [N,C,..], scale [C], bias [C] | y, batch mean [C], batch variance [C] (biased) | ONNX Runtime: BatchNormalization(training_mode=1, momentum=0); tract: mean/variance ops |
//! | `zerocost.StopGradient` | x | x, with no gradient | Identity (dropped) |
//!
//! BatchNormTrain is training-mode BatchNormalization (statistics of the batch, `epsilon`
//! attribute). Its rule (`ops/norm.rs`) is the analytic backward pass, written
//! with the mean and variance outputs, so a second differentiation reaches them too.
//!
//! The convolution attributes (`strides`, `dilations`, explicit `pads`, `group`) are those
//! of the forward Conv; ConvGradX also carries the spatial shape of x (`x_shape`) and
//! ConvGradW the kernel's (`kernel_shape`). Their rules are in `ops/conv.rs`.

use super::builder::{Attrs, Builder};
use super::geometry::{window, Window};
use super::ir::{Attr, Graph, Node, TypeInfo};
use anyhow::{anyhow, bail, Result};
use std::borrow::Cow;

pub const CONV_GRAD_X: &str = "zerocost.ConvGradX";
pub const CONV_GRAD_W: &str = "zerocost.ConvGradW";
pub const STOP_GRADIENT: &str = "zerocost.StopGradient";
pub const BATCH_NORM_TRAIN: &str = "zerocost.BatchNormTrain";

pub fn is_composite(op: &str) -> bool {
    matches!(op, CONV_GRAD_X | CONV_GRAD_W | STOP_GRADIENT | BATCH_NORM_TRAIN)
}

/// Which standard form composite ops are lowered to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Any ONNX engine (ONNX Runtime, files written out).
    Onnx,
    /// tract, which has no training-mode BatchNormalization.
    Tract,
}

/// The program an engine runs for `g`: composite ops lowered for `target` and the nodes
/// that no output needs removed.
pub fn program_for(g: &Graph, target: Target) -> Result<Graph> {
    let mut out = lower(g, target)?.into_owned();
    out.prune();
    Ok(out)
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&x| x as i64).collect())
}

/// Attributes of a convolution over `win` (explicit pads) with `group`.
pub fn conv_attrs(win: &Window, group: usize) -> Attrs {
    vec![
        ("strides", ints(&win.strides)),
        ("dilations", ints(&win.dilations)),
        ("group", Attr::Int(group as i64)),
        ("pads", Attr::Ints(win.pads_attr())),
    ]
}

/// `conv_attrs` plus the spatial shape of x (ConvGradX).
pub fn grad_x_attrs(win: &Window, group: usize, x_spatial: &[usize]) -> Attrs {
    let mut a = conv_attrs(win, group);
    a.push(("x_shape", ints(x_spatial)));
    a
}

/// `conv_attrs` plus the kernel's spatial shape (ConvGradW).
pub fn grad_w_attrs(win: &Window, group: usize) -> Attrs {
    let mut a = conv_attrs(win, group);
    a.push(("kernel_shape", ints(&win.kernel)));
    a
}

fn spatial(n: &Node, key: &str) -> Result<Vec<usize>> {
    Ok(n.ints(key).ok_or_else(|| anyhow!("{}: attribute {key} missing", n.describe()))?.iter().map(|&v| v as usize).collect())
}

/// The forward convolution's window and group, as recorded on a ConvGradX/ConvGradW node.
pub fn conv_window(g: &Graph, n: &Node) -> Result<(Window, usize)> {
    let group = n.int("group", 1) as usize;
    let (x_spatial, kernel) = match n.op.as_str() {
        CONV_GRAD_X => (spatial(n, "x_shape")?, g.shape(&n.inputs[1])?[2..].to_vec()),
        _ => (g.shape(&n.inputs[1])?[2..].to_vec(), spatial(n, "kernel_shape")?),
    };
    Ok((window(n, &x_spatial, &kernel, false)?, group))
}

/// Output types of a composite node.
pub fn infer(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let info = |i: usize| g.info(n.input(i).ok_or_else(|| anyhow!("missing input #{i}"))?).cloned();
    if n.op == STOP_GRADIENT {
        return Ok(vec![info(0)?]);
    }
    if n.op == BATCH_NORM_TRAIN {
        let x = info(0)?;
        if x.shape.len() < 2 {
            bail!("BatchNormalization of a tensor of shape {:?}", x.shape);
        }
        let stats = TypeInfo::new(x.dtype, vec![x.shape[1]]);
        return Ok(vec![x, stats.clone(), stats]);
    }
    let (gy, other) = (info(0)?, info(1)?);
    let (win, group) = conv_window(g, n)?;
    if gy.shape.len() != other.shape.len() || gy.shape[2..] != win.out[..] {
        bail!("output gradient {:?} does not match the convolution's output extent {:?}", gy.shape, win.out);
    }
    let shape = match n.op.as_str() {
        CONV_GRAD_X => [&[gy.shape[0], other.shape[1] * group][..], &spatial(n, "x_shape")?].concat(),
        _ => [&[gy.shape[1], other.shape[1] / group][..], &win.kernel].concat(),
    };
    Ok(vec![TypeInfo::new(gy.dtype, shape)])
}

/// `g` with every composite node replaced by standard ONNX ops (borrowed when it has none).
/// Each replacement ends in the composite node's output names.
pub fn lower(g: &Graph, target: Target) -> Result<Cow<'_, Graph>> {
    if !g.nodes.iter().any(|n| is_composite(&n.op)) {
        return Ok(Cow::Borrowed(g));
    }
    let mut out = g.clone();
    let nodes = std::mem::take(&mut out.nodes);
    let mut renames: Vec<(String, String)> = Vec::new();
    for n in nodes {
        if !is_composite(&n.op) {
            out.nodes.push(n);
            continue;
        }
        if n.op == STOP_GRADIENT {
            renames.push((n.outputs[0].clone(), n.inputs[0].clone()));
            continue;
        }
        let first_new = out.nodes.len();
        let mut b = Builder::new(&mut out, n.name.clone());
        let ys = match n.op.as_str() {
            CONV_GRAD_X => vec![lower_grad_x(&mut b, &n)?],
            CONV_GRAD_W => vec![lower_grad_w(&mut b, &n, target)?],
            _ => lower_batch_norm(&mut b, &n, target)?,
        };
        for (y, target) in ys.iter().zip(&n.outputs) {
            name_result(&mut out, first_new, y, target);
        }
    }
    for (from, to) in renames.iter().rev() {
        out.rename_uses(from, to);
    }
    Ok(Cow::Owned(out))
}

/// Makes the tensor `y` computed by the nodes from `first_new` on carry the name `target`.
fn name_result(g: &mut Graph, first_new: usize, y: &str, target: &str) {
    if target.is_empty() {
        return;
    }
    match g.nodes[first_new..].iter_mut().rev().find(|m| m.outputs.iter().any(|o| o == y)) {
        Some(m) => {
            for o in m.outputs.iter_mut().filter(|o| *o == y) {
                *o = target.to_string();
            }
            g.types.remove(y);
        }
        None => g.nodes.push(Node::new(format!("{target}/name"), "Identity", vec![y.to_string()], vec![target.to_string()])),
    }
}

/// Training-mode BatchNormalization: (y, mean, variance). ONNX Runtime runs the standard op
/// in training mode with momentum 0, whose "running" outputs are then the batch statistics
/// (the variance biased, as the normalisation uses it); tract has no such kernel, so there
/// it is mean and variance reductions and element-wise ops.
fn lower_batch_norm(b: &mut Builder, n: &Node, target: Target) -> Result<Vec<String>> {
    let (x, scale, bias) = (n.inputs[0].as_str(), n.inputs[1].as_str(), n.inputs[2].as_str());
    let info = b.info(x)?;
    let (r, c) = (info.shape.len(), info.shape[1]);
    let eps = n.float("epsilon", 1e-5);
    if target == Target::Onnx {
        // With momentum 0 the incoming "running" statistics are multiplied by 0; their
        // values are unique on purpose: ONNX Runtime's ConstantSharing optimiser (on by
        // default) merges equal initializers, and the kernel's statistics outputs may then
        // share a buffer with another node's (or with a scale or bias: SPEC), which
        // overwrote the batch means of one BN with another's. So each node gets values
        // of its own, far from any scale or bias.
        let k = b.g.nodes.iter().filter(|m| m.op == "BatchNormalization").count() as f64;
        let mean_in = b.constant(super::ir::Tensor::full(info.dtype, &[c], 1000.25 + k));
        let var_in = b.constant(super::ir::Tensor::full(info.dtype, &[c], 100000.75 + k));
        let attrs = vec![("epsilon", Attr::Float(eps)), ("momentum", Attr::Float(0.0)), ("training_mode", Attr::Int(1))];
        return b.node("BatchNormalization", &[x, scale, bias, &mean_in, &var_in], attrs, 3);
    }
    let axes: Vec<usize> = (0..r).filter(|&a| a != 1).collect();
    let mean = b.reduce_mean(x, &axes, true)?;
    let d = b.sub(x, &mean)?;
    let sq = b.mul(&d, &d)?;
    let var = b.reduce_mean(&sq, &axes, true)?;
    let e = b.scalar_like(x, eps as f64)?;
    let ve = b.add(&var, &e)?;
    let sd = b.op("Sqrt", &[&ve], vec![])?;
    let xhat = b.div(&d, &sd)?;
    let mut bcast = vec![1; r];
    bcast[1] = c;
    let s = b.reshape(scale, &bcast)?;
    let bi = b.reshape(bias, &bcast)?;
    let m = b.mul(&xhat, &s)?;
    let y = b.add(&m, &bi)?;
    Ok(vec![y, b.reshape(&mean, &[c])?, b.reshape(&var, &[c])?])
}

/// dx = ConvTranspose(gy, W) (same strides, dilations, group; no pads) over the padded
/// input, cropped to x (and zero-padded where no window reached). A stride-1 data gradient
/// is instead a Conv of gy with the kernel transposed and flipped (padded by span − 1 −
/// pad), which both engines run faster than ConvTranspose.
fn lower_grad_x(b: &mut Builder, n: &Node) -> Result<String> {
    let (gy, w) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (win, group) = conv_window(b.g, n)?;
    let xs = spatial(n, "x_shape")?;
    let r = xs.len();
    let stride_one = win.strides.iter().all(|&s| s == 1);
    let fits = (0..r).all(|i| win.pads_begin[i].max(win.pads_end[i]) < win.span(i));
    if stride_one && fits {
        return flipped_kernel_conv(b, gy, w, &win, group);
    }
    let mut attrs = conv_attrs(&win, group);
    attrs.retain(|(k, _)| *k != "pads");
    let t = b.op("ConvTranspose", &[gy, w], attrs)?;
    let ts = b.shape(&t)?;
    let begin: Vec<i64> = win.pads_begin.iter().map(|&p| -(p as i64)).collect();
    let end: Vec<i64> = (0..r).map(|i| (xs[i] + win.pads_begin[i]) as i64 - ts[2 + i] as i64).collect();
    b.pad_or_crop(&t, &nc0(&begin), &nc0(&end))
}

/// dx[n,c,s] = Σ_o,k gy[n,o,s+pad−k·d]·W[o,c,k] (stride 1) = Conv(gy, W') with
/// W'[c,o,k] = W[o,c,K−1−k] per group, pads span−1−pad: the output is exactly x's extent.
fn flipped_kernel_conv(b: &mut Builder, gy: &str, w: &str, win: &Window, group: usize) -> Result<String> {
    let ws = b.shape(w)?;
    let (o, cg, r) = (ws[0], ws[1], ws.len() - 2);
    let split = b.reshape(w, &[&[group, o / group, cg][..], &ws[2..]].concat())?;
    let perm: Vec<usize> = [0, 2, 1].into_iter().chain(3..3 + r).collect();
    let t = b.transpose(&split, &perm)?;
    let t = b.reshape(&t, &[&[group * cg, o / group][..], &ws[2..]].concat())?;
    let axes: Vec<usize> = (2..2 + r).collect();
    let flipped = b.slice(&t, &axes, &vec![-1; r], &vec![i64::MIN; r], &vec![-1; r])?;
    let pads: Vec<i64> = (0..r).map(|i| (win.span(i) - 1 - win.pads_begin[i]) as i64).chain((0..r).map(|i| (win.span(i) - 1 - win.pads_end[i]) as i64)).collect();
    let attrs = vec![("dilations", ints(&win.dilations)), ("group", Attr::Int(group as i64)), ("pads", Attr::Ints(pads))];
    b.op("Conv", &[gy, &flipped], attrs)
}

/// The weight gradient: on ONNX Runtime one MatMul per kernel offset (its fastest form,
/// measured); on tract, for group 1, one Conv with batch and channel axes exchanged (less
/// time and half the memory there: tract's im2col beats its strided copies).
fn lower_grad_w(b: &mut Builder, n: &Node, target: Target) -> Result<String> {
    let (gy, x) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (win, group) = conv_window(b.g, n)?;
    if target == Target::Tract && group == 1 {
        return swapped_axes_conv(b, gy, x, &win);
    }
    let xp = b.pad(x, &nc0(&win.pads_begin), &nc0(&win.pads_end))?;
    weight_grad(b, gy, &xp, group, &win)
}

/// dW[o,c,k] = Σ_n,p gy[n,o,p]·x_pad[n,c,p·s+k·d] as one Conv with batch and channel axes
/// exchanged: x as [C, N, S..] convolved with gy as [O, N, P..] (strides and dilations
/// exchanged), cropped to the kernel and moved to [O, C, K..]. Group 1 only.
fn swapped_axes_conv(b: &mut Builder, gy: &str, x: &str, win: &Window) -> Result<String> {
    let r = win.kernel.len();
    let perm: Vec<usize> = [1, 0].into_iter().chain(2..2 + r).collect();
    let xt = b.transpose(x, &perm)?;
    let gt = b.transpose(gy, &perm)?;
    let attrs = vec![
        ("strides", ints(&win.dilations)),
        ("dilations", ints(&win.strides)),
        ("group", Attr::Int(1)),
        ("pads", Attr::Ints(win.pads_attr())),
    ];
    let c = b.op("Conv", &[&xt, &gt], attrs)?;
    let cs = b.shape(&c)?;
    let c = if cs[2..] == win.kernel[..] {
        c
    } else {
        let axes: Vec<usize> = (2..2 + r).collect();
        let k: Vec<i64> = win.kernel.iter().map(|&k| k as i64).collect();
        b.slice(&c, &axes, &vec![0; r], &k, &vec![1; r])?
    };
    b.transpose(&c, &perm)
}

/// `[0, 0, v...]`: a per-axis list for an [N, C, spatial...] tensor.
pub fn nc0<T: Copy + Default>(spatial: &[T]) -> Vec<T> {
    let mut v = vec![T::default(); 2];
    v.extend_from_slice(spatial);
    v
}

/// Every kernel offset, in row-major order.
pub fn kernel_offsets(kernel: &[usize]) -> Vec<Vec<usize>> {
    let mut offs = vec![vec![]];
    for &k in kernel {
        offs = offs.into_iter().flat_map(|o| (0..k).map(move |j| [o.clone(), vec![j]].concat())).collect();
    }
    offs
}

/// The strided view `t[..., k·d + p·s, ...]` (p < len) over the `len.len()` axes starting at
/// `first_axis`: the input positions that kernel offset `k` meets. No Slice when it is all
/// of `t`.
pub fn window_slice(b: &mut Builder, t: &str, first_axis: usize, k: &[usize], win: &Window, len: &[usize]) -> Result<String> {
    let shape = b.shape(t)?;
    let r = len.len();
    let starts: Vec<i64> = (0..r).map(|i| (k[i] * win.dilations[i]) as i64).collect();
    let ends: Vec<i64> = (0..r).map(|i| starts[i] + ((len[i] - 1) * win.strides[i]) as i64 + 1).collect();
    let steps: Vec<i64> = win.strides.iter().map(|&s| s as i64).collect();
    let whole = (0..r).all(|i| starts[i] == 0 && steps[i] == 1 && ends[i] == shape[first_axis + i] as i64);
    if whole {
        return Ok(t.to_string());
    }
    let axes: Vec<usize> = (first_axis..first_axis + r).collect();
    b.slice(t, &axes, &starts, &ends, &steps)
}

/// dW[o, i, k] = Σ_n Σ_p a[n, o, p] · bp[n, g(o)·B/G + i, p·s + k·d], with g(o) the group of
/// channel o: the weight gradient of Conv (a = gy, bp = padded x) and of ConvTranspose
/// (a = x, bp = gy padded to the full output). Per kernel offset k, one batched MatMul
/// [G, B/G, N·P] × [G, N·P, A/G] of a strided slice of bp (laid out [G, B/G, N, E...] once,
/// so that the slice reshapes into the left operand) with a's transpose, or Mul +
/// ReduceSum when B/G == 1 (depthwise); the per-offset results are concatenated and moved
/// to [A, B/G, kernel...]. (Operand order measured on tract: with the shared a transposed on
/// the right, the products run ~20% faster than with a on the left.)
pub fn weight_grad(b: &mut Builder, a: &str, bp: &str, group: usize, win: &Window) -> Result<String> {
    let (sa, sb) = (b.shape(a)?, b.shape(bp)?);
    let (n, ca, cb) = (sa[0], sa[1], sb[1]);
    let p = sa[2..].to_vec();
    let r = p.len();
    let (ag, bg) = (ca / group, cb / group);
    let np = n * p.iter().product::<usize>();
    let depthwise = bg == 1;
    let kernel_len = win.kernel.iter().product::<usize>();
    // a as [N, G, A/G, P...] (depthwise) or [G, N·P, A/G]; bp as [N, B, E...] or [G, B/G, N, E...]
    let a_split = b.reshape(a, &[&[n, group, ag][..], &p].concat())?;
    let (a2, b2, first_axis) = if depthwise {
        (a_split, bp.to_string(), 2)
    } else {
        let mut perm = vec![1, 2, 0];
        perm.extend(3..3 + r);
        let at = b.transpose(&a_split, &perm)?;
        let at = b.reshape(&at, &[group, ag, np])?;
        let a2 = b.transpose(&at, &[0, 2, 1])?;
        let b_split = b.reshape(bp, &[&[n, group, bg][..], &sb[2..]].concat())?;
        (a2, b.transpose(&b_split, &perm)?, 3)
    };
    let mut parts = Vec::with_capacity(kernel_len);
    for k in &kernel_offsets(&win.kernel) {
        let sl = window_slice(b, &b2, first_axis, k, win, &p)?;
        parts.push(if depthwise {
            let s = b.reshape(&sl, &[&[n, group, 1][..], &p].concat())?;
            let m = b.mul(&a2, &s)?;
            let axes: Vec<usize> = [0].into_iter().chain(3..3 + r).collect();
            b.reduce_sum(&m, &axes, false)?
        } else {
            let s = b.reshape(&sl, &[group, bg, np])?;
            b.op("MatMul", &[&s, &a2], vec![])?
        });
    }
    let refs: Vec<&str> = parts.iter().map(|s| s.as_str()).collect();
    let stacked = if kernel_len == 1 { parts[0].clone() } else { b.op("Concat", &refs, vec![("axis", Attr::Int(0))])? };
    // depthwise: [K·G, A/G] = [K, A]; else [K·G, B/G, A/G] = [K, G, B/G, A/G] -> [G, A/G, B/G, K]
    let moved = if depthwise {
        let s = b.reshape(&stacked, &[kernel_len, ca])?;
        b.transpose(&s, &[1, 0])?
    } else {
        let s = b.reshape(&stacked, &[kernel_len, group, bg, ag])?;
        b.transpose(&s, &[1, 3, 2, 0])?
    };
    b.reshape(&moved, &[&[ca, bg][..], &win.kernel].concat())
}
