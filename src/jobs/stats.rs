//! Rank statistics: Spearman's ρ (average ranks for ties), Kendall's τ-b (Knight's
//! O(n log n) algorithm, as scipy), pairwise ranking accuracy, the paper's `vote`, top-k
//! overlap. Values match `scipy.stats.spearmanr` and `scipy.stats.kendalltau`.

use std::cmp::Ordering;

pub use crate::rank::ranks;

/// Pearson correlation; NaN when either side is constant or n < 2.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len().min(y.len());
    if n < 2 {
        return f64::NAN;
    }
    let mx = x[..n].iter().sum::<f64>() / n as f64;
    let my = y[..n].iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// Spearman's rank correlation.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Pair counts behind Kendall's τ.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PairCounts {
    /// n(n-1)/2
    pub pairs: u64,
    /// pairs tied in x (including those tied in both)
    pub tied_x: u64,
    /// pairs tied in y (including those tied in both)
    pub tied_y: u64,
    /// pairs tied in both
    pub tied_xy: u64,
    /// discordant pairs
    pub discordant: u64,
}

impl PairCounts {
    pub fn concordant(&self) -> u64 {
        self.pairs + self.tied_xy - self.tied_x - self.tied_y - self.discordant
    }
}

fn tie_pairs<T, F: Fn(&T, &T) -> bool>(sorted: &[T], eq: F) -> u64 {
    let mut total = 0u64;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && eq(&sorted[i], &sorted[j]) {
            j += 1;
        }
        let t = (j - i) as u64;
        total += t * (t - 1) / 2;
        i = j;
    }
    total
}

/// Merge sort of `v`, returning the number of inversions (pairs i < j with v[i] > v[j]).
fn inversions(v: &mut Vec<f64>) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mut buf = v.clone();
    let mut count = 0u64;
    let mut width = 1;
    while width < n {
        let mut lo = 0;
        while lo < n {
            let mid = (lo + width).min(n);
            let hi = (lo + 2 * width).min(n);
            let (mut i, mut j, mut k) = (lo, mid, lo);
            while i < mid && j < hi {
                if v[j] < v[i] {
                    buf[k] = v[j];
                    count += (mid - i) as u64;
                    j += 1;
                } else {
                    buf[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buf[k..k + (mid - i)].copy_from_slice(&v[i..mid]);
            k += mid - i;
            buf[k..k + (hi - j)].copy_from_slice(&v[j..hi]);
            lo = hi;
        }
        std::mem::swap(v, &mut buf);
        width *= 2;
    }
    count
}

/// Concordance counts of (x, y) in O(n log n) (Knight 1966).
pub fn pair_counts(x: &[f64], y: &[f64]) -> PairCounts {
    let n = x.len().min(y.len());
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let tied_x = tie_pairs(&idx, |&a, &b| x[a] == x[b]);
    let tied_xy = tie_pairs(&idx, |&a, &b| x[a] == x[b] && y[a] == y[b]);
    let mut ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    let discordant = inversions(&mut ys);
    let tied_y = tie_pairs(&ys, |a, b| a == b);
    PairCounts { pairs: (n as u64) * (n.saturating_sub(1) as u64) / 2, tied_x, tied_y, tied_xy, discordant }
}

/// Kendall's τ-b; NaN when either side is constant or n < 2.
pub fn kendall(x: &[f64], y: &[f64]) -> f64 {
    let c = pair_counts(x, y);
    let tot = c.pairs as f64;
    let denom = ((tot - c.tied_x as f64) * (tot - c.tied_y as f64)).sqrt();
    if denom == 0.0 {
        return f64::NAN;
    }
    let con_minus_dis = c.pairs as f64 - c.tied_x as f64 - c.tied_y as f64 + c.tied_xy as f64 - 2.0 * c.discordant as f64;
    (con_minus_dis / denom).clamp(-1.0, 1.0)
}

/// Pairwise ranking accuracy of `score` for `truth`: over the pairs whose truths differ,
/// the fraction the score orders the same way (a tie in the score counts one half). NaN when
/// no pair has different truths.
pub fn pairwise_accuracy(score: &[f64], truth: &[f64]) -> f64 {
    let c = pair_counts(score, truth);
    let decided = c.pairs - c.tied_y;
    if decided == 0 {
        return f64::NAN;
    }
    let score_ties = c.tied_x - c.tied_xy;
    (c.concordant() as f64 + 0.5 * score_ties as f64) / decided as f64
}

fn sign(d: f64) -> i32 {
    match d.partial_cmp(&0.0) {
        Some(Ordering::Greater) => 1,
        Some(Ordering::Less) => -1,
        _ => 0,
    }
}

/// The paper's `vote`: for a pair of networks, the majority sign of the differences of the
/// given proxies (synflow, jacob_cov, snip), higher meaning better. Returns the pairwise
/// ranking accuracy of that vote against `truth` (a tied vote counts one half) and the
/// number of pairs with different truths.
pub fn vote_accuracy(proxies: &[&[f64]], truth: &[f64]) -> (f64, u64) {
    let n = truth.len();
    let (mut right, mut pairs) = (0.0f64, 0u64);
    for i in 0..n {
        for j in i + 1..n {
            let t = sign(truth[i] - truth[j]);
            if t == 0 {
                continue;
            }
            pairs += 1;
            let v: i32 = proxies.iter().map(|p| sign(p[i] - p[j])).sum();
            right += match sign(v as f64) * t {
                1 => 1.0,
                0 => 0.5,
                _ => 0.0,
            };
        }
    }
    (if pairs == 0 { f64::NAN } else { right / pairs as f64 }, pairs)
}

/// Indices of the `k` largest values (ties broken by index).
fn top(values: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Fraction of the `k` models with the highest truth that are among the `k` highest scores.
pub fn top_k_overlap(score: &[f64], truth: &[f64], k: usize) -> f64 {
    let k = k.min(score.len());
    if k == 0 {
        return f64::NAN;
    }
    let a = top(truth, k);
    let b = top(score, k);
    a.iter().filter(|i| b.contains(i)).count() as f64 / k as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// τ-b straight from its definition, O(n²).
    fn kendall_naive(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len();
        let (mut s, mut tx, mut ty, mut pairs) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..n {
            for j in i + 1..n {
                pairs += 1;
                let (a, b) = (sign(x[i] - x[j]), sign(y[i] - y[j]));
                s += (a * b) as i64;
                if a == 0 {
                    tx += 1;
                }
                if b == 0 {
                    ty += 1;
                }
            }
        }
        s as f64 / (((pairs - tx) * (pairs - ty)) as f64).sqrt()
    }

    #[test]
    fn fast_kendall_equals_the_definition() {
        let mut state = 12345u64;
        let mut rnd = |m: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % m) as f64
        };
        for n in [2, 3, 5, 17, 64, 200] {
            let x: Vec<f64> = (0..n).map(|_| rnd(7)).collect();
            let y: Vec<f64> = (0..n).map(|_| rnd(5)).collect();
            let (a, b) = (kendall(&x, &y), kendall_naive(&x, &y));
            assert!((a - b).abs() < 1e-12 || (a.is_nan() && b.is_nan()), "n={n}: {a} vs {b}");
        }
    }

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
    }
}
