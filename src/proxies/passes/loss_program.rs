//! The loss program: cross-entropy on the batch and, sharing its forward pass, gradients
//! w.r.t. every scored weight, fisher's per-channel sums, GraSP's Hessian-gradient product
//! Hg (the gradient of z = Σ g·∂L/∂W with g = ∂L/∂W held constant: the reverse pass
//! applied twice) and the input Jacobian ∂(Σ outputs)/∂input, as asked ([`LossExtras`]).
//! Also the program `zerocost grad-graph` writes.

use crate::autodiff::append_gradients;
use super::{distinct, SEED};
use crate::onnx::builder::Builder;
use crate::onnx::composite::STOP_GRADIENT;
use crate::onnx::ir::{Attr, DType, Graph, Node, Tensor};
use crate::onnx::layers::ScoredLayer;
use anyhow::{bail, Result};

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
    target_tensor_of(targets, classes, targets.len(), dtype)
}

/// The -onehot/`total` target tensor for `targets`, a chunk of a batch of `total` samples:
/// the chunk's loss is then its share of the whole batch's mean, and the chunks' losses and
/// gradients add up to the whole batch's.
pub fn target_tensor_of(targets: &[i64], classes: usize, total: usize, dtype: DType) -> Result<Tensor> {
    let n = targets.len();
    let mut v = vec![0.0; n * classes];
    for (i, &t) in targets.iter().enumerate() {
        if t < 0 || t as usize >= classes {
            bail!("target {t} of sample {i} is outside the model's {classes} classes");
        }
        v[i * classes + t as usize] = -1.0 / total as f64;
    }
    Ok(Tensor::from_f64(dtype, &[n, classes], v))
}

/// A seed of ones shaped like `t`.
fn ones_like(b: &mut Builder, t: &str) -> Result<String> {
    let info = b.info(t)?;
    Ok(b.constant(Tensor::full(info.dtype, &info.shape, 1.0)))
}

/// What a loss program computes besides the loss and the gradients of the scored weights.
/// Everything asked for shares the program's one forward pass (and GraSP its backward).
#[derive(Clone, Copy, Debug, Default)]
pub struct LossExtras {
    /// Per scored layer, Σ over the non-channel axes of a·∂L/∂a ([N, channels]; fisher).
    pub fisher: bool,
    /// dL/dinput.
    pub input_grad: bool,
    /// GraSP's Hg = ∂(Σ g·∂L/∂W)/∂W per scored layer, g = ∂L/∂W held constant.
    pub grasp: bool,
    /// With `grasp`: g is bound to the inputs [`LossProgram::grasp_g`] (the whole batch's
    /// gradient, when the batch is split) instead of being this program's own ∂L/∂W.
    pub grasp_given: bool,
    /// ∂(Σ outputs)/∂input (jacob_cov, epe_nas), a second backward pass seeded by ones.
    pub jacobian: bool,
}

/// Loss-pass program: outputs logits, loss, per layer dW, then what `extras` asks for.
pub struct LossProgram {
    pub graph: Graph,
    pub logits: String,
    pub weight_grads: Vec<String>,
    /// Per scored layer (with `fisher`): Σ_spatial a·∂L/∂a as [N, channels].
    pub fisher_sums: Vec<String>,
    pub input_grad: Option<String>,
    /// Per scored layer (with `grasp`).
    pub hessian_grad: Vec<String>,
    /// With `jacobian`; bind [`SEED`] to ones shaped like the output.
    pub jacobian: Option<String>,
    /// With `grasp_given`: per scored layer, the input to bind g to.
    pub grasp_g: Vec<String>,
    pub extras: LossExtras,
}

/// Graph inputs holding GraSP's g per scored layer (`grasp_given`).
pub const GRASP_G: &str = "zerocost/grasp_g";

pub fn loss_program(base: &Graph, layers: &[ScoredLayer], fisher: bool, input_grad: bool) -> Result<LossProgram> {
    loss_program_with(base, layers, LossExtras { fisher, input_grad, ..Default::default() })
}

