//! grasp (Wang et al., ICLR 2020, as in the paper's code with T = 1): Σ −W ⊙ Hg, where g is
//! ∂L/∂W from the loss pass held constant and Hg = ∂(Σ g·∂L/∂W)/∂W is computed exactly by
//! differentiating the gradient program (no finite differences). `details.abs_sum` is
//! Σ|W ⊙ Hg|, the scale to judge the (cancelling) total against.

use super::passes::hessian_grad::HessianGradPass;
use super::{Direction, DataNeed, sum_pairs, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "grasp", paper: "Wang et al. 2020, GraSP (ICLR)", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ −W⊙Hg, exact Hessian-gradient product", passes: "loss pass + second-order pass", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let (base, hg) = (ctx.base()?, ctx.pass(&HessianGradPass)?);
    let per: Vec<f64> = base.weights.iter().zip(hg.iter()).map(|(w, h)| sum_pairs(w, h, |a, b| -a * b)).collect();
    let abs_sum: f64 = base.weights.iter().zip(hg.iter()).map(|(w, h)| sum_pairs(w, h, |a, b| (a * b).abs())).sum();
    let mut v = ProxyValue::from_layers(per);
    v.details = Some(serde_json::json!({ "abs_sum": abs_sum }));
    Ok(v)
}
