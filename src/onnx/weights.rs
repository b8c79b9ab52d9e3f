//! Weights that are not plain initializers. Caffe2-era files (the ONNX model zoo's
//! `light_*.onnx`) write every weight as `ConstantOfShape(shape initializer)`; such a weight
//! is a constant all the same, so it becomes an initializer at load: then it is scored,
//! counted by `params` and replaced by the re-initialising proxies like any other.
//! (`Constant` nodes stay nodes: a non-affine BatchNorm's fixed scale and bias are exported
//! as those, and they are not parameters.)

use super::ir::{Attr, DType, Graph, Tensor};
use anyhow::{anyhow, Context, Result};

/// The inputs that become initializers: the parameters, and BatchNormalization's running
/// statistics (constants too, though not parameters).
fn constant_inputs(op: &str) -> &'static [usize] {
    match op {
        "BatchNormalization" => &[1, 2, 3, 4],
        _ => super::canon::parameter_inputs(op),
    }
}

/// Turns every `ConstantOfShape` with a constant shape that feeds a parameter slot into an
/// initializer of that name. Returns the names it made, for `inspect` to say so.
pub fn materialize_constant_weights(g: &mut Graph) -> Result<Vec<String>> {
    let wanted: std::collections::HashSet<String> = g
        .nodes
        .iter()
        .flat_map(|n| {
            constant_inputs(&n.op).iter().filter_map(|&i| n.input(i).map(str::to_string)).collect::<Vec<_>>()
        })
        .collect();
    let mut made = Vec::new();
    let mut keep = Vec::with_capacity(g.nodes.len());
    for n in std::mem::take(&mut g.nodes) {
        let out = n.outputs.first().cloned().unwrap_or_default();
        let shape = n.input(0).and_then(|s| g.initializers.get(s)).map(Tensor::to_i64_vec);
        match (n.op.as_str(), shape) {
            ("ConstantOfShape", Some(dims)) if wanted.contains(&out) => {
                let t = fill(&dims, n.attrs.get("value")).with_context(|| format!("{}: weight {out} ({})", g.source, n.describe()))?;
                g.set_initializer(&out, t);
                made.push(out);
            }
            _ => keep.push(n),
        }
    }
    g.nodes = keep;
    Ok(made)
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
