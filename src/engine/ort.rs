//! ONNX Runtime engine (cargo feature `ort`): the same gradient programs as tract, run by
//! ONNX Runtime's CPU or CUDA execution provider.
//!
//! The runtime is not linked: `libonnxruntime` is loaded when the first `ort` engine is
//! built (the `ort` crate's `load-dynamic`), so a build downloads nothing. It is looked for
//! in this order:
//! 0. the library the engine's settings name (`--ort-lib`),
//! 1. `ORT_DYLIB_PATH` (the `ort` crate's own variable),
//! 2. `ZEROCOST_ORT_LIB`,
//! 3. the `onnxruntime` or `onnxruntime-gpu` Python package that `python3` imports
//!    (`onnxruntime/capi/libonnxruntime.so.<version>`: the PyPI wheel exports the C API),
//! 4. `libonnxruntime.so` on the system's library path.
//!
//! Engines: `ort-cpu`, `ort-cuda` (device `--device-id`, else `ZEROCOST_CUDA_DEVICE`, else 0) and `ort`
//! (CUDA when its provider can be initialised, else the CPU, with a notice). The CUDA
//! provider is registered with `error_on_failure`, so `ort-cuda` never falls back to the CPU
//! silently; its absence is one error that says what is missing.
//!
//! float64: ONNX Runtime's CPU provider has no float64 Conv, ConvTranspose or AveragePool,
//! so a program that convolves or pools in float64 (synflow's, and the data passes at the
//! default `--precision f64`) runs on tract, with a notice printed once. With `--precision
//! f32` the data passes run on ONNX Runtime (their few float64 nodes, such as batch
//! statistics, have CPU kernels). Any other program with float64 tensors, and on CUDA every
//! one, is tried on ONNX Runtime first and goes to tract only when it cannot be prepared.
//!
//! Settings are given as values ([`OrtOptions`], the CLI's flags); each one left out is read
//! from the environment: `ZEROCOST_ORT_OPT` = disable | basic | extended | layout | all (graph optimisation level,
//! default disable: each program runs once, and the optimiser costs more than it saves), `ZEROCOST_CUDA_DEVICE` = N, `ZEROCOST_CUDA_TF32` = 1 (allow TF32 matrix
//! products on the GPU; off by default so results match the CPU to float32 precision).
//! ONNX Runtime's own log level follows `ORT_LOG` (default error).

use super::tract::TractEngine;
use super::{Engine, OrtOptions, Outputs, Program};
use crate::onnx::composite::{program_for, Target};
use crate::onnx::ir::{DType, Graph, Node, Tensor, TypeInfo};
use crate::onnx::proto::to_model_proto;
use anyhow::{anyhow, bail, Context, Result};
use ndarray::{ArrayD, IxDyn};
use ort::ep::ExecutionProviderDispatch;
use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;
use ort::value::{DynTensor, PrimitiveTensorElementType, TensorElementType, ValueType};
use prost::Message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once, OnceLock};

/// Variable naming the ONNX Runtime library (after the `ort` crate's `ORT_DYLIB_PATH`).
pub const LIB_ENV: &str = "ZEROCOST_ORT_LIB";
/// Variable with the CUDA device id for `ort-cuda` and `ort` (default 0).
pub const DEVICE_ENV: &str = "ZEROCOST_CUDA_DEVICE";
/// Variable with the graph optimisation level (disable | basic | extended | layout | all).
pub const OPT_ENV: &str = "ZEROCOST_ORT_OPT";
/// Variable that allows TF32 matrix products on the GPU when set to 1.
pub const TF32_ENV: &str = "ZEROCOST_CUDA_TF32";

/// How to get a runtime, in one line (part of every "not found" error).
pub const INSTALL_HINT: &str = "install ONNX Runtime for python3 with `pip install onnxruntime` (CPU) or \
`pip install 'onnxruntime-gpu[cuda,cudnn]'` (CUDA), or set ORT_DYLIB_PATH (or ZEROCOST_ORT_LIB) to a \
libonnxruntime.so of version 1.17 or newer";

