//! An image folder, as torchvision's `ImageFolder` reads it: `DIR/<class>/<file>`, one
//! sub-folder per class, class index = position of the folder name in sorted order, files
//! sorted by name within a class. PNG and JPEG files (by extension) are read; other files
//! and hidden entries are ignored.
//!
//! Each chosen image is decoded only once it is picked, then fitted to the model's H×W by
//! default as torchvision's `Resize` + `CenterCrop` would: scaled (bilinear, aspect kept) so
//! that it covers H×W — for a square target, the shorter side becomes H — then cropped in
//! the centre. Then RGB (or luma for a 1-channel model), /255, and ImageNet normalization
//! (none for 1 channel) unless the request gives another.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use image::imageops::{self, FilterType};
use image::DynamicImage;
use ndarray::ArrayD;

use super::sampling::select;
use super::{batch_shape, pixels_to_f32, Batch, BatchRequest, Normalization};

pub(crate) fn load(dir: &Path, req: &BatchRequest) -> Result<Batch> {
    let (channels, h, w) = match req.input_shape[..] {
        [c, h, w] if c == 1 || c == 3 => (c, h, w),
        _ => bail!(
            "images:{} needs a model input of shape [3, H, W] or [1, H, W] per sample, got {:?}",
            dir.display(),
            req.input_shape
        ),
    };
    let (files, labels) = list(dir, req.num_classes)?;
    let source = format!("images:{}", dir.display());
    let picked = select(&labels, req, true, &source)?.unwrap_or_default();
    let default_norm = if channels == 3 { Normalization::imagenet() } else { Normalization::none() };
    let norm = req.normalization.clone().unwrap_or(default_norm);
    let mut rows = Vec::with_capacity(picked.len());
    for &i in &picked {
        rows.push(read_image(&files[i], channels, h, w)?);
    }
    let rows_ref: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
    let values = pixels_to_f32(&rows_ref, channels, &norm).with_context(|| source.clone())?;
    let inputs = ArrayD::from_shape_vec(batch_shape(picked.len(), &[channels, h, w])?, values)?;
    let targets = picked.iter().map(|&i| labels[i]).collect();
    Ok(Batch { inputs, targets })
}

fn is_hidden(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Every image file with its class index, classes in sorted folder-name order.
fn list(dir: &Path, num_classes: usize) -> Result<(Vec<PathBuf>, Vec<i64>)> {
    let entries = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = fs::read_dir(d)
            .with_context(|| format!("{}: cannot read folder", d.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("{}: cannot read folder", d.display()))?;
        v.retain(|p| !is_hidden(p));
        v.sort();
        Ok(v)
    };
    if !dir.is_dir() {
        bail!("{}: no such folder (images:DIR expects one sub-folder per class)", dir.display());
    }
    let classes: Vec<PathBuf> = entries(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if classes.is_empty() {
        bail!("{}: no class sub-folders (images:DIR expects DIR/<class>/<image>)", dir.display());
    }
    if classes.len() > num_classes {
        bail!(
            "{}: {} class folders but the model has {num_classes} outputs (num_classes)",
            dir.display(),
            classes.len()
        );
    }
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for (c, class_dir) in classes.iter().enumerate() {
        for f in entries(class_dir)?.into_iter().filter(|p| p.is_file() && is_image(p)) {
            files.push(f);
            labels.push(c as i64);
        }
    }
    if files.is_empty() {
        bail!("{}: no .png/.jpg/.jpeg files in the class folders", dir.display());
    }
    Ok((files, labels))
}

/// Decodes one image to CHW `u8` of `channels`×`h`×`w`.
fn read_image(file: &Path, channels: usize, h: usize, w: usize) -> Result<Vec<u8>> {
    let img = image::open(file).with_context(|| format!("{}: cannot decode image", file.display()))?;
    if img.width() == 0 || img.height() == 0 {
        bail!("{}: empty image", file.display());
    }
    let (th, tw) = (u32::try_from(h)?, u32::try_from(w)?);
    let img = fit(img, th, tw);
    let hw = h * w;
    let mut out = vec![0u8; channels * hw];
    if channels == 1 {
        out.copy_from_slice(img.to_luma8().as_raw());
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for c in 0..3 {
                out[c * hw + i] = p.0[c];
            }
        }
    }
    Ok(out)
}

/// Scale to cover `th`×`tw` keeping the aspect ratio (bilinear), then centre-crop.
fn fit(img: DynamicImage, th: u32, tw: u32) -> DynamicImage {
    let (w, h) = (img.width(), img.height());
    if (w, h) == (tw, th) {
        return img;
    }
    let scale = f64::max(th as f64 / h as f64, tw as f64 / w as f64);
    let nw = ((w as f64 * scale).round() as u32).max(tw);
    let nh = ((h as f64 * scale).round() as u32).max(th);
    let resized = DynamicImage::from(imageops::resize(&img.to_rgba8(), nw, nh, FilterType::Triangle));
    let (x, y) = ((nw - tw) / 2, (nh - th) / 2);
    resized.crop_imm(x, y, tw, th)
}