pub fn loss_program_with(base: &Graph, layers: &[ScoredLayer], extras: LossExtras) -> Result<LossProgram> {
    let mut g = base.clone();
    let logits = g.outputs[0].clone();
    let loss = add_loss(&mut g)?;
    let one = {
        let mut b = Builder::new(&mut g, "loss");
        ones_like(&mut b, &loss)?
    };
    let mut wrt: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
    if extras.fisher {
        wrt.extend(layers.iter().map(|l| l.output.clone()));
    }
    let input = base.inputs[0].clone();
    if extras.input_grad {
        wrt.push(input.clone());
    }
    let grads = append_gradients(&mut g, &[(loss.clone(), one)], &wrt)?;
    let nl = layers.len();
    let weight_grads = grads[..nl].to_vec();
    let mut fisher_sums = Vec::new();
    if extras.fisher {
        let mut b = Builder::new(&mut g, "fisher");
        for (l, da) in layers.iter().zip(&grads[nl..2 * nl]) {
            let r = b.shape(&l.output)?.len();
            if r < 2 {
                bail!("layer {} has an output of rank {r}", l.node);
            }
            // channels on axis 1 for Conv/Gemm outputs; for MatMul outputs, the last axis
            let axes: Vec<usize> = if l.op == "MatMul" { (1..r - 1).collect() } else { (2..r).collect() };
            let p = b.mul(&l.output, da)?;
            fisher_sums.push(b.reduce_sum(&p, &axes, false)?);
        }
    }
    let input_grad = if extras.input_grad { grads.last().cloned() } else { None };
    let mut hessian_grad = Vec::new();
    let mut grasp_g = Vec::new();
    if extras.grasp {
        // z = Σ_layers Σ stop_gradient(dW)·dW; Hg = ∂z/∂W reuses this program's forward
        // pass and first backward pass instead of recomputing them
        let mut b = Builder::new(&mut g, "grasp");
        let mut terms = Vec::new();
        for (i, dw) in weight_grads.iter().enumerate() {
            let fixed = if extras.grasp_given {
                let name = format!("{GRASP_G}/{i}");
                let info = b.info(dw)?;
                b.g.inputs.push(name.clone());
                b.g.types.insert(name.clone(), info);
                grasp_g.push(name.clone());
                name
            } else {
                b.op(STOP_GRADIENT, &[dw], vec![])?
            };
            let p = b.mul(&fixed, dw)?;
            let axes: Vec<usize> = (0..b.shape(dw)?.len()).collect();
            terms.push(b.reduce_sum(&p, &axes, false)?);
        }
        let z = b.sum(&terms)?;
        let one = ones_like(&mut b, &z)?;
        let w: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
        hessian_grad = append_gradients(&mut g, &[(z, one)], &w)?;
    }
    let mut jacobian = None;
    if extras.jacobian {
        let info = g.info(&logits)?.clone();
        g.inputs.push(SEED.into());
        g.types.insert(SEED.into(), info);
        jacobian = Some(append_gradients(&mut g, &[(logits.clone(), SEED.into())], std::slice::from_ref(&input))?.remove(0));
    }
    g.outputs = vec![logits.clone(), loss];
    g.outputs.extend(weight_grads.iter().cloned());
    g.outputs.extend(fisher_sums.iter().cloned());
    g.outputs.extend(input_grad.iter().cloned());
    g.outputs.extend(hessian_grad.iter().cloned());
    g.outputs.extend(jacobian.iter().cloned());
    g.outputs = distinct(std::mem::take(&mut g.outputs));
    Ok(LossProgram { graph: g, logits, weight_grads, fisher_sums, input_grad, hessian_grad, jacobian, grasp_g, extras })
}

/// The program `zerocost grad-graph` writes: logits, the mean cross-entropy loss and the
/// gradients asked for, named for what they differentiate (`grad/<weight initializer>`,
/// `grad/<input>`) rather than after the internal tensors that hold them.
pub fn grad_graph(base: &Graph, layers: &[ScoredLayer], weights: bool, input: bool) -> Result<Graph> {
    if !weights && !input {
        bail!("nothing to differentiate");
    }
    let used: &[ScoredLayer] = if weights { layers } else { &[] };
    let p = loss_program(base, used, false, input)?;
    let mut g = p.graph;
    let loss = g.outputs[1].clone();
    let mut named: Vec<(String, String)> = used.iter().zip(&p.weight_grads).map(|(l, d)| (format!("grad/{}", l.weight), d.clone())).collect();
    if let Some(d) = &p.input_grad {
        named.push((format!("grad/{}", base.inputs[0]), d.clone()));
    }
    g.outputs = vec![p.logits.clone(), loss];
    for (name, tensor) in named {
        if g.types.contains_key(&name) {
            bail!("cannot name a gradient output '{name}': the graph already has a tensor of that name");
        }
        let info = g.info(&tensor)?.clone();
        g.nodes.push(Node::new(format!("{name}/Identity"), "Identity", vec![tensor], vec![name.clone()]));
        g.types.insert(name.clone(), info);
        g.outputs.push(name);
    }
    g.prune();
    Ok(g)
}

