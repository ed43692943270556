//! Assembling and running the server: open and migrate the store, load the validators, and
//! serve HTTP until SIGTERM or Ctrl-C (actix drains in-flight requests before exiting).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpMessage, HttpServer};
use anyhow::Context;
use tracing_actix_web::{RequestId, TracingLogger};

use crate::fhir::types::SEARCHABLE_TYPES;
use crate::fhir::{FhirServer, FhirSettings};
use crate::fhirpath::FhirPath;
use crate::http::logging::RequestLog;
use crate::http::{self, AppState};
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
}

/// Opens and migrates the store and loads what the REST layer validates against.
pub fn fhir_server(database_url: &str, profiles: &Path, pool_size: u32) -> anyhow::Result<FhirServer> {
    let definitions = Definitions::load(profiles).map_err(anyhow::Error::msg).context("loading the R4 definitions")?;
    let fhirpath = Arc::new(FhirPath::new(&definitions));
    let search = Arc::new(Registry::load(profiles, &SEARCHABLE_TYPES, fhirpath.clone()).context("loading search parameters")?);
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
        .with_context(|| format!("loading the validators from {} (is --profiles the repository's profiles/?)", profiles.display()))?;
    Ok(FhirServer {
        store,
        validator,
        search,
        summary_elements,
        settings: FhirSettings::default(),
    })
}

pub fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let fhir = Arc::new(fhir_server(
        &options.database_url,
        &options.profiles,
        options.pool_size,
    )?);
    if options.demo {
        let report = crate::import::fhir_files(&fhir, &[options.profiles.join("plan-net/example")])?;
        tracing::info!(%report, "demo data: Plan-Net IG examples");
    }
    let state = web::Data::new(AppState {
        fhir,
        base_url: options.base_url,
        max_body_bytes: options.max_body_bytes,
    });
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
                .configure(http::configure)
        })
        .shutdown_timeout(10)
        .bind(&options.listen)
        .with_context(|| format!("binding {}", options.listen))?;
        for addr in server.addrs() {
            // Tests and scripts read this line to find a port chosen with :0.
            println!("listening on http://{addr}");
        }
        tracing::info!(listen = %options.listen, "serving FHIR R4");
        server.run().await.context("HTTP server")
    })
}
