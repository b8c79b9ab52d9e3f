//! params: number of parameters — elements of the weights and biases of Conv/Gemm/MatMul
//! and of the scale and bias of normalisation nodes (running statistics excluded; constant
//! scale/bias a non-affine BatchNorm was exported with count, as the graph cannot tell).

use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "params", paper: "Abdelfattah et al. 2021 (baseline)", direction: Direction::Higher, data: DataNeed::NoData, about: "number of parameters", passes: "none", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let g = &ctx.model.raw.graph;
    let n: usize = ctx.parameter_names().iter().map(|p| g.initializers[p].len()).sum();
    Ok(ProxyValue::scalar(n as f64))
}
