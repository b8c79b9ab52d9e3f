//! The `zerocost` command line: parses arguments, dispatches to one module per command
//! (src/cli/; batch, merge, correlate, search and space live in the library), and turns
//! errors into exit statuses: 0 success, 1 a model could not be read or scored, 2 a usage
//! or input error not tied to one model.

mod cli;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use cli::{ModelFailed, Usage, EXIT_MODEL, EXIT_OK, EXIT_USAGE};

const EXIT_STATUS_HELP: &str = "Exit status: 0 if every model was read and scored (a proxy that fails on a model is \
reported in the output), 1 if at least one model could not be read or scored, 2 on a usage or input error not tied \
to one model (bad flag or value, conflicting flags, unwritable output, missing data source).";

#[derive(Parser)]
#[command(name = "zerocost", version, about = "Zero-cost proxies for neural architecture search, on any ONNX network")]
#[command(after_help = EXIT_STATUS_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score models with zero-cost proxies.
    Score(cli::score::ScoreArgs),
    /// Describe a model: inputs, outputs, scored layers, params, MACs, ops and their gradients.
    Inspect(cli::inspect::InspectArgs),
    /// List the proxies: paper, which way they rank, the data they read, what they compute.
    Proxies(cli::proxies::ProxiesArgs),
    /// List the ONNX ops zerocost accepts: opsets, and how each is differentiated (rule,
    /// lowered at import, removed) or why it has no gradient.
    Ops(cli::ops::OpsArgs),
    /// Score many models from a YAML job; resumable, JSON-lines results, shards.
    Batch(zerocost::jobs::BatchArgs),
    /// Join the JSON-lines outputs of shards, refusing conflicting duplicates.
    Merge(zerocost::jobs::MergeArgs),
    /// Rank correlation of each proxy with known accuracies.
    Correlate(zerocost::jobs::CorrelateArgs),
    /// Neural architecture search over a built-in space with proxies.
    Search(zerocost::search::SearchArgs),
    /// Built-in search spaces: export a network as ONNX, enumerate cells.
    Space(zerocost::search::SpaceArgs),
    /// Write the forward+backward program (mean cross-entropy loss) as an ONNX file.
    GradGraph(cli::grad_graph::GradGraphArgs),
    /// Print a shell completion script (e.g. `zerocost completions bash > /etc/bash_completion.d/zerocost`).
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn main() {
    let matches = Cli::command().get_matches();
    let sub = matches.subcommand_name().unwrap_or_default().to_string();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let code = match run(cli.command) {
        Ok(code) => code,
        Err(e) => exit_status(&sub, &e),
    };
    std::process::exit(code);
}

/// Reports `e` on stderr and returns the exit status its kind calls for.
fn exit_status(sub: &str, e: &anyhow::Error) -> i32 {
    // the reader of our output went away (`| head`): not an error
    if e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)) {
        return EXIT_OK;
    }
    if let Some(Usage(msg)) = e.downcast_ref::<Usage>() {
        // as clap reports its own: the message, the command's usage line, exit status 2
        let mut cmd = Cli::command();
        cmd.build();
        let cmd = cmd.find_subcommand_mut(sub).expect("the command that ran");
        cmd.error(clap::error::ErrorKind::ArgumentConflict, msg).exit();
    }
    eprintln!("zerocost: {}", zerocost::error_text::one_line(e));
    if e.downcast_ref::<ModelFailed>().is_some() {
        EXIT_MODEL
    } else {
        EXIT_USAGE
    }
}

fn run(command: Command) -> Result<i32> {
    match command {
        Command::Score(args) => cli::score::run(args),
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Proxies(args) => cli::proxies::run(args),
        Command::Ops(args) => cli::ops::run(args),
        Command::Batch(args) => zerocost::jobs::batch(args),
        Command::Merge(args) => zerocost::jobs::merge(args),
        Command::Correlate(args) => zerocost::jobs::correlate(args),
        Command::Search(args) => zerocost::search::search(args),
        Command::Space(args) => zerocost::search::space(args),
        Command::GradGraph(args) => cli::grad_graph::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "zerocost", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent_and_every_argument_has_help() {
        Cli::command().debug_assert();
        let cli = Cli::command();
        for name in ["score", "inspect", "proxies", "ops", "grad-graph", "completions", "batch"] {
            let sub = cli.find_subcommand(name).unwrap();
            for arg in sub.get_arguments().filter(|a| !["help", "version"].contains(&a.get_id().as_str())) {
                assert!(arg.get_help().is_some(), "{name} {} has no help", arg.get_id());
            }
        }
    }
}
