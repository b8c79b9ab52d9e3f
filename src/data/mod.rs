//! Data sources and sampling: where the one batch a proxy looks at comes from.
//!
//! Every source ends in the same [`Batch`]: float32 inputs with the samples on the first axis
//! and integer class targets. Sources differ only in how they find samples and labels; the
//! choice of *which* samples ([`Dataload`]) is shared, in `sampling.rs`.
//!
//! | `--data` | what is read |
//! |---|---|
//! | `synthetic` (default) | seeded N(0,1) inputs, uniform labels — nothing to download |
//! | `npy:DIR` | `DIR/inputs.npy` + `DIR/targets.npy` |
//! | `npz:FILE`, `FILE.npz` | arrays `inputs`/`targets` (or `x`/`y`) of one `.npz` |
//! | `cifar10:DIR` | official binary version, `data_batch_{1..5}.bin` |
//! | `cifar100:DIR` | official binary version, `train.bin` (fine labels) |
//! | `imagenet16:DIR` | downsampled-ImageNet pickles `train_data_batch_{1..10}` |
//! | `images:DIR` | one sub-folder per class of PNG/JPEG files |
//!
//! The explicit `--inputs X.npy --targets Y.npy` pair is [`DataSource::Npy`].

mod cifar;
mod images;
mod imagenet16;
mod npy;
pub(crate) mod sampling;
mod synthetic;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Result};
use ndarray::ArrayD;

/// One batch, ready for the network: `inputs` has the samples on axis 0 (NCHW for images,
/// N×features for flat data); `targets[n]` is the class of sample `n`, in `[0, num_classes)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub inputs: ArrayD<f32>,
    pub targets: Vec<i64>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Where samples come from. Parse a `--data` value with [`str::parse`]; build
/// [`DataSource::Npy`] directly from `--inputs`/`--targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// Seeded random data; needs nothing on disk.
    Synthetic,
    /// An explicit pair of `.npy` files (`--inputs X.npy --targets Y.npy`).
    Npy { inputs: PathBuf, targets: PathBuf },
    /// `DIR/inputs.npy` + `DIR/targets.npy` (`npy:DIR`).
    NpyDir(PathBuf),
    /// One `.npz` holding `inputs`/`targets` or `x`/`y` (`npz:FILE` or a path ending `.npz`).
    Npz(PathBuf),
    /// CIFAR-10, binary version: the `cifar-10-batches-bin` folder or its parent.
    Cifar10(PathBuf),
    /// CIFAR-100, binary version: the `cifar-100-binary` folder or its parent.
    Cifar100(PathBuf),
    /// ImageNet16 (NAS-Bench-201's ImageNet16-120 and its siblings): the folder of pickles.
    ImageNet16(PathBuf),
    /// An image folder: `DIR/<class>/<image>.{png,jpg,jpeg}`, classes in sorted name order.
    Images(PathBuf),
}

impl FromStr for DataSource {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("synthetic") {
            return Ok(DataSource::Synthetic);
        }
        if let Some((kind, rest)) = s.split_once(':') {
            let path = PathBuf::from(rest);
            let empty = rest.is_empty();
            let source = match kind.to_ascii_lowercase().as_str() {
                "npy" => Some(DataSource::NpyDir(path)),
                "npz" => Some(DataSource::Npz(path)),
                "cifar10" | "cifar-10" => Some(DataSource::Cifar10(path)),
                "cifar100" | "cifar-100" => Some(DataSource::Cifar100(path)),
                "imagenet16" | "imagenet16-120" | "imagenet16_120" => {
                    Some(DataSource::ImageNet16(path))
                }
                "images" | "imagefolder" => Some(DataSource::Images(path)),
                // Anything else may be a plain path that happens to contain ':' (C:\..., a:b.npz).
                _ => None,
            };
            if let Some(source) = source {
                if empty {
                    bail!("data source `{s}` names no path after `{kind}:`");
                }
                return Ok(source);
            }
        }
        if s.to_ascii_lowercase().ends_with(".npz") {
            return Ok(DataSource::Npz(PathBuf::from(s)));
        }
        bail!(
            "unknown data source `{s}`; expected synthetic | npy:DIR | npz:FILE | FILE.npz | \
             cifar10:DIR | cifar100:DIR | imagenet16:DIR | images:DIR"
        )
    }
}

