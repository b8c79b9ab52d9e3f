//! ImageNet16 (NAS-Bench-201's ImageNet16-120 and siblings): the downsampled-ImageNet
//! pickles `train_data_batch_1` … `train_data_batch_10` of Chrabaszcz et al. (2017).
//!
//! Each file is a pickled dict with `data`, a `uint8` array N×768 (3×16×16, stored CHW: the
//! R plane, then G, then B) and `labels`, 1-based class numbers 1..=1000. As NAS-Bench-201's
//! `ImageNet16(..., use_num_of_class_only=120)` does, only samples with label in
//! `1..=num_classes` are kept (so a 120-output model sees ImageNet16-120), shifted to 0-based.
//! Labels above `num_classes` are skipped, not errors; a label below 1 is an error.
//!
//! Reading without Python: NumPy pickles an array as `_reconstruct(ndarray, …)` plus a
//! `__setstate__` tuple `(1, shape, dtype, is_fortran, raw_bytes)` (protocols 2–4) or as
//! `_frombuffer(raw_bytes, dtype, shape, order)` (protocol 5). serde-pickle cannot call
//! those functions but, with `keep_restore_state`, hands back exactly those tuples, and the
//! raw bytes are the array. So the official files (pickled by Python 2, protocol 2) are read
//! directly. Supported for `data`: such a NumPy `uint8` array (C or Fortran order), one
//! `bytes` of N×768, a list of N `bytes` rows, or a list of N lists of 768 ints. For
//! `labels`: a list of ints, a list of NumPy integer scalars, or a NumPy integer array.
//! A pickled dtype loses its kind (only the byte order survives), so arrays are
//! interpreted by item size: 1 byte per element for `data`, and integers for `labels`.
//! Files with other edge sizes (ImageNet32/64 pickles) work too: the side comes from the
//! row length.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ndarray::ArrayD;
use serde_pickle::{DeOptions, HashableValue, Value};

use super::sampling::{select_from_chunks, PixelPool};
use super::{batch_shape, fit_image_shape, pixels_to_f32, Batch, BatchRequest, Normalization};

const FILES: usize = 10;

pub(crate) fn load(dir: &Path, req: &BatchRequest) -> Result<Batch> {
    let files = train_files(dir)?;
    let source = format!("imagenet16:{} (labels 1..={})", dir.display(), req.num_classes);
    let mut side = None;
    let (pool, picked) = select_from_chunks(
        files.len(),
        PixelPool::new(0),
        |i, pool| {
            let (s, rows, labels) = read_pickle(&files[i])?;
            match side {
                None => {
                    side = Some(s);
                    pool.row_len = 3 * s * s;
                }
                Some(prev) if prev != s => {
                    bail!("{}: {s}×{s} images, but earlier files hold {prev}×{prev}", files[i].display())
                }
                _ => {}
            }
            keep_subset(&files[i], &rows, &labels, req.num_classes, pool)
        },
        req,
        &source,
    )?;
    let s = side.unwrap_or(16);
    let out_shape = fit_image_shape([3, s, s], &req.input_shape, &files[0])?;
    let norm = req.normalization.clone().unwrap_or_else(Normalization::imagenet16);
    let rows: Vec<&[u8]> = picked.iter().map(|&i| pool.row(i)).collect();
    let values = pixels_to_f32(&rows, 3, &norm).with_context(|| source.clone())?;
    let inputs = ArrayD::from_shape_vec(batch_shape(picked.len(), &out_shape)?, values)?;
    let targets = picked.iter().map(|&i| pool.labels[i]).collect();
    Ok(Batch { inputs, targets })
}

/// `train_data_batch_{1..10}` in `dir` or in `dir/ImageNet16` (NAS-Bench-201's layout).
fn train_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: no such folder (expected the folder of train_data_batch_1..10)", dir.display());
    }
    let base = [dir.to_path_buf(), dir.join("ImageNet16")]
        .into_iter()
        .find(|d| d.join("train_data_batch_1").is_file())
        .ok_or_else(|| anyhow!("{}: missing file (looked in the folder and in ImageNet16/)", dir.join("train_data_batch_1").display()))?;
    let files: Vec<PathBuf> = (1..=FILES).map(|i| base.join(format!("train_data_batch_{i}"))).collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        bail!("{}: missing file", missing.display());
    }
    Ok(files)
}

