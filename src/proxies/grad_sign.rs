//! grad_sign — GradSign (Zhang & Jia, "GradSign: Model Performance Inference with
//! Theoretical Insights", ICLR 2022), as its official code (`get_gradsign`): each sample is
//! run alone (a batch of one, train-mode BatchNorm with that sample's statistics) and its
//! cross-entropy differentiated w.r.t. every Conv/Linear weight (the scored layers); the
//! score is Σ over weights of |Σ_samples sign(∂L_n/∂w)| (`np.nansum`: a weight whose
//! gradient is NaN for some sample is dropped). Per-layer values are the same sum per layer.
//! Pass: the loss program canonicalised at batch 1, loaded once and run once per sample
//! (N runs at batch 1: about the work of one loss pass on the whole batch).

use super::{Direction, DataNeed, Ctx, Proxy, ProxyValue};
use anyhow::Result;

pub const PROXY: Proxy = Proxy { name: "grad_sign", paper: "Zhang & Jia 2022, GradSign (ICLR)", direction: Direction::Higher, data: DataNeed::InputsAndLabels, about: "Σ_w |Σ_n sign(∂L_n/∂w)|, per-sample loss gradients at batch 1", passes: "N loss passes at batch 1", compute };

fn compute(ctx: &Ctx) -> Result<ProxyValue> {
    let base = ctx.base()?;
    let layers = &base.layers;
    let mut acc: Vec<Vec<f64>> = layers.iter().map(|l| vec![0.0; l.weight_shape.iter().product()]).collect();
    super::passes::per_sample_loss::per_sample_loss_grads(ctx, |_, grads| {
        for (a, g) in acc.iter_mut().zip(grads) {
            for (s, v) in a.iter_mut().zip(g.to_f64_vec()) {
                *s += if v > 0.0 {
                    1.0
                } else if v < 0.0 {
                    -1.0
                } else if v == 0.0 {
                    0.0
                } else {
                    f64::NAN
                };
            }
        }
        Ok(())
    })?;
    let per = acc.iter().map(|a| a.iter().filter(|v| !v.is_nan()).map(|v| v.abs()).sum()).collect();
    Ok(ProxyValue::from_layers(per))
}