/// The loaded ONNX Runtime library.
pub struct Runtime {
    pub path: PathBuf,
    /// Minor version (1.x).
    pub minor: u32,
    /// Where the path came from ("ORT_DYLIB_PATH", "python3 onnxruntime package", ...).
    pub found_by: String,
    env: Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ONNX Runtime 1.{} at {} (from {})", self.minor, self.path.display(), self.found_by)
    }
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The ONNX Runtime library, loaded on first use (once per process).
pub fn runtime() -> Result<&'static Runtime> {
    runtime_at(None)
}

/// As [`runtime`]; when this call loads it, from `lib` if given (the first engine built
/// decides for the process).
pub fn runtime_at(lib: Option<&Path>) -> Result<&'static Runtime> {
    RUNTIME.get_or_init(|| load_runtime(lib).map_err(|e| format!("{e:#}"))).as_ref().map_err(|e| anyhow!("{e}"))
}

/// Whether a runtime can be loaded; the reason when not (tests skip on it).
pub fn available() -> std::result::Result<&'static Runtime, String> {
    runtime().map_err(|e| format!("{e:#}"))
}

/// The directory of the `onnxruntime` Python package that `python3` (or `python`) would
/// import, found without importing it.
pub fn python_package_dir() -> Option<PathBuf> {
    let code = "import importlib.util as u; s = u.find_spec('onnxruntime'); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')";
    for py in ["python3", "python"] {
        let Ok(out) = Command::new(py).args(["-c", code]).output() else { continue };
        if !out.status.success() {
            continue;
        }
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !dir.is_empty() {
            return Some(PathBuf::from(dir));
        }
    }
    None
}

/// The shared library inside an onnxruntime Python package (`capi/libonnxruntime.so.1.x.y`).
fn library_in_package(pkg: &Path) -> Option<PathBuf> {
    let capi = pkg.join("capi");
    let prefix = format!("{}onnxruntime", std::env::consts::DLL_PREFIX);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&capi)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            n.starts_with(&prefix) && n.contains(std::env::consts::DLL_SUFFIX) && !n.contains("providers") && !n.contains("pybind")
        })
        .collect();
    // the versioned file (libonnxruntime.so.1.32.0) over a bare link, if both exist
    found.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    found.into_iter().next()
}

