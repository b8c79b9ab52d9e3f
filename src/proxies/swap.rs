//! swap — SWAP (Peng, Song, Lin, Wang, Wen & Song, "SWAP-NAS: Sample-Wise Activation
//! Patterns for Ultra-fast NAS", ICLR 2024), as its official code
//! (`SampleWiseActivationPatterns`): forward hooks on every ReLU whose input is a 4-D
//! feature map collect sign(ReLU output) = (input > 0) per sample; the activations of all
//! such ReLUs are concatenated (N samples × M units) and transposed; the score is the number
//! of distinct rows, i.e. of distinct sample-wise patterns of the units (a unit's pattern is
//! its N-bit vector over the batch). The unregularised score (the code's `regular=False`,
//! factor 1); merged duplicate ReLU calls add no new pattern. Forward only (probe pass).

use super::passes::probe::ProbePass;
use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::{bail, Result};
use std::collections::HashSet;

pub const PROXY: Proxy = Proxy { name: "swap", paper: "Peng et al. 2024, SWAP-NAS (ICLR)", direction: Direction::Higher, data: DataNeed::Inputs, about: "number of distinct sample-wise activation patterns of the units of 4-D ReLUs", passes: "probe pass", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let p = ctx.pass(&ProbePass)?;
    let n = ctx.batch.len();
    let words = n.div_ceil(64);
    let mut seen: HashSet<Vec<u64>> = HashSet::new();
    let mut units = 0usize;
    for (c, r) in p.codes.iter().zip(&p.relus) {
        if r.shape.len() != 4 {
            continue;
        }
        units += c.units;
        for u in 0..c.units {
            let mut pat = vec![0u64; words];
            for i in 0..n {
                if c.get(i, u) {
                    pat[i / 64] |= 1 << (i % 64);
                }
            }
            seen.insert(pat);
        }
    }
    if units == 0 {
        bail!("the model has no Relu on a 4-D feature map");
    }
    Ok(ProxyValue::with_details(seen.len() as f64, serde_json::json!({ "units": units })))
}
