//! Lowerings done at import: ops that are written, once their attributes and the shapes
//! are known, as a few primitive ops that already have gradient rules. Both engines then
//! run them, and second-order gradients come for free. `canon.rs` dispatches here; the
//! table of every accepted op and how it is handled is `ops.rs`.
//!
//! | op | lowered to |
//! |---|---|
//! | LRN | x / (bias + alpha · AveragePool over channels of x², window `size`)^beta |
//! | GroupNormalization | Reshape to [N, G, ·], batch statistics over the group, per-group (opset 18) or per-channel (opset 21) scale and bias |
//! | Mish | x · Tanh(Softplus(x)) |
//! | ThresholdedRelu | x · Cast(x > alpha) |
//! | DepthToSpace / SpaceToDepth | Reshape – Transpose – Reshape (DCR and CRD) |
//! | Resize linear / cubic | per resized axis, a MatMul with a constant interpolation matrix [in, out] |

use super::builder::Builder;
use super::infer::{const_floats, const_ints};
use super::ir::{Attr, Node, Tensor};
use anyhow::{anyhow, bail, Result};

/// LRN across channels: square_sum[c] sums x² over channels c - ⌊(size-1)/2⌋ ..= c + ⌈(size-1)/2⌉;
/// y = x / (bias + alpha/size · square_sum)^beta. The window sum divided by size is an
/// AveragePool (count_include_pad) over x² reshaped to [N, 1, C, S].
pub fn lrn(b: &mut Builder, n: &Node) -> Result<String> {
    let x = n.input(0).unwrap();
    let xs = b.shape(x)?;
    if xs.len() < 2 {
        bail!("LRN wants an input of rank >= 2, got {xs:?}");
    }
    let size = n.int("size", 0);
    if size < 1 {
        bail!("LRN needs a positive size, got {size}");
    }
    let size = size as usize;
    let (alpha, beta, bias) = (n.float("alpha", 1e-4) as f64, n.float("beta", 0.75) as f64, n.float("bias", 1.0) as f64);
    let lo = (size - 1) / 2;
    let hi = size - 1 - lo;
    let spatial: usize = xs[2..].iter().product();
    let sq = b.mul(x, x)?;
    let r = b.reshape(&sq, &[xs[0], 1, xs[1], spatial])?;
    let ints = |v: &[i64]| Attr::Ints(v.to_vec());
    let attrs = vec![
        ("kernel_shape", ints(&[size as i64, 1])),
        ("pads", ints(&[lo as i64, 0, hi as i64, 0])),
        ("count_include_pad", Attr::Int(1)),
    ];
    let avg = b.op("AveragePool", &[&r], attrs)?;
    let avg = b.reshape(&avg, &xs)?;
    let scaled = b.mul_scalar(&avg, alpha)?;
    let k = b.scalar_like(x, bias)?;
    let base = b.add(&scaled, &k)?;
    let e = b.scalar_like(x, beta)?;
    let den = b.op("Pow", &[&base, &e], vec![])?;
    b.div(x, &den)
}

/// GroupNormalization: statistics over each group of C/G channels and the spatial axes.
/// `per_channel`: scale and bias have C entries (opset 21), else G (opset 18).
pub fn group_norm(b: &mut Builder, n: &Node, per_channel: bool) -> Result<String> {
    let x = n.input(0).unwrap();
    let xs = b.shape(x)?;
    if xs.len() < 2 {
        bail!("GroupNormalization wants an input of rank >= 2, got {xs:?}");
    }
    let groups = n.int("num_groups", 0);
    let c = xs[1];
    if groups < 1 || c % groups as usize != 0 {
        bail!("GroupNormalization: num_groups {groups} does not divide the {c} channels");
    }
    let groups = groups as usize;
    let (scale, bias) = (n.input(1).ok_or_else(|| anyhow!("no scale"))?, n.input(2).ok_or_else(|| anyhow!("no bias"))?);
    let want = if per_channel { c } else { groups };
    for v in [scale, bias] {
        let len: usize = b.shape(v)?.iter().product();
        if len != want {
            bail!(
                "GroupNormalization: '{v}' has {len} entries, {} wants {want} ({})",
                if per_channel { "opset 21" } else { "opset 18" },
                if per_channel { "one per channel" } else { "one per group" }
            );
        }
    }
    let spatial: usize = xs[2..].iter().product();
    let flat = b.reshape(x, &[xs[0], groups, c / groups * spatial])?;
    let xhat = normalize(b, &flat, &[2], n.float("epsilon", 1e-5))?;
    let (y, param_shape) = if per_channel {
        let mut s = vec![1; xs.len()];
        s[1] = c;
        (b.reshape(&xhat, &xs)?, s)
    } else {
        (xhat, vec![1, groups, 1])
    };
    let s = b.reshape(scale, &param_shape)?;
    let bi = b.reshape(bias, &param_shape)?;
    let m = b.mul(&y, &s)?;
    let y = b.add(&m, &bi)?;
    b.reshape(&y, &xs)
}