impl DataSource {
    /// The files and folders the source reads (none for synthetic data).
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            DataSource::Synthetic => vec![],
            DataSource::Npy { inputs, targets } => vec![inputs, targets],
            DataSource::NpyDir(p) | DataSource::Npz(p) | DataSource::Cifar10(p) | DataSource::Cifar100(p) => vec![p],
            DataSource::ImageNet16(p) | DataSource::Images(p) => vec![p],
        }
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSource::Synthetic => write!(f, "synthetic"),
            DataSource::Npy { inputs, targets } => {
                write!(f, "npy inputs {} targets {}", inputs.display(), targets.display())
            }
            DataSource::NpyDir(p) => write!(f, "npy:{}", p.display()),
            DataSource::Npz(p) => write!(f, "npz:{}", p.display()),
            DataSource::Cifar10(p) => write!(f, "cifar10:{}", p.display()),
            DataSource::Cifar100(p) => write!(f, "cifar100:{}", p.display()),
            DataSource::ImageNet16(p) => write!(f, "imagenet16:{}", p.display()),
            DataSource::Images(p) => write!(f, "images:{}", p.display()),
        }
    }
}

/// How samples are chosen (the paper's `--dataload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dataload {
    /// The first `k` batches of the source (`k` = `dataload_info`).
    #[default]
    Random,
    /// `k` samples of every class, in class order (the paper's `get_some_data_grasp`).
    Grasp,
}

impl FromStr for Dataload {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "random" => Ok(Dataload::Random),
            "grasp" => Ok(Dataload::Grasp),
            other => bail!("unknown dataload `{other}`; expected random | grasp"),
        }
    }
}

impl fmt::Display for Dataload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dataload::Random => "random",
            Dataload::Grasp => "grasp",
        })
    }
}

/// Per-channel normalization `x' = (x - mean[c]) / std[c]`, applied after pixels are scaled
/// to `[0, 1]`. One value broadcasts to every channel; empty vectors are the identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalization {
    /// The identity: pixels stay in `[0, 1]`.
    pub fn none() -> Self {
        Normalization { mean: vec![], std: vec![] }
    }

    /// CIFAR-10 training-set statistics, as the paper's loaders use:
    /// mean [0.4914, 0.4822, 0.4465], std [0.2470, 0.2435, 0.2616].
    pub fn cifar10() -> Self {
        Normalization { mean: vec![0.4914, 0.4822, 0.4465], std: vec![0.2470, 0.2435, 0.2616] }
    }

    /// CIFAR-100 training-set statistics:
    /// mean [0.5071, 0.4865, 0.4409], std [0.2673, 0.2564, 0.2762].
    pub fn cifar100() -> Self {
        Normalization { mean: vec![0.5071, 0.4865, 0.4409], std: vec![0.2673, 0.2564, 0.2762] }
    }

    /// The torchvision ImageNet statistics, default for `images:DIR`:
    /// mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225].
    pub fn imagenet() -> Self {
        Normalization { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    /// NAS-Bench-201's ImageNet16 statistics, given there in pixel units:
    /// mean [122.68, 116.66, 104.01]/255, std [63.22, 61.26, 65.09]/255.
    pub fn imagenet16() -> Self {
        Normalization {
            mean: [122.68f32, 116.66, 104.01].iter().map(|v| v / 255.0).collect(),
            std: [63.22f32, 61.26, 65.09].iter().map(|v| v / 255.0).collect(),
        }
    }

    pub fn is_identity(&self) -> bool {
        self.mean.is_empty() && self.std.is_empty()
    }

    /// `(mean, 1/std)` for channel `c` of `channels`, after checking the lengths fit.
    fn channel_params(&self, channels: usize) -> Result<Vec<(f32, f32)>> {
        if self.is_identity() {
            return Ok(vec![(0.0, 1.0); channels]);
        }
        let pick = |v: &[f32], what: &str| -> Result<Vec<f32>> {
            match v.len() {
                1 => Ok(vec![v[0]; channels]),
                n if n == channels => Ok(v.to_vec()),
                n => bail!("normalization has {n} {what} values but the data has {channels} channels"),
            }
        };
        let mean = pick(&self.mean, "mean")?;
        let std = pick(&self.std, "std")?;
        if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!("normalization std must be positive and finite, got {s}");
        }
        Ok(mean.into_iter().zip(std).map(|(m, s)| (m, 1.0 / s)).collect())
    }
}

