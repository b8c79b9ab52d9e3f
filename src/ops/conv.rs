//! Convolutions. Conv's data and weight gradients are the composite ops ConvGradX and
//! ConvGradW (`onnx/composite.rs`), lowered to ConvTranspose and to one matrix product per
//! kernel offset when the program is loaded. The three form a closed family: the adjoint of
//! each, w.r.t. either input, is a Conv, a ConvGradX or a ConvGradW, so second-order
//! programs (GraSP) stay as small as first-order ones. ConvTranspose is the adjoint of Conv,
//! so its two gradients are the same constructions with input and output exchanged.

use super::OpDef;
use crate::onnx::composite;
use crate::onnx::infer::input;
use crate::onnx::ir::{Graph, TypeInfo};
use anyhow::bail;
use super::{gy0, Grads};
use crate::onnx::builder::Builder;
use crate::onnx::composite::{conv_attrs, conv_window, grad_w_attrs, grad_x_attrs, nc0, weight_grad, CONV_GRAD_W, CONV_GRAD_X};
use crate::onnx::geometry::{conv_transpose_window, window};
use crate::onnx::ir::Node;
use anyhow::Result;

pub const OPS: &[OpDef] = &[
    OpDef::rule("Conv", 1, "", infer_conv, conv),
    OpDef::rule("ConvTranspose", 1, "", infer_conv_transpose, conv_transpose),
    OpDef::internal(CONV_GRAD_X, composite::infer, conv_grad_x),
    OpDef::internal(CONV_GRAD_W, composite::infer, conv_grad_w),
];

