//! grad_norm (Abdelfattah et al., ICLR 2021): Σ over scored layers of ‖∂L/∂W‖₂.

use super::passes::loss::LossPass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "grad_norm", paper: "Abdelfattah et al. 2021, Zero-Cost Proxies for Lightweight NAS (ICLR)", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ_layers ‖∂L/∂W‖₂", passes: "loss pass", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let lr = ctx.pass(&LossPass)?;
    let per = lr.weight_grads.iter().map(|g| g.to_f64_vec().iter().map(|v| v * v).sum::<f64>().sqrt()).collect();
    Ok(ProxyValue::from_layers(per))
}