/// Keeps the samples with labels in `1..=num_classes`, 0-based.
fn keep_subset(file: &Path, rows: &[u8], labels: &[i64], num_classes: usize, pool: &mut PixelPool) -> Result<()> {
    let row_len = pool.row_len;
    for (i, (&label, row)) in labels.iter().zip(rows.chunks_exact(row_len)).enumerate() {
        if label < 1 {
            bail!("{}: label {label} of sample {i} is below 1 (ImageNet16 labels are 1-based)", file.display());
        }
        if label as u64 <= num_classes as u64 {
            pool.push(row, label - 1);
        }
    }
    Ok(())
}

/// Reads one pickle: (image side, N×3·side² pixel bytes, N labels as stored).
fn read_pickle(file: &Path) -> Result<(usize, Vec<u8>, Vec<i64>)> {
    let name = file.display();
    let f = File::open(file).with_context(|| format!("{name}: cannot open"))?;
    let opts = DeOptions::new().keep_restore_state().replace_unresolved_globals();
    let value = serde_pickle::value_from_reader(BufReader::with_capacity(1 << 20, f), opts)
        .map_err(|e| anyhow!("{name}: not a readable pickle: {e}"))?;
    let Value::Dict(dict) = value else {
        bail!("{name}: expected a pickled dict with `data` and `labels`");
    };
    let get = |key: &str| {
        dict.get(&HashableValue::String(key.into()))
            .or_else(|| dict.get(&HashableValue::Bytes(key.as_bytes().to_vec())))
            .ok_or_else(|| anyhow!("{name}: the pickled dict has no `{key}` entry"))
    };
    let labels = decode_labels(get("labels")?).with_context(|| format!("{name}: cannot read `labels`"))?;
    let (rows, row_len) = decode_data(get("data")?, labels.len()).with_context(|| format!("{name}: cannot read `data`"))?;
    let side = ((row_len / 3) as f64).sqrt().round() as usize;
    if side == 0 || 3 * side * side != row_len {
        bail!("{name}: rows of {row_len} bytes are not 3×S×S images");
    }
    Ok((side, rows, labels))
}

/// A NumPy array as serde-pickle decodes it: shape, byte order, layout and raw bytes.
struct NdArray<'a> {
    shape: Vec<usize>,
    big_endian: bool,
    fortran: bool,
    raw: &'a [u8],
}

