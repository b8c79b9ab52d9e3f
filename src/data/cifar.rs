//! CIFAR-10 and CIFAR-100, the official *binary* versions (www.cs.toronto.edu/~kriz/cifar.html).
//!
//! Each file is a run of fixed-size records: CIFAR-10 has 1 label byte then 3072 pixel bytes
//! (`cifar-10-batches-bin/data_batch_{1..5}.bin`); CIFAR-100 has a coarse and a fine label
//! byte then 3072 pixel bytes (`cifar-100-binary/train.bin`; the fine label, 0..99, is used).
//! Pixels are 32×32, stored channel by channel (R plane, G plane, B plane) = CHW.
//! The training files are read, in order, and only as many as the selection needs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ndarray::ArrayD;

use super::sampling::{select_from_chunks, PixelPool};
use super::{batch_shape, check_labels, fit_image_shape, pixels_to_f32, Batch, BatchRequest, Normalization};

const PIXELS: usize = 3 * 32 * 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar10",
            Variant::Cifar100 => "cifar100",
        }
    }

    /// The folder the official archive extracts to.
    fn folder(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar-10-batches-bin",
            Variant::Cifar100 => "cifar-100-binary",
        }
    }

    /// The python-pickle version's folder, recognised only to say it is the wrong one.
    fn python_folder(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar-10-batches-py",
            Variant::Cifar100 => "cifar-100-python",
        }
    }

    fn train_files(self) -> Vec<String> {
        match self {
            Variant::Cifar10 => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Variant::Cifar100 => vec!["train.bin".to_string()],
        }
    }

    /// Label bytes before the pixels; the label used is the last of them.
    fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }

    fn normalization(self) -> Normalization {
        match self {
            Variant::Cifar10 => Normalization::cifar10(),
            Variant::Cifar100 => Normalization::cifar100(),
        }
    }
}

pub(crate) fn load(dir: &Path, variant: Variant, req: &BatchRequest) -> Result<Batch> {
    let files = train_files(dir, variant)?;
    let out_shape = fit_image_shape([3, 32, 32], &req.input_shape, &files[0])?;
    let source = format!("{}:{}", variant.name(), dir.display());
    let (pool, picked) = select_from_chunks(
        files.len(),
        PixelPool::new(PIXELS),
        |i, pool| read_records(&files[i], variant, req.num_classes, pool),
        req,
        &source,
    )?;
    let norm = req.normalization.clone().unwrap_or_else(|| variant.normalization());
    let rows: Vec<&[u8]> = picked.iter().map(|&i| pool.row(i)).collect();
    let values = pixels_to_f32(&rows, 3, &norm).with_context(|| source.clone())?;
    let inputs = ArrayD::from_shape_vec(batch_shape(picked.len(), &out_shape)?, values)?;
    let targets = picked.iter().map(|&i| pool.labels[i]).collect();
    Ok(Batch { inputs, targets })
}

/// The training files under `dir`, which may be the extracted folder or its parent.
fn train_files(dir: &Path, variant: Variant) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: no such folder (expected the {} folder or its parent)", dir.display(), variant.folder());
    }
    let names = variant.train_files();
    let base = [dir.to_path_buf(), dir.join(variant.folder())]
        .into_iter()
        .find(|d| d.join(&names[0]).is_file());
    let Some(base) = base else {
        let hint = if dir.join(variant.python_folder()).is_dir() || dir.ends_with(variant.python_folder()) {
            format!(" (found the python version, {}; the binary version is needed)", variant.python_folder())
        } else {
            String::new()
        };
        bail!(
            "{}: missing {} (looked in the folder and in {}/){hint}",
            dir.join(&names[0]).display(),
            names[0],
            variant.folder()
        );
    };
    let files: Vec<PathBuf> = names.iter().map(|n| base.join(n)).collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        bail!("{}: missing file", missing.display());
    }
    Ok(files)
}

/// Appends every record of one binary file to `pool`.
fn read_records(file: &Path, variant: Variant, num_classes: usize, pool: &mut PixelPool) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
    let record = variant.label_bytes() + PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        bail!(
            "{}: {} bytes is not a whole number of {record}-byte {} records (truncated or not the binary version?)",
            file.display(),
            bytes.len(),
            variant.name()
        );
    }
    let labels: Vec<i64> = bytes.chunks_exact(record).map(|r| r[variant.label_bytes() - 1] as i64).collect();
    check_labels(&labels, num_classes, file)?;
    pool.pixels.reserve(labels.len() * PIXELS);
    for (r, label) in bytes.chunks_exact(record).zip(labels) {
        pool.push(&r[variant.label_bytes()..], label);
    }
    Ok(())
}
