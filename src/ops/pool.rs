//! Pooling and nearest-neighbour resizing. Each gradient sends the output gradient back
//! to the input positions an output read: AveragePool spreads gy/count over each window
//! with a depthwise ConvTranspose of ones, MaxPool adds each window offset's routed share
//! back in place with shifted Pads and an interleave, and Resize sums the copies of each
//! input value.

use super::OpDef;
use crate::onnx::infer::{const_ints, input};
use crate::onnx::ir::{Graph, TypeInfo};
use crate::onnx::composite::{kernel_offsets, window_slice};
use super::{gy0, Grads};
use crate::onnx::builder::Builder;
use crate::onnx::geometry::{window, Window};
use crate::onnx::infer::const_floats;
use crate::onnx::ir::{Attr, DType, Node, Tensor};
use anyhow::{anyhow, bail, Result};
use super::{first_output_only, LowerCtx};

pub const OPS: &[OpDef] = &[
    OpDef::rule("MaxPool", 1, "the indices output has no gradient", infer_pool, max_pool),
    OpDef::rule("AveragePool", 1, "", infer_pool, average_pool),
    OpDef::rule("GlobalMaxPool", 1, "", infer_global_pool, global_max_pool),
    OpDef::rule("GlobalAveragePool", 1, "", infer_global_pool, global_average_pool),
    OpDef::rule(
        "Resize",
        10,
        "nearest by a rule; linear and cubic lowered to MatMul (see below); no antialias, axes, tf_crop_and_resize",
        infer_resize,
        resize,
    )
    .lowers(lower_resize),
    OpDef::lowered("Upsample", 7, "Resize (asymmetric coordinates, floor rounding)", "scales as attribute (7) or input (9)", infer_resize).until(9),
    OpDef::no_rule_yet("LpPool", 1, infer_pool),
];

/// The pooled output and, for MaxPool when asked for, the indices.
fn infer_pool(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
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
    Ok(v)
}