/// Candidate libraries: (path, where it came from, explicit), and notes on places that
/// had none. An explicit choice that fails is an error; the others are tried in turn.
fn candidates(lib: Option<&Path>) -> (Vec<(PathBuf, String, bool)>, Vec<String>) {
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    if let Some(lib) = lib {
        out.push((lib.to_path_buf(), "--ort-lib".to_string(), true));
        return (out, notes);
    }
    for var in ["ORT_DYLIB_PATH", LIB_ENV] {
        if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            out.push((PathBuf::from(v), var.to_string(), true));
            return (out, notes);
        }
    }
    match python_package_dir() {
        Some(pkg) => match library_in_package(&pkg) {
            Some(lib) => out.push((lib, "the onnxruntime Python package".into(), false)),
            None => notes.push(format!("{}: no libonnxruntime in the onnxruntime Python package", pkg.join("capi").display())),
        },
        None => notes.push("python3: no onnxruntime package".into()),
    }
    out.push((
        PathBuf::from(format!("{}onnxruntime{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)),
        "the system library path".into(),
        false,
    ));
    (out, notes)
}

/// Why `path` is not a usable ONNX Runtime library.
fn why_not_loadable(path: &Path) -> String {
    if path.is_absolute() && !path.exists() {
        return "not found".into();
    }
    match ort::util::preload_dylib(path) {
        Err(e) => match std::error::Error::source(&e) {
            Some(cause) => format!("cannot be loaded ({e}: {cause})"),
            None => format!("cannot be loaded ({e})"),
        },
        Ok(()) => "not an ONNX Runtime 1.x library (no OrtGetApiBase, or another major version)".into(),
    }
}

fn load_runtime(lib: Option<&Path>) -> Result<Runtime> {
    let (candidates, mut tried) = candidates(lib);
    for (path, found_by, explicit) in candidates {
        // probe first: a clear message for an old runtime, and no panic inside `ort`
        let minor = match ort::util::probe(&path) {
            Some(m) => m,
            None => {
                let why = why_not_loadable(&path);
                if explicit {
                    bail!("ONNX Runtime: {} (set by {found_by}): {why}; {INSTALL_HINT}", path.display());
                }
                tried.push(format!("{} ({found_by}): {why}", path.display()));
                continue;
            }
        };
        if minor < ort::MINOR_VERSION {
            bail!(
                "ONNX Runtime at {} ({found_by}) is version 1.{minor}; zerocost needs 1.{} or newer: `pip install -U onnxruntime` (or onnxruntime-gpu), or set ORT_DYLIB_PATH",
                path.display(),
                ort::MINOR_VERSION
            );
        }
        let built = catch_unwind(AssertUnwindSafe(|| -> Result<Environment> {
            let builder = ort::init_from(&path).map_err(|e| anyhow!("{e}"))?;
            builder.with_name("zerocost").build().map_err(|e| anyhow!("{e}"))
        }));
        let env = match built {
            Ok(Ok(env)) => env,
            Ok(Err(e)) => bail!("ONNX Runtime at {} ({found_by}) could not be initialised: {e:#}; {INSTALL_HINT}", path.display()),
            Err(p) => bail!("ONNX Runtime at {} ({found_by}) could not be initialised: {}; {INSTALL_HINT}", path.display(), crate::memory::panic_message(p)),
        };
        if std::env::var_os("ZEROCOST_DEBUG").is_some() {
            eprintln!("ort: loaded ONNX Runtime 1.{minor} from {} ({found_by})", path.display());
        }
        return Ok(Runtime { path, minor, found_by, env });
    }
    bail!("ONNX Runtime library not found (tried {}); {INSTALL_HINT}", tried.join("; "))
}

fn oe<R>(e: ort::Error<R>) -> anyhow::Error {
    anyhow!("{}", e.message().trim_end_matches('.'))
}

/// Which execution provider runs the programs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda { device_id: i32 },
}

/// Parses a graph optimisation level (`ZEROCOST_ORT_OPT`).
pub fn parse_opt_level(s: &str) -> Result<GraphOptimizationLevel> {
    Ok(match s.trim().to_ascii_lowercase().as_str() {
        "disable" | "none" | "0" => GraphOptimizationLevel::Disable,
        "basic" | "1" => GraphOptimizationLevel::Level1,
        "extended" | "2" => GraphOptimizationLevel::Level2,
        "layout" | "3" => GraphOptimizationLevel::Level3,
        "all" | "99" => GraphOptimizationLevel::All,
        other => bail!("unknown ONNX Runtime graph optimisation level '{other}' (disable, basic, extended, layout or all)"),
    })
}

/// Settings of an ONNX Runtime engine.
#[derive(Clone, Debug)]
pub struct OrtConfig {
    /// The library to load, if the engine is the first (else the search order above).
    pub lib: Option<PathBuf>,
    pub provider: Provider,
    /// Intra-op threads; 0 lets ONNX Runtime choose (one per physical core).
    pub threads: usize,
    pub opt_level: GraphOptimizationLevel,
    /// Allow TF32 matrix products on the GPU.
    pub tf32: bool,
}

impl OrtConfig {
    /// Settings from `options`, each one left out from its environment variable (see the
    /// module documentation).
    pub fn new(provider: Provider, threads: usize, options: &OrtOptions) -> Result<OrtConfig> {
        let opt_level = match (&options.ort_opt, std::env::var(OPT_ENV)) {
            (Some(o), _) => parse_opt_level(o)?,
            (None, Ok(s)) if !s.trim().is_empty() => parse_opt_level(&s).with_context(|| format!("in {OPT_ENV}"))?,
            // zerocost runs each program once: the optimiser costs more than it saves there
            // (examples/bench_vs_pytorch.py, README "Performance")
            _ => GraphOptimizationLevel::Disable,
        };
        let tf32 = matches!(std::env::var(TF32_ENV).as_deref().map(str::trim), Ok("1") | Ok("true") | Ok("yes"));
        Ok(OrtConfig { lib: options.ort_lib.clone(), provider, threads, opt_level, tf32 })
    }
}

