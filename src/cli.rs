//! The `providercard` command line: one binary, one subcommand per job. Every subcommand takes
//! the same `--database-url`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::server::{self, ServeOptions};
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "providercard",
    version,
    about = "ProviderCard Integrations: a FHIR R4 Plan-Net provider directory"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct CommonOptions {
    /// The store: sqlite://PATH (embedded, created on first use) or postgres://USER@HOST:PORT/DB.
    #[arg(
        long,
        global = true,
        env = "PROVIDERCARD_DATABASE_URL",
        default_value = "sqlite://providercard.db"
    )]
    pub database_url: String,
    /// The vendored conformance resources (see profiles/README.md).
    #[arg(long, global = true, env = "PROVIDERCARD_PROFILES", default_value = "profiles")]
    pub profiles: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the FHIR server (migrating the store first).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load data into the store.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Rebuild the search index of every stored resource from the SearchParameters under
    /// --profiles (after adding one, or after an upgrade that changes extraction).
    Reindex,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "PROVIDERCARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Load every example of the Plan-Net IG package (those not already stored).
    #[arg(long)]
    pub demo: bool,
    /// The public base URL used in Location headers and Bundle links (default: from Host).
    #[arg(long, env = "PROVIDERCARD_BASE_URL")]
    pub base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PROVIDERCARD_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Database connections in the pool.
    #[arg(long, env = "PROVIDERCARD_POOL_SIZE", default_value_t = 16)]
    pub pool_size: u32,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// FHIR JSON resources (files, or folders of *.json), each stored under its own id;
    /// unchanged resources are left alone.
    Fhir {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// The Plan-Net IG's example instances from profiles/plan-net/example.
    Examples,
}

pub fn run(cli: Cli) -> ExitCode {
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => server::serve(ServeOptions {
            database_url: cli.common.database_url,
            profiles: cli.common.profiles,
            listen: args.listen,
            demo: args.demo,
            base_url: args.base_url,
            max_body_bytes: args.max_body_bytes,
            pool_size: args.pool_size,
        }),
        Command::Migrate => migrate(&cli.common.database_url),
        Command::Import(command) => import(&cli.common, command),
        Command::Reindex => reindex(&cli.common),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("providercard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(database_url: &str) -> anyhow::Result<()> {
    let store = Store::open(database_url, 1, std::sync::Arc::new(crate::store::NoIndex))?;
    let applied = store.migrate()?;
    println!("{applied} migration(s) applied");
    Ok(())
}

fn import(common: &CommonOptions, command: ImportCommand) -> anyhow::Result<()> {
    let fhir = server::fhir_server(&common.database_url, &common.profiles, 4)?;
    let paths = match command {
        ImportCommand::Fhir { paths } => paths,
        ImportCommand::Examples => vec![common.profiles.join("plan-net/example")],
    };
    let report = crate::import::fhir_files(&fhir, &paths)?;
    println!("{report}");
    if report.failed > 0 {
        anyhow::bail!("{} file(s) could not be imported", report.failed);
    }
    Ok(())
}

fn reindex(common: &CommonOptions) -> anyhow::Result<()> {
    let fhir = server::fhir_server(&common.database_url, &common.profiles, 2)?;
    let mut total = 0;
    for resource_type in crate::fhir::types::SEARCHABLE_TYPES {
        let mut after: Option<String> = None;
        loop {
            let batch = fhir.store.list(resource_type, after.as_deref(), 500)?;
            let Some(last) = batch.last() else { break };
            after = Some(last.id.clone());
            fhir.store.write(|tx| {
                for current in &batch {
                    if let Some(resource) = current.content.as_deref().and_then(|c| serde_json::from_str(c).ok()) {
                        tx.reindex(resource_type, &current.id, &resource)?;
                    }
                }
                Ok::<_, crate::store::StoreError>(())
            })?;
            total += batch.len();
        }
    }
    println!("{total} resource(s) reindexed");
    Ok(())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PROVIDERCARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
