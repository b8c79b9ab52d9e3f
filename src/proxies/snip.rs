//! snip (Lee et al., ICLR 2019): Σ |W ⊙ ∂L/∂W|, the gradient w.r.t. a multiplicative mask of ones.

use super::passes::loss::LossPass;
use super::{Direction, DataNeed, sum_pairs, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "snip", paper: "Lee et al. 2019, SNIP (ICLR)", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ |W⊙∂L/∂W|", passes: "loss pass", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let (base, lr) = (ctx.base()?, ctx.pass(&LossPass)?);
    let per = base.weights.iter().zip(&lr.weight_grads).map(|(w, g)| sum_pairs(w, g, |a, b| (a * b).abs())).collect();
    Ok(ProxyValue::from_layers(per))
}