impl FromStr for Normalization {
    type Err = anyhow::Error;

    /// A preset name: `none`, `cifar10`, `cifar100`, `imagenet`, `imagenet16`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "identity" => Ok(Normalization::none()),
            "cifar10" | "cifar-10" => Ok(Normalization::cifar10()),
            "cifar100" | "cifar-100" => Ok(Normalization::cifar100()),
            "imagenet" => Ok(Normalization::imagenet()),
            "imagenet16" | "imagenet16-120" => Ok(Normalization::imagenet16()),
            other => bail!(
                "unknown normalization `{other}`; expected none | cifar10 | cifar100 | imagenet | imagenet16"
            ),
        }
    }
}

/// What the caller wants: how many samples, chosen how, shaped how.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    /// Samples per batch (default 64). Unused by `Grasp`, whose size is `num_classes × k`.
    pub batch_size: usize,
    /// Default `Random`.
    pub dataload: Dataload,
    /// `k`: `Random` concatenates `k` batches; `Grasp` takes `k` samples per class. Default 1.
    pub dataload_info: usize,
    /// The model's number of outputs; labels must lie in `[0, num_classes)`. Default 10.
    pub num_classes: usize,
    /// The per-sample shape the model wants, without the batch axis, e.g. `[3, 32, 32]`
    /// (the default). Empty = the source's own shape (not possible for `synthetic`/`images`).
    pub input_shape: Vec<usize>,
    /// Seeds synthetic data and shuffling. Default 0.
    pub seed: u64,
    /// Shuffle the source (ChaCha8 seeded with `seed`) before choosing; applies to both
    /// dataloads. Default `false`: the first samples in file order, reproducible by any tool.
    pub shuffle: bool,
    /// Normalization of real image data (cifar10/cifar100/imagenet16/images). `None` = the
    /// source's preset; ignored by synthetic and npy/npz data, which are used as stored.
    pub normalization: Option<Normalization>,
}

impl Default for BatchRequest {
    fn default() -> Self {
        BatchRequest {
            batch_size: 64,
            dataload: Dataload::Random,
            dataload_info: 1,
            num_classes: 10,
            input_shape: vec![3, 32, 32],
            seed: 0,
            shuffle: false,
            normalization: None,
        }
    }
}

impl BatchRequest {
    /// How many samples the request asks for.
    pub fn wanted(&self) -> usize {
        match self.dataload {
            Dataload::Random => self.batch_size.saturating_mul(self.dataload_info),
            Dataload::Grasp => self.num_classes.saturating_mul(self.dataload_info),
        }
    }

    fn validate(&self) -> Result<()> {
        if self.num_classes == 0 {
            bail!("num_classes must be at least 1");
        }
        if self.dataload_info == 0 {
            bail!("dataload_info (k) must be at least 1");
        }
        if self.dataload == Dataload::Random && self.batch_size == 0 {
            bail!("batch size must be at least 1");
        }
        if self.input_shape.contains(&0) {
            bail!("input shape {:?} has a zero dimension", self.input_shape);
        }
        Ok(())
    }
}

