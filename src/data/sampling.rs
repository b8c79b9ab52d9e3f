//! Choosing which samples form the batch, shared by every source.
//!
//! Selection looks only at labels, so a source can decide before it decodes any image, and
//! a source stored in several files can stop reading once the answer is known.

use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{BatchRequest, Dataload};

/// Picks sample indices for `req` from `labels` (all samples seen so far, in source order).
///
/// * `Random`: the first `batch_size × k` samples; if the source holds fewer, all of them
///   (the batch is then smaller than asked; only an empty source is an error).
/// * `Grasp`: the first `k` samples of each class, returned class by class.
///
/// With `req.shuffle` the order is a permutation of all samples (ChaCha8 seeded with
/// `req.seed`, Fisher–Yates via `SliceRandom::shuffle`), so it needs every label:
/// `complete` says whether `labels` is the whole source. Returns `Ok(None)` when more
/// samples are needed to decide. Labels outside `[0, num_classes)` are never picked by
/// `Grasp` (sources reject them before this).
pub(crate) fn select(labels: &[i64], req: &BatchRequest, complete: bool, source: &str) -> Result<Option<Vec<usize>>> {
    if req.shuffle && !complete {
        return Ok(None);
    }
    let order: Vec<usize> = if req.shuffle {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(req.seed));
        order
    } else {
        (0..labels.len()).collect()
    };
    match req.dataload {
        Dataload::Random => {
            let wanted = req.wanted();
            if order.len() < wanted && !complete {
                return Ok(None);
            }
            if order.is_empty() {
                bail!("{source} holds no samples");
            }
            Ok(Some(order.into_iter().take(wanted).collect()))
        }
        Dataload::Grasp => {
            let k = req.dataload_info;
            let mut per_class: Vec<Vec<usize>> = vec![Vec::with_capacity(k); req.num_classes];
            let mut full = 0;
            for i in order {
                let Ok(c) = usize::try_from(labels[i]) else { continue };
                if let Some(bucket) = per_class.get_mut(c) {
                    if bucket.len() < k {
                        bucket.push(i);
                        full += usize::from(bucket.len() == k);
                        if full == req.num_classes {
                            return Ok(Some(per_class.concat()));
                        }
                    }
                }
            }
            if !complete {
                return Ok(None);
            }
            let short: Vec<String> = per_class
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() < k)
                .map(|(c, b)| format!("class {c} has {}", b.len()))
                .collect();
            let shown = short.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            let more = if short.len() > 5 { format!(" (and {} more classes)", short.len() - 5) } else { String::new() };
            bail!(
                "{source}: grasp dataload needs {k} samples of each of the {} classes, but {shown}{more}",
                req.num_classes
            )
        }
    }
}

/// Raw CHW `u8` pixel rows with their labels, gathered file by file (CIFAR, ImageNet16).
#[derive(Debug, Default)]
pub(crate) struct PixelPool {
    pub row_len: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
}

impl PixelPool {
    pub fn new(row_len: usize) -> Self {
        PixelPool { row_len, pixels: Vec::new(), labels: Vec::new() }
    }

    pub fn push(&mut self, row: &[u8], label: i64) {
        debug_assert_eq!(row.len(), self.row_len);
        self.pixels.extend_from_slice(row);
        self.labels.push(label);
    }

    pub fn row(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.row_len..(i + 1) * self.row_len]
    }
}

/// Loads `n_chunks` chunks (files) in order into a pool until [`select`] can decide, so the
/// first batch of CIFAR-10 reads one file rather than five; shuffling reads them all.
pub(crate) fn select_from_chunks(
    n_chunks: usize,
    mut pool: PixelPool,
    mut load_chunk: impl FnMut(usize, &mut PixelPool) -> Result<()>,
    req: &BatchRequest,
    source: &str,
) -> Result<(PixelPool, Vec<usize>)> {
    for chunk in 0..n_chunks {
        load_chunk(chunk, &mut pool)?;
        if let Some(picked) = select(&pool.labels, req, chunk + 1 == n_chunks, source)? {
            return Ok((pool, picked));
        }
    }
    bail!("{source} holds no files to read")
}
