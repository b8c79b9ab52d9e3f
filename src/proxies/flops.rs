//! flops: multiply-accumulates of the scored layers (Conv, Gemm, MatMul) for one sample.

use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "flops", paper: "Abdelfattah et al. 2021 (baseline)", direction: Direction::Higher, data: DataNeed::NoData, about: "multiply-accumulates of scored layers per sample", passes: "none", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let per: Vec<f64> = ctx.base()?.layers.iter().map(|l| l.macs_per_sample as f64).collect();
    Ok(ProxyValue::from_layers(per))
}
