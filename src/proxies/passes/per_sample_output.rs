//! TE-NAS's per-sample output gradients: ∂(Σ_c z[n,c])/∂θ on the forward of the first 16
//! samples, one run of the Σ-outputs program per sample with a one-row seed (ntk_cond).

use super::sub_batch::{canonical_at, sub_inputs};
use super::{distinct, output, SEED};
use crate::engine::Program;
use crate::onnx::ir::{Graph, Tensor};
use crate::proxies::Ctx;
use anyhow::Result;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// Canonical names of the BatchNormalization scales (γ) of the file that are parameters
/// (initializers of the file; the composite BatchNormTrain reads them under their names).
fn bn_scale_tensors(ctx: &Ctx, g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for n in ctx.model.raw.graph.nodes.iter().filter(|n| n.op == "BatchNormalization") {
        let Some(s) = n.input(1) else { continue };
        if !ctx.model.raw.graph.initializers.contains_key(s) {
            continue;
        }
        if g.initializers.contains_key(s) && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// TE-NAS's NTK batch: `--batch_size 16` ("batch size for ntk") in `prune_tenas.py`.
pub const NTK_BATCH: usize = 16;
/// Backward passes appended to one forward in the ntk_cond program (on resnet20, 4 took
/// 20% less time than 1, and 16 no less than 4).
pub const NTK_SEEDS_PER_RUN: usize = 4;

/// A loaded multi-seed program: its seed inputs and, per seed, the gradient outputs.
type SeedProgram = (Vec<String>, Vec<Vec<String>>, Box<dyn Program>);

/// The forward of `g0` followed by `k` backward passes of its first output, each seeded by
/// its own input (`zerocost/seed{j}`, shaped like the output), differentiating w.r.t. `wrt`.
/// One run gives k vector-Jacobian products for the price of one forward.
pub fn multi_seed_program(g0: &Graph, wrt: &[String], k: usize) -> Result<(Graph, Vec<String>, Vec<Vec<String>>)> {
    let mut g = g0.clone();
    let out = g.outputs[0].clone();
    let info = g.info(&out)?.clone();
    let mut seeds = Vec::with_capacity(k);
    let mut grads = Vec::with_capacity(k);
    for j in 0..k {
        let s = format!("{}{j}", SEED);
        g.inputs.push(s.clone());
        g.types.insert(s.clone(), info.clone());
        grads.push(crate::autodiff::append_gradients(&mut g, &[(out.clone(), s.clone())], wrt)?);
        seeds.push(s);
    }
    g.outputs = distinct(grads.iter().flatten().cloned());
    Ok((g, seeds, grads))
}

/// TE-NAS's per-sample gradients: on the first min(N, 16) samples as one batch (its own
/// forward, train-mode BatchNorm with their statistics, which couples the samples), for each
/// sample n the gradient ∂(Σ_c z[n,c])/∂θ, θ = the scored weights and the BatchNormalization
/// scales (PyTorch's parameters named `weight`). One run of the Σ-outputs program per sample,
/// seeded with ones on row n only. Returns the rows of G (samples × parameters) and the
/// number of BN scales included. The runs carry 4 seeds each (`multi_seed_program`).
pub fn per_sample_output_grads(ctx: &Ctx) -> Result<(Vec<Vec<f64>>, usize)> {
    let n = ctx.batch.len().min(NTK_BATCH);
    let (g0, layers) = canonical_at(ctx, n)?;
    let mut wrt: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
    let scales = bn_scale_tensors(ctx, &g0);
    let n_scales = scales.len();
    wrt.extend(scales);
    let x = sub_inputs(ctx, &g0, 0, n)?;
    let info = g0.info(&g0.outputs[0])?.clone();
    let per_row: usize = info.shape[1..].iter().product();
    let k = NTK_SEEDS_PER_RUN.clamp(1, n);
    let mut rows = Vec::with_capacity(n);
    let mut programs: HashMap<usize, SeedProgram> = HashMap::new();
    let t0 = std::time::Instant::now();
    for start in (0..n).step_by(k) {
        let m = k.min(n - start);
        if let Entry::Vacant(e) = programs.entry(m) {
            let (g, seeds, grads) = multi_seed_program(&g0, &wrt, m)?;
            e.insert((seeds, grads, ctx.engine.load(&g)?));
        }
        let (seeds, grads, prog) = &programs[&m];
        let seed_values: Vec<Tensor> = (start..start + m)
            .map(|i| {
                let mut v = vec![0.0; n * per_row];
                v[i * per_row..(i + 1) * per_row].iter_mut().for_each(|a| *a = 1.0);
                Tensor::from_f64(info.dtype, &info.shape, v)
            })
            .collect();
        let mut bind: Vec<(&str, &Tensor)> = vec![(&g0.inputs[0], &x)];
        for (s, v) in seeds.iter().zip(&seed_values) {
            bind.push((s, v));
        }
        let out = prog.run(&bind)?;
        for gs in grads {
            let mut row = Vec::new();
            for name in gs {
                row.extend(output(&out, name)?.to_f64_vec());
            }
            rows.push(row);
        }
    }
    if std::env::var_os("ZEROCOST_DEBUG").is_some() {
        eprintln!("ntk_cond: {n} samples, {k} seeds per run, {:.2}s", t0.elapsed().as_secs_f64());
    }
    Ok((rows, n_scales))
}
