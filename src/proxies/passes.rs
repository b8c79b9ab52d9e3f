//! The programs proxies share. Each is built from the canonical graph once per model and
//! run once per batch; proxies read their results (see `Ctx` in mod.rs):
//! - loss pass: cross-entropy, gradients w.r.t. every scored weight and every scored
//!   layer's output activation (grad_norm, plain, snip, fisher, GraSP's first gradient);
//! - GraSP pass: the Hessian-gradient product Hg, the gradient of z = Σ g·∂L/∂W with g fed
//!   as a constant input (the reverse pass applied twice);
//! - Jacobian pass: ∂(Σ outputs)/∂input (jacob_cov);
//! - synflow pass: BN removed (or kept), |parameters|, float64, one all-ones sample.

use crate::autodiff::append_gradients;
use crate::engine::{Engine, Outputs};
use crate::onnx::builder::Builder;
use crate::onnx::ir::{Attr, DType, Graph, Tensor};
use crate::onnx::layers::ScoredLayer;
use anyhow::{anyhow, bail, Result};

/// Graph input holding -onehot(targets)/N, so that Σ(LogSoftmax(z) ⊙ T) is the mean
/// cross-entropy.
pub const TARGETS: &str = "zerocost/targets";
pub const LOSS: &str = "zerocost/loss";

/// Logits as [N, classes] (flattening trailing unit axes).
pub fn logits_2d(b: &mut Builder, out: &str) -> Result<String> {
    let s = b.shape(out)?;
    if s.len() == 2 {
        return Ok(out.to_string());
    }
    let n = s[0];
    let c: usize = s[1..].iter().product();
    if s.len() < 2 || s[2..].iter().any(|&d| d != 1) {
        bail!("the model's output has shape {s:?}; a classifier's logits [N, classes] are expected");
    }
    b.reshape(out, &[n, c])
}

/// Appends the mean cross-entropy of the first graph output; returns the loss tensor.
pub fn add_loss(g: &mut Graph) -> Result<String> {
    let out = g.outputs[0].clone();
    let mut b = Builder::new(g, "loss");
    let z = logits_2d(&mut b, &out)?;
    let zs = b.shape(&z)?;
    let dt = b.dtype(&z)?;
    b.g.inputs.push(TARGETS.into());
    b.g.types.insert(TARGETS.into(), crate::onnx::ir::TypeInfo::new(dt, zs));
    let ls = b.op("LogSoftmax", &[&z], vec![("axis", Attr::Int(1))])?;
    let m = b.mul(&ls, TARGETS)?;
    let axes = b.ints(&[0, 1]);
    let loss = b.op("ReduceSum", &[&m, &axes], vec![("keepdims", Attr::Int(0))])?;
    b.g.types.insert(LOSS.into(), b.info(&loss)?);
    b.g.nodes.push(crate::onnx::ir::Node::new("loss/name", "Identity", vec![loss], vec![LOSS.into()]));
    Ok(LOSS.into())
}

/// The -onehot/N target tensor for a batch.
pub fn target_tensor(targets: &[i64], classes: usize, dtype: DType) -> Result<Tensor> {
    let n = targets.len();
    let mut v = vec![0.0; n * classes];
    for (i, &t) in targets.iter().enumerate() {
        if t < 0 || t as usize >= classes {
            bail!("target {t} of sample {i} is outside the model's {classes} classes");
        }
        v[i * classes + t as usize] = -1.0 / n as f64;
    }
    Ok(Tensor::from_f64(dtype, &[n, classes], v))
}

/// A seed of ones shaped like `t`.
fn ones_like(b: &mut Builder, t: &str) -> Result<String> {
    let info = b.info(t)?;
    Ok(b.constant(Tensor::full(info.dtype, &info.shape, 1.0)))
}

/// Loss-pass program: outputs logits, loss, then per layer dW, then (if `activations`) per
/// layer the activation and its gradient, then (if `input_grad`) dL/dinput.
pub struct LossProgram {
    pub graph: Graph,
    pub logits: String,
    pub weight_grads: Vec<String>,
    pub activations: Vec<(String, String)>,
    pub input_grad: Option<String>,
}

