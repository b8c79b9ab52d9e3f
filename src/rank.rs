//! Ranks over a population, and the rank aggregates built on them. Below both `proxies`
//! (AZ-NAS's aggregate is declared there) and `jobs`/`search` (which compute aggregates over
//! the models they hold), so that neither has to import the other.

/// 1-based ranks; tied values share the mean of their ranks (`scipy.stats.rankdata`).
pub fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && x[idx[j]] == x[idx[i]] {
            j += 1;
        }
        let mean = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            r[k] = mean;
        }
        i = j;
    }
    r
}

/// Σ over columns of ln(rank / n): `columns[c][m]` is the value of component c on model m,
/// larger is better; ranks ascending with ties averaged (AZ-NAS's aggregate).
pub fn log_rank_sum(columns: &[Vec<f64>]) -> Vec<f64> {
    let n = columns.first().map_or(0, Vec::len);
    let mut out = vec![0.0; n];
    for c in columns {
        for (o, r) in out.iter_mut().zip(ranks(c)) {
            *o += (r / n as f64).ln();
        }
    }
    out
}

/// The models (indices) that have a value in every column, and the columns restricted to
/// them: an aggregate ranks only the models it can compare on every component.
pub fn complete_columns(columns: &[Vec<Option<f64>>]) -> (Vec<usize>, Vec<Vec<f64>>) {
    let n = columns.first().map_or(0, Vec::len);
    let complete: Vec<usize> = (0..n).filter(|&i| columns.iter().all(|c| c[i].is_some())).collect();
    let values = columns.iter().map(|c| complete.iter().map(|&i| c[i].unwrap()).collect()).collect();
    (complete, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_rank_sum_is_sum_of_log_rank_fractions() {
        let a = log_rank_sum(&[vec![1.0, 3.0, 2.0], vec![5.0, 4.0, 4.0]]);
        let want = [(1.0f64 / 3.0).ln() + (1.0f64).ln(), (1.0f64).ln() + (1.5f64 / 3.0).ln(), (2.0f64 / 3.0).ln() + (1.5f64 / 3.0).ln()];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12);
        }
    }

    #[test]
    fn minus_infinity_ranks_last() {
        assert_eq!(ranks(&[2.0, f64::NEG_INFINITY, 1.0]), vec![3.0, 1.0, 2.0]);
    }

    #[test]
    fn incomplete_models_are_left_out() {
        let (idx, cols) = complete_columns(&[vec![Some(1.0), None, Some(3.0)], vec![Some(4.0), Some(5.0), Some(6.0)]]);
        assert_eq!(idx, [0, 2]);
        assert_eq!(cols, [vec![1.0, 3.0], vec![4.0, 6.0]]);
    }
}
