//! params: number of parameters — elements of the weights and biases of Conv/Gemm/MatMul
//! and of the scale and bias of normalisation nodes (running statistics excluded; constant
//! scale/bias a non-affine BatchNorm was exported with count, as the graph cannot tell).

use super::{Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "params", about: "number of parameters (no data)", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let g = &ctx.model.raw.graph;
    let n: usize = ctx.parameter_names().iter().map(|p| g.initializers[p].len()).sum();
    Ok(ProxyValue::scalar(n as f64))
}
