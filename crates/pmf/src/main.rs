//! `pmf`: check, inspect and write Plums Model Format (PMF) models from the command line.
//!
//! Everything about validity, saving and hashing is done by the `plums-model` library; this
//! binary parses the command line, runs the command and maps the outcome to an exit code:
//! 0 success, 1 invalid model or refused edit, 2 bad command line, I/O or storage error
//! (see `failure` and docs/CLI.md).
#![deny(missing_docs)]

mod cache_cmd;
mod cli;
mod cp;
mod diff_cmd;
mod edit;
mod failure;
mod gc_cmd;
mod html;
mod lineage_cmd;
mod location;
mod ls;
mod output;
mod params;
mod progress;
mod prune;
mod show;
mod validate_cmd;

use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cli::{CheckpointCommand, Cli, ColorWhen, Command};
use failure::{EXIT_OK, EXIT_USAGE};

/// The allocator of the whole binary: `pmf ls` builds thousands of small YAML documents on
/// every core at once, where glibc's malloc cost a tenth of the listing's CPU time
/// (docs/PERFORMANCE.md, "Many models").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0; errors to stderr with code 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    match cli.color {
        ColorWhen::Auto => {}
        ColorWhen::Always => anstream::ColorChoice::Always.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
    }
    ExitCode::from(run(&cli.command))
}

/// Run one command; returns the exit code.
fn run(command: &Command) -> u8 {
    match command {
        Command::Validate(args) => validate_cmd::run(args),
        Command::Show(args) => show::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Lineage(args) => lineage_cmd::run(args),
        Command::Diff(args) => diff_cmd::run(args),
        Command::New(args) => edit::finish(Path::new(&args.dest), &args.edit, edit::new(args)),
        Command::Checkpoint(CheckpointCommand::Add(args)) => {
            edit::finish(Path::new(&args.dest), &args.edit, edit::checkpoint_add(args))
        }
        Command::Checkpoint(CheckpointCommand::Rm(args)) => {
            edit::finish(Path::new(&args.dest), &args.edit, edit::checkpoint_rm(args))
        }
        Command::Checkpoint(CheckpointCommand::Prune(args)) => prune::run(args),
        Command::Training(t) => {
            let (dest, options) = edit::training_target(t);
            edit::finish(Path::new(dest), options, edit::training(t))
        }
        Command::Cp(args) => cp::run(args),
        Command::Cache(c) => cache_cmd::run(c),
        Command::Gc(args) => gc_cmd::run(args),
        Command::Completions(args) => {
            let mut cmd = Cli::command();
            clap_complete::generate(args.shell, &mut cmd, "pmf", &mut std::io::stdout());
            EXIT_OK
        }
    }
}
