//! Window geometry of Conv, ConvTranspose and the pooling ops, resolved from a node's
//! attributes and its input shape (auto_pad and ceil_mode made explicit), so that shape
//! inference and the gradient rules agree.

use super::ir::Node;
use anyhow::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
    pub pads_end: Vec<usize>,
    /// Spatial size of the output.
    pub out: Vec<usize>,
}

impl Window {
    /// Extent of one dilated kernel window along axis `i`.
    pub fn span(&self, i: usize) -> usize {
        (self.kernel[i] - 1) * self.dilations[i] + 1
    }

    /// `pads` attribute form: all begins then all ends.
    pub fn pads_attr(&self) -> Vec<i64> {
        self.pads_begin.iter().chain(&self.pads_end).map(|&p| p as i64).collect()
    }
}

/// Largest window size, stride, dilation or padding taken from a file: beyond it the
/// arithmetic below could overflow, and no real network comes near.
const MAX_EXTENT: i64 = 1 << 31;

fn spatial_attr(n: &Node, key: &str, rank: usize, default: usize) -> Result<Vec<usize>> {
    // strides and dilations of 0 would divide by zero; output_padding may be 0
    let min = if default == 0 { 0 } else { 1 };
    match n.ints(key) {
        Some(v) if v.len() == rank => v
            .iter()
            .map(|&x| if (min..=MAX_EXTENT).contains(&x) { Ok(x as usize) } else { bail!("{}: {key} {x} out of range {min}..={MAX_EXTENT}", n.describe()) })
            .collect(),
        Some(v) if v.is_empty() => Ok(vec![default; rank]),
        Some(v) => bail!("{}: attribute {key} has {} values, expected {rank}", n.describe(), v.len()),
        None => Ok(vec![default; rank]),
    }
}

/// Spatial sizes and kernel sizes must be at least 1 and at most [`MAX_EXTENT`].
fn check_extents(n: &Node, input: &[usize], kernel: &[usize]) -> Result<()> {
    let ok = |v: &[usize]| v.iter().all(|&x| x >= 1 && x as u64 <= MAX_EXTENT as u64);
    if !ok(input) || !ok(kernel) {
        bail!("{}: spatial size {input:?} or kernel {kernel:?} out of range 1..={MAX_EXTENT}", n.describe());
    }
    Ok(())
}

/// Geometry of a Conv or pooling window over `input` spatial dims.
/// `kernel` comes from the weight (Conv) or the `kernel_shape` attribute (pools).
pub fn window(n: &Node, input: &[usize], kernel: &[usize], ceil_mode: bool) -> Result<Window> {
    let r = kernel.len();
    check_extents(n, input, kernel)?;
    if input.len() != r {
        bail!("{}: input has {} spatial dims, kernel {r}", n.describe(), input.len());
    }
    let strides = spatial_attr(n, "strides", r, 1)?;
    let dilations = spatial_attr(n, "dilations", r, 1)?;
    let kernel = kernel.to_vec();
    let auto_pad = n.string("auto_pad").unwrap_or("NOTSET");
    let (mut pads_begin, mut pads_end) = (vec![0; r], vec![0; r]);
    let mut out = vec![0; r];
    match auto_pad {
        "SAME_UPPER" | "SAME_LOWER" => {
            for i in 0..r {
                let o = input[i].div_ceil(strides[i]);
                let span = (kernel[i] - 1) * dilations[i] + 1;
                let total = ((o - 1) * strides[i] + span).saturating_sub(input[i]);
                let small = total / 2;
                if auto_pad == "SAME_UPPER" {
                    pads_begin[i] = small;
                    pads_end[i] = total - small;
                } else {
                    pads_begin[i] = total - small;
                    pads_end[i] = small;
                }
                out[i] = o;
            }
            return Ok(Window { kernel, strides, dilations, pads_begin, pads_end, out });
        }
        "VALID" => {}
        "NOTSET" | "" => {
            if let Some(p) = n.ints("pads") {
                if p.len() != 2 * r {
                    bail!("{}: pads has {} values, expected {}", n.describe(), p.len(), 2 * r);
                }
                if p.iter().any(|&x| x < 0) {
                    bail!("{}: negative pads are not supported", n.describe());
                }
                if p.iter().any(|&x| x > MAX_EXTENT) {
                    bail!("{}: pads {p:?} out of range", n.describe());
                }
                pads_begin = p[..r].iter().map(|&x| x as usize).collect();
                pads_end = p[r..].iter().map(|&x| x as usize).collect();
            }
        }
        other => bail!("{}: unknown auto_pad '{other}'", n.describe()),
    }
    for i in 0..r {
        let span = (kernel[i] - 1) * dilations[i] + 1;
        let padded = input[i] + pads_begin[i] + pads_end[i];
        if padded < span {
            bail!("{}: window {span} larger than padded input {padded}", n.describe());
        }
        let o = if ceil_mode {
            let mut o = (padded - span).div_ceil(strides[i]) + 1;
            // the last window must start inside the input or its left padding
            if (o - 1) * strides[i] >= input[i] + pads_begin[i] {
                o -= 1;
            }
            o
        } else {
            (padded - span) / strides[i] + 1
        };
        out[i] = o;
    }
    Ok(Window { kernel, strides, dilations, pads_begin, pads_end, out })
}

/// Geometry of ConvTranspose: returns the window (pads as the op applies them) and the
/// spatial output size.
pub fn conv_transpose_window(n: &Node, input: &[usize], kernel: &[usize]) -> Result<Window> {
    let r = kernel.len();
    check_extents(n, input, kernel)?;
    if input.len() != r {
        bail!("{}: input has {} spatial dims, kernel {r}", n.describe(), input.len());
    }
    let strides = spatial_attr(n, "strides", r, 1)?;
    let dilations = spatial_attr(n, "dilations", r, 1)?;
    let out_pad = spatial_attr(n, "output_padding", r, 0)?;
    let kernel = kernel.to_vec();
    let full: Vec<usize> =
        (0..r).map(|i| strides[i] * (input[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1).collect();
    let (mut pads_begin, mut pads_end) = (vec![0; r], vec![0; r]);
    let auto_pad = n.string("auto_pad").unwrap_or("NOTSET");
    if let Some(os) = n.ints("output_shape") {
        let os: Vec<usize> = os.iter().rev().take(r).rev().map(|&x| x as usize).collect();
        for i in 0..r {
            (pads_begin[i], pads_end[i]) = split_transpose_pad(full[i].saturating_sub(os[i]), auto_pad);
        }
    } else if auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER" {
        for i in 0..r {
            (pads_begin[i], pads_end[i]) = split_transpose_pad(full[i].saturating_sub(input[i] * strides[i]), auto_pad);
        }
    } else if let Some(p) = n.ints("pads") {
        if p.len() != 2 * r || p.iter().any(|&x| x < 0) {
            bail!("{}: bad pads {:?}", n.describe(), p);
        }
        pads_begin = p[..r].iter().map(|&x| x as usize).collect();
        pads_end = p[r..].iter().map(|&x| x as usize).collect();
    }
    let out = (0..r).map(|i| full[i] - pads_begin[i] - pads_end[i]).collect();
    Ok(Window { kernel, strides, dilations, pads_begin, pads_end, out })
}

/// ConvTranspose's split of `total` padding: SAME_UPPER puts the smaller half first,
/// anything else the larger half first (as the ONNX reference does).
fn split_transpose_pad(total: usize, auto_pad: &str) -> (usize, usize) {
    if auto_pad == "SAME_UPPER" {
        (total / 2, total - total / 2)
    } else {
        (total - total / 2, total / 2)
    }
}
