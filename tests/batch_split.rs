//! A data pass whose program would not fit the memory budget is split into chunks of the
//! batch where that is exact (the scores equal the unsplit run's), and refused with the
//! memory it needs and the largest batch that fits where the samples are coupled
//! (BatchNormalization with batch statistics). The budget is process-wide: the library-level
//! checks are one test; the command line runs in processes of its own.

mod common;

use common::{rel, root};
use indexmap::IndexMap;
use std::process::Command;
use zerocost::data::Batch;
use zerocost::memory::set_max_memory;
use zerocost::onnx::canon::{BnMode, CanonOptions};
use zerocost::onnx::layers::scored_layers;
use zerocost::onnx::Model;
use zerocost::proxies::passes::{loss_program_with, sum_output_program, LossExtras};
use zerocost::proxies::split::program_bytes;
use zerocost::proxies::{find_measures, ProxyResult, ScoreOptions};

const LOSS_PROXIES: &[&str] = &["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain"];

/// The bytes of the forward graph, the loss program (every extra the loss proxies ask for)
/// and the Jacobian program at `n` samples (under the default budget).
fn program_sizes(model: &Model, n: usize, bn: BnMode, float64: bool) -> (u128, u128, u128) {
    let shapes = model.input_shapes(n, None).unwrap();
    let g = model.canonical(&shapes, &CanonOptions { bn, abs_params: false, float64 }).unwrap();
    let layers = scored_layers(&g).unwrap();
    let extras = LossExtras { fisher: true, input_grad: false, grasp: true, grasp_given: false, jacobian: true };
    let loss = loss_program_with(&g, &layers, extras).unwrap();
    let (jac, _) = sum_output_program(&g, &g.inputs[..1]).unwrap();
    (g.tensor_bytes().0, program_bytes(&loss.graph), program_bytes(&jac))
}

/// A budget under `whole` (the program at the batch) that fits chunks of about a third of
/// it (so that the chunks have two sizes) and the forward graph at the batch.
fn budget_for_thirds(one: u128, whole: u128, forward: u128) -> u64 {
    let b = (one + (whole - one) / 3).max(forward);
    assert!(b < whole, "the forward graph ({forward}) leaves no room to split the program ({whole})");
    b as u64
}

fn batch(case: &str) -> Batch {
    common::fixtures().into_iter().find(|c| c.name == case).unwrap_or_else(|| panic!("fixture {case}")).batch()
}

fn scores(model: &Model, batch: &Batch, names: &[&str], bn: BnMode) -> IndexMap<String, ProxyResult> {
    let engine = zerocost::engine::by_name("tract").unwrap();
    let opts = ScoreOptions { bn, input_shape: None, float64: true };
    find_measures(model, batch, names, engine.as_ref(), &opts)
}

fn value(r: &IndexMap<String, ProxyResult>, name: &str) -> f64 {
    let p = &r[name];
    p.value.as_ref().unwrap_or_else(|| panic!("{name}: {:?}", p.error)).total
}

/// Split and unsplit scores agree to 1e-9 in float64, for every exact proxy.
fn same_split_and_whole(case: &str, bn: BnMode) {
    let model = Model::load(root().join(format!("models/{case}.onnx"))).unwrap();
    let b = batch(case);
    let n = b.len();
    set_max_memory(0);
    let (forward, whole, jac_whole) = program_sizes(&model, n, bn, true);
    let (_, one, jac_one) = program_sizes(&model, 1, bn, true);
    let mut names = LOSS_PROXIES.to_vec();
    names.push("synflow");
    let reference = scores(&model, &b, &names, bn);
    let jac_reference = scores(&model, &b, &["jacob_cov"], bn);

    set_max_memory(budget_for_thirds(one, whole, forward));
    let split = scores(&model, &b, &names, bn);
    set_max_memory(budget_for_thirds(jac_one, jac_whole, forward));
    let jac_split = scores(&model, &b, &["jacob_cov"], bn);
    set_max_memory(0);
    for name in &names {
        let (a, s) = (value(&reference, name), value(&split, name));
        assert!(rel(s, a) < 1e-9, "{case} {name}: split {s} vs whole {a}");
    }
    let (a, s) = (value(&jac_reference, "jacob_cov"), value(&jac_split, "jacob_cov"));
    assert!(rel(s, a) < 1e-9, "{case} jacob_cov (Jacobian pass): split {s} vs whole {a}");
    assert_eq!(value(&jac_reference, "jacob_cov"), value(&reference, "jacob_cov"));
}