/// The CUDA device id of `options`, else from `ZEROCOST_CUDA_DEVICE` (default 0).
pub fn device_id(options: &OrtOptions) -> Result<i32> {
    match options.device_id {
        Some(d) => i32::try_from(d).map_err(|_| anyhow!("--device-id {d} is not a device number")),
        None => device_from_env(),
    }
}

/// The CUDA device id from `ZEROCOST_CUDA_DEVICE` (default 0).
pub fn device_from_env() -> Result<i32> {
    match std::env::var(DEVICE_ENV) {
        Ok(s) if !s.trim().is_empty() => s.trim().parse::<i32>().map_err(|_| anyhow!("{DEVICE_ENV}='{s}' is not a device number")),
        _ => Ok(0),
    }
}

pub struct OrtEngine {
    pub config: OrtConfig,
    /// Runs float64 programs (ONNX Runtime's CPU provider has no float64 convolutions).
    tract: TractEngine,
}

static F64_NOTICE: Once = Once::new();

fn has_f64(g: &Graph) -> bool {
    g.types.values().any(|t| t.dtype == DType::F64) || g.initializers.values().any(|t| t.dtype() == DType::F64)
}

/// Ops that ONNX Runtime's CPU provider has no float64 kernel for (checked on 1.32, opset 17:
/// `NOT_IMPLEMENTED: Could not find an implementation for Conv(11)`). A shortcut only: any
/// other float64 program that ONNX Runtime cannot prepare goes to tract as well.
const CPU_F32_ONLY: &[&str] = &[
    "Conv", "ConvTranspose", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LRN", "Erf", "Elu", "Selu", "Softplus", "HardSigmoid",
    "HardSwish",
];

/// The first node the CPU provider cannot run because it computes in float64.
fn f64_node_without_cpu_kernel(g: &Graph) -> Option<&Node> {
    g.nodes.iter().find(|n| {
        CPU_F32_ONLY.contains(&n.op.as_str()) && n.outputs.iter().any(|o| g.types.get(o).is_some_and(|t| t.dtype == DType::F64))
    })
}

impl OrtEngine {
    /// An engine with the given settings. For CUDA the provider is initialised on a small
    /// program first, so that a missing GPU or CUDA library is reported here, once.
    pub fn new(config: OrtConfig) -> Result<OrtEngine> {
        let engine = OrtEngine::unchecked(config)?;
        if let Provider::Cuda { device_id } = engine.config.provider {
            engine.probe().map_err(|e| {
                let rt = runtime().map(|r| format!("{r:?}")).unwrap_or_default();
                anyhow!(
                    "ONNX Runtime's CUDA provider could not be initialised on device {device_id}: {e:#}. It needs an \
                     NVIDIA GPU and driver, the onnxruntime-gpu package (`pip install 'onnxruntime-gpu[cuda,cudnn]'` \
                     in place of onnxruntime) and the CUDA and cuDNN libraries that build was made for (loaded: {rt}); \
                     --engine ort-cpu runs on the CPU"
                )
            })?;
        }
        Ok(engine)
    }

    fn unchecked(config: OrtConfig) -> Result<OrtEngine> {
        runtime_at(config.lib.as_deref())?;
        Ok(OrtEngine { tract: TractEngine::with_threads(config.threads), config })
    }

    /// The CPU provider, configured from the environment.
    pub fn cpu(threads: usize) -> Result<OrtEngine> {
        OrtEngine::build("ort-cpu", threads, &OrtOptions::default())
    }

    /// The CUDA provider on `device_id`, configured from the environment.
    pub fn cuda(device_id: i32, threads: usize) -> Result<OrtEngine> {
        OrtEngine::new(OrtConfig::new(Provider::Cuda { device_id }, threads, &OrtOptions::default())?)
    }

