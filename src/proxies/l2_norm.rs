//! l2_norm (as in the paper's code): Σ over scored layers of ‖W‖₂. Needs no data.

use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "l2_norm", paper: "Abdelfattah et al. 2021", direction: Direction::Higher, data: DataNeed::NoData, about: "Σ_layers ‖W‖₂", passes: "none", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let base = ctx.base()?;
    let per = base.weights.iter().map(|w| w.to_f64_vec().iter().map(|v| v * v).sum::<f64>().sqrt()).collect();
    Ok(ProxyValue::from_layers(per))
}
