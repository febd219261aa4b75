//! The `gateway` binary: parse the command line and dispatch to a subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Secure file-exchange gateway.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate XML documents against XML Schemas (exit 0 valid, 1 invalid, 2 usage/I/O, 3 schema cannot be compiled).
    Validate(gateway::cli::validate::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                gateway::cli::exit::USAGE
            } else {
                gateway::cli::exit::OK
            });
        }
    };
    let code = match &cli.command {
        Command::Validate(args) => gateway::cli::validate::run(args),
    };
    ExitCode::from(code)
}