    /// CUDA when its provider can be initialised, else the CPU (with a notice on stderr),
    /// configured from the environment.
    pub fn auto(threads: usize) -> Result<OrtEngine> {
        OrtEngine::build("ort", threads, &OrtOptions::default())
    }

    /// `ort-cpu`, `ort-cuda` or `ort` (CUDA when its provider can be initialised, else the
    /// CPU, with a notice on stderr), with `options`.
    pub fn build(name: &str, threads: usize, options: &OrtOptions) -> Result<OrtEngine> {
        match name {
            "ort-cpu" => OrtEngine::new(OrtConfig::new(Provider::Cpu, threads, options)?),
            "ort-cuda" => OrtEngine::new(OrtConfig::new(Provider::Cuda { device_id: device_id(options)? }, threads, options)?),
            "ort" => {
                let cuda = OrtEngine::unchecked(OrtConfig::new(Provider::Cuda { device_id: device_id(options)? }, threads, options)?)?;
                match cuda.probe() {
                    Ok(()) => Ok(cuda),
                    Err(e) => {
                        eprintln!("note: --engine ort: CUDA is not available ({e:#}); using ONNX Runtime's CPU provider");
                        OrtEngine::build("ort-cpu", threads, options)
                    }
                }
            }
            other => bail!("unknown ONNX Runtime engine '{other}' (ort-cpu, ort-cuda or ort)"),
        }
    }

    fn providers(&self) -> Vec<ExecutionProviderDispatch> {
        match self.config.provider {
            Provider::Cpu => vec![],
            Provider::Cuda { device_id } => vec![ort::ep::CUDA::default()
                .with_device_id(device_id)
                .with_tf32(self.config.tf32)
                // each program runs once: cuDNN's exhaustive search would cost more than it saves
                .with_conv_algorithm_search(ort::ep::cuda::ConvAlgorithmSearch::Heuristic)
                .build()
                .error_on_failure()],
        }
    }

    fn builder(&self) -> Result<SessionBuilder> {
        let rt = runtime()?;
        if matches!(self.config.provider, Provider::Cuda { .. }) {
            preload_cuda_libraries(rt);
        }
        let mut b = Session::builder(&rt.env).map_err(oe)?.with_optimization_level(self.config.opt_level).map_err(oe)?;
        if self.config.threads > 0 {
            b = b.with_intra_threads(self.config.threads).map_err(oe)?;
        }
        // ConstantSharing merges equal initializers, which breaks training-mode
        // BatchNormalization (SPEC). zerocost's programs have BN expanded into primitive ops,
        // so it cannot matter for them; it stays off for any graph (it only saves memory).
        b = b.with_disabled_optimizers("ConstantSharing").map_err(oe)?;
        // ONNX Runtime's profiler: one JSON trace per program, named after this prefix
        if let Some(prefix) = std::env::var_os("ZEROCOST_ORT_PROFILE") {
            b = b.with_profiling(prefix).map_err(oe)?;
        }
        let providers = self.providers();
        if !providers.is_empty() {
            b = b.with_execution_providers(providers).map_err(oe)?;
        }
        Ok(b)
    }

    /// Builds an ONNX Runtime session for `graph`.
    fn session(&self, graph: &Graph) -> Result<Session> {
        let bytes = to_model_proto(graph).encode_to_vec();
        let built = catch_unwind(AssertUnwindSafe(|| -> Result<Session> {
            let mut b = self.builder()?;
            b.commit_from_memory(&bytes).map_err(oe)
        }));
        match built {
            Ok(r) => r,
            Err(p) => bail!("ONNX Runtime panicked while preparing the program: {}", crate::memory::panic_message(p)),
        }
    }

