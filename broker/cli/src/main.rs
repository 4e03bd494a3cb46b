//! The `alliance` command. `main` only parses arguments and dispatches to one file per
//! subcommand; the broker itself is the `alliance-service` library.
#![forbid(unsafe_code)]

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: the request path allocates small, short-lived
/// buffers on every call, and glibc's malloc and free were about a tenth of the broker's
/// CPU under load (`docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// alliance: a cloud federation broker.
#[derive(Debug, Parser)]
#[command(name = "alliance", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by commands that read the config and the data dir.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Config file; the bundled demo federation when absent.
    #[arg(long, env = "ALLIANCE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data dir: SQLite database, dev issuer key, simulated members' state.
    #[arg(long, env = "ALLIANCE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(commands::serve::Args),
    /// Print a JWT signed by the development issuer, alone on stdout.
    Token(commands::token::Args),
    /// Apply database migrations.
    Migrate(commands::migrate::Args),
    /// Run a reference member cloud speaking the federation protocol.
    MemberSim(commands::member_sim::Args),
    /// Run the adapter conformance suite against a member cloud.
    Conformance(commands::conformance::Args),
    /// Validate a config file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Reconcile a member's statement with the broker's ledger (exit 0 clean, 1 discrepancies, 2 error).
    Reconcile(commands::reconcile::Args),
    /// A tenant's invoice for a month, in its billing currency.
    Invoice(commands::invoice::Args),
    /// Metered usage.
    Usage {
        #[command(subcommand)]
        command: UsageCommand,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Check a config file; errors name the key and the line.
    Check(commands::config_check::Args),
}

#[derive(Debug, Subcommand)]
enum UsageCommand {
    /// Write a period's usage as FOCUS CSV (default) or JSON to stdout.
    Export(commands::usage::Args),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain and signed checkpoints: exit 0 intact, 1 tampered or truncated.
    Verify(commands::audit_verify::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => commands::serve::run(args),
        Command::Token(args) => commands::token::run(args),
        Command::Migrate(args) => commands::migrate::run(args),
        Command::MemberSim(args) => commands::member_sim::run(args),
        Command::Conformance(args) => commands::conformance::run(args),
        Command::Reconcile(args) => commands::reconcile::run(args),
        Command::Invoice(args) => commands::invoice::run(args),
        Command::Config {
            command: ConfigCommand::Check(args),
        } => commands::config_check::run(args),
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => commands::audit_verify::run(args),
        Command::Usage {
            command: UsageCommand::Export(args),
        } => commands::usage::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("alliance: {error:#}");
            ExitCode::from(2)
        }
    }
}
