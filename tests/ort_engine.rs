//! The ONNX Runtime engine (cargo feature `ort`): every proxy on every fixture agrees with
//! tract, float64 programs go to tract, a missing library and a missing GPU are clear
//! errors. Run with `cargo test --release --features ort --test ort_engine`. Without the
//! feature, or without an ONNX Runtime library (`pip install onnxruntime`), the tests print
//! SKIPPED and pass, except under CI (`CI` set), where `.ci/run` installs the library and its
//! absence fails.

mod common;

#[cfg(not(feature = "ort"))]
#[test]
fn ort_engine_skipped_without_the_feature() {
    common::skip_or_fail("ort_engine", "zerocost was built without the `ort` feature (cargo test --features ort)");
}

#[cfg(feature = "ort")]
mod with_ort {
    use super::common::{fixtures, shared_references, Case};
    use std::process::Command;
    use zerocost::engine::ort::{self, OrtEngine};
    use zerocost::engine::tract::TractEngine;
    use zerocost::engine::by_name_with_threads;
    use zerocost::onnx::Model;
    use indexmap::IndexMap;
    use zerocost::proxies::{find_measures, ProxyResult, ScoreOptions};

    /// The runtime, or None after printing why the test is skipped.
    fn runtime_or_skip(test: &str) -> Option<&'static ort::Runtime> {
        match ort::available() {
            Ok(rt) => Some(rt),
            Err(why) => {
                super::common::skip_or_fail(test, &format!("no ONNX Runtime library ({why})"));
                None
            }
        }
    }

    fn cases() -> Vec<Case> {
        let mut c = fixtures();
        c.extend(shared_references());
        assert!(!c.is_empty(), "no fixtures found");
        c
    }

    /// The proxies compared: the paper's and the other seed proxies;
    /// `ZEROCOST_ORT_TEST_PROXIES=all` (or a comma-separated list) for others.
    fn proxies() -> Vec<&'static str> {
        match std::env::var("ZEROCOST_ORT_TEST_PROXIES") {
            Ok(s) if !s.trim().is_empty() => zerocost::proxies::resolve_names(&[s]).unwrap(),
            _ => vec!["grad_norm", "snip", "grasp", "fisher", "jacob_cov", "plain", "synflow", "synflow_bn", "l2_norm", "params", "flops"],
        }
    }

    /// Relative difference of two results of one proxy, judged on the proxy's scale: the
    /// signed sums cancel, so grasp against Σ|W⊙Hg| and plain against Σ|W⊙dW| (snip), as
    /// tests/parity.rs judges float32 results.
    fn difference(name: &str, a: &IndexMap<String, ProxyResult>, b: &IndexMap<String, ProxyResult>) -> Result<(f64, f64), String> {
        match (&a[name].value, &b[name].value) {
            (Some(x), Some(y)) => {
                let scale = match name {
                    "grasp" => x.details.as_ref().and_then(|d| d["abs_sum"].as_f64()).unwrap_or(x.total.abs()),
                    "plain" => a.get("snip").and_then(|s| s.value.as_ref()).map(|s| s.total.abs()).unwrap_or(x.total.abs()),
                    _ => x.total.abs(),
                };
                let scale = scale.max(1e-30);
                if x.total == y.total {
                    return Ok((0.0, scale));
                }
                Ok(((x.total - y.total).abs() / scale, scale))
            }
            (None, None) => Ok((0.0, 1.0)), // both failed (e.g. jacob_cov undefined): same verdict
            (Some(_), None) => Err(format!("only ONNX Runtime failed: {}", b[name].error.clone().unwrap_or_default())),
            (None, Some(_)) => Err(format!("only tract failed: {}", a[name].error.clone().unwrap_or_default())),
        }
    }

    /// `--precision f32`: the data passes really run on ONNX Runtime (synflow's float64
    /// program goes to tract on both sides). Every proxy, every fixture: 1e-4 relative.
    /// Two float32 engines round differently; where tract's own float32 result is further
    /// than 1e-4 from PyTorch's float64 reference (fisher on nb201_a: 2.5e-4), ONNX
    /// Runtime's passes when it is no further from that reference than tract's.
    #[test]
    fn ort_cpu_matches_tract_on_every_fixture() {
        let Some(rt) = runtime_or_skip("ort_cpu_matches_tract_on_every_fixture") else { return };
        eprintln!("using {rt:?}");
        let tract = TractEngine::default();
        let ort = OrtEngine::cpu(1).unwrap();
        let opts = ScoreOptions { float64: false, ..Default::default() };
        let names = proxies();
        let mut failures = Vec::new();
        for case in cases() {
            let model = Model::load(&case.model).unwrap();
            let batch = case.batch();
            let a = find_measures(&model, &batch, &names, &tract, &opts);
            let b = find_measures(&model, &batch, &names, &ort, &opts);
            for name in &names {
                match difference(name, &a, &b) {
                    Ok((d, scale)) => {
                        let (x, y) = (a[*name].value.as_ref().map(|v| v.total), b[*name].value.as_ref().map(|v| v.total));
                        let mut verdict = String::new();
                        let mut ok = d <= 1e-4;
                        if !ok {
                            if let (Some(x), Some(y), Some(r)) = (x, y, case.f64_value(name)) {
                                let (ex, ey) = ((x - r).abs() / scale, (y - r).abs() / scale);
                                ok = ey <= ex.max(1e-4);
                                verdict = format!(" (vs PyTorch float64: tract {ex:.2e}, ort {ey:.2e})");
                            }
                        }
                        eprintln!(
                            "{:<28} {:<14} tract {:>16.9e} ort {:>16.9e} diff {d:.2e}{verdict}",
                            case.name,
                            name,
                            x.unwrap_or(f64::NAN),
                            y.unwrap_or(f64::NAN)
                        );
                        if !ok {
                            failures.push(format!("{}: {name}: tract {x:?}, ort-cpu {y:?}, relative difference {d:.2e} > 1e-4{verdict}", case.name));
                        }
                    }
                    Err(e) => failures.push(format!("{}: {name}: {e}", case.name)),
                }
            }
        }
        assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    }

    /// At the default precision every program is float64, which ONNX Runtime's CPU provider
    /// cannot run: they go to tract, so the numbers are tract's exactly.
    #[test]
    fn float64_programs_run_on_tract() {
        if runtime_or_skip("float64_programs_run_on_tract").is_none() {
            return;
        }
        let case = fixtures().into_iter().find(|c| c.name == "tiny_cnn").expect("tiny_cnn fixture");
        let model = Model::load(&case.model).unwrap();
        let batch = case.batch();
        let names = ["grad_norm", "synflow", "synflow_bn"];
        let opts = ScoreOptions { float64: true, ..Default::default() };
        let a = find_measures(&model, &batch, &names, &TractEngine::default(), &opts);
        let b = find_measures(&model, &batch, &names, &OrtEngine::cpu(1).unwrap(), &opts);
        for n in names {
            let (x, y) = (a[n].value.as_ref().unwrap().total, b[n].value.as_ref().expect(n).total);
            assert_eq!(x, y, "{n}: tract {x:e}, ort-cpu {y:e}");
            // every program here is float64: the results say they ran on tract
            assert_eq!(b[n].engine.as_deref(), Some("tract"), "{n}");
            assert_eq!(a[n].engine, None, "{n}");
        }
        // float32 data passes run on ONNX Runtime itself, synflow's float64 pass on tract
        let f32_opts = ScoreOptions::default();
        let c = find_measures(&model, &batch, &names, &OrtEngine::cpu(1).unwrap(), &f32_opts);
        assert_eq!(c["grad_norm"].engine, None);
        assert_eq!(c["synflow"].engine.as_deref(), Some("tract"));
    }

    #[test]
    fn engines_by_name() {
        if runtime_or_skip("engines_by_name").is_none() {
            return;
        }
        let e = by_name_with_threads("ort-cpu", 2).unwrap();
        assert_eq!(e.name(), "ort-cpu");
        // a program with integer and boolean tensors round-trips through ONNX Runtime
        let case = fixtures().into_iter().find(|c| c.name == "tiny_mlp").expect("tiny_mlp fixture");
        let model = Model::load(&case.model).unwrap();
        let r = find_measures(&model, &case.batch(), &["grad_norm", "jacob_cov"], e.as_ref(), &ScoreOptions { float64: false, ..Default::default() });
        assert!(r.values().all(|v| v.value.is_some()), "{r:?}");
        assert!(by_name_with_threads("ort-gpu", 1).is_err());
    }

    /// A library that cannot be loaded is one error naming the fix, not a panic.
    #[test]
    fn missing_library_is_a_clear_error() {
        let out = Command::new(env!("CARGO_BIN_EXE_zerocost"))
            .args(["score", "models/tiny_mlp.onnx", "--engine", "ort-cpu", "--precision", "f32", "--proxy", "grad_norm"])
            .current_dir(super::common::root())
            .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        eprintln!("{err}");
        assert!(!out.status.success(), "scoring without a runtime succeeded");
        assert!(err.contains("pip install onnxruntime") && err.contains("ORT_DYLIB_PATH"), "unclear error: {err}");
        assert!(!err.contains("panicked"), "a panic: {err}");
    }

    /// `--ort-lib` names the library, and wins over ORT_DYLIB_PATH; `--ort-opt` is checked.
    #[test]
    fn ort_lib_flag_names_the_library() {
        let run = |args: &[&str], env_path: Option<&str>| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_zerocost"));
            c.args(["score", "models/tiny_mlp.onnx", "--engine", "ort-cpu", "--precision", "f32", "--proxy", "grad_norm"]).args(args);
            c.current_dir(super::common::root());
            match env_path {
                Some(p) => c.env("ORT_DYLIB_PATH", p),
                None => c.env_remove("ORT_DYLIB_PATH"),
            };
            c.env_remove("ZEROCOST_ORT_LIB").output().unwrap()
        };
        let out = run(&["--ort-lib", "/nonexistent/flag/libonnxruntime.so"], None);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("/nonexistent/flag/libonnxruntime.so"), "{err}");
        if let Some(lib) = runtime_or_skip("ort_lib_flag_names_the_library") {
            let lib = lib.path.to_string_lossy().to_string();
            let out = run(&["--ort-lib", &lib, "--ort-opt", "basic"], Some("/nonexistent/env/libonnxruntime.so"));
            assert!(out.status.success(), "the flag should win over ORT_DYLIB_PATH: {}", String::from_utf8_lossy(&out.stderr));
        }
        let out = run(&["--ort-opt", "fastest"], None);
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("possible values"));
    }

    fn gpu_present() -> bool {
        std::path::Path::new("/dev/nvidia0").exists()
            || Command::new("nvidia-smi").arg("-L").output().map(|o| o.status.success() && !o.stdout.is_empty()).unwrap_or(false)
    }

    /// Without a GPU (or with the CPU-only onnxruntime package), `ort-cuda` is an error
    /// that says what is missing, never a silent run on the CPU; `ort` falls back to the
    /// CPU with a notice.
    #[test]
    fn ort_cuda_without_gpu_is_a_clear_error() {
        if runtime_or_skip("ort_cuda_without_gpu_is_a_clear_error").is_none() {
            return;
        }
        if gpu_present() {
            eprintln!("SKIPPED ort_cuda_without_gpu_is_a_clear_error: a GPU is present (see the ignored test ort_cuda_matches_tract)");
            return;
        }
        let err = match by_name_with_threads("ort-cuda", 1) {
            Ok(e) => panic!("ort-cuda was built without a GPU (engine {})", e.name()),
            Err(e) => format!("{e:#}"),
        };
        eprintln!("{err}");
        assert!(err.contains("CUDA") && err.contains("onnxruntime-gpu"), "unclear error: {err}");
        let auto = by_name_with_threads("ort", 1).unwrap();
        assert_eq!(auto.name(), "ort-cpu");
    }

    /// On a GPU machine with onnxruntime-gpu: `cargo test --release --features ort --test
    /// ort_engine -- --ignored`. float32 data passes on CUDA (TF32 off) against tract.
    #[test]
    #[ignore = "needs an NVIDIA GPU and the onnxruntime-gpu package"]
    fn ort_cuda_matches_tract() {
        if runtime_or_skip("ort_cuda_matches_tract").is_none() {
            return;
        }
        let cuda = OrtEngine::cuda(ort::device_from_env().unwrap(), 1).unwrap();
        let opts = ScoreOptions { float64: false, ..Default::default() };
        let names = proxies();
        let mut failures = Vec::new();
        for case in fixtures() {
            let model = Model::load(&case.model).unwrap();
            let batch = case.batch();
            let a = find_measures(&model, &batch, &names, &TractEngine::default(), &opts);
            let b = find_measures(&model, &batch, &names, &cuda, &opts);
            for name in &names {
                match difference(name, &a, &b) {
                    Ok((d, _)) if d <= 1e-4 => {}
                    Ok((d, _)) => failures.push(format!("{}: {name}: relative difference {d:.2e}", case.name)),
                    Err(e) => failures.push(format!("{}: {name}: {e}", case.name)),
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
