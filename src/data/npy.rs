//! Arrays the user prepared: `.npy` pairs and `.npz` archives, used as stored.
//!
//! Inputs are float32 (float64 is converted), any shape, samples on axis 0. Targets are
//! class indices of any integer dtype (int64 and int32 as PyTorch and NumPy write them),
//! shape `[N]` or `[N, 1]`. No normalization is applied: the arrays are taken to be what
//! the network expects already.

use std::fs::File;
use std::io::Cursor;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use ndarray::{ArrayD, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, ReadNpyError, ReadNpyExt, ReadNpzError, ReadableElement};

use super::sampling::select;
use super::{batch_shape, check_labels, Batch, BatchRequest};

/// `--inputs X.npy --targets Y.npy`.
pub(crate) fn load_pair(inputs: &Path, targets: &Path, req: &BatchRequest) -> Result<Batch> {
    let x = read_inputs(&mut NpyBytes::open(inputs)?, &inputs.display().to_string())?;
    let y = read_targets(&mut NpyBytes::open(targets)?, &targets.display().to_string())?;
    assemble(x, y, req, &inputs.display().to_string(), &targets.display().to_string())
}

/// `npy:DIR`: `DIR/inputs.npy` and `DIR/targets.npy`.
pub(crate) fn load_dir(dir: &Path, req: &BatchRequest) -> Result<Batch> {
    if !dir.is_dir() {
        bail!("{}: no such folder (npy:DIR expects DIR/inputs.npy and DIR/targets.npy)", dir.display());
    }
    load_pair(&dir.join("inputs.npy"), &dir.join("targets.npy"), req)
}

/// `npz:FILE`: arrays `inputs` and `targets`, or `x` and `y`.
pub(crate) fn load_npz(file: &Path, req: &BatchRequest) -> Result<Batch> {
    let name = file.display().to_string();
    let f = File::open(file).with_context(|| format!("{name}: cannot open"))?;
    let mut npz = NpzReader::new(f).map_err(|e| anyhow!("{name}: not a readable .npz archive: {e}"))?;
    let names = npz.names().map_err(|e| anyhow!("{name}: {e}"))?;
    let has = |n: &str| names.iter().any(|m| m == n);
    let (xi, yi) = if has("inputs") && has("targets") {
        ("inputs", "targets")
    } else if has("x") && has("y") {
        ("x", "y")
    } else if has("X") && has("Y") {
        ("X", "Y")
    } else {
        bail!("{name}: expected arrays `inputs` and `targets` (or `x` and `y`), found {names:?}");
    };
    let (xn, yn) = (format!("{name} (array `{xi}`)"), format!("{name} (array `{yi}`)"));
    let x = read_inputs(&mut NpzEntry { npz: &mut npz, name: xi }, &xn)?;
    let y = read_targets(&mut NpzEntry { npz: &mut npz, name: yi }, &yn)?;
    assemble(x, y, req, &xn, &yn)
}

/// Checks the pair agrees with itself and with the model, then picks the samples.
fn assemble(x: ArrayD<f32>, y: Vec<i64>, req: &BatchRequest, xname: &str, yname: &str) -> Result<Batch> {
    if x.ndim() == 0 {
        bail!("{xname}: inputs must have a sample axis, got a scalar");
    }
    let n = x.shape()[0];
    if n != y.len() {
        bail!("{xname} has {n} samples but {yname} has {} targets", y.len());
    }
    check_labels(&y, req.num_classes, Path::new(yname))?;
    let sample: Vec<usize> = x.shape()[1..].to_vec();
    let row_len: usize = sample.iter().product();
    let want = &req.input_shape;
    let out_shape = if want.is_empty() || *want == sample {
        sample.clone()
    } else if want.len() == 1 && want[0] == row_len {
        want.clone() // flattening keeps row-major order, as torch.flatten does
    } else {
        bail!("{xname}: samples have shape {sample:?} but the model wants {want:?}");
    };
    let picked = select(&y, req, true, xname)?.unwrap_or_default();
    let x = x.as_standard_layout();
    let flat = x.as_slice().ok_or_else(|| anyhow!("{xname}: inputs are not contiguous"))?;
    let mut values = Vec::with_capacity(picked.len() * row_len);
    for &i in &picked {
        values.extend_from_slice(&flat[i * row_len..(i + 1) * row_len]);
    }
    let inputs = ArrayD::from_shape_vec(batch_shape(picked.len(), &out_shape)?, values)?;
    let targets = picked.iter().map(|&i| y[i]).collect();
    Ok(Batch { inputs, targets })
}

