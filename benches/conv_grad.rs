//! Times a 3×3 convolution's gradients on tract (float32 unless `CONV_GRAD_F64=1`), with
//! unoptimised plans (what scoring uses) and optimised ones: forward alone, forward + data
//! gradient (ConvTranspose), forward + weight gradient in the default per-offset
//! formulation (one matrix product per kernel offset) and in the alternative formulation
//! (one convolution whose kernel is the whole output gradient), and forward + both
//! gradients. Median of 5 runs after a warm-up, the programs taking turns; times include
//! passing the tensors in and out of the engine.
//!
//! `cargo bench --bench conv_grad [-- BATCH]`; environment: `ZEROCOST_THREADS` (default 1),
//! `CONV_GRAD_BATCH` (64), `CONV_GRAD_CHANNELS` (64), `CONV_GRAD_SIZE` (32), `CONV_GRAD_F64`.

use anyhow::Result;
use std::time::Instant;
use zerocost::autodiff::append_gradients;
use zerocost::autodiff::check::{rand_tensor, single_op_graph, Arg};
use zerocost::engine::tract::TractEngine;
use zerocost::engine::Engine;
use zerocost::onnx::builder::Builder;
use zerocost::onnx::ir::{Attr, DType, Graph, Tensor};

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn dtype() -> DType {
    if env_or("CONV_GRAD_F64", 0) == 1 {
        DType::F64
    } else {
        DType::F32
    }
}

fn data(shape: &[usize], seed: u64) -> Tensor {
    rand_tensor(shape, seed).cast(dtype())
}

/// y = Conv(x, W) (pads 1), x a graph input, W a constant; plus a graph input `gy` for the
/// output gradient.
fn forward(n: usize, c: usize, hw: usize) -> Result<Graph> {
    let args = [Arg::Var(data(&[n, c, hw, hw], 1)), Arg::Const(data(&[c, c, 3, 3], 2))];
    let (mut g, _) = single_op_graph("Conv", &args, vec![("pads", Attr::Ints(vec![1; 4]))], 1)?;
    g.inputs.push("gy".into());
    g.types.insert("gy".into(), data(&[n, c, hw, hw], 3).info());
    Ok(g)
}

/// The forward graph with the gradients of `wrt` (seeded by `gy`) as extra outputs.
fn with_gradients(n: usize, c: usize, hw: usize, wrt: &[&str]) -> Result<Graph> {
    let mut g = forward(n, c, hw)?;
    let wrt: Vec<String> = wrt.iter().map(|s| s.to_string()).collect();
    let grads = append_gradients(&mut g, &[("out0".into(), "gy".into())], &wrt)?;
    g.outputs.extend(grads);
    Ok(g)
}

/// dW as one convolution: x_pad with batch and channels swapped, convolved with gy (batch
/// and channels swapped) as the kernel, then transposed to [C_out, C_in, 3, 3].
fn weight_gradient_as_conv(n: usize, c: usize, hw: usize) -> Result<Graph> {
    let mut g = forward(n, c, hw)?;
    let mut b = Builder::new(&mut g, "alt");
    let xp = b.pad("in0", &[0, 0, 1, 1], &[0, 0, 1, 1])?;
    let xt = b.transpose(&xp, &[1, 0, 2, 3])?;
    let gt = b.transpose("gy", &[1, 0, 2, 3])?;
    let dw = b.op("Conv", &[&xt, &gt], vec![])?;
    let dw = b.transpose(&dw, &[1, 0, 2, 3])?;
    g.outputs.push(dw);
    Ok(g)
}

/// Median wall time of each program over 5 runs after one warm-up, in milliseconds; the
/// programs take turns within each round, so that load from other processes spreads evenly.
fn median_times(engine: &TractEngine, graphs: &[Graph], x: &Tensor, gy: &Tensor) -> Result<Vec<f64>> {
    let progs = graphs.iter().map(|g| engine.load(g)).collect::<Result<Vec<_>>>()?;
    let inputs = [("in0", x), ("gy", gy)];
    let mut ms = vec![Vec::new(); progs.len()];
    for round in 0..6 {
        for (p, t) in progs.iter().zip(ms.iter_mut()) {
            let start = Instant::now();
            p.run(&inputs)?;
            if round > 0 {
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(ms
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect())
}

fn main() -> Result<()> {
    let batch_arg = std::env::args().skip(1).find_map(|a| a.parse::<usize>().ok());
    let n = batch_arg.unwrap_or_else(|| env_or("CONV_GRAD_BATCH", 64));
    let c = env_or("CONV_GRAD_CHANNELS", 64);
    let hw = env_or("CONV_GRAD_SIZE", 32);
    let threads = env_or("ZEROCOST_THREADS", 1);
    let gflop = 2.0 * (n * c * c * 9 * hw * hw) as f64 / 1e9;
    println!("conv 3x3 {c}->{c}, batch {n}, {hw}x{hw}, {:?}, tract, {threads} thread(s)", dtype());
    println!("{gflop:.2} GFLOP per convolution-sized product");
    let x = data(&[n, c, hw, hw], 1);
    let gy = data(&[n, c, hw, hw], 3);
    let cases = [
        ("forward", forward(n, c, hw)?),
        ("forward + dx (ConvTranspose)", with_gradients(n, c, hw, &["in0"])?),
        ("forward + dW (per-offset MatMul, default)", with_gradients(n, c, hw, &["in1"])?),
        ("forward + dW (conv with gy as kernel)", weight_gradient_as_conv(n, c, hw)?),
        ("forward + dx + dW (default)", with_gradients(n, c, hw, &["in0", "in1"])?),
    ];
    let (names, graphs): (Vec<&str>, Vec<Graph>) = cases.into_iter().unzip();
    let plain = median_times(&TractEngine::with_threads(threads), &graphs, &x, &gy)?;
    let optimized = median_times(&TractEngine::with_threads(threads).optimized(), &graphs, &x, &gy)?;
    println!("{:<44} {:>12} {:>12}", "program (median ms)", "unoptimised", "optimised");
    for ((name, a), b) in names.iter().zip(plain).zip(optimized) {
        println!("{name:<44} {a:>12.1} {b:>12.1}");
    }
    Ok(())
}
