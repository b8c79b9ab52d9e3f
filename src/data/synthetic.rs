//! Seeded random data, so every proxy runs with nothing downloaded.
//!
//! Reproducible by definition: one `ChaCha8Rng::seed_from_u64(seed)` stream (rand_chacha
//! 0.3) first draws every input value in row-major order from `StandardNormal` as `f32`
//! (rand_distr 0.4), then, for `Random`, each label with `gen_range(0..num_classes)`.
//! `Grasp` labels are not drawn: `k` samples of class 0, then `k` of class 1, and so on.

use anyhow::{bail, Result};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::{batch_shape, Batch, BatchRequest, Dataload};

pub(crate) fn load(req: &BatchRequest) -> Result<Batch> {
    if req.input_shape.is_empty() {
        bail!("synthetic data needs the model's input shape (pass --input-shape)");
    }
    let count = req.wanted();
    let shape = batch_shape(count, &req.input_shape)?;
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let total: usize = shape.iter().product();
    let values: Vec<f32> = (0..total).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
    let targets: Vec<i64> = match req.dataload {
        Dataload::Random => (0..count).map(|_| rng.gen_range(0..req.num_classes) as i64).collect(),
        Dataload::Grasp => (0..req.num_classes)
            .flat_map(|c| std::iter::repeat_n(c as i64, req.dataload_info))
            .collect(),
    };
    let inputs = ArrayD::from_shape_vec(shape, values)?;
    Ok(Batch { inputs, targets })
}
