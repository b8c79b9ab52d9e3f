//! synflow (Tanaka et al., NeurIPS 2020, as in the paper's code): BatchNormalization
//! removed, every parameter replaced by its absolute value, float64, one all-ones input
//! sample, L = Σ outputs; Σ |W ⊙ ∂L/∂W|. `synflow_bn` keeps BN (batch statistics on the
//! single sample).

use super::passes::synflow::SynflowPass;
use super::{Direction, DataNeed, sum_pairs, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "synflow", paper: "Tanaka et al. 2020, SynFlow (NeurIPS)", direction: Direction::Higher, data: DataNeed::NoData, about: "Σ |W⊙∂(Σy)/∂W|, |params|, no BN, float64, ones input", passes: "synflow pass", compute: no_bn };
pub const PROXY_BN: Proxy = Proxy { name: "synflow_bn", paper: "Tanaka et al. 2020; Abdelfattah et al. 2021 (BN kept)", direction: Direction::Higher, data: DataNeed::NoData, about: "synflow with BatchNormalization kept", passes: "synflow pass", compute: with_bn };

fn no_bn(ctx: &Ctx) -> Result<ProxyValue> {
    compute(ctx, false)
}

fn with_bn(ctx: &Ctx) -> Result<ProxyValue> {
    compute(ctx, true)
}

fn compute(ctx: &Ctx, keep_bn: bool) -> Result<ProxyValue> {
    let s = ctx.pass(&SynflowPass { keep_bn })?;
    let per = s.weights.iter().zip(&s.weight_grads).map(|(w, g)| sum_pairs(w, g, |a, b| (a * b).abs())).collect();
    Ok(ProxyValue::from_layers(per))
}
