//! [`BatchSpec`]: the settings that say how a model is scored (data, sampling, shape,
//! precision, engine), once for `zerocost score` (its flags), batch jobs (the YAML keys of
//! the same names) and the search's network oracle.

use crate::data::{BatchRequest, DataSource, Dataload, Normalization};
use crate::onnx::canon::BnMode;
use crate::proxies::ScoreOptions;
use clap::{Args, FromArgMatches};
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::ops::Deref;

/// How to score: the flags of `zerocost score` after its models, proxies and explicit batch
/// (the order of its help), and the keys of a job file. Serialised, it is the part of a
/// job's `settings` fingerprint that changes a score.
#[derive(Args, Clone, Debug)]
pub struct BatchSpec {
    /// Data source: synthetic | npy:DIR | npz:FILE | cifar10:DIR | cifar100:DIR | imagenet16:DIR | images:DIR.
    #[arg(long, default_value = "synthetic", value_parser = spelled::<DataSource>, value_name = "SOURCE")]
    pub data: Spelled<DataSource>,
    /// Samples in the batch the proxies see.
    #[arg(long, default_value_t = 64, value_parser = positive, value_name = "N")]
    pub batch_size: usize,
    /// random (the first k batches) or grasp (k samples per class, class order).
    #[arg(long, default_value = "random", value_parser = parsed::<Dataload>)]
    pub dataload: Dataload,
    /// k of the dataload.
    #[arg(long, default_value_t = 1, value_parser = positive, value_name = "K")]
    pub dataload_info: usize,
    /// Number of classes (default: the model's number of outputs).
    #[arg(long, value_parser = positive, value_name = "N")]
    pub num_classes: Option<usize>,
    /// Seed of the synthetic data and of --shuffle.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Shuffle the data source (seeded) before taking samples.
    #[arg(long)]
    pub shuffle: bool,
    /// Per-channel normalization of image data: none | cifar10 | cifar100 | imagenet | imagenet16.
    #[arg(long, value_parser = spelled::<Normalization>, value_name = "NAME")]
    pub normalize: Option<Spelled<Normalization>>,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// The graph output to score, for models with several (default: the first, named on
    /// standard error). Nodes that do not lead to it are dropped before scoring.
    #[arg(long, value_name = "NAME")]
    pub output_name: Option<String>,
    /// Engine: auto (ONNX Runtime's CPU provider when its library is found, else tract),
    /// tract (embedded CPU engine), ort-cpu, ort-cuda, ort (CUDA if available).
    #[arg(long, default_value = "auto", value_parser = ["auto", "tract", "ort-cpu", "ort-cuda", "ort"])]
    pub engine: String,
    /// Threads for the engine's kernels (0: every core).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// Floating-point precision of the data passes: f32 (default, as the paper's code) or
    /// f64 (synflow is always f64).
    #[arg(long, default_value = "f32", value_parser = ["f32", "f64"])]
    pub precision: String,
    /// Also report per-layer values.
    #[arg(long)]
    pub per_layer: bool,
}

/// The input shape, BatchNormalization mode and memory budget: part of [`BatchSpec`], and
/// on their own on the commands that read a model without scoring it.
#[derive(Args, Clone, Debug)]
pub struct ShapeArgs {
    /// Full input shape for models with symbolic dimensions, e.g. 1x3x32x32 (the batch
    /// entry is replaced by the batch size).
    #[arg(long, value_parser = parse_shape, value_name = "SHAPE")]
    pub input_shape: Option<Shape>,
    /// BatchNormalization statistics: batch (training mode, as the paper) or running.
    #[arg(long, default_value = "batch", value_parser = spelled::<BnMode>)]
    pub bn: Spelled<BnMode>,
    /// Memory budget (e.g. 8G, 512M): a model whose inputs or tensors would need more is
    /// refused with the size it asked for. Default: 80% of the memory available (and of
    /// `ulimit -v`).
    #[arg(long, value_name = "SIZE", value_parser = crate::memory::parse_size)]
    pub max_memory: Option<u64>,
}

impl ShapeArgs {
    /// Sets the process's memory budget from `--max-memory`, first thing.
    pub fn apply_budget(&self) {
        if let Some(b) = self.max_memory {
            crate::memory::set_max_memory(b);
        }
    }

    pub fn shape(&self) -> Option<&[usize]> {
        self.input_shape.as_ref().map(|s| s.0.as_slice())
    }
}

