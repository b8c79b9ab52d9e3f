//! Batch jobs over model zoos (to be written): YAML jobs, resumable JSON-lines results,
//! shards and merge, correlation reports.

use anyhow::{bail, Result};

/// `zerocost batch JOB.yaml`
#[derive(clap::Args, Debug)]
pub struct BatchArgs {
    pub job: std::path::PathBuf,
}

/// `zerocost merge`
#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    pub inputs: Vec<std::path::PathBuf>,
}

/// `zerocost correlate RESULTS.jsonl`
#[derive(clap::Args, Debug)]
pub struct CorrelateArgs {
    pub results: std::path::PathBuf,
}

pub fn batch(args: BatchArgs) -> Result<i32> {
    bail!("batch jobs are not available yet ({})", args.job.display())
}

pub fn merge(args: MergeArgs) -> Result<i32> {
    bail!("merge is not available yet ({} files)", args.inputs.len())
}

pub fn correlate(args: CorrelateArgs) -> Result<i32> {
    bail!("correlate is not available yet ({})", args.results.display())
}
