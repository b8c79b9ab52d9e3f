//! Shards: a deterministic slice of a job's sorted model list, chosen by `--shard i/n` or by
//! the index a cluster scheduler gives each task (a Slurm array, a Kubernetes indexed Job).

use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: usize,
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;
    /// `i/n` with `0 <= i < n`.
    fn from_str(s: &str) -> Result<Shard> {
        let (i, n) = s.split_once('/').ok_or_else(|| anyhow!("bad shard `{s}`: expected i/n, e.g. 0/4 (0-based)"))?;
        let index: usize = i.trim().parse().map_err(|_| anyhow!("bad shard `{s}`: expected i/n, e.g. 0/4"))?;
        let count: usize = n.trim().parse().map_err(|_| anyhow!("bad shard `{s}`: expected i/n, e.g. 0/4"))?;
        Shard::new(index, count)
    }
}

impl Shard {
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 {
            bail!("the shard count must be at least 1");
        }
        if index >= count {
            bail!("shard index {index} is out of range for {count} shards (indices are 0-based: 0..{})", count - 1);
        }
        Ok(Shard { index, count })
    }

    /// Models `index`, `index + count`, `index + 2·count`, ... of the sorted list: every
    /// shard gets a spread of the list (so of its sizes), and together the shards cover each
    /// model exactly once.
    pub fn select<T: Clone>(&self, items: &[T]) -> Vec<T> {
        items.iter().skip(self.index).step_by(self.count).cloned().collect()
    }

    /// `OUT.jsonl` → `OUT.shard-i-of-n.jsonl` (unchanged for a single shard).
    pub fn output_name(&self, base: &Path) -> PathBuf {
        if self.count == 1 {
            return base.to_path_buf();
        }
        let stem = base.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "results".into());
        let name = match base.extension() {
            Some(e) => format!("{stem}.shard-{}-of-{}.{}", self.index, self.count, e.to_string_lossy()),
            None => format!("{stem}.shard-{}-of-{}", self.index, self.count),
        };
        base.with_file_name(name)
    }
}

/// Where the shard came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Slurm,
    Kubernetes,
}

fn num(env: &dyn Fn(&str) -> Option<String>, var: &str) -> Result<Option<usize>> {
    match env(var) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| anyhow!("{var}={v} is not a whole number")),
    }
}

/// The shard to run: `--shard` first, then a Slurm array (`SLURM_ARRAY_TASK_ID`, with
/// `SLURM_ARRAY_TASK_MIN`/`_STEP` to make it 0-based and `SLURM_ARRAY_TASK_COUNT` or
/// `--shard-count` for the number), then a Kubernetes indexed Job (`JOB_COMPLETION_INDEX`,
/// with the number from `--shard-count` or the job's `shard_count`). `None`: no sharding.
pub fn resolve(
    flag: Option<&str>,
    flag_count: Option<usize>,
    job_count: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Shard, Origin)>> {
    if let Some(s) = flag {
        let shard: Shard = s.parse()?;
        if let Some(c) = flag_count {
            if c != shard.count {
                bail!("--shard {s} disagrees with the shard count {c}");
            }
        }
        return Ok(Some((shard, Origin::Flag)));
    }
    if let Some(id) = num(env, "SLURM_ARRAY_TASK_ID")? {
        let min = num(env, "SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = num(env, "SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let n = match (flag_count, num(env, "SLURM_ARRAY_TASK_COUNT")?.or(job_count)) {
            (Some(c), _) => c,
            (None, Some(c)) => c,
            (None, None) => bail!("SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT; pass --shard-count N"),
        };
        if id < min || (id - min) % step != 0 {
            bail!("SLURM_ARRAY_TASK_ID={id} does not fit SLURM_ARRAY_TASK_MIN={min}, STEP={step}");
        }
        let shard = Shard::new((id - min) / step, n).map_err(|e| anyhow!("Slurm array task: {e}"))?;
        return Ok(Some((shard, Origin::Slurm)));
    }
    if let Some(index) = num(env, "JOB_COMPLETION_INDEX")? {
        let Some(n) = flag_count.or(job_count) else {
            bail!("JOB_COMPLETION_INDEX is set (a Kubernetes indexed Job) but no shard count: set `shard_count` in the job (the Job's `completions`) or pass --shard-count N");
        };
        let shard = Shard::new(index, n).map_err(|e| anyhow!("Kubernetes indexed Job: {e}"))?;
        return Ok(Some((shard, Origin::Kubernetes)));
    }
    if flag_count.is_some() {
        bail!("--shard-count needs an index: --shard i/n, or SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment");
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn shards_partition_the_list() {
        let items: Vec<usize> = (0..10).collect();
        let mut all: Vec<usize> = (0..3).flat_map(|i| Shard::new(i, 3).unwrap().select(&items)).collect();
        all.sort();
        assert_eq!(all, items);
        assert_eq!(Shard::new(1, 3).unwrap().select(&items), vec![1, 4, 7]);
    }

    #[test]
    fn parsing_and_names() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { index: 2, count: 4 });
        assert!("4/4".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let s = Shard::new(1, 4).unwrap();
        assert_eq!(s.output_name(Path::new("out/r.jsonl")), PathBuf::from("out/r.shard-1-of-4.jsonl"));
    }

    #[test]
    fn scheduler_indices() {
        let none = env(&[]);
        assert_eq!(resolve(None, None, None, &none).unwrap(), None);
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"), ("SLURM_ARRAY_TASK_COUNT", "4")]);
        assert_eq!(resolve(None, None, None, &slurm).unwrap(), Some((Shard { index: 2, count: 4 }, Origin::Slurm)));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "1")]);
        assert!(resolve(None, None, None, &k8s).is_err());
        assert_eq!(resolve(None, None, Some(2), &k8s).unwrap(), Some((Shard { index: 1, count: 2 }, Origin::Kubernetes)));
        assert_eq!(resolve(Some("0/2"), None, Some(4), &k8s).unwrap().unwrap().1, Origin::Flag);
    }
}
