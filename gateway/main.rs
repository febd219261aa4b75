//! The `gateway` binary: parse the command line, load the configuration, dispatch.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gateway::cli::{self, exit};
use gateway::config::Config;

/// Secure file-exchange gateway: opens sealed (age + CMS) XML payloads, verifies and validates
/// them, and forwards them durably to the hub's integration queue.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about)]
struct Cli {
    /// Configuration file (default: ./gateway.toml when present, else embedded defaults).
    #[arg(long, global = true, env = "GATEWAY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: HTTPS upload and the watched inbox folders, until SIGINT or SIGTERM.
    Serve(cli::serve::Args),
    /// Import a folder of sealed files (a disc, a dump) from one agency, with a progress bar.
    Import(cli::import::Args),
    /// Open, verify and validate sealed files offline (exit 0 all accepted, 1 any rejected).
    Check(cli::check::Args),
    /// Validate XML documents against XML Schemas (exit 0 valid, 1 invalid, 2 usage/I/O, 3 schema cannot be compiled).
    Validate(cli::validate::Args),
    /// Sign an XML document (CMS) and encrypt it with age, as an agency does.
    Seal(cli::seal::Args),
    /// Upload sealed files to a gateway over HTTPS, with retries (the agency side).
    Send(cli::send::Args),
    /// Deliver an agency's extracts unattended: watch export folders, seal, send, keep receipts.
    #[command(subcommand)]
    Agent(cli::agent::Command),
    /// The gateway's own keys.
    #[command(subcommand)]
    Keys(cli::keys::Command),
    /// Agencies and their signing certificates.
    #[command(subcommand)]
    Agency(cli::agency::Command),
    /// People's accounts for the upload page and the console.
    #[command(subcommand)]
    User(cli::user::Command),
    /// The hub's requests to agencies: ask an agency's agent for data, and follow it.
    #[command(subcommand)]
    Request(cli::request::Command),
    /// Print the age recipient agencies should seal to.
    Recipient(cli::recipient::Args),
    /// The audit log.
    #[command(subcommand)]
    Audit(cli::audit::Command),
    /// Load the configuration, schemas and keys, and explain any mistake.
    CheckConfig(cli::check_config::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEWAY_LOG").unwrap_or_else(|_| {
                // A server reports what it does; one-shot commands only what goes wrong.
                let level = if matches!(cli.command, Command::Serve(_)) {
                    "info"
                } else {
                    "warn"
                };
                tracing_subscriber::EnvFilter::new(level)
            }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<u8> {
    // Commands that need no configuration run without one.
    match &cli.command {
        Command::Validate(args) => return Ok(cli::validate::run(args)),
        Command::Seal(args) => return cli::seal::run(args),
        Command::Send(args) => return cli::send::run(args),
        Command::Agent(cmd) => return cli::agent::run(cmd),
        Command::Recipient(args) if args.url.is_some() => {
            return cli::recipient::run_remote(args, args.url.as_deref().unwrap_or_default());
        }
        _ => {}
    }
    if matches!(cli.command, Command::Serve(_)) {
        // Before the configuration, whose default connection cap follows the limit.
        gateway::fsio::raise_descriptor_limit();
    }
    let config = Config::load(cli.config.as_deref())?;
    match &cli.command {
        Command::Serve(args) => cli::serve::run(args, &config),
        Command::Check(args) => cli::check::run(args, &config),
        Command::Import(args) => cli::import::run(args, &config),
        Command::Audit(cmd) => cli::audit::run(cmd, &config),
        Command::Keys(cmd) => cli::keys::run(cmd, &config),
        Command::Agency(cmd) => cli::agency::run(cmd, &config),
        Command::User(cmd) => cli::user::run(cmd, &config),
        Command::Request(cmd) => cli::request::run(cmd, &config),
        Command::CheckConfig(args) => cli::check_config::run(args, &config),
        Command::Recipient(args) => cli::recipient::run(args, &config),
        Command::Validate(_) | Command::Seal(_) | Command::Send(_) | Command::Agent(_) => {
            unreachable!("handled above")
        }
    }
}