    /// A one-Conv program through the configured provider (checks CUDA end to end).
    fn probe(&self) -> Result<()> {
        let mut g = Graph { name: "zerocost-probe".into(), opset: 17, source: "ONNX Runtime probe".into(), ..Default::default() };
        g.inputs = vec!["x".into()];
        g.outputs = vec!["y".into()];
        g.initializers.insert("w".into(), Tensor::full(DType::F32, &[2, 1, 3, 3], 1.0));
        g.types.insert("x".into(), TypeInfo::new(DType::F32, vec![1, 1, 4, 4]));
        g.types.insert("w".into(), TypeInfo::new(DType::F32, vec![2, 1, 3, 3]));
        g.types.insert("y".into(), TypeInfo::new(DType::F32, vec![1, 2, 2, 2]));
        g.nodes.push(Node::new("probe/conv", "Conv", vec!["x".into(), "w".into()], vec!["y".into()]));
        let prog = OrtProgram::new(self.session(&g)?, &g, self.name());
        let x = Tensor::full(DType::F32, &[1, 1, 4, 4], 1.0);
        let out = prog.run(&[("x", &x)])?;
        let y = out["y"].to_f64_vec();
        if y.len() != 8 || y.iter().any(|&v| v != 9.0) {
            bail!("the probe convolution gave {y:?}, expected eight 9s");
        }
        Ok(())
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> String {
        match self.config.provider {
            Provider::Cpu => "ort-cpu".into(),
            Provider::Cuda { .. } => "ort-cuda".into(),
        }
    }

    fn load(&self, original: &Graph) -> Result<Box<dyn Program>> {
        original.check_memory()?;
        // tract gets the program as given: composite ops are lowered per engine
        let graph = &program_for(original, Target::Onnx)?;
        if has_f64(graph) {
            // Programs partly in float64 (e.g. batch statistics accumulated in float64) run
            // on ONNX Runtime when it has every kernel; float64 convolutions and pools
            // (synflow, `--precision f64`) have none on the CPU: those go to tract.
            if self.config.provider == Provider::Cpu {
                if let Some(n) = f64_node_without_cpu_kernel(graph) {
                    F64_NOTICE.call_once(|| {
                        eprintln!(
                            "note: ONNX Runtime's CPU provider has no float64 {}: float64 programs (synflow, and the data \
                             passes with --precision f64) run on tract",
                            n.op
                        )
                    });
                    return self.tract.load(original);
                }
            }
            return match self.session(graph) {
                Ok(s) => Ok(Box::new(OrtProgram::new(s, graph, self.name()))),
                Err(e) => {
                    F64_NOTICE.call_once(|| eprintln!("note: ONNX Runtime could not prepare a float64 program ({e:#}); such programs run on tract"));
                    self.tract.load(original)
                }
            };
        }
        let start = std::time::Instant::now();
        let session = self.session(graph).with_context(|| format!("{}: ONNX Runtime could not prepare the program", graph.source))?;
        if std::env::var_os("ZEROCOST_DEBUG").is_some() {
            eprintln!("ort: prepared {} nodes in {:.3}s", graph.nodes.len(), start.elapsed().as_secs_f64());
        }
        Ok(Box::new(OrtProgram::new(session, graph, self.name())))
    }
}

struct OrtProgram {
    /// `Session::run` takes `&mut self`; one run at a time per program.
    session: Mutex<Session>,
    inputs: Vec<String>,
    outputs: Vec<String>,
    source: String,
    engine: String,
}

impl OrtProgram {
    fn new(session: Session, graph: &Graph, engine: String) -> OrtProgram {
        OrtProgram {
            session: Mutex::new(session),
            inputs: graph.inputs.clone(),
            outputs: graph.outputs.clone(),
            source: graph.source.clone(),
            engine,
        }
    }
}

fn ort_tensor<T: PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(a: &ArrayD<T>) -> Result<DynTensor> {
    let shape: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    let data: Vec<T> = a.iter().cloned().collect();
    Ok(ort::value::Tensor::from_array((shape, data)).map_err(oe)?.upcast())
}

fn to_ort(t: &Tensor) -> Result<DynTensor> {
    match t {
        Tensor::F32(a) => ort_tensor(a),
        Tensor::F64(a) => ort_tensor(a),
        Tensor::I64(a) => ort_tensor(a),
        Tensor::I32(a) => ort_tensor(a),
        Tensor::Bool(a) => ort_tensor(a),
    }
}

fn from_ort(v: &ort::value::DynValue) -> Result<Tensor> {
    fn arr<T: PrimitiveTensorElementType + Clone + std::fmt::Debug>(v: &ort::value::DynValue) -> Result<ArrayD<T>> {
        let (shape, data) = v.try_extract_tensor::<T>().map_err(oe)?;
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        Ok(ArrayD::from_shape_vec(IxDyn(&dims), data.to_vec())?)
    }
    let ValueType::Tensor { ty, .. } = v.dtype() else { bail!("output is not a tensor") };
    Ok(match ty {
        TensorElementType::Float32 => Tensor::F32(arr(v)?),
        TensorElementType::Float64 => Tensor::F64(arr(v)?),
        TensorElementType::Int64 => Tensor::I64(arr(v)?),
        TensorElementType::Int32 => Tensor::I32(arr(v)?),
        TensorElementType::Bool => Tensor::Bool(arr(v)?),
        other => bail!("unsupported output element type {other:?}"),
    })
}

impl Program for OrtProgram {
    fn engine(&self) -> String {
        self.engine.clone()
    }

    fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Outputs> {
        let mut feed: Vec<(String, DynTensor)> = Vec::with_capacity(self.inputs.len());
        for name in &self.inputs {
            let t = inputs
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| anyhow!("{}: no value bound for input '{name}'", self.source))?
                .1;
            feed.push((name.clone(), to_ort(t)?));
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let start = std::time::Instant::now();
        let res = catch_unwind(AssertUnwindSafe(|| -> Result<Outputs> {
            let out = session.run(feed).map_err(oe)?;
            let mut map = Outputs::new();
            for name in &self.outputs {
                let v = out.get(name.as_str()).ok_or_else(|| anyhow!("ONNX Runtime returned no output '{name}'"))?;
                map.insert(name.clone(), from_ort(v).with_context(|| format!("output '{name}'"))?);
            }
            Ok(map)
        }));
        if std::env::var_os("ZEROCOST_DEBUG").is_some() {
            eprintln!("ort: ran in {:.3}s", start.elapsed().as_secs_f64());
        }
        match res {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => bail!("{}: ONNX Runtime run failed: {e:#}", self.source),
            Err(p) => bail!("{}: ONNX Runtime panicked while running: {}", self.source, crate::memory::panic_message(p)),
        }
    }
}

/// The CUDA provider library needs the CUDA runtime, cuBLAS and cuDNN. The PyPI wheel does
/// not record where the `nvidia-*` packages put them (the Python module preloads them
/// itself), so do the same, best effort, from the site-packages holding the loaded
/// library; libraries on the system's path work without this.
fn preload_cuda_libraries(rt: &Runtime) {
    static DONE: Once = Once::new();
    DONE.call_once(|| {
        let debug = std::env::var_os("ZEROCOST_DEBUG").is_some();
        // .../site-packages/onnxruntime/capi/libonnxruntime.so.X → .../site-packages/nvidia
        let Some(nvidia) = rt.path.parent().and_then(Path::parent).and_then(Path::parent).map(|p| p.join("nvidia")) else { return };
        let Ok(rd) = std::fs::read_dir(&nvidia) else { return };
        let dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path().join("lib")).filter(|p| p.is_dir()).collect();
        let files: Vec<PathBuf> = dirs.iter().flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten().map(|e| e.path())).collect();
        // dependencies first
        let order = [
            "libcudart.so.", "libnvJitLink.so.", "libcublasLt.so.", "libcublas.so.", "libnvrtc.so.", "libcurand.so.", "libcufft.so.",
            "libcudnn.so.", "libcudnn_graph.so.", "libcudnn_ops.so.", "libcudnn_heuristic.so.", "libcudnn_cnn.so.", "libcudnn_adv.so.",
            "libcudnn_engines_precompiled.so.", "libcudnn_engines_runtime_compiled.so.",
        ];
        for prefix in order {
            for f in files.iter().filter(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix))) {
                let r = ort::util::preload_dylib(f);
                if debug {
                    eprintln!("ort: preload {}: {}", f.display(), r.map(|_| "ok".to_string()).unwrap_or_else(|e| e.to_string()));
                }
            }
        }
    });
}