/// Why an array could not be read as one element type.
enum ReadErr {
    /// Stored with another dtype (the descriptor, for the message): try the next type.
    WrongType(String),
    Other(anyhow::Error),
}

/// One stored array that can be read as a chosen element type.
trait Stored {
    fn read<T: ReadableElement>(&mut self) -> Result<ArrayD<T>, ReadErr>;
}

fn from_npy_error(e: ReadNpyError) -> ReadErr {
    match e {
        ReadNpyError::WrongDescriptor(d) => ReadErr::WrongType(d.to_string()),
        other => ReadErr::Other(anyhow!("{other}")),
    }
}

/// A `.npy` file read into memory once, parsed as many times as there are types to try.
struct NpyBytes(Vec<u8>);

impl NpyBytes {
    fn open(path: &Path) -> Result<Self> {
        std::fs::read(path).map(NpyBytes).with_context(|| format!("{}: cannot read", path.display()))
    }
}

impl Stored for NpyBytes {
    fn read<T: ReadableElement>(&mut self) -> Result<ArrayD<T>, ReadErr> {
        ArrayD::<T>::read_npy(Cursor::new(&self.0)).map_err(from_npy_error)
    }
}

struct NpzEntry<'a> {
    npz: &'a mut NpzReader<File>,
    name: &'a str,
}

impl Stored for NpzEntry<'_> {
    fn read<T: ReadableElement>(&mut self) -> Result<ArrayD<T>, ReadErr> {
        self.npz.by_name::<OwnedRepr<T>, IxDyn>(self.name).map_err(|e| match e {
            ReadNpzError::Npy(e) => from_npy_error(e),
            other => ReadErr::Other(anyhow!("{other}")),
        })
    }
}

fn read_inputs(s: &mut impl Stored, name: &str) -> Result<ArrayD<f32>> {
    match s.read::<f32>() {
        Ok(a) => return Ok(a),
        Err(ReadErr::Other(e)) => return Err(e.context(format!("{name}: cannot read inputs"))),
        Err(ReadErr::WrongType(_)) => {}
    }
    match s.read::<f64>() {
        Ok(a) => Ok(a.mapv(|v| v as f32)),
        Err(ReadErr::Other(e)) => Err(e.context(format!("{name}: cannot read inputs"))),
        Err(ReadErr::WrongType(d)) => bail!("{name}: inputs have dtype {d}; expected float32 or float64"),
    }
}

fn read_targets(s: &mut impl Stored, name: &str) -> Result<Vec<i64>> {
    /// Tries each integer type in turn; the first that matches the stored dtype wins.
    macro_rules! try_types {
        ($($t:ty),*) => {{
            let mut dtype: Option<String> = None;
            $(
                match s.read::<$t>() {
                    Ok(a) => return targets_vector(a.mapv(|v| v as i64), name),
                    Err(ReadErr::Other(e)) => return Err(e.context(format!("{name}: cannot read targets"))),
                    Err(ReadErr::WrongType(d)) => {
                        dtype.get_or_insert(d);
                    }
                }
            )*
            dtype.unwrap_or_default()
        }};
    }
    let dtype = try_types!(i64, i32, i16, i8, u8, u16, u32, u64);
    bail!("{name}: targets have dtype {dtype}; expected integer class indices (int64 or int32)")
}

fn targets_vector(a: ArrayD<i64>, name: &str) -> Result<Vec<i64>> {
    match a.shape() {
        [_] | [_, 1] => Ok(a.iter().copied().collect()),
        s => bail!("{name}: targets must be class indices of shape [N] or [N, 1], got {s:?}"),
    }
}