/// Builds the batch `req` asks for from `source`. Errors name the file or folder at fault.
pub fn load_batch(source: &DataSource, req: &BatchRequest) -> Result<Batch> {
    req.validate()?;
    // float32 samples (plus, for image sources, one decoded copy)
    let mut shape = vec![req.batch_size];
    shape.extend(&req.input_shape);
    crate::memory::check(format!("a batch of {} samples of shape {:?}", req.batch_size, req.input_shape), crate::memory::elements(&shape).saturating_mul(8))?;
    let batch = match source {
        DataSource::Synthetic => synthetic::load(req),
        DataSource::Npy { inputs, targets } => npy::load_pair(inputs, targets, req),
        DataSource::NpyDir(dir) => npy::load_dir(dir, req),
        DataSource::Npz(file) => npy::load_npz(file, req),
        DataSource::Cifar10(dir) => cifar::load(dir, cifar::Variant::Cifar10, req),
        DataSource::Cifar100(dir) => cifar::load(dir, cifar::Variant::Cifar100, req),
        DataSource::ImageNet16(dir) => imagenet16::load(dir, req),
        DataSource::Images(dir) => images::load(dir, req),
    }?;
    debug_assert_eq!(batch.inputs.shape().first().copied(), Some(batch.targets.len()));
    Ok(batch)
}

/// Checks every label of `file` lies in `[0, num_classes)`: a label outside means the data
/// does not belong to this model (or is corrupt), and cross-entropy would read out of bounds.
pub(crate) fn check_labels(labels: &[i64], num_classes: usize, file: &Path) -> Result<()> {
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l as u64 >= num_classes as u64) {
        bail!(
            "{}: label {l} of sample {i} is outside [0, {num_classes}) \
             (num_classes = {num_classes}, from the model's output)",
            file.display()
        );
    }
    Ok(())
}

/// The output shape for fixed-size `[c, h, w]` images in `file`: the model's shape when it
/// equals `native`, or a flat vector of the same length (an MLP on CIFAR). These sources
/// do not resize; `images:DIR` does.
pub(crate) fn fit_image_shape(native: [usize; 3], want: &[usize], file: &Path) -> Result<Vec<usize>> {
    let n: usize = native.iter().product();
    if want.is_empty() || want == native {
        return Ok(native.to_vec());
    }
    if want.len() == 1 && want[0] == n {
        return Ok(want.to_vec());
    }
    bail!(
        "{} holds {}×{}×{} images but the model wants {:?} per sample; these images are not \
         resized (convert them to an image folder and use images:DIR, or pass --input-shape)",
        file.display(),
        native[0],
        native[1],
        native[2],
        want
    )
}

/// `[count, shape...]`, refusing sizes that cannot be allocated instead of aborting.
pub(crate) fn batch_shape(count: usize, shape: &[usize]) -> Result<Vec<usize>> {
    let total = shape.iter().try_fold(count, |a, &d| a.checked_mul(d));
    match total {
        Some(t) if t <= (isize::MAX as usize) / 4 => {}
        _ => bail!("a batch of {count} samples of shape {shape:?} is too large"),
    }
    let mut out = Vec::with_capacity(shape.len() + 1);
    out.push(count);
    out.extend_from_slice(shape);
    Ok(out)
}

/// Converts CHW `u8` pixel rows to floats: `/255`, then `norm` per channel.
pub(crate) fn pixels_to_f32(rows: &[&[u8]], channels: usize, norm: &Normalization) -> Result<Vec<f32>> {
    let params = norm.channel_params(channels)?;
    let mut out = Vec::with_capacity(rows.iter().map(|r| r.len()).sum());
    for row in rows {
        let plane = row.len() / channels.max(1);
        for (c, &(mean, inv_std)) in params.iter().enumerate() {
            out.extend(row[c * plane..(c + 1) * plane].iter().map(|&p| (p as f32 / 255.0 - mean) * inv_std));
        }
    }
    Ok(out)
}
