//! The `providercard` command line: one binary, one subcommand per job. Every subcommand takes
//! the same `--database-url` and `--config`, and loads the configuration before anything else:
//! a configuration error stops every subcommand with exit code 2 ([`CONFIG_ERROR`]).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
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
    /// A YAML configuration file (integrations, jobs, alerts; see README "Configuration");
    /// repeat to overlay later files on earlier ones. None: the defaults.
    #[arg(
        long = "config",
        value_name = "FILE",
        global = true,
        env = "PROVIDERCARD_CONFIG",
        value_delimiter = ','
    )]
    pub config: Vec<PathBuf>,
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
    /// Withdraw a resource from the public Plan-Net view (kept with its history, no longer
    /// claiming the profile, left out of default searches), e.g. after NPPES deactivated its NPI.
    Withdraw {
        /// `Type/id`
        reference: String,
        #[arg(long)]
        reason: String,
    },
    /// Undo a withdrawal.
    Reinstate {
        /// `Type/id`
        reference: String,
    },
    /// Rebuild the search index of every stored resource from the SearchParameters under
    /// --profiles (after adding one, or after an upgrade that changes extraction).
    Reindex,
    /// Register, list and revoke the backend clients that may write (SMART Backend Services).
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Inspect the configuration given with --config.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// NPPES bulk files: a synthetic generator and the raw parse rate.
    #[command(subcommand)]
    Nppes(NppesCommand),
    /// Run or list the durable jobs (NPPES enrichment and re-validation, alert deliveries).
    #[command(subcommand)]
    Jobs(JobsCommand),
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Enqueue one job of KIND now and work until it and the jobs it starts are finished,
    /// e.g. `nppes-revalidation` (which checks every stored NPI). Exits non-zero when any
    /// job is left failing or dead.
    Run {
        kind: String,
        /// Give up waiting for retries after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout_secs: u64,
    },
    /// List the jobs (newest first) as JSON lines.
    List {
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, and print the effective result as YAML (every
    /// secret as `***`). Exit code 0 when valid, 2 when not.
    Check,
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
    /// Refuse every write that does not conform to its type's Plan-Net profile, even when it
    /// does not claim it (by default such a resource is stored without claiming the profile).
    #[arg(long, env = "PROVIDERCARD_REQUIRE_PLAN_NET")]
    pub require_plan_net: bool,
    /// Accept writes without a token, from anyone (development and conformance kits only).
    #[arg(long, env = "PROVIDERCARD_OPEN_WRITES")]
    pub open_writes: bool,
    /// Require a token with a read scope (system/*.read, system/Type.rs) for reads and searches.
    #[arg(long, env = "PROVIDERCARD_READS_REQUIRE_TOKEN")]
    pub reads_require_token: bool,
    /// Lifetime of the access tokens issued, in seconds (1 to 3600).
    #[arg(long, env = "PROVIDERCARD_TOKEN_LIFETIME_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub token_lifetime_secs: u64,
    /// Requests per minute per client (by its token's client id); 0 turns the limit off.
    #[arg(long, env = "PROVIDERCARD_CLIENT_RATE_LIMIT", default_value_t = 1200)]
    pub client_rate_limit: u32,
    /// Requests per minute per peer IP address; 0 turns the limit off.
    #[arg(long, env = "PROVIDERCARD_IP_RATE_LIMIT", default_value_t = 0)]
    pub ip_rate_limit: u32,
    /// The longest a request may take, in seconds, before it is answered 503.
    #[arg(long, env = "PROVIDERCARD_REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// An origin whose browser clients may call the API (CORS); repeat for several. None: CORS off.
    #[arg(long = "cors-origin", env = "PROVIDERCARD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its client id (the `iss` and `sub` of its assertions).
    Add {
        /// A name for people (the payer or system), shown in the audit trail.
        name: String,
        /// The scopes the client may be granted, space-separated, e.g.
        /// "system/Practitioner.write system/PractitionerRole.cud".
        #[arg(long, required = true)]
        scope: String,
        #[command(flatten)]
        key: ClientKeyArgs,
    },
    /// List the clients (never their keys).
    List,
    /// Revoke a client: no new tokens, and the ones it holds stop working at once.
    Revoke { id: String },
}

/// How the client's assertions are verified: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ClientKeyArgs {
    /// The URL of the client's JWKS (fetched when an assertion arrives).
    #[arg(long)]
    pub jwks_url: Option<String>,
    /// A PEM file with the client's public key (RSA for RS384, EC P-384 for ES384).
    #[arg(long)]
    pub public_key: Option<PathBuf>,
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
    /// The NPPES Data Dissemination bundle (the monthly full file or a weekly increment): its
    /// zip or extracted folder. Streamed in batches; an interrupted import resumes after the
    /// last committed batch; re-importing rewrites nothing unchanged.
    Nppes {
        path: PathBuf,
        /// The monthly deactivation report (.xlsx, its .zip, or .csv): listed NPIs are withdrawn.
        #[arg(long)]
        deactivations: Option<PathBuf>,
        /// Rows per batch and transaction (memory is bounded by one batch).
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        batch_rows: u64,
        /// The companion files (secondary locations, other names, endpoints) are read ahead
        /// and written with their providers when together they are at most this many MiB of
        /// CSV; larger, each is imported in its own pass after the providers (0: always).
        #[arg(long, default_value_t = 512)]
        companions_in_memory_mib: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum NppesCommand {
    /// Write a synthetic Data Dissemination bundle (real headers, realistic distributions,
    /// deactivations, empty columns, multi-line quirks) into DIR, for tests and benchmarks.
    Generate {
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        rows: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Make every N-th provider row broken (the importer must report and skip it).
        #[arg(long)]
        bad_row_every: Option<u64>,
    },
    /// Read the providers file end to end without importing: the raw parse rate, the baseline
    /// of the import benchmark.
    ParseRate { path: PathBuf },
}

/// The exit code for a configuration that cannot be loaded (the same as clap's for a bad
/// command line: the invocation is wrong, not the run).
pub const CONFIG_ERROR: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    init_tracing();
    let config = match Config::load(&cli.common.config) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("providercard: configuration: {error}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    let result = match cli.command {
        Command::Serve(args) => server::serve(
            ServeOptions {
                database_url: cli.common.database_url,
                profiles: cli.common.profiles,
                listen: args.listen,
                demo: args.demo,
                base_url: args.base_url,
                max_body_bytes: args.max_body_bytes,
                pool_size: args.pool_size,
                open_writes: args.open_writes,
                reads_require_token: args.reads_require_token,
                token_lifetime_secs: args.token_lifetime_secs,
                client_rate_limit: args.client_rate_limit,
                ip_rate_limit: args.ip_rate_limit,
                request_timeout_secs: args.request_timeout_secs,
                cors_origins: args.cors_origins,
                require_plan_net: args.require_plan_net,
            },
            &config,
        ),
        Command::Migrate => migrate(&cli.common.database_url),
        Command::Import(command) => import(&cli.common, &config, command),
        Command::Reindex => reindex(&cli.common),
        Command::Withdraw { reference, reason } => withdrawal(&cli.common, &reference, Some(&reason)),
        Command::Reinstate { reference } => withdrawal(&cli.common, &reference, None),
        Command::Clients(command) => clients(&cli.common, command),
        Command::Jobs(command) => jobs(&cli.common, &config, command),
        Command::Nppes(command) => nppes(&cli.common, command),
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config.to_yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("providercard: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn import_nppes(
    fhir: &crate::fhir::FhirServer,
    integrations: &crate::integrations::setup::Integrations,
    path: &std::path::Path,
    deactivations: Option<&std::path::Path>,
    settings: &crate::integrations::nppes::bulk::import::ImportSettings,
) -> anyhow::Result<()> {
    use crate::integrations::nppes::bulk::import::import;
    use crate::integrations::nppes::bulk::mapping::MappingContext;
    let ctx = MappingContext::new(integrations.codes.clone(), integrations.plan_net_specialties.clone());
    let imported = import(&fhir.store, &ctx, path, deactivations, settings)?;
    let mut bad = 0;
    for report in &imported.files {
        println!("{report}");
        for row in report.bad_rows.iter().take(20) {
            println!("  skipped {row}");
        }
        bad += report.bad_rows.len();
    }
    if bad > 0 {
        println!("{bad} bad row(s) skipped (each logged with its line)");
    }
    println!("{imported}");
    Ok(())
}

fn nppes(common: &CommonOptions, command: NppesCommand) -> anyhow::Result<()> {
    use crate::integrations::nppes::bulk::{generate, parse_rate, GenerateOptions, TaxonomyPool};
    match command {
        NppesCommand::Generate {
            dir,
            rows,
            seed,
            bad_row_every,
        } => {
            let codes = crate::integrations::nppes::NuccCodeSet::load(
                &common.profiles.join(crate::integrations::setup::NUCC_FILE),
            )?;
            let options = GenerateOptions {
                rows,
                seed,
                bad_row_every,
                taxonomies: TaxonomyPool::from_code_set(&codes),
                ..GenerateOptions::default()
            };
            std::fs::create_dir_all(&dir)?;
            let summary = generate(&dir, &options)?;
            println!(
                "{} provider rows ({} individuals, {} organizations, {} deactivated, {} broken), {} secondary locations, {} other names, {} endpoints in {}",
                summary.provider_rows,
                summary.individuals,
                summary.organizations,
                summary.deactivated,
                summary.bad_row_lines.len(),
                summary.secondary_locations,
                summary.other_names,
                summary.endpoints,
                dir.display()
            );
            Ok(())
        }
        NppesCommand::ParseRate { path } => {
            let rate = parse_rate(&path)?;
            println!(
                "{} rows ({} bad) in {:.2} s: {:.0} rows/s",
                rate.rows,
                rate.bad_rows,
                rate.elapsed.as_secs_f64(),
                rate.rows_per_second()
            );
            Ok(())
        }
    }
}

fn jobs(common: &CommonOptions, config: &Config, command: JobsCommand) -> anyhow::Result<()> {
    use crate::jobs::worker::JobOutcome;
    let mut fhir = server::fhir_server(&common.database_url, &common.profiles, 4)?;
    let integrations = crate::integrations::setup::Integrations::build(config, &mut fhir, &common.profiles)?;
    match command {
        JobsCommand::List { kind } => {
            for job in integrations.queue.list(kind.as_deref())? {
                println!("{}", serde_json::to_string(&job)?);
            }
            Ok(())
        }
        JobsCommand::Run { kind, timeout_secs } => {
            if !integrations.handlers.kinds().contains(&kind) {
                anyhow::bail!(
                    "no job kind {kind} here (enabled: {})",
                    integrations.handlers.kinds().join(", ")
                );
            }
            integrations
                .queue
                .enqueue(&crate::jobs::NewJob::new(&kind, serde_json::json!({})))?;
            let kinds = crate::integrations::nppes::jobs::kinds_of(&kind);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let outcomes = runtime.block_on(
                integrations
                    .worker()
                    .drain(&kinds, std::time::Duration::from_secs(timeout_secs)),
            )?;
            let count = |o: JobOutcome| outcomes.iter().filter(|x| **x == o).count();
            let pending = integrations.queue.pending(&kinds)?;
            println!(
                "{kind}: {} done, {} retried, {} dead, {pending} still pending",
                count(JobOutcome::Done),
                count(JobOutcome::Retried),
                count(JobOutcome::Dead)
            );
            if pending > 0 || count(JobOutcome::Dead) > 0 {
                anyhow::bail!("{kind}: not every job finished");
            }
            Ok(())
        }
    }
}

fn migrate(database_url: &str) -> anyhow::Result<()> {
    let store = Store::open(database_url, 1, std::sync::Arc::new(crate::store::NoIndex))?;
    let applied = store.migrate()?;
    println!("{applied} migration(s) applied");
    Ok(())
}

fn import(common: &CommonOptions, config: &Config, command: ImportCommand) -> anyhow::Result<()> {
    let mut fhir = server::fhir_server(&common.database_url, &common.profiles, 4)?;
    // Imported providers get what written ones get: NPI checks, and NPPES enrichment queued
    // as jobs (the next `serve` runs them).
    let integrations = crate::integrations::setup::Integrations::build(config, &mut fhir, &common.profiles)?;
    let paths = match command {
        ImportCommand::Fhir { paths } => paths,
        ImportCommand::Examples => vec![common.profiles.join("plan-net/example")],
        ImportCommand::Nppes {
            path,
            deactivations,
            batch_rows,
            companions_in_memory_mib,
        } => {
            let settings = crate::integrations::nppes::bulk::import::ImportSettings {
                batch_rows: batch_rows as usize,
                companions_in_memory: companions_in_memory_mib.saturating_mul(1 << 20),
                ..Default::default()
            };
            return import_nppes(&fhir, &integrations, &path, deactivations.as_deref(), &settings);
        }
    };
    let report = crate::import::fhir_files(&fhir, &paths)?;
    println!("{report}");
    if report.failed > 0 {
        anyhow::bail!("{} file(s) could not be imported", report.failed);
    }
    Ok(())
}

fn withdrawal(common: &CommonOptions, reference: &str, reason: Option<&str>) -> anyhow::Result<()> {
    let Some((resource_type, id)) = reference.split_once('/') else {
        anyhow::bail!("give the resource as Type/id, not {reference}");
    };
    let fhir = server::fhir_server(&common.database_url, &common.profiles, 2)?;
    let outcome = match reason {
        Some(reason) => crate::fhir::withdrawal::withdraw(&fhir, resource_type, id, reason),
        None => crate::fhir::withdrawal::reinstate(&fhir, resource_type, id),
    };
    let version = outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", version.versioned_path());
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

fn clients(common: &CommonOptions, command: ClientsCommand) -> anyhow::Result<()> {
    use crate::auth::clients::{self, ClientKey};
    // Only the auth tables are touched: no search index, no validator to load. Migrating
    // first lets a client be registered before the server has ever run.
    let store = Store::open(&common.database_url, 1, std::sync::Arc::new(crate::store::NoIndex))?;
    store.migrate()?;
    let mut conn = store.conn()?;
    match command {
        ClientsCommand::Add { name, scope, key } => {
            let key = match (key.jwks_url, key.public_key) {
                (Some(url), None) => ClientKey::jwks_url(&url)?,
                (None, Some(path)) => {
                    let pem = std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                    ClientKey::from_pem(&pem)?
                }
                _ => anyhow::bail!("give exactly one of --jwks-url and --public-key"),
            };
            let id = clients::register(&mut conn, &name, &scope, &key)?;
            eprintln!("registered {name} ({}); its client id:", key.describe());
            println!("{id}");
        }
        ClientsCommand::List => {
            for client in clients::list(&mut conn)? {
                let status = match &client.revoked_at {
                    Some(at) => format!("revoked {at}"),
                    None => "active".to_string(),
                };
                println!(
                    "{}\t{}\t{status}\t{}\t{}",
                    client.id,
                    client.name,
                    client.key.describe(),
                    client.scopes
                );
            }
        }
        ClientsCommand::Revoke { id } => {
            clients::revoke(&mut conn, &id)?;
            println!("revoked {id}");
        }
    }
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