fn items(v: &Value) -> Option<&[Value]> {
    match v {
        Value::List(x) | Value::Tuple(x) => Some(x),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::I64(i) => Some(*i),
        Value::Int(b) => b.to_string().parse().ok(),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

fn shape(v: &Value) -> Option<Vec<usize>> {
    items(v)?.iter().map(|d| int(d).and_then(|d| usize::try_from(d).ok())).collect()
}

/// The byte order of a pickled dtype's state `(3, '<', None, …)`.
fn dtype_big_endian(v: &Value) -> Option<bool> {
    match items(v)?.get(1)? {
        Value::String(s) => Some(s == ">"),
        Value::Bytes(b) => Some(b == b">"),
        _ => None,
    }
}

fn as_ndarray(v: &Value) -> Option<NdArray<'_>> {
    let t = items(v)?;
    match t {
        // ndarray.__setstate__ state: (version, shape, dtype, is_fortran, raw)
        [Value::I64(_), shp, dt, fortran, raw] => Some(NdArray {
            shape: shape(shp)?,
            big_endian: dtype_big_endian(dt)?,
            fortran: int(fortran)? != 0,
            raw: bytes(raw)?,
        }),
        // protocol 5: _frombuffer(raw, dtype, shape, order)
        [raw, dt, shp, order] => Some(NdArray {
            shape: shape(shp)?,
            big_endian: dtype_big_endian(dt)?,
            fortran: matches!(order, Value::String(o) if o == "F"),
            raw: bytes(raw)?,
        }),
        _ => None,
    }
}

/// Integers of `size` bytes from raw array memory.
fn ints_from_raw(raw: &[u8], size: usize, big_endian: bool) -> Result<Vec<i64>> {
    let conv = |c: &[u8]| -> i64 {
        let mut b = [0u8; 8];
        if big_endian {
            b[8 - size..].copy_from_slice(c);
            let v = u64::from_be_bytes(b);
            sign_extend(v, size)
        } else {
            b[..size].copy_from_slice(c);
            sign_extend(u64::from_le_bytes(b), size)
        }
    };
    match size {
        1 | 2 | 4 | 8 => Ok(raw.chunks_exact(size).map(conv).collect()),
        _ => bail!("items of {size} bytes are not integers"),
    }
}

fn sign_extend(v: u64, size: usize) -> i64 {
    let shift = 64 - 8 * size as u32;
    ((v << shift) as i64) >> shift
}

fn decode_labels(v: &Value) -> Result<Vec<i64>> {
    if let Some(a) = as_ndarray(v) {
        let n: usize = a.shape.iter().product();
        if n == 0 || a.raw.len() % n != 0 {
            bail!("array of shape {:?} holds {} bytes", a.shape, a.raw.len());
        }
        return ints_from_raw(a.raw, a.raw.len() / n, a.big_endian);
    }
    let list = items(v).ok_or_else(|| anyhow!("expected a list of ints or a NumPy array"))?;
    list.iter()
        .enumerate()
        .map(|(i, x)| {
            if let Some(l) = int(x) {
                return Ok(l);
            }
            // a NumPy scalar: scalar(dtype, raw) decodes to (dtype state, raw)
            if let Some([dt, Value::Bytes(raw)]) = items(x) {
                if let Some(be) = dtype_big_endian(dt) {
                    if let Ok(v) = ints_from_raw(raw, raw.len(), be) {
                        if let [l] = v[..] {
                            return Ok(l);
                        }
                    }
                }
            }
            bail!("label {i} is not an integer")
        })
        .collect()
}

/// The pixel rows, concatenated, and the row length.
fn decode_data(v: &Value, n: usize) -> Result<(Vec<u8>, usize)> {
    if n == 0 {
        bail!("no labels, so no samples");
    }
    if let Some(a) = as_ndarray(v) {
        let total: usize = a.shape.iter().product();
        if a.shape.first() != Some(&n) {
            bail!("array of shape {:?} does not match the {n} labels", a.shape);
        }
        if a.raw.len() != total {
            bail!(
                "array of shape {:?} holds {} bytes, {} per element: expected uint8 pixels",
                a.shape,
                a.raw.len(),
                a.raw.len() as f64 / total.max(1) as f64
            );
        }
        let row_len = total / n;
        let rows = if a.fortran && a.shape.len() > 1 {
            // column-major: element (i, j) of the N×row matrix sits at j·N + i
            let mut out = vec![0u8; total];
            for (k, &p) in a.raw.iter().enumerate() {
                out[(k % n) * row_len + k / n] = p;
            }
            out
        } else {
            a.raw.to_vec()
        };
        return Ok((rows, row_len));
    }
    if let Some(all) = bytes(v) {
        if all.len() % n != 0 {
            bail!("{} bytes do not split into {n} rows", all.len());
        }
        return Ok((all.to_vec(), all.len() / n));
    }
    let list = items(v).ok_or_else(|| anyhow!("expected a NumPy uint8 array, bytes, or a list of rows"))?;
    if list.len() != n {
        bail!("{} rows but {n} labels", list.len());
    }
    let mut rows = Vec::new();
    let mut row_len = None;
    for (i, r) in list.iter().enumerate() {
        let row: Vec<u8> = match r {
            Value::Bytes(b) => b.clone(),
            _ => items(r)
                .and_then(|xs| xs.iter().map(|x| int(x).and_then(|p| u8::try_from(p).ok())).collect())
                .ok_or_else(|| anyhow!("row {i} is not bytes or a list of 0..=255 ints"))?,
        };
        match row_len {
            None => row_len = Some(row.len()),
            Some(l) if l != row.len() => bail!("row {i} has {} values, row 0 has {l}", row.len()),
            _ => {}
        }
        rows.extend_from_slice(&row);
    }
    Ok((rows, row_len.unwrap_or(0)))
}