pub fn loss_program(base: &Graph, layers: &[ScoredLayer], activations: bool, input_grad: bool) -> Result<LossProgram> {
    let mut g = base.clone();
    let logits = g.outputs[0].clone();
    let loss = add_loss(&mut g)?;
    let one = {
        let mut b = Builder::new(&mut g, "loss");
        ones_like(&mut b, &loss)?
    };
    let mut wrt: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
    if activations {
        wrt.extend(layers.iter().map(|l| l.output.clone()));
    }
    let input = base.inputs[0].clone();
    if input_grad {
        wrt.push(input);
    }
    let grads = append_gradients(&mut g, &[(loss.clone(), one)], &wrt)?;
    let nl = layers.len();
    let weight_grads = grads[..nl].to_vec();
    let acts: Vec<(String, String)> =
        if activations { layers.iter().zip(&grads[nl..2 * nl]).map(|(l, d)| (l.output.clone(), d.clone())).collect() } else { vec![] };
    let input_grad = if input_grad { grads.last().cloned() } else { None };
    g.outputs = vec![logits.clone(), loss];
    g.outputs.extend(weight_grads.iter().cloned());
    for (a, d) in &acts {
        g.outputs.push(a.clone());
        g.outputs.push(d.clone());
    }
    g.outputs.extend(input_grad.iter().cloned());
    dedup_outputs(&mut g);
    Ok(LossProgram { graph: g, logits, weight_grads, activations: acts, input_grad })
}

/// Engines want distinct output names; a tensor listed twice is exposed once.
fn dedup_outputs(g: &mut Graph) {
    let mut seen = std::collections::HashSet::new();
    g.outputs.retain(|o| seen.insert(o.clone()));
}

/// GraSP program: inputs are the model input, the targets and one `g` per scored layer;
/// outputs Hg per layer.
pub struct GraspProgram {
    pub graph: Graph,
    pub g_inputs: Vec<String>,
    pub hg: Vec<String>,
}

pub fn grasp_program(base: &Graph, layers: &[ScoredLayer]) -> Result<GraspProgram> {
    let lp = loss_program(base, layers, false, false)?;
    let mut g = lp.graph;
    let mut b = Builder::new(&mut g, "grasp");
    let mut terms = Vec::new();
    let mut g_inputs = Vec::new();
    for (k, (l, dw)) in layers.iter().zip(&lp.weight_grads).enumerate() {
        let name = format!("zerocost/grasp_g{k}");
        let info = b.info(&l.weight)?;
        b.g.inputs.push(name.clone());
        b.g.types.insert(name.clone(), info.clone());
        let p = b.mul(&name, dw)?;
        let axes: Vec<usize> = (0..info.shape.len()).collect();
        terms.push(b.reduce_sum(&p, &axes, false)?);
        g_inputs.push(name);
    }
    let z = b.sum(&terms)?;
    let one = ones_like(&mut b, &z)?;
    let wrt: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
    let hg = append_gradients(&mut g, &[(z, one)], &wrt)?;
    g.outputs = hg.clone();
    dedup_outputs(&mut g);
    Ok(GraspProgram { graph: g, g_inputs, hg })
}

/// Graph input holding the seed of Σ outputs (ones). An input rather than a constant:
/// with a constant seed, tract's constant propagation evaluates whole stretches of the
/// backward pass eagerly at load time, which took minutes.
pub const SEED: &str = "zerocost/seed";

/// Gradient of Σ outputs w.r.t. the input (jacob_cov) or w.r.t. the weights (synflow).
/// Bind [`SEED`] to ones shaped like the output (see [`seed_ones`]).
pub fn sum_output_program(base: &Graph, wrt: &[String]) -> Result<(Graph, Vec<String>)> {
    let mut g = base.clone();
    let out = g.outputs[0].clone();
    let info = g.info(&out)?.clone();
    g.inputs.push(SEED.into());
    g.types.insert(SEED.into(), info);
    let grads = append_gradients(&mut g, &[(out.clone(), SEED.into())], wrt)?;
    g.outputs = vec![out];
    g.outputs.extend(grads.iter().cloned());
    dedup_outputs(&mut g);
    Ok((g, grads))
}

/// Ones shaped like the first output of `g`, for [`SEED`].
pub fn seed_ones(g: &Graph) -> Result<Tensor> {
    let info = g.info(&g.outputs[0])?;
    Ok(Tensor::full(info.dtype, &info.shape, 1.0))
}

/// Fetches an output by name.
pub fn output<'o>(out: &'o Outputs, name: &str) -> Result<&'o Tensor> {
    out.get(name).ok_or_else(|| anyhow!("program output '{name}' missing"))
}

/// Loads and runs a program in one go.
pub fn load_and_run(engine: &dyn Engine, g: &Graph, bindings: &[(&str, &Tensor)]) -> Result<Outputs> {
    let prog = engine.load(g)?;
    prog.run(bindings)
}

/// All-ones input of the given shape and type (synflow).
pub fn ones(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::full(dtype, shape, 1.0)
}

