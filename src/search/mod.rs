//! NAS with proxies (to be written): NAS-Bench-201/101 spaces generated as ONNX, random
//! search and aging evolution with warm-up and move proposal.

use anyhow::{bail, Result};

/// `zerocost search ...`
#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    #[arg(long)]
    pub space: String,
}

/// `zerocost space ...`
#[derive(clap::Args, Debug)]
pub struct SpaceArgs {
    pub action: String,
}

pub fn search(args: SearchArgs) -> Result<i32> {
    bail!("search is not available yet (space {})", args.space)
}

pub fn space(args: SpaceArgs) -> Result<i32> {
    bail!("space commands are not available yet ({})", args.action)
}