/// A full input shape (`1x3x32x32` on the command line).
#[derive(Clone, Debug, PartialEq)]
pub struct Shape(pub Vec<usize>);

fn parse_shape(s: &str) -> Result<Shape, String> {
    let dims = s
        .split(['x', ','])
        .map(|d| d.trim().parse::<usize>().ok().filter(|&d| d > 0).ok_or_else(|| format!("bad shape '{s}': expected e.g. 1x3x32x32")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Shape(dims))
}

/// A setting as it was written and what it means. Its text is what a job's fingerprint
/// records, so that spelling `cifar-10` or `train`, or moving the job's folder (data paths
/// are rebased), leaves the results of older runs usable.
#[derive(Clone, Debug, PartialEq)]
pub struct Spelled<T> {
    pub text: String,
    pub value: T,
}

impl<T: std::str::FromStr<Err = anyhow::Error>> std::str::FromStr for Spelled<T> {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(Spelled { text: s.to_string(), value: s.parse()? })
    }
}

impl<T> Deref for Spelled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Serialize for Spelled<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// `value_parser` of counts that must be at least 1.
pub fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `value_parser` of the library's `FromStr` types, so a bad value is a usage error.
pub fn parsed<T: std::str::FromStr<Err = anyhow::Error>>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|e| format!("{e:#}"))
}

/// `value_parser` of a [`Spelled`] setting.
pub fn spelled<T: std::str::FromStr<Err = anyhow::Error>>(s: &str) -> Result<Spelled<T>, String> {
    parsed::<Spelled<T>>(s)
}

impl Default for BatchSpec {
    /// The defaults of `zerocost score`'s flags.
    fn default() -> Self {
        let cmd = BatchSpec::augment_args(clap::Command::new("defaults"));
        let matches = cmd.try_get_matches_from(["defaults"]).expect("every setting has a default or is optional");
        BatchSpec::from_arg_matches(&matches).expect("the defaults parse")
    }
}

impl BatchSpec {
    /// What the proxies need to know of the settings.
    pub fn options(&self) -> ScoreOptions {
        ScoreOptions { bn: *self.shape.bn, input_shape: self.shape.shape().map(<[usize]>::to_vec), float64: self.precision == "f64" }
    }

    /// The batch of this spec for a model with per-sample shape `sample` and `classes` classes.
    pub fn request(&self, sample: Vec<usize>, classes: usize) -> BatchRequest {
        BatchRequest {
            batch_size: self.batch_size,
            dataload: self.dataload,
            dataload_info: self.dataload_info,
            num_classes: classes,
            input_shape: sample,
            seed: self.seed,
            shuffle: self.shuffle,
            normalization: self.normalize.as_ref().map(|n| n.value.clone()),
        }
    }
}

impl Serialize for BatchSpec {
    /// The settings that change a score, in the order (and with the text) that older
    /// versions hashed into a job's fingerprint, so their results files still resume. The
    /// thread count, memory budget and per-layer output change no score; an output name only
    /// appears when given (jobs have none).
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("data", &self.data)?;
        m.serialize_entry("batch_size", &self.batch_size)?;
        m.serialize_entry("dataload", &self.dataload.to_string())?;
        m.serialize_entry("dataload_info", &self.dataload_info)?;
        m.serialize_entry("num_classes", &self.num_classes)?;
        m.serialize_entry("seed", &self.seed)?;
        m.serialize_entry("shuffle", &self.shuffle)?;
        m.serialize_entry("normalize", &self.normalize)?;
        m.serialize_entry("input_shape", &self.shape.shape())?;
        m.serialize_entry("bn", &self.shape.bn)?;
        m.serialize_entry("precision", &self.precision)?;
        m.serialize_entry("engine", &self.engine)?;
        if let Some(o) = &self.output_name {
            m.serialize_entry("output_name", o)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_flags_and_serialise_as_jobs_always_did() {
        let spec = BatchSpec::default();
        assert_eq!((spec.batch_size, spec.dataload_info, spec.threads, spec.engine.as_str()), (64, 1, 0, "auto"));
        let text = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            text,
            r#"{"data":"synthetic","batch_size":64,"dataload":"random","dataload_info":1,"num_classes":null,"seed":0,"shuffle":false,"normalize":null,"input_shape":null,"bn":"batch","precision":"f32","engine":"auto"}"#
        );
    }
}
