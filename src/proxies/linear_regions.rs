//! linear_regions — TE-NAS's linear-region count (Chen, Gong & Wang, "Neural Architecture
//! Search on ImageNet in Four GPU Hours: A Theoretically Inspired Perspective", ICLR 2021),
//! as its official code (`LinearRegionCount`): forward hooks on every ReLU whose input is a
//! 4-D feature map record sign(ReLU output) = (input > 0); concatenated per sample, the
//! number of distinct patterns among the batch's samples is the number of linear regions
//! the batch visits (`calc_LR`: Σ_i 1/#{j : pattern_j = pattern_i}). Computed on the
//! scoring batch (TE-NAS itself counts on 3,000 samples of 3×3 inputs with a 1-channel copy
//! of the network, which an ONNX file does not provide). Forward only (probe pass).

use super::passes::probe::ProbePass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};
use std::collections::HashSet;

pub const PROXY: Proxy = Proxy { name: "linear_regions", paper: "Chen et al. 2021, TE-NAS (ICLR)", direction: Direction::Higher, data: DataNeed::Inputs, about: "number of distinct ReLU activation patterns among the batch's samples", passes: "probe pass", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let p = ctx.pass(&ProbePass)?;
    let n = ctx.batch.len();
    let used: Vec<_> = p.codes.iter().zip(&p.relus).filter(|(_, r)| r.shape.len() == 4).map(|(c, _)| c).collect();
    if used.is_empty() {
        bail!("the model has no Relu on a 4-D feature map");
    }
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    for i in 0..n {
        let mut row = Vec::new();
        for c in &used {
            row.extend_from_slice(c.row(i));
        }
        seen.insert(row);
    }
    Ok(ProxyValue::scalar(seen.len() as f64))
}
