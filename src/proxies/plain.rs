//! plain (Mozer & Smolensky 1989, as in the paper's code): Σ W ⊙ ∂L/∂W (signed).

use super::passes::loss::LossPass;
use super::{Direction, DataNeed, sum_pairs, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "plain", paper: "Mozer & Smolensky 1989; Abdelfattah et al. 2021", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ W⊙∂L/∂W", passes: "loss pass", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let (base, lr) = (ctx.base()?, ctx.pass(&LossPass)?);
    let per = base.weights.iter().zip(&lr.weight_grads).map(|(w, g)| sum_pairs(w, g, |a, b| a * b)).collect();
    Ok(ProxyValue::from_layers(per))
}
