//! Assembling and running the server: open and migrate the store, load the validators, and
//! serve HTTP until SIGTERM or Ctrl-C (actix drains in-flight requests before exiting).

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpMessage, HttpServer};
use anyhow::Context;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::auth::limits::LimitSettings;
use crate::auth::{AuthService, AuthSettings};
use crate::config::Config;
use crate::fhir::types::SEARCHABLE_TYPES;
use crate::fhir::{AccessPolicy, FhirServer, FhirSettings};
use crate::fhirpath::FhirPath;
use crate::http::logging::RequestLog;
use crate::http::{self, AppState};
use crate::integrations::setup::Integrations;
use crate::search::{Registry, SummaryElements};
use crate::store::Store;
use crate::validation::definitions::Definitions;
use crate::validation::Validator;

pub struct ServeOptions {
    pub database_url: String,
    pub profiles: PathBuf,
    pub listen: String,
    pub demo: bool,
    pub base_url: Option<String>,
    pub max_body_bytes: usize,
    pub pool_size: u32,
    pub open_writes: bool,
    pub reads_require_token: bool,
    pub token_lifetime_secs: u64,
    /// Requests per minute; 0 for no limit.
    pub client_rate_limit: u32,
    pub ip_rate_limit: u32,
    pub request_timeout_secs: u64,
    pub cors_origins: Vec<String>,
    pub require_plan_net: bool,
}

/// Opens and migrates the store and loads what the REST layer validates against.
pub fn fhir_server(database_url: &str, profiles: &Path, pool_size: u32) -> anyhow::Result<FhirServer> {
    let definitions = Definitions::load(profiles)
        .map_err(anyhow::Error::msg)
        .context("loading the R4 definitions")?;
    let fhirpath = Arc::new(FhirPath::new(&definitions));
    let search =
        Arc::new(Registry::load(profiles, &SEARCHABLE_TYPES, fhirpath.clone()).context("loading search parameters")?);
    for skipped in &search.skipped {
        tracing::debug!(parameter = %skipped, "search parameter not supported");
    }
    let summary_elements = SummaryElements::new(&definitions, &SEARCHABLE_TYPES);
    let store = Store::open(database_url, pool_size, search.clone()).context("opening the store")?;
    let applied = store.migrate().context("migrating the store")?;
    if applied > 0 {
        tracing::info!(applied, "migrations applied");
    }
    let validator = Validator::load(profiles, &definitions, fhirpath)
        .map_err(anyhow::Error::msg)
        .with_context(|| {
            format!(
                "loading the validators from {} (is --profiles the repository's profiles/?)",
                profiles.display()
            )
        })?;
    Ok(FhirServer {
        store,
        validator: Arc::new(validator),
        search,
        summary_elements,
        settings: FhirSettings::default(),
        write_hook: None,
    })
}

/// `config` is the loaded `--config` (integrations, jobs, alerts).
pub fn serve(options: ServeOptions, config: &Config) -> anyhow::Result<()> {
    tracing::info!(
        nppes = config.integrations.nppes.enabled,
        caqh = config.integrations.caqh.enabled,
        payers = config
            .integrations
            .payers
            .values()
            .filter(|payer| payer.enabled)
            .count(),
        "integrations configured"
    );
    let mut fhir = fhir_server(&options.database_url, &options.profiles, options.pool_size)?;
    fhir.settings.require_plan_net = options.require_plan_net;
    fhir.settings.access = AccessPolicy {
        open_writes: options.open_writes,
        reads_require_token: options.reads_require_token,
        cors: !options.cors_origins.is_empty(),
    };
    if options.open_writes {
        tracing::warn!(
            "OPEN-WRITES MODE: writes are accepted WITHOUT A TOKEN from anyone who can reach this \
             server. For development and conformance kits only; never in production."
        );
    }
    let auth = Arc::new(AuthService::new(
        fhir.store.clone(),
        AuthSettings {
            token_lifetime: Duration::from_secs(options.token_lifetime_secs),
            limits: LimitSettings {
                per_client: NonZeroU32::new(options.client_rate_limit),
                per_ip: NonZeroU32::new(options.ip_rate_limit),
            },
        },
    )?);
    let integrations = Arc::new(Integrations::build(config, &mut fhir, &options.profiles)?);
    crate::ops::metrics::install();
    let fhir = Arc::new(fhir);
    if options.demo {
        let report = crate::import::fhir_files(&fhir, &[options.profiles.join("plan-net/example")])?;
        tracing::info!(%report, "demo data: Plan-Net IG examples");
    }
    let state = web::Data::new(AppState {
        fhir,
        base_url: options.base_url,
        max_body_bytes: options.max_body_bytes,
        auth,
        request_timeout: Duration::from_secs(options.request_timeout_secs),
        integrations: integrations.clone(),
    });
    let cors_origins = options.cors_origins.clone();
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(|req, srv| {
                    let request_id = req.extensions().get::<RequestId>().map(|id| id.to_string());
                    let response = srv.call(req);
                    async move {
                        let mut response = response.await?;
                        if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                            response
                                .headers_mut()
                                .insert(HeaderName::from_static("x-request-id"), value);
                        }
                        Ok(response)
                    }
                })
                .wrap(TracingLogger::<RequestLog>::new())
                .wrap(Condition::new(!cors_origins.is_empty(), cors(&cors_origins)))
                .configure(http::configure)
        })
        .shutdown_timeout(10)
        // The time a client has to send its request head; the body and the work are bounded
        // by the per-request timeout in the HTTP layer.
        .client_request_timeout(Duration::from_secs(10))
        .bind(&options.listen)
        .with_context(|| format!("binding {}", options.listen))?;
        let addrs = server.addrs();
        // `run` installs the SIGTERM/SIGINT handlers; announce only once they are in place.
        let running = server.run();
        for addr in addrs {
            // Tests and scripts read this line to find a port chosen with :0.
            println!("listening on http://{addr}");
        }
        tracing::info!(listen = %options.listen, "serving FHIR R4");
        // Job workers, the scheduler, health checks and alert rules run beside the server
        // and stop with it.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        integrations.spawn_background(stopped);
        let result = running.await.context("HTTP server");
        let _ = stop.send(true);
        integrations.registry.shutdown().await;
        result
    })
}

/// CORS for browser clients of the configured origins (off when there are none): the FHIR
/// methods, the headers a FHIR client sends, and the ones it needs to read back.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "accept",
            "if-match",
            "if-none-exist",
            "prefer",
        ])
        .expose_headers([
            "etag",
            "location",
            "content-location",
            "last-modified",
            "x-request-id",
            "retry-after",
            "www-authenticate",
        ])
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}