fn infer_conv(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let (xi, w) = (input(g, n, 0)?, input(g, n, 1)?);
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
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

fn infer_conv_transpose(g: &Graph, n: &Node) -> Result<Vec<TypeInfo>> {
    let (xi, w) = (input(g, n, 0)?, input(g, n, 1)?);
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
    Ok(vec![TypeInfo::new(xi.dtype, s)])
}

/// The `group` attribute of Conv/ConvTranspose: at least 1 (0 would divide by zero).
fn group_of(n: &Node) -> Result<usize> {
    match n.int("group", 1) {
        g if (1..=1 << 31).contains(&g) => Ok(g as usize),
        g => bail!("{}: group {g} out of range", n.describe()),
    }
}

/// dB[c] = Σ over every axis but 1 of gy.
fn bias_grad(b: &mut Builder, g: &str) -> Result<String> {
    let r = b.shape(g)?.len();
    let axes: Vec<usize> = (0..r).filter(|&i| i != 1).collect();
    b.reduce_sum(g, &axes, false)
}

/// y = Conv(x, W) + B.
/// dx = ConvGradX(gy, W); dW = ConvGradW(gy, x); dB = Σ gy.
fn conv(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let (x, w) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (xs, ws) = (b.shape(x)?, b.shape(w)?);
    let group = n.int("group", 1) as usize;
    let win = window(n, &xs[2..], &ws[2..], false)?;
    let mut out = vec![None; n.inputs.len()];
    if wants[0] {
        out[0] = Some(b.op(CONV_GRAD_X, &[g, w], grad_x_attrs(&win, group, &xs[2..]))?);
    }
    if wants[1] {
        out[1] = Some(b.op(CONV_GRAD_W, &[g, x], grad_w_attrs(&win, group))?);
    }
    if wants.get(2) == Some(&true) {
        out[2] = Some(bias_grad(b, g)?);
    }
    Ok(out)
}

/// dx = ConvGradX(gy, W) is linear in gy and in W: with G the gradient of dx,
/// ⟨G, dx⟩ = ⟨Conv(G, W), gy⟩, so d gy = Conv(G, W) and dW = ConvGradW(gy, G).
fn conv_grad_x(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let big_g = gy0(gy)?;
    let (g, w) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (win, group) = conv_window(b.g, n)?;
    let mut out = vec![None; 2];
    if wants[0] {
        out[0] = Some(b.op("Conv", &[big_g, w], conv_attrs(&win, group))?);
    }
    if wants[1] {
        out[1] = Some(b.op(CONV_GRAD_W, &[g, big_g], grad_w_attrs(&win, group))?);
    }
    Ok(out)
}

/// dW = ConvGradW(gy, x) is linear in gy and in x: with G the gradient of dW,
/// ⟨G, dW⟩ = ⟨Conv(x, G), gy⟩, so d gy = Conv(x, G) and dx = ConvGradX(gy, G).
fn conv_grad_w(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let big_g = gy0(gy)?;
    let (g, x) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (win, group) = conv_window(b.g, n)?;
    let xs = b.shape(x)?;
    let mut out = vec![None; 2];
    if wants[0] {
        out[0] = Some(b.op("Conv", &[x, big_g], conv_attrs(&win, group))?);
    }
    if wants[1] {
        out[1] = Some(b.op(CONV_GRAD_X, &[g, big_g], grad_x_attrs(&win, group, &xs[2..]))?);
    }
    Ok(out)
}

/// y = ConvTranspose(x, W) + B: the full transposed convolution y_full[n, j, p·s+k·d] +=
/// x[n,c,p]·W[c,j,k], cropped by the pads.
/// dx = Conv(gy, W) with the same strides, dilations, group and the pads as zero padding
/// (which rebuilds y_full's extent), cropped to x (output_padding rows reach no input);
/// dW[c,j,k] = Σ_n,p x[n,c,p]·gy_full[n, g(c)·Cy/G+j, p·s+k·d] (`weight_grad`); dB = Σ gy.
fn conv_transpose(b: &mut Builder, n: &Node, gy: &[Option<String>], wants: &[bool]) -> Grads {
    let g = gy0(gy)?;
    let (x, w) = (n.inputs[0].as_str(), n.inputs[1].as_str());
    let (xs, ws) = (b.shape(x)?, b.shape(w)?);
    let group = n.int("group", 1) as usize;
    let win = conv_transpose_window(n, &xs[2..], &ws[2..])?;
    let r = xs.len() - 2;
    let mut out = vec![None; n.inputs.len()];
    if wants[0] {
        let c = b.op("Conv", &[g, w], conv_attrs(&win, group))?;
        let cs = b.shape(&c)?;
        let end: Vec<i64> = (0..r).map(|i| xs[2 + i] as i64 - cs[2 + i] as i64).collect();
        out[0] = Some(b.pad_or_crop(&c, &vec![0; r + 2], &nc0(&end))?);
    }
    if wants[1] {
        let gp = b.pad(g, &nc0(&win.pads_begin), &nc0(&win.pads_end))?;
        out[1] = Some(weight_grad(b, x, &gp, group, &win)?);
    }
    if wants.get(2) == Some(&true) {
        out[2] = Some(bias_grad(b, g)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::autodiff::check::{check_op, rand_tensor, Arg};
    use crate::onnx::builder::Attrs;
    use crate::onnx::ir::Attr;

    const TOL: f64 = 1e-6;

    fn ints(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    /// Checks `op` on x, W (and B when `bias`), first and second order.
    fn check(op: &str, x: &[usize], w: &[usize], bias: Option<usize>, attrs: Attrs) {
        let mut args = vec![Arg::Var(rand_tensor(x, 1)), Arg::Var(rand_tensor(w, 2))];
        if let Some(c) = bias {
            args.push(Arg::Var(rand_tensor(&[c], 3)));
        }
        check_op(op, &args, attrs, 1, true, TOL).unwrap();
    }

    #[test]
    fn conv2d_pads_bias() {
        check("Conv", &[2, 3, 5, 5], &[4, 3, 3, 3], Some(4), vec![("pads", ints(&[1, 1, 1, 1]))]);
    }

    #[test]
    fn conv2d_strides_uncovered_rows() {
        // stride 2 over 6 rows with a 3-row kernel and no end pad: the last row is in no window
        let attrs = vec![("strides", ints(&[2, 3])), ("pads", ints(&[1, 0, 0, 1]))];
        check("Conv", &[1, 2, 6, 7], &[3, 2, 3, 2], None, attrs);
    }

    #[test]
    fn conv2d_dilations() {
        let attrs = vec![("dilations", ints(&[2, 1])), ("pads", ints(&[2, 0, 1, 1])), ("strides", ints(&[1, 2]))];
        check("Conv", &[2, 2, 6, 6], &[3, 2, 3, 2], Some(3), attrs);
    }

    #[test]
    fn conv2d_groups() {
        check("Conv", &[2, 4, 5, 5], &[6, 2, 3, 3], Some(6), vec![("group", Attr::Int(2)), ("pads", ints(&[1, 1, 1, 1]))]);
    }

    #[test]
    fn conv2d_depthwise() {
        let attrs = vec![("group", Attr::Int(3)), ("pads", ints(&[1, 1, 1, 1])), ("strides", ints(&[2, 2]))];
        check("Conv", &[2, 3, 5, 5], &[3, 1, 3, 3], Some(3), attrs);
    }

    #[test]
    fn conv2d_depthwise_multiplier() {
        check("Conv", &[2, 3, 4, 4], &[6, 1, 2, 2], None, vec![("group", Attr::Int(3))]);
    }

    #[test]
    fn conv2d_pointwise() {
        check("Conv", &[2, 4, 3, 3], &[5, 4, 1, 1], Some(5), vec![]);
    }

    #[test]
    fn conv2d_auto_pad() {
        for mode in ["SAME_UPPER", "SAME_LOWER", "VALID"] {
            let attrs = vec![("auto_pad", Attr::Str(mode.into())), ("strides", ints(&[2, 2]))];
            check("Conv", &[1, 2, 6, 5], &[2, 2, 3, 2], None, attrs);
        }
    }

    #[test]
    fn conv1d() {
        check("Conv", &[2, 3, 9], &[4, 3, 3], Some(4), vec![("strides", ints(&[2])), ("pads", ints(&[1, 2]))]);
    }

    #[test]
    fn conv3d() {
        check("Conv", &[1, 2, 4, 4, 3], &[2, 2, 2, 3, 2], Some(2), vec![("pads", ints(&[1, 0, 1, 0, 1, 0]))]);
    }

    /// Checks the composite ConvGradX (gy, W) and ConvGradW (gy, x) of a Conv of x [x] and
    /// W [w] with the given attributes, first and second order.
    fn check_composites(x: &[usize], w: &[usize], strides: &[i64], dilations: &[i64], pads: &[i64], group: i64) {
        use crate::onnx::composite::{CONV_GRAD_W, CONV_GRAD_X};
        let r = x.len() - 2;
        let out: Vec<usize> = (0..r)
            .map(|i| {
                let span = (w[2 + i] as i64 - 1) * dilations[i] + 1;
                ((x[2 + i] as i64 + pads[i] + pads[r + i] - span) / strides[i] + 1) as usize
            })
            .collect();
        let gy = [&[x[0], w[0]][..], &out].concat();
        let conv = || vec![("strides", ints(strides)), ("dilations", ints(dilations)), ("pads", ints(pads)), ("group", Attr::Int(group))];
        let mut ax = conv();
        ax.push(("x_shape", ints(&x[2..].iter().map(|&v| v as i64).collect::<Vec<_>>())));
        check_op(CONV_GRAD_X, &[Arg::Var(rand_tensor(&gy, 4)), Arg::Var(rand_tensor(w, 5))], ax, 1, true, TOL).unwrap();
        let mut aw = conv();
        aw.push(("kernel_shape", ints(&w[2..].iter().map(|&v| v as i64).collect::<Vec<_>>())));
        check_op(CONV_GRAD_W, &[Arg::Var(rand_tensor(&gy, 6)), Arg::Var(rand_tensor(x, 7))], aw, 1, true, TOL).unwrap();
    }

    #[test]
    fn composite_conv_grads_pads() {
        check_composites(&[2, 3, 5, 5], &[4, 3, 3, 3], &[1, 1], &[1, 1], &[1, 1, 1, 1], 1);
    }

    #[test]
    fn composite_conv_grads_strides_dilations_uncovered_rows() {
        check_composites(&[1, 2, 7, 6], &[3, 2, 3, 2], &[2, 1], &[1, 2], &[1, 0, 0, 1], 1);
    }

    #[test]
    fn composite_conv_grads_groups() {
        check_composites(&[2, 4, 5, 5], &[6, 2, 3, 3], &[2, 2], &[1, 1], &[1, 1, 1, 1], 2);
    }

    #[test]
    fn composite_conv_grads_depthwise() {
        check_composites(&[2, 3, 5, 5], &[3, 1, 3, 3], &[1, 1], &[1, 1], &[1, 1, 1, 1], 3);
    }

    #[test]
    fn composite_conv_grads_1d_pointwise() {
        check_composites(&[2, 3, 6], &[4, 3, 1], &[2], &[1], &[0, 0], 1);
    }

    #[test]
    fn conv_transpose2d_bias() {
        check("ConvTranspose", &[2, 3, 4, 4], &[3, 2, 3, 3], Some(2), vec![]);
    }

    #[test]
    fn conv_transpose2d_strides_pads_output_padding() {
        let attrs = vec![
            ("strides", ints(&[2, 3])),
            ("pads", ints(&[1, 0, 1, 2])),
            ("output_padding", ints(&[1, 2])),
        ];
        check("ConvTranspose", &[1, 2, 3, 4], &[2, 3, 3, 3], Some(3), attrs);
    }

    #[test]
    fn conv_transpose2d_dilations() {
        let attrs = vec![("dilations", ints(&[2, 1])), ("strides", ints(&[2, 1])), ("pads", ints(&[1, 1, 0, 0]))];
        check("ConvTranspose", &[2, 2, 3, 4], &[2, 2, 2, 3], None, attrs);
    }

    #[test]
    fn conv_transpose2d_groups() {
        let attrs = vec![("group", Attr::Int(2)), ("strides", ints(&[2, 2])), ("pads", ints(&[1, 1, 1, 1]))];
        check("ConvTranspose", &[2, 4, 3, 3], &[4, 3, 3, 3], Some(6), attrs);
    }

    #[test]
    fn conv_transpose2d_depthwise() {
        let attrs = vec![("group", Attr::Int(3)), ("strides", ints(&[2, 2]))];
        check("ConvTranspose", &[2, 3, 3, 3], &[3, 1, 2, 2], None, attrs);
    }

    #[test]
    fn conv_transpose1d() {
        check("ConvTranspose", &[2, 2, 5], &[2, 3, 3], Some(3), vec![("strides", ints(&[2])), ("pads", ints(&[1, 0]))]);
    }
}