/// Normalises `x` over `axes` with batch statistics: (x - mean) / sqrt(var + eps).
pub fn normalize(b: &mut Builder, x: &str, axes: &[usize], eps: f32) -> Result<String> {
    let mean = b.reduce_mean(x, axes, true)?;
    let d = b.sub(x, &mean)?;
    let sq = b.mul(&d, &d)?;
    let var = b.reduce_mean(&sq, axes, true)?;
    let e = b.scalar_like(x, eps as f64)?;
    let ve = b.add(&var, &e)?;
    let sd = b.op("Sqrt", &[&ve], vec![])?;
    b.div(&d, &sd)
}

/// Mish: x · tanh(softplus(x)).
pub fn mish(b: &mut Builder, n: &Node) -> Result<String> {
    let x = n.input(0).unwrap();
    let sp = b.op("Softplus", &[x], vec![])?;
    let t = b.op("Tanh", &[&sp], vec![])?;
    b.mul(x, &t)
}

/// ThresholdedRelu: x where x > alpha, else 0.
pub fn thresholded_relu(b: &mut Builder, n: &Node) -> Result<String> {
    let x = n.input(0).unwrap();
    let a = b.scalar_like(x, n.float("alpha", 1.0) as f64)?;
    let gt = b.op("Greater", &[x, &a], vec![])?;
    let m = b.mask(&gt, x)?;
    b.mul(x, &m)
}

/// DepthToSpace (DCR or CRD) and SpaceToDepth on [N, C, H, W].
pub fn depth_space(b: &mut Builder, n: &Node) -> Result<String> {
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
    b.reshape(&t, &out)
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

/// Options of a linear or cubic Resize.
pub struct Interp<'a> {
    pub cubic: bool,
    pub coord: &'a str,
    pub cubic_a: f64,
    pub exclude_outside: bool,
}