fn infer_global_pool(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let mut s = xi.shape[..2].to_vec();
    s.extend(std::iter::repeat_n(1, xi.rank() - 2));
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

/// Resize's sizes, else its scales (attribute, or input 2; Upsample's input 1).
fn infer_resize(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let xi = input(g, n, 0)?;
    let op = n.op.as_str();
    let (scales_idx, sizes_idx) = if op == "Upsample" { (1, usize::MAX) } else { (2, 3) };
    let sizes = if sizes_idx != usize::MAX { const_ints(g, n, sizes_idx)? } else { None };
    let s = match sizes.filter(|v| !v.is_empty()) {
        Some(sz) => sz.iter().map(|&v| v as usize).collect(),
        None => {
            let scales = match n.attrs.get("scales") {
                Some(Attr::Floats(f)) => f.iter().map(|&v| v as f64).collect(),
                _ => const_floats(g, n, scales_idx)?.ok_or_else(|| anyhow!("{op} without scales or sizes"))?,
            };
            if scales.len() != xi.rank() {
                bail!("{op} scales {scales:?} do not match rank {}", xi.rank());
            }
            xi.shape.iter().zip(&scales).map(|(&d, &sc)| (d as f64 * sc).floor() as usize).collect()
        }
    };
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

/// The window geometry of a pooling node over its input.
fn pool_window(b: &Builder, n: &Node) -> Result<Window> {
    let xs = b.shape(&n.inputs[0])?;
    let k: Vec<usize> = n
        .ints("kernel_shape")
        .ok_or_else(|| anyhow!("{} has no kernel_shape", n.describe()))?
        .iter()
        .map(|&v| v as usize)
        .collect();
    window(n, &xs[2..], &k, n.int("ceil_mode", 0) == 1)
}

/// Extent, in padded coordinates, that the windows cover along each spatial axis.
fn covered(win: &Window) -> Vec<usize> {
    (0..win.kernel.len()).map(|i| (win.out[i] - 1) * win.strides[i] + win.span(i)).collect()
}

/// Crops `t`, a gradient over the padded grid [N, C, grid...] (padded coordinates from 0),
/// to the input `x` (zero-padding where the grid ends before x does).
fn crop_to_input(b: &mut Builder, t: &str, win: &Window, grid: &[usize], x: &str) -> Result<String> {
    let xs = b.shape(x)?;
    let mut begin = vec![0i64; 2];
    let mut end = vec![0i64; 2];
    for i in 0..grid.len() {
        begin.push(-(win.pads_begin[i] as i64));
        end.push((xs[2 + i] + win.pads_begin[i]) as i64 - grid[i] as i64);
    }
    b.pad_or_crop(t, &begin, &end)
}

/// Adds per-offset values back onto the input: `parts[j]` [N, C, out...] belongs at padded
/// positions p·s + k_j·d. Writing k·d = a·s + ρ per axis, it lands at position p + a of
/// phase ρ (the padded grid read as [..., H/s, s, ...]): each phase is a Sum of its parts
/// shifted into place by Pad, then the phases are interleaved (Reshape, Transpose) and the
/// result cropped to `x`. (Measured on tract: 2-3× faster than the equivalent depthwise
/// ConvTranspose with one-hot kernels, which does K² multiply-adds per output.)
fn scatter_taps(b: &mut Builder, parts: &[String], win: &Window, x: &str) -> Result<String> {
    let xs = b.shape(x)?;
    let r = xs.len() - 2;
    let (nb, c, s) = (xs[0], xs[1], &win.strides);
    let full = covered(win);
    let coarse: Vec<usize> = (0..r).map(|i| full[i].div_ceil(s[i])).collect();
    let mut phases: Vec<Vec<String>> = vec![Vec::new(); s.iter().product()];
    for (part, k) in parts.iter().zip(kernel_offsets(&win.kernel)) {
        let (mut phase, mut begin, mut end) = (0, vec![0; 2], vec![0; 2]);
        for i in 0..r {
            let (a, rho) = (k[i] * win.dilations[i] / s[i], k[i] * win.dilations[i] % s[i]);
            phase = phase * s[i] + rho;
            begin.push(a);
            end.push(coarse[i] - win.out[i] - a);
        }
        let shifted = b.pad(part, &begin, &end)?;
        phases[phase].push(shifted);
    }
    let phase_shape = [&[nb, c, 1][..], &coarse].concat();
    let mut stacked = Vec::with_capacity(phases.len());
    for ps in &phases {
        let t = if ps.is_empty() {
            let zero = b.constant(Tensor::full(b.dtype(x)?, &vec![1; r + 3], 0.0));
            b.expand(&zero, &phase_shape)?
        } else {
            let t = b.sum(ps)?;
            b.reshape(&t, &phase_shape)?
        };
        stacked.push(t);
    }
    let refs: Vec<&str> = stacked.iter().map(|t| t.as_str()).collect();
    let all = if refs.len() == 1 { stacked[0].clone() } else { b.op("Concat", &refs, vec![("axis", Attr::Int(2))])? };
    // [N, C, s..., coarse...] -> [N, C, coarse_0, s_0, coarse_1, s_1, ...] -> [N, C, coarse·s...]
    let split = b.reshape(&all, &[&[nb, c][..], s, &coarse].concat())?;
    let perm: Vec<usize> = [0, 1].into_iter().chain((0..r).flat_map(|i| [2 + r + i, 2 + i])).collect();
    let inter = b.transpose(&split, &perm)?;
    let grid: Vec<usize> = (0..r).map(|i| coarse[i] * s[i]).collect();
    let merged = b.reshape(&inter, &[&[nb, c][..], &grid].concat())?;
    crop_to_input(b, &merged, win, &grid, x)
}

/// y[p] = max over the window taps x_pad[p·s + k·d] (padding never wins).
/// dx routes gy[p] to the first maximal tap of each window in row-major kernel order (as
/// PyTorch does): walking the kernel offsets k in that order, part_k = Where(tap_k == y,
/// rest, 0) and rest = Where(tap_k == y, 0, rest), starting from rest = gy; the parts are
/// added back in place (`scatter_taps`). The conditions are piecewise constant (Equal has
/// no gradient), so this is exact almost everywhere to any order.
fn max_pool(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    if let Some(ind) = n.outputs.get(1).filter(|o| !o.is_empty()) {
        if b.g.use_counts().contains_key(ind) {
            bail!("the Indices output of MaxPool is used; only the values output is differentiated");
        }
    }
    let g = gy0(gy)?;
    let (x, y) = (n.inputs[0].as_str(), n.outputs[0].as_str());
    let (xs, dt) = (b.shape(x)?, b.dtype(x)?);
    let win = pool_window(b, n)?;
    let r = xs.len() - 2;
    // pad with the lowest finite value, as far as the windows reach (ceil_mode may go past pads_end)
    let full = covered(&win);
    let pe: Vec<usize> = (0..r).map(|i| full[i].saturating_sub(win.pads_begin[i] + xs[2 + i])).collect();
    let xp = if win.pads_begin.iter().chain(&pe).all(|&p| p == 0) {
        x.to_string()
    } else {
        let pads: Vec<i64> = [0, 0].iter().chain(&win.pads_begin).chain(&[0, 0]).chain(&pe).map(|&p| p as i64).collect();
        let pads = b.ints(&pads);
        let low = b.constant(Tensor::scalar(dt, if dt == DType::F32 { f32::MIN as f64 } else { f64::MIN }));
        b.op("Pad", &[x, &pads, &low], vec![])?
    };
    let zero = b.constant(Tensor::scalar(dt, 0.0));
    let offsets = kernel_offsets(&win.kernel);
    let mut rest = g.to_string();
    let mut parts = Vec::with_capacity(offsets.len());
    for (j, off) in offsets.iter().enumerate() {
        let tap = window_slice(b, &xp, 2, off, &win, &win.out)?;
        let hit = b.op("Equal", &[&tap, y], vec![])?;
        parts.push(b.op("Where", &[&hit, &rest, &zero], vec![])?);
        if j + 1 < offsets.len() {
            rest = b.op("Where", &[&hit, &zero, &rest], vec![])?;
        }
    }
    Ok(vec![Some(scatter_taps(b, &parts, &win, x)?)])
}

/// Number of taps of window `o` (along one axis) inside [lo, hi) in padded coordinates.
fn taps_inside(win: &Window, i: usize, o: usize, lo: usize, hi: usize) -> usize {
    (0..win.kernel[i]).filter(|&k| (lo..hi).contains(&(o * win.strides[i] + k * win.dilations[i]))).count()
}

/// y[p] = Σ_k x_pad[p·s + k·d] / count[p], count = the window's taps inside x, or inside
/// the padded x with count_include_pad = 1 (ceil_mode windows past the padding are
/// clipped). dx = ConvTranspose(gy / count) with an all-ones depthwise kernel (group C,
/// the window's strides and dilations), cropped to x. (Measured on tract, this is faster
/// than `scatter_taps` here: only K multiply-adds per output.)
fn average_pool(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let x = n.inputs[0].as_str();
    let (xs, dt) = (b.shape(x)?, b.dtype(x)?);
    let win = pool_window(b, n)?;
    let r = xs.len() - 2;
    let include_pad = n.int("count_include_pad", 0) == 1;
    // 1/count over the output positions, a product of per-axis counts
    let mut inv = vec![1.0];
    for i in 0..r {
        let (pb, len) = (win.pads_begin[i], xs[2 + i]);
        let (lo, hi) = if include_pad { (0, pb + len + win.pads_end[i]) } else { (pb, pb + len) };
        let axis: Vec<f64> = (0..win.out[i]).map(|o| taps_inside(&win, i, o, lo, hi) as f64).collect();
        inv = inv.iter().flat_map(|&a| axis.iter().map(move |&cnt| a / cnt)).collect();
    }
    let inv = b.constant(Tensor::from_f64(dt, &[&[1, 1][..], &win.out].concat(), inv));
    let scaled = b.mul(g, &inv)?;
    let ones = b.constant(Tensor::full(dt, &[&[xs[1], 1][..], &win.kernel].concat(), 1.0));
    let ints = |v: &[usize]| Attr::Ints(v.iter().map(|&x| x as i64).collect());
    let attrs = vec![
        ("group", Attr::Int(xs[1] as i64)),
        ("strides", ints(&win.strides)),
        ("dilations", ints(&win.dilations)),
    ];
    let spread = b.op("ConvTranspose", &[&scaled, &ones], attrs)?;
    Ok(vec![Some(crop_to_input(b, &spread, &win, &covered(&win), x)?)])
}

/// y[n,c] = mean of x[n,c,:]: dx = gy / S broadcast over the S spatial positions.
fn global_average_pool(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let x = n.inputs[0].as_str();
    let (xs, dt) = (b.shape(x)?, b.dtype(x)?);
    let s: usize = xs[2..].iter().product();
    let spread = b.constant(Tensor::full(dt, &[&[1, 1][..], &xs[2..]].concat(), 1.0 / s as f64));
    Ok(vec![Some(b.mul(gy0(gy)?, &spread)?)])
}

/// y[n,c] = max of x[n,c,:]: dx = gy at the first maximal position (ArgMax), 0 elsewhere.
fn global_max_pool(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let x = n.inputs[0].as_str();
    let xs = b.shape(x)?;
    let s: usize = xs[2..].iter().product();
    let flat = b.reshape(x, &[xs[0], xs[1], s])?;
    let am = b.op("ArgMax", &[&flat], vec![("axis", Attr::Int(2)), ("keepdims", Attr::Int(1))])?;
    let range = b.constant(Tensor::from_f64(DType::I64, &[1, 1, s], (0..s).map(|j| j as f64).collect()));
    let hit = b.op("Equal", &[&am, &range], vec![])?;
    let mask = b.mask(&hit, g)?;
    let g1 = b.reshape(g, &[xs[0], xs[1], 1])?;
    let routed = b.mul(&mask, &g1)?;
    Ok(vec![Some(b.reshape(&routed, &xs)?)])
}

/// Source index of output position `j` of a nearest Resize along one axis, computed as
/// ONNX defines it (in float32, as engines do).
fn nearest_source(j: usize, scale: f32, len_in: usize, len_out: usize, coord: &str, mode: &str) -> Result<usize> {
    let xr = j as f32;
    let x = match coord {
        "half_pixel" => (xr + 0.5) / scale - 0.5,
        "pytorch_half_pixel" if len_out > 1 => (xr + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => 0.0,
        "asymmetric" => xr / scale,
        "align_corners" if len_out > 1 => xr * (len_in as f32 - 1.0) / (len_out as f32 - 1.0),
        "align_corners" => 0.0,
        "tf_half_pixel_for_nn" => (xr + 0.5) / scale,
        other => bail!(
            "Resize coordinate_transformation_mode '{other}' has no gradient rule \
             (supported: half_pixel, pytorch_half_pixel, asymmetric, align_corners, tf_half_pixel_for_nn)"
        ),
    };
    let half = x - x.floor() == 0.5;
    let i = match mode {
        "floor" => x.floor(),
        "round_prefer_floor" if half => x.floor(),
        "round_prefer_ceil" if half => x.ceil(),
        "round_prefer_floor" | "round_prefer_ceil" => x.round(),
        other => bail!(
            "Resize nearest_mode '{other}' has no gradient rule (supported: floor, round_prefer_floor, round_prefer_ceil)"
        ),
    };
    Ok(i.max(0.0).min(len_in as f32 - 1.0) as usize)
}

/// Resize (mode nearest): y[j] = x[src(j)] along each resized axis, so dx[i] is the sum of
/// gy over {j : src(j) = i}. Per axis: Reshape + ReduceSum when every input index owns a
/// block of m consecutive outputs (integer upsampling under asymmetric/floor, half_pixel/
/// round_prefer_floor, ...), otherwise a MatMul with the constant one-hot matrix [out, in].
/// Scales or sizes must be constants; opset-18 `axes` and aspect-ratio policies are not handled.
fn resize(b: &mut Builder, n: &Node, gy: &[Option<String>], _wants: &[bool]) -> Grads {
    let mode = n.string("mode").unwrap_or("nearest");
    if mode != "nearest" {
        bail!("Resize mode '{mode}' has no gradient rule (only nearest)");
    }
    if n.attrs.contains_key("axes") || n.string("keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        bail!("Resize with axes or keep_aspect_ratio_policy has no gradient rule");
    }
    let coord = n.string("coordinate_transformation_mode").unwrap_or("half_pixel");
    let nearest = n.string("nearest_mode").unwrap_or("round_prefer_floor");
    let mut g = gy0(gy)?.to_string();
    let (xs, ys, dt) = (b.shape(&n.inputs[0])?, b.shape(&g)?, b.dtype(&g)?);
    let scales = const_floats(b.g, n, 2)?.filter(|s| !s.is_empty());
    let rank = xs.len();
    for a in 0..rank {
        let (len_in, len_out) = (xs[a], ys[a]);
        let scale = match &scales {
            Some(s) => s[a] as f32,
            None => len_out as f32 / len_in as f32,
        };
        let src: Vec<usize> =
            (0..len_out).map(|j| nearest_source(j, scale, len_in, len_out, coord, nearest)).collect::<Result<_>>()?;
        if len_in == len_out && src.iter().enumerate().all(|(j, &i)| i == j) {
            continue;
        }
        let mut cur = b.shape(&g)?;
        let m = len_out / len_in;
        if len_out % len_in == 0 && src.iter().enumerate().all(|(j, &i)| i == j / m) {
            cur[a] = len_in;
            cur.insert(a + 1, m);
            let split = b.reshape(&g, &cur)?;
            g = b.reduce_sum(&split, &[a + 1], false)?;
        } else {
            let mut onehot = vec![0.0; len_out * len_in];
            for (j, &i) in src.iter().enumerate() {
                onehot[j * len_in + i] = 1.0;
            }
            let mat = b.constant(Tensor::from_f64(dt, &[len_out, len_in], onehot));
            let mut perm: Vec<usize> = (0..rank).filter(|&i| i != a).collect();
            perm.push(a);
            let mut inv = vec![0; rank];
            for (i, &p) in perm.iter().enumerate() {
                inv[p] = i;
            }
            let t = b.transpose(&g, &perm)?;
            let t = b.op("MatMul", &[&t, &mat], vec![])?;
            g = b.transpose(&t, &inv)?;
        }
    }
    let mut out = vec![None; n.inputs.len()];
    out[0] = Some(g);
    Ok(out)
}

/// Resize's linear and cubic modes are lowered (the nearest mode has a rule).
fn lower_resize(b: &mut Builder, n: &Node, _: &LowerCtx) -> Result<Option<String>> {
    match n.string("mode").unwrap_or("nearest") {
        "nearest" => Ok(None),
        "linear" | "cubic" => {
            let y = resize_interp(b, n)?;
            first_output_only(n, y)
        }
        other => bail!("Resize mode '{other}' is not supported (nearest, linear, cubic)"),
    }
}

/// Resize in linear or cubic mode as one MatMul per resized axis: the op is linear in x.
fn resize_interp(b: &mut Builder, n: &Node) -> Result<String> {
    let mode = n.string("mode").unwrap_or("nearest");
    if n.int("antialias", 0) != 0 {
        bail!("Resize with antialias=1 is not supported");
    }
    if n.attrs.contains_key("axes") || n.string("keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        bail!("Resize with axes or keep_aspect_ratio_policy is not supported");
    }
    let o = Interp {
        cubic: mode == "cubic",
        coord: n.string("coordinate_transformation_mode").unwrap_or("half_pixel"),
        cubic_a: n.float("cubic_coeff_a", -0.75) as f64,
        exclude_outside: n.int("exclude_outside", 0) == 1,
    };
    let x = n.input(0).unwrap();
    let xs = b.shape(x)?;
    let rank = xs.len();
    let scales = const_floats(b.g, n, 2)?.filter(|s| !s.is_empty());
    let sizes = const_ints(b.g, n, 3)?.filter(|s| !s.is_empty());
    let ys: Vec<usize> = match (&sizes, &scales) {
        (Some(sz), _) => sz.iter().map(|&v| v as usize).collect(),
        (None, Some(sc)) => xs.iter().zip(sc).map(|(&d, &s)| (d as f64 * s).floor() as usize).collect(),
        (None, None) => bail!("Resize without scales or sizes"),
    };
    if ys.len() != rank {
        bail!("Resize to {ys:?} does not match the input rank {rank}");
    }
    let dt = b.dtype(x)?;
    let mut cur = x.to_string();
    for a in 0..rank {
        let (len_in, len_out) = (xs[a], ys[a]);
        // scales are float32 in the file; sizes give out/in
        let scale = match &scales {
            Some(s) if sizes.is_none() => s[a] as f32 as f64,
            _ => len_out as f64 / len_in as f64,
        };
        let m = interp_matrix(len_in, len_out, scale, &o)?;
        let identity = len_in == len_out && (0..len_in).all(|i| (0..len_out).all(|j| m[i * len_out + j] == if i == j { 1.0 } else { 0.0 }));
        if identity {
            continue;
        }
        let mat = b.constant(Tensor::from_f64(dt, &[len_in, len_out], m));
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(a, rank - 1);
        let t = b.transpose(&cur, &perm)?;
        let t = b.op("MatMul", &[&t, &mat], vec![])?;
        cur = b.transpose(&t, &perm)?;
    }
    Ok(cur)
}

/// Options of a linear or cubic Resize.
struct Interp<'a> {
    cubic: bool,
    coord: &'a str,
    cubic_a: f64,
    exclude_outside: bool,
}

/// The interpolation matrix of one axis, [len_in, len_out] row-major (so y = x · M along the
/// last axis). Neighbours outside the input are clamped to the edge (as ONNX Runtime and
/// the ONNX reference), or dropped and the weights renormalised with `exclude_outside`.
fn interp_matrix(len_in: usize, len_out: usize, scale: f64, o: &Interp) -> Result<Vec<f64>> {
    let mut m = vec![0.0; len_in * len_out];
    for j in 0..len_out {
        let mut x = source_coord(j, scale, len_in, len_out, o.coord)?;
        if !o.cubic {
            // ONNX Runtime clamps the coordinate in linear mode; the reference pads the edge
            x = x.clamp(0.0, len_in as f64 - 1.0);
        }
        let x0 = x.floor();
        let t = x - x0;
        let taps: Vec<(i64, f64)> = if o.cubic {
            (-1..=2).map(|k| (x0 as i64 + k, cubic_weight(t - k as f64, o.cubic_a))).collect()
        } else {
            vec![(x0 as i64, 1.0 - t), (x0 as i64 + 1, t)]
        };
        let inside = |i: i64| i >= 0 && i < len_in as i64;
        let total: f64 = if o.exclude_outside { taps.iter().filter(|(i, _)| inside(*i)).map(|(_, w)| w).sum() } else { 1.0 };
        for (i, w) in taps {
            if o.exclude_outside && !inside(i) {
                continue;
            }
            let i = i.clamp(0, len_in as i64 - 1) as usize;
            m[i * len_out + j] += w / total;
        }
    }
    Ok(m)
}

/// Where an output coordinate `j` of a resized axis falls in the input (ONNX Resize).
fn source_coord(j: usize, scale: f64, len_in: usize, len_out: usize, coord: &str) -> Result<f64> {
    let xr = j as f64;
    Ok(match coord {
        "half_pixel" => (xr + 0.5) / scale - 0.5,
        "pytorch_half_pixel" if len_out > 1 => (xr + 0.5) / scale - 0.5,
        "pytorch_half_pixel" => -0.5,
        "asymmetric" => xr / scale,
        "align_corners" if len_out > 1 => xr * (len_in as f64 - 1.0) / (len_out as f64 - 1.0),
        "align_corners" => 0.0,
        other => bail!(
            "Resize coordinate_transformation_mode '{other}' is not supported in linear/cubic mode \
             (half_pixel, pytorch_half_pixel, asymmetric, align_corners)"
        ),
    })
}

/// Cubic convolution kernel with parameter `a` at distance `d` (Keys).
fn cubic_weight(d: f64, a: f64) -> f64 {
    let d = d.abs();
    if d <= 1.0 {
        ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    } else if d < 2.0 {
        ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    /// Finite-difference checks (float64, first and second order) of the lowerings above: the ops each becomes, differentiated by their rules.
    mod lowered {
        use crate::autodiff::check::{check_lowered, Arg};
        #[allow(unused_imports)]
        use crate::onnx::ir::{Attr, DType, Tensor};

        const TOL: f64 = 1e-6;


        fn s(v: &str) -> Attr {
            Attr::Str(v.into())
        }

        fn resize(xs: &[usize], scales: Option<&[f64]>, sizes: Option<&[i64]>, attrs: Vec<(&'static str, Attr)>) {
            let args = [
                Arg::var(xs, 1),
                Arg::Absent,
                scales.map_or(Arg::Absent, |v| Arg::Const(Tensor::from_f64(DType::F32, &[v.len()], v.to_vec()))),
                sizes.map_or(Arg::Absent, |v| Arg::Const(Tensor::from_i64(v))),
            ];
            check_lowered("Resize", &args, attrs, 13, true, TOL).unwrap();
        }

        #[test]
        fn resize_linear_and_cubic() {
            for coord in ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"] {
                for mode in ["linear", "cubic"] {
                    let attrs = || vec![("mode", s(mode)), ("coordinate_transformation_mode", s(coord))];
                    resize(&[1, 2, 3, 4], Some(&[1.0, 1.0, 2.0, 1.5]), None, attrs());
                    resize(&[1, 2, 5, 4], None, Some(&[1, 2, 3, 7]), attrs());
                }
            }
            let attrs = vec![("mode", s("cubic")), ("cubic_coeff_a", Attr::Float(-0.5)), ("exclude_outside", Attr::Int(1))];
            resize(&[1, 1, 4, 4], Some(&[1.0, 1.0, 2.0, 2.0]), None, attrs);
        }

        #[test]
        fn resize_refuses_what_it_does_not_support() {
            let args = [Arg::var(&[1, 1, 4, 4], 1), Arg::Absent, Arg::Const(Tensor::from_f64(DType::F32, &[4], vec![1.0, 1.0, 0.5, 0.5]))];
            let e = check_lowered("Resize", &args, vec![("mode", s("linear")), ("antialias", Attr::Int(1))], 18, false, TOL).unwrap_err();
            assert!(format!("{e:#}").contains("antialias"), "{e:#}");
            let attrs = vec![("mode", s("linear")), ("coordinate_transformation_mode", s("tf_crop_and_resize"))];
            let e = check_lowered("Resize", &args, attrs, 13, false, TOL).unwrap_err();
            assert!(format!("{e:#}").contains("tf_crop_and_resize"), "{e:#}");
        }

        #[test]
        fn upsample_opset_7_attribute_and_opset_9_input() {
            let attrs = vec![("mode", s("linear")), ("scales", Attr::Floats(vec![1.0, 1.0, 2.0, 3.0]))];
            check_lowered("Upsample", &[Arg::var(&[1, 2, 3, 2], 1)], attrs, 7, true, TOL).unwrap();
            let scales = Arg::Const(Tensor::from_f64(DType::F32, &[4], vec![1.0, 1.0, 2.0, 2.0]));
            check_lowered("Upsample", &[Arg::var(&[1, 2, 3, 2], 1), scales], vec![("mode", s("linear"))], 9, true, TOL).unwrap();
        }
    }

    use crate::autodiff::append_gradients;
    use crate::autodiff::check::{check_op, rand_distinct, rand_tensor, single_op_graph, Arg};
    use crate::engine::{tract::TractEngine, Engine};
    use crate::onnx::builder::{Attrs, Builder};
    use crate::onnx::ir::{Attr, DType, Tensor};

    const TOL: f64 = 1e-6;

    fn ints(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    fn check_distinct(op: &str, x: &[usize], attrs: Attrs) {
        check_op(op, &[Arg::Var(rand_distinct(x, 1, 0.01))], attrs, 1, true, TOL).unwrap();
    }

    #[test]
    fn max_pool_non_overlapping() {
        check_distinct("MaxPool", &[2, 3, 4, 6], vec![("kernel_shape", ints(&[2, 2])), ("strides", ints(&[2, 2]))]);
    }

    #[test]
    fn max_pool_overlapping_pads() {
        let attrs = vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))];
        check_distinct("MaxPool", &[2, 2, 7, 6], attrs);
    }

    #[test]
    fn max_pool_ceil_mode() {
        let attrs = vec![("kernel_shape", ints(&[3, 2])), ("strides", ints(&[2, 2])), ("ceil_mode", Attr::Int(1))];
        check_distinct("MaxPool", &[1, 2, 6, 5], attrs);
    }

    #[test]
    fn max_pool_dilations_asymmetric_pads() {
        let attrs = vec![
            ("kernel_shape", ints(&[2, 2])),
            ("dilations", ints(&[2, 1])),
            ("pads", ints(&[1, 0, 0, 1])),
            ("strides", ints(&[1, 2])),
        ];
        check_distinct("MaxPool", &[1, 2, 6, 5], attrs);
    }

    #[test]
    fn max_pool_1d() {
        let attrs = vec![("kernel_shape", ints(&[3])), ("strides", ints(&[2])), ("pads", ints(&[1, 1]))];
        check_distinct("MaxPool", &[2, 3, 9], attrs);
    }

    #[test]
    fn max_pool_indices_used_is_an_error() {
        let x = Arg::Var(rand_distinct(&[1, 1, 4, 4], 1, 0.01));
        let (mut g, _) = single_op_graph("MaxPool", &[x], vec![("kernel_shape", ints(&[2, 2]))], 2).unwrap();
        let seed = Builder::new(&mut g, "seed").constant(Tensor::full(DType::F64, &[1, 1, 3, 3], 1.0));
        let err = append_gradients(&mut g, &[("out0".into(), seed)], &["in0".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("Indices"), "{err:#}");
    }

    /// PyTorch's routing: each window (k×k, stride s, pads p) sends its gradient to its first
    /// maximal tap in row-major kernel order, padding excluded (2-D, one channel, brute force).
    fn first_max_reference(x: &Tensor, gy: &Tensor, k: usize, s: usize, p: usize) -> Vec<f64> {
        let (h, w, oh, ow) = (x.shape()[2], x.shape()[3], gy.shape()[2], gy.shape()[3]);
        let (x, gy) = (x.to_f64_vec(), gy.to_f64_vec());
        let mut dx = vec![0.0; h * w];
        for oi in 0..oh {
            for oj in 0..ow {
                let mut best: Option<(f64, usize)> = None;
                for ki in 0..k {
                    for kj in 0..k {
                        let (i, j) = ((oi * s + ki) as i64 - p as i64, (oj * s + kj) as i64 - p as i64);
                        if i < 0 || j < 0 || i >= h as i64 || j >= w as i64 {
                            continue;
                        }
                        let at = i as usize * w + j as usize;
                        if best.is_none_or(|(v, _)| x[at] > v) {
                            best = Some((x[at], at));
                        }
                    }
                }
                dx[best.unwrap().1] += gy[oi * ow + oj];
            }
        }
        dx
    }

    /// Inputs full of ties (values in {0, 1, 2}): the gradient matches PyTorch's first-max routing.
    #[test]
    fn max_pool_ties_route_to_first_max() {
        for (k, s, p, ceil) in [(2, 2, 0, 0), (3, 2, 1, 0), (3, 1, 1, 0), (3, 2, 0, 1)] {
            let (h, w) = (7, 6);
            let x = rand_tensor(&[1, 1, h, w], 5).map_float(|v| ((v + 1.0) * 1.5).floor());
            let attrs = vec![
                ("kernel_shape", ints(&[k, k])),
                ("strides", ints(&[s, s])),
                ("pads", ints(&[p, p, p, p])),
                ("ceil_mode", Attr::Int(ceil)),
            ];
            let (mut g, outs) = single_op_graph("MaxPool", &[Arg::Var(x.clone())], attrs, 1).unwrap();
            let ys = g.shape(&outs[0]).unwrap().to_vec();
            let gy = rand_tensor(&ys, 6);
            let seed = Builder::new(&mut g, "seed").constant(gy.clone());
            let grads = append_gradients(&mut g, &[(outs[0].clone(), seed)], &["in0".into()]).unwrap();
            g.outputs = grads.clone();
            let prog = TractEngine::default().load(&g).unwrap();
            let dx = prog.run(&[("in0", &x)]).unwrap()[&grads[0]].to_f64_vec();
            let want = first_max_reference(&x, &gy, k as usize, s as usize, p as usize);
            for (a, b) in dx.iter().zip(&want) {
                assert!((a - b).abs() < 1e-12, "k{k} s{s} p{p} ceil{ceil}: {dx:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn global_max_pool() {
        check_distinct("GlobalMaxPool", &[2, 3, 3, 4], vec![]);
    }

    #[test]
    fn global_max_pool_ties() {
        let x = Tensor::from_f64(DType::F64, &[1, 2, 2, 2], vec![1.0, 3.0, 3.0, 0.0, 2.0, 2.0, 2.0, 2.0]);
        let (mut g, outs) = single_op_graph("GlobalMaxPool", &[Arg::Var(x.clone())], vec![], 1).unwrap();
        let seed = Builder::new(&mut g, "seed").constant(Tensor::from_f64(DType::F64, &[1, 2, 1, 1], vec![5.0, 7.0]));
        let grads = append_gradients(&mut g, &[(outs[0].clone(), seed)], &["in0".into()]).unwrap();
        g.outputs = grads.clone();
        let dx = TractEngine::default().load(&g).unwrap().run(&[("in0", &x)]).unwrap()[&grads[0]].to_f64_vec();
        assert_eq!(dx, vec![0.0, 5.0, 0.0, 0.0, 7.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn average_pool_overlapping() {
        let attrs = vec![("kernel_shape", ints(&[3, 3])), ("strides", ints(&[2, 1]))];
        check_op("AveragePool", &[Arg::Var(rand_tensor(&[2, 3, 7, 5], 1))], attrs, 1, true, TOL).unwrap();
    }

    #[test]
    fn average_pool_pads_count_include_pad() {
        for include in [0, 1] {
            let attrs = vec![
                ("kernel_shape", ints(&[3, 2])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 0])),
                ("count_include_pad", Attr::Int(include)),
            ];
            check_op("AveragePool", &[Arg::Var(rand_tensor(&[1, 2, 6, 5], 1))], attrs, 1, true, TOL).unwrap();
        }
    }

    #[test]
    fn average_pool_ceil_mode() {
        for include in [0, 1] {
            let attrs = vec![
                ("kernel_shape", ints(&[3, 3])),
                ("strides", ints(&[2, 2])),
                ("pads", ints(&[1, 1, 1, 1])),
                ("ceil_mode", Attr::Int(1)),
                ("count_include_pad", Attr::Int(include)),
            ];
            check_op("AveragePool", &[Arg::Var(rand_tensor(&[1, 2, 6, 7], 1))], attrs, 1, true, TOL).unwrap();
        }
    }

    #[test]
    fn average_pool_1d() {
        let attrs = vec![("kernel_shape", ints(&[2])), ("strides", ints(&[2]))];
        check_op("AveragePool", &[Arg::Var(rand_tensor(&[2, 3, 7], 1))], attrs, 1, true, TOL).unwrap();
    }

    #[test]
    fn global_average_pool() {
        check_op("GlobalAveragePool", &[Arg::Var(rand_tensor(&[2, 3, 3, 4], 1))], vec![], 1, true, TOL).unwrap();
    }

    /// tract resizes float64 tensors in float32, which finite differences in float64 cannot
    /// check: instead, read each output's source from the engine's forward pass on
    /// x = 0, 1, 2, ... (exact in float32) and compare the gradient with the sum of gy over
    /// the copies. (The gradient program is linear in gy and independent of x, built from
    /// Reshape/ReduceSum or Transpose/MatMul, whose second-order rules are checked there.)
    fn check_resize(xs: &[usize], scales: Option<&[f64]>, sizes: Option<&[i64]>, coord: &str, nearest: &str) {
        let numel: usize = xs.iter().product();
        let x = Tensor::from_f64(DType::F64, xs, (0..numel).map(|v| v as f64).collect());
        let args = [
            Arg::Var(x.clone()),
            Arg::Absent,
            scales.map_or(Arg::Absent, |v| Arg::Const(Tensor::from_f64(DType::F32, &[v.len()], v.to_vec()))),
            sizes.map_or(Arg::Absent, |v| Arg::Const(Tensor::from_i64(v))),
        ];
        let attrs = vec![
            ("mode", Attr::Str("nearest".into())),
            ("coordinate_transformation_mode", Attr::Str(coord.into())),
            ("nearest_mode", Attr::Str(nearest.into())),
        ];
        let (mut g, outs) = single_op_graph("Resize", &args, attrs, 1).unwrap();
        let gy = rand_tensor(g.shape(&outs[0]).unwrap(), 7);
        let seed = Builder::new(&mut g, "seed").constant(gy.clone());
        let grads = append_gradients(&mut g, &[(outs[0].clone(), seed)], &["in0".into()]).unwrap();
        g.outputs = vec![outs[0].clone(), grads[0].clone()];
        let res = TractEngine::default().load(&g).unwrap().run(&[("in0", &x)]).unwrap();
        let mut want = vec![0.0; numel];
        for (src, gv) in res[&outs[0]].to_f64_vec().iter().zip(gy.to_f64_vec()) {
            want[*src as usize] += gv;
        }
        let dx = res[&grads[0]].to_f64_vec();
        for (a, b) in dx.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{coord}/{nearest} {xs:?} ({scales:?}, {sizes:?}): {dx:?} vs {want:?}");
        }
    }

    /// nn.Upsample(scale_factor=2, mode="nearest") as PyTorch exports it.
    #[test]
    fn resize_nearest_pytorch_upsample() {
        check_resize(&[2, 3, 3, 4], Some(&[1.0, 1.0, 2.0, 2.0]), None, "asymmetric", "floor");
        check_resize(&[1, 2, 3, 2], Some(&[1.0, 1.0, 3.0, 2.0]), None, "asymmetric", "floor");
    }

    #[test]
    fn resize_nearest_half_pixel_scales() {
        check_resize(&[1, 2, 3, 4], Some(&[1.0, 1.0, 2.0, 3.0]), None, "half_pixel", "round_prefer_floor");
    }

    #[test]
    fn resize_nearest_sizes_non_integer_and_downsampling() {
        check_resize(&[1, 2, 3, 4], None, Some(&[1, 2, 6, 8]), "pytorch_half_pixel", "round_prefer_ceil");
        check_resize(&[1, 2, 5, 6], None, Some(&[1, 2, 7, 4]), "half_pixel", "round_prefer_floor");
        check_resize(&[1, 2, 5, 6], None, Some(&[1, 2, 8, 3]), "asymmetric", "floor");
        check_resize(&[1, 2, 4, 3], None, Some(&[1, 2, 7, 5]), "align_corners", "round_prefer_floor");
        check_resize(&[1, 1, 3, 3], None, Some(&[1, 1, 5, 9]), "tf_half_pixel_for_nn", "round_prefer_floor");
    }
}