/// The largest batch size a refusal suggests.
fn suggested_batch(message: &str) -> usize {
    let i = message.find("--batch-size ").unwrap_or_else(|| panic!("no batch size suggested: {message}")) + "--batch-size ".len();
    message[i..].split(' ').next().unwrap().parse().unwrap()
}

/// A BatchNormalization model under a budget its loss program exceeds: each loss proxy
/// fails naming itself, the memory and the largest batch; synflow and params still score;
/// at the suggested batch the loss proxies score.
fn refused_with_batch_statistics() {
    let model = Model::load(root().join("models/nb201_a.onnx")).unwrap();
    let b = batch("nb201_a");
    set_max_memory(0);
    let (forward, whole, _) = program_sizes(&model, b.len(), BnMode::Batch, true);
    let (_, one, _) = program_sizes(&model, 1, BnMode::Batch, true);
    set_max_memory(budget_for_thirds(one, whole, forward));
    let mut names = LOSS_PROXIES.to_vec();
    names.extend(["synflow", "params"]);
    let r = scores(&model, &b, &names, BnMode::Batch);
    let mut suggested = 0;
    for name in LOSS_PROXIES {
        let e = r[*name].error.as_deref().unwrap_or_else(|| panic!("{name} was not refused"));
        for part in [*name, "over the memory budget", &format!("({whole} bytes)"), "BatchNormalization", "--bn running"] {
            assert!(e.contains(part), "{name}: '{part}' missing from: {e}");
        }
        suggested = suggested_batch(e);
    }
    assert!(suggested >= 1 && suggested < b.len(), "{suggested}");
    assert!(value(&r, "synflow") > 0.0 && value(&r, "params") > 0.0);
    let smaller = Batch { inputs: b.inputs.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..suggested)).to_owned(), targets: b.targets[..suggested].to_vec() };
    let r = scores(&model, &smaller, LOSS_PROXIES, BnMode::Batch);
    set_max_memory(0);
    for name in LOSS_PROXIES {
        assert!(r[*name].value.is_some(), "{name} at the suggested batch {suggested}: {:?}", r[*name].error);
    }
}

#[test]
fn split_batches_score_as_whole_ones_and_coupled_batches_are_refused() {
    same_split_and_whole("tiny_mlp", BnMode::Batch);
    same_split_and_whole("tiny_cnn", BnMode::Running);
    refused_with_batch_statistics();
}

/// The JSON object of the one model scored.
fn zerocost(args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_zerocost")).args(args).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)));
    v[0].clone()
}

/// A budget that forces the loss program of `model` at batch 16 into chunks, in float32.
fn cli_budget(model: &Model, bn: BnMode) -> String {
    let (forward, whole, _) = program_sizes(model, 16, bn, false);
    let (_, one, _) = program_sizes(model, 1, bn, false);
    budget_for_thirds(one, whole, forward).to_string()
}

/// `score --max-memory`: the refusal reaches the user for a BN model; with `--bn running`
/// the batch is split and scores as without the budget.
#[test]
fn the_command_line_splits_or_says_why_not() {
    let nb201 = root().join("models/nb201_a.onnx");
    let model = Model::load(&nb201).unwrap();
    let args = ["--batch-size", "16", "--engine", "tract", "--format", "json", "--proxy", "snip,fisher,grasp,jacob_cov,synflow"];
    let path = nb201.to_str().unwrap();
    let max = cli_budget(&model, BnMode::Batch);
    let r = zerocost(&[&["score", path, "--max-memory", &max][..], &args].concat());
    let e = r["errors"]["snip"].as_str().unwrap_or_else(|| panic!("snip not refused: {r}"));
    assert!(e.contains("snip") && e.contains("over the memory budget") && e.contains("--batch-size ") && e.contains("--bn running"), "{e}");
    assert!(r["scores"]["synflow"].as_f64().is_some(), "{r}");

    // with running statistics (nb201_a's BN parameters are not constants: tiny_cnn's are)
    let cnn = root().join("models/tiny_cnn.onnx");
    let path = cnn.to_str().unwrap();
    let max = cli_budget(&Model::load(&cnn).unwrap(), BnMode::Running);
    let r = zerocost(&[&["score", path, "--max-memory", &max, "--bn", "running"][..], &args].concat());
    let whole = zerocost(&[&["score", path, "--bn", "running"][..], &args].concat());
    for name in ["snip", "fisher", "jacob_cov"] {
        let (s, w) = (r["scores"][name].as_f64().unwrap_or_else(|| panic!("{r}")), whole["scores"][name].as_f64().unwrap());
        assert!(rel(s, w) < 1e-4, "{name}: split {s} vs whole {w}");
    }
}