/// The interpolation matrix of one axis, [len_in, len_out] row-major (so y = x · M along the
/// last axis). Neighbours outside the input are clamped to the edge (as ONNX Runtime and
/// the ONNX reference), or dropped and the weights renormalised with `exclude_outside`.
pub fn interp_matrix(len_in: usize, len_out: usize, scale: f64, o: &Interp) -> Result<Vec<f64>> {
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

/// Resize in linear or cubic mode as one MatMul per resized axis: the op is linear in x.
pub fn resize_interp(b: &mut Builder, n: &Node) -> Result<String> {
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

/// Finite-difference checks (float64, first and second order) of every op lowered at
/// import, through `check_lowered`: the ops it becomes, differentiated by their rules.
#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_graph, check_lowered, lowered_graph, rand_tensor, Arg};
    use crate::onnx::ir::{Attr, DType, Tensor};

    const TOL: f64 = 1e-6;

    fn var(shape: &[usize], seed: u64) -> Arg {
        Arg::Var(rand_tensor(shape, seed))
    }

    fn s(v: &str) -> Attr {
        Attr::Str(v.into())
    }

    #[test]
    fn lrn_odd_and_even_windows() {
        for size in [3, 4, 1] {
            let attrs = vec![("size", Attr::Int(size)), ("alpha", Attr::Float(0.5)), ("beta", Attr::Float(0.75)), ("bias", Attr::Float(1.5))];
            check_lowered("LRN", &[var(&[2, 5, 3, 2], 1)], attrs, 13, true, TOL).unwrap();
        }
    }

    #[test]
    fn group_normalization_per_group_and_per_channel() {
        let attrs = || vec![("num_groups", Attr::Int(3)), ("epsilon", Attr::Float(1e-3))];
        let per_group = [var(&[2, 6, 3, 2], 1), var(&[3], 2), var(&[3], 3)];
        check_lowered("GroupNormalization", &per_group, attrs(), 18, true, TOL).unwrap();
        let per_channel = [var(&[2, 6, 3, 2], 1), var(&[6], 2), var(&[6], 3)];
        check_lowered("GroupNormalization", &per_channel, attrs(), 21, true, TOL).unwrap();
        // opset 21 with per-group parameters is refused with the reason
        let e = check_lowered("GroupNormalization", &per_group, attrs(), 21, false, TOL).unwrap_err();
        assert!(format!("{e:#}").contains("one per channel"), "{e:#}");
    }

    #[test]
    fn instance_normalization() {
        let args = [var(&[2, 3, 4, 3], 1), var(&[3], 2), var(&[3], 3)];
        check_lowered("InstanceNormalization", &args, vec![("epsilon", Attr::Float(1e-3))], 17, true, TOL).unwrap();
    }

    #[test]
    fn layer_normalization_every_axis() {
        let xs = [2usize, 3, 4];
        for a in [-3i64, -2, -1, 0, 1, 2] {
            let first = if a < 0 { (a + 3) as usize } else { a as usize };
            let p = &xs[first..];
            let args = [var(&xs, 1), var(p, 2), var(p, 3)];
            check_lowered("LayerNormalization", &args, vec![("axis", Attr::Int(a))], 17, true, TOL).unwrap();
        }
        // without the optional bias
        check_lowered("LayerNormalization", &[var(&xs, 1), var(&[4], 2)], vec![], 17, true, TOL).unwrap();
    }

    #[test]
    fn batch_normalization_batch_statistics() {
        let c = |seed| Arg::Const(rand_tensor(&[3], seed).map_float(|v| v.abs() + 0.5));
        let args = [var(&[4, 3, 2, 2], 1), var(&[3], 2), var(&[3], 3), c(4), c(5)];
        check_lowered("BatchNormalization", &args, vec![], 15, true, TOL).unwrap();
    }

    #[test]
    fn gelu_erf_and_tanh() {
        let x = || Arg::Var(rand_tensor(&[3, 5], 1).map_float(|v| 3.0 * v));
        // tract evaluates Erf in float32 even on float64 tensors (as the Erf rule's own
        // test notes): central differences then see float32 noise, hence first order only
        // and the loose tolerance of `check_via_f32`; the forward value is checked against
        // ONNX Runtime in `forward_matches_the_references`
        check_lowered("Gelu", &[x()], vec![], 20, false, 5e-2).unwrap();
        check_lowered("Gelu", &[x()], vec![("approximate", s("tanh"))], 20, true, TOL).unwrap();
    }

    #[test]
    fn mish() {
        let x = Arg::Var(rand_tensor(&[3, 5], 1).map_float(|v| 4.0 * v));
        check_lowered("Mish", &[x], vec![], 18, true, TOL).unwrap();
    }

    #[test]
    fn thresholded_relu_away_from_the_threshold() {
        let x = Arg::Var(rand_tensor(&[4, 5], 1).map_float(|v| {
            let x = 3.0 * v;
            if (x - 0.5).abs() < 0.1 { x + 0.2 } else { x }
        }));
        check_lowered("ThresholdedRelu", &[x], vec![("alpha", Attr::Float(0.5))], 10, true, TOL).unwrap();
    }

    #[test]
    fn depth_to_space_and_back() {
        for mode in ["DCR", "CRD"] {
            let attrs = vec![("blocksize", Attr::Int(2)), ("mode", s(mode))];
            check_lowered("DepthToSpace", &[var(&[2, 8, 2, 3], 1)], attrs, 13, true, TOL).unwrap();
        }
        check_lowered("SpaceToDepth", &[var(&[2, 2, 4, 6], 1)], vec![("blocksize", Attr::Int(2))], 13, true, TOL).unwrap();
    }

    fn resize(xs: &[usize], scales: Option<&[f64]>, sizes: Option<&[i64]>, attrs: Vec<(&'static str, Attr)>) {
        let args = [
            var(xs, 1),
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
        let args = [var(&[1, 1, 4, 4], 1), Arg::Absent, Arg::Const(Tensor::from_f64(DType::F32, &[4], vec![1.0, 1.0, 0.5, 0.5]))];
        let e = check_lowered("Resize", &args, vec![("mode", s("linear")), ("antialias", Attr::Int(1))], 18, false, TOL).unwrap_err();
        assert!(format!("{e:#}").contains("antialias"), "{e:#}");
        let attrs = vec![("mode", s("linear")), ("coordinate_transformation_mode", s("tf_crop_and_resize"))];
        let e = check_lowered("Resize", &args, attrs, 13, false, TOL).unwrap_err();
        assert!(format!("{e:#}").contains("tf_crop_and_resize"), "{e:#}");
    }

    #[test]
    fn upsample_opset_7_attribute_and_opset_9_input() {
        let attrs = vec![("mode", s("linear")), ("scales", Attr::Floats(vec![1.0, 1.0, 2.0, 3.0]))];
        check_lowered("Upsample", &[var(&[1, 2, 3, 2], 1)], attrs, 7, true, TOL).unwrap();
        let scales = Arg::Const(Tensor::from_f64(DType::F32, &[4], vec![1.0, 1.0, 2.0, 2.0]));
        check_lowered("Upsample", &[var(&[1, 2, 3, 2], 1), scales], vec![("mode", s("linear"))], 9, true, TOL).unwrap();
    }

    #[test]
    fn cast_like() {
        let like = Arg::Const(Tensor::scalar(DType::F64, 0.0));
        check_lowered("CastLike", &[var(&[3, 2], 1), like], vec![], 15, true, TOL).unwrap();
    }

    /// Softmax of opset < 13 flattens to 2-D at `axis`: one softmax over axes 1.. of x.
    #[test]
    fn softmax_opset_11_coerces_to_2d() {
        for op in ["Softmax", "LogSoftmax"] {
            let x = rand_tensor(&[2, 3, 4], 1);
            let (g, outs) = lowered_graph(op, &[Arg::Var(x.clone())], vec![("axis", Attr::Int(1))], 1, 11).unwrap();
            check_graph(&g, &outs, &[("in0".into(), x)], true, TOL).unwrap();
        }
    }

    /// The cases of tests/ops/ (written by tests/ops/gen_reference.py from ONNX Runtime or
    /// the ONNX reference): (name, canonical float32 graph, input, expected output).
    fn reference_cases() -> Vec<(String, crate::onnx::ir::Graph, Tensor, Tensor)> {
        use crate::onnx::canon::CanonOptions;
        use crate::onnx::Model;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ops");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str().and_then(|f| f.strip_suffix(".onnx")).map(String::from))
            .collect();
        names.sort();
        assert!(names.len() >= 20, "reference cases missing in {}", dir.display());
        names
            .into_iter()
            .map(|name| {
                let read = |k: &str| -> Tensor {
                    let a: ndarray::ArrayD<f32> = ndarray_npy::read_npy(dir.join(format!("{name}.{k}.npy"))).unwrap();
                    Tensor::F32(a)
                };
                let (x, y) = (read("x"), read("y"));
                let m = Model::load(dir.join(format!("{name}.onnx"))).unwrap();
                let shapes = m.input_shapes(x.shape()[0], Some(x.shape())).unwrap();
                let g = m.canonical(&shapes, &CanonOptions::default()).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                (name, g, x, y)
            })
            .collect()
    }

    fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f64) {
        assert_eq!(got.shape(), want.shape(), "{what}");
        for (a, b) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
            assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {a} vs {b}");
        }
    }

    /// Forward values of the lowered ops against the references, on tract and (when a
    /// library is installed) on ONNX Runtime; the gradient programs of both engines agree.
    #[test]
    fn forward_matches_the_references() {
        use crate::autodiff::append_gradients;
        use crate::engine::{tract::TractEngine, Engine};
        use crate::onnx::builder::Builder;
        let mut engines: Vec<(&str, Box<dyn Engine>)> = vec![("tract", Box::new(TractEngine::default()))];
        #[cfg(feature = "ort")]
        match crate::engine::ort::available() {
            Ok(_) => engines.push(("ort", Box::new(crate::engine::ort::OrtEngine::cpu(1).unwrap()))),
            Err(why) => eprintln!("ONNX Runtime part SKIPPED: {why}"),
        }
        let cases = reference_cases();
        eprintln!("{} reference cases on {:?}", cases.len(), engines.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        for (name, g, x, y) in cases {
            let input = g.inputs[0].clone();
            let out = g.outputs[0].clone();
            let mut p = g.clone();
            let seed = Builder::new(&mut p, "seed").constant(rand_tensor(y.shape(), 3).cast(DType::F32));
            let grads = append_gradients(&mut p, &[(out.clone(), seed)], std::slice::from_ref(&input)).unwrap();
            p.outputs = vec![out.clone(), grads[0].clone()];
            let mut first: Option<Tensor> = None;
            for (ename, e) in &engines {
                let res = e.load(&p).unwrap_or_else(|err| panic!("{name} on {ename}: {err:#}")).run(&[(input.as_str(), &x)]).unwrap();
                assert_close(&format!("{name} on {ename}"), &res[&out], &y, 2e-5);
                let dx = &res[&grads[0]];
                match &first {
                    None => first = Some(dx.clone()),
                    Some(d0) => assert_close(&format!("{name}: gradient, {ename} vs tract"), dx, d0, 1e-4),
                }
            }
        }
    }
}
