//! `providercard import nppes PATH`: a Data Dissemination bundle (the monthly full file or a
//! weekly increment, zipped or extracted) into the store as Plan-Net resources.
//!
//! The providers file is streamed: rows are read, mapped and written `batch_rows` at a time,
//! each batch in one transaction that also records the line reached, so memory stays bounded
//! by a few batches whatever the file's size, and an interrupted import resumes after the last
//! committed batch. Ids come from the NPI, and unchanged resources are not rewritten, so
//! importing the same file twice changes nothing and a weekly file updates only what changed.
//!
//! What hangs off a provider — secondary practice locations (`pl_pfile`), other names
//! (`othername_pfile`), endpoints (`endpoint_pfile`) — is read ahead and written with its
//! provider when those files are small enough (`ImportSettings::companions_in_memory`), the
//! rest applied afterwards to owners already stored (see `companions`); then, when given, the
//! deactivation report.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::companions::{self, CompanionRow, Companions, LeftRows};
use super::deactivation::read_deactivation_report;
use super::mapping::{self, MappingContext};
use super::reader::{BulkReadError, BulkReader, BulkRow, RowError};
use super::row::{EndpointRow, OtherNameRow, ProviderRow, SecondaryLocationRow};
use super::source::{DisseminationSource, FileKind, SourceError};
use crate::fhir::withdrawal;
use crate::store::bulk::{BatchStats, BulkResource, BulkWriter, PreparedBatch};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Read(#[from] BulkReadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the deactivation report: {0}")]
    Deactivations(String),
}

#[derive(Debug, Clone)]
pub struct ImportSettings {
    /// Rows per batch (and per transaction); memory is bounded by one batch.
    pub batch_rows: usize,
    /// Draw a progress bar (a terminal); otherwise a log line every `log_every`.
    pub progress_bar: bool,
    pub log_every: Duration,
    /// The companion files (secondary locations, other names, endpoints) are read ahead (held
    /// packed, about their own size) and written with their providers when together they are
    /// at most this many bytes of CSV (the national ones are about 250 MB); larger, each is
    /// streamed in its own pass.
    pub companions_in_memory: u64,
}

impl Default for ImportSettings {
    fn default() -> Self {
        ImportSettings {
            batch_rows: 2000,
            progress_bar: std::io::stderr().is_terminal(),
            log_every: Duration::from_secs(10),
            companions_in_memory: 512 << 20,
        }
    }
}

/// What one file gave.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub file: String,
    pub rows: u64,
    pub bad_rows: Vec<RowError>,
    pub resumed_after_line: Option<u64>,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Companion rows written with their provider, in the providers file's pass (counted there).
    pub with_providers: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for FileReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} rows in {:.1} s ({:.0} rows/s), {} bad; resources {} new, {} updated, {} unchanged",
            self.file,
            self.rows,
            self.elapsed.as_secs_f64(),
            self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.bad_rows.len(),
            self.inserted,
            self.updated,
            self.unchanged
        )?;
        if self.with_providers > 0 {
            write!(f, "; {} written with their provider", self.with_providers)?;
        }
        if let Some(line) = self.resumed_after_line {
            write!(f, " (resumed after line {line})")?;
        }
        Ok(())
    }
}

/// The bad rows kept per file for the report (all are logged).
pub(super) const BAD_ROWS_KEPT: usize = 1000;

/// What a whole import did: each file, and the search index rebuild after them.
#[derive(Debug, Default)]
pub struct ImportReport {
    pub files: Vec<FileReport>,
    /// How long rebuilding the search indexes took, when the import dropped them.
    pub index_rebuild: Option<Duration>,
    pub elapsed: Duration,
}

impl std::fmt::Display for ImportReport {
    /// The import's overall rate counts provider rows over everything: every file and the
    /// index rebuild.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(rebuild) = self.index_rebuild {
            writeln!(f, "search indexes rebuilt in {:.1} s", rebuild.as_secs_f64())?;
        }
        let providers: u64 = self
            .files
            .iter()
            .filter(|r| r.file.starts_with("npidata_pfile"))
            .map(|r| r.rows)
            .sum();
        write!(
            f,
            "import: {providers} provider rows in {:.1} s overall ({:.0} provider rows/s)",
            self.elapsed.as_secs_f64(),
            providers as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

/// Imports the bundle at `path`; `deactivations` is the monthly deactivation report, if given.
pub fn import(
    store: &Store,
    ctx: &MappingContext,
    path: &Path,
    deactivations: Option<&Path>,
    settings: &ImportSettings,
) -> Result<ImportReport, ImportError> {
    let started = Instant::now();
    let imported = import_files(store, ctx, path, deactivations, settings);
    // On an empty store the search tables' secondary indexes were dropped by the first file's
    // writer: they are rebuilt once, after every file, also when the import stopped on an error
    // (the directory stays searchable; a killed import's resume rebuilds them).
    let rebuilt = rebuild_search_indexes(store);
    let files = imported?;
    Ok(ImportReport {
        files,
        index_rebuild: rebuilt?,
        elapsed: started.elapsed(),
    })
}

/// Recreates the search indexes a first import dropped (how long it took); nothing when none
/// are dropped.
fn rebuild_search_indexes(store: &Store) -> Result<Option<Duration>, StoreError> {
    let started = Instant::now();
    let mut writer = store.bulk_writer("nppes:search-indexes")?;
    if !writer.indexes_dropped()? {
        return Ok(None);
    }
    tracing::info!("rebuilding the search indexes");
    writer.finish_bulk()?;
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "search indexes rebuilt");
    Ok(Some(started.elapsed()))
}

fn import_files(
    store: &Store,
    ctx: &MappingContext,
    path: &Path,
    deactivations: Option<&Path>,
    settings: &ImportSettings,
) -> Result<Vec<FileReport>, ImportError> {
    let mut source = DisseminationSource::open(path)?;
    let mut reports = Vec::new();
    let companions = Companions::read_ahead(&mut source, settings.companions_in_memory)?;
    if source.file(FileKind::Providers).is_some() {
        reports.push(import_file::<ProviderRow>(
            store,
            &mut source,
            FileKind::Providers,
            settings,
            |rows, store| providers(rows, store, ctx, companions.as_ref()),
        )?);
    }
    match companions.map(Companions::into_left_over) {
        Some(left) => {
            if let Some(rows) = left.locations {
                reports.push(import_left_over(
                    store,
                    rows,
                    settings,
                    companions::secondary_locations,
                )?);
            }
            if let Some(rows) = left.other_names {
                reports.push(import_left_over(store, rows, settings, companions::other_names)?);
            }
            if let Some(rows) = left.endpoints {
                reports.push(import_left_over(store, rows, settings, companions::endpoints)?);
            }
        }
        None => {
            if source.file(FileKind::SecondaryLocations).is_some() {
                reports.push(import_file::<SecondaryLocationRow>(
                    store,
                    &mut source,
                    FileKind::SecondaryLocations,
                    settings,
                    companions::secondary_locations,
                )?);
            }
            if source.file(FileKind::OtherNames).is_some() {
                reports.push(import_file::<OtherNameRow>(
                    store,
                    &mut source,
                    FileKind::OtherNames,
                    settings,
                    companions::other_names,
                )?);
            }
            if source.file(FileKind::Endpoints).is_some() {
                reports.push(import_file::<EndpointRow>(
                    store,
                    &mut source,
                    FileKind::Endpoints,
                    settings,
                    companions::endpoints,
                )?);
            }
        }
    }
    if let Some(report) = deactivations {
        reports.push(apply_deactivations(store, report)?);
    }
    Ok(reports)
}

/// How a file's batches may be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batches {
    /// Each row stands for distinct providers (the providers file: one row per NPI), so the next
    /// batch is mapped and prepared while the previous one commits. A key that still repeats
    /// across batches is caught by the commit's version check and planned again.
    Independent,
    /// Rows add to their owner (companion files: a provider's rows may straddle two batches), so
    /// a batch is mapped only once the previous one is committed.
    InOrder,
}

/// One batch as read: its resources and where the reader was.
struct ReadBatch {
    resources: Vec<BulkResource>,
    last_line: u64,
    rows_read: u64,
    byte_offset: u64,
}

/// Streams one file: rows in batches through `map`, each batch written with its checkpoint.
fn import_file<T: BulkRow + HasLine>(
    store: &Store,
    source: &mut DisseminationSource,
    kind: FileKind,
    settings: &ImportSettings,
    map: impl Fn(&[T], &Store) -> Result<Vec<BulkResource>, ImportError>,
) -> Result<FileReport, ImportError> {
    let started = Instant::now();
    let file = source.file(kind).expect("checked by the caller").clone();
    let mut report = FileReport {
        file: file.name.clone(),
        ..FileReport::default()
    };
    let mut writer = store.bulk_writer(&format!("nppes:{}", file.name))?;
    let mut reader = BulkReader::<_, T>::new(source.stream(kind)?)?;
    if let Some(line) = writer.checkpoint().and_then(|p| p.parse::<u64>().ok()) {
        reader.skip_to_line(line + 1)?;
        report.resumed_after_line = Some(line);
        tracing::info!(file = %file.name, line, "resuming after the last committed batch");
    }
    // On an empty store, the search tables' secondary indexes are dropped for the import and
    // rebuilt once at its end (`import`): measured 2× faster for the providers file on SQLite,
    // and the companion files' updates no longer land at random places in large indexes.
    let bulk = writer.begin_bulk()?;
    let batches = if kind == FileKind::Providers {
        Batches::Independent
    } else {
        Batches::InOrder
    };
    let mut progress = Progress::new(&file.name, file.uncompressed_size, settings);
    let mut committed = BatchStats::default();
    let mut account = |stats: BatchStats, read: &ReadBatch| {
        committed.inserted += stats.inserted;
        committed.updated += stats.updated;
        committed.unchanged += stats.unchanged;
        progress.update(read.byte_offset, read.rows_read);
    };
    let mut next_batch = || read_batch(&mut reader, &mut report, &file.name, settings.batch_rows, store, &map);
    match batches {
        Batches::InOrder => {
            while let Some(mut read) = next_batch()? {
                let resources = std::mem::take(&mut read.resources);
                let stats = writer.write_batch(resources, Some(&read.last_line.to_string()))?;
                account(stats, &read);
            }
        }
        Batches::Independent => std::thread::scope(|scope| -> Result<(), ImportError> {
            // One batch waits while one commits, and committed ones come back to be freed here:
            // the committing thread is the import's bottleneck, and freeing a batch (its JSON
            // trees above all) was a tenth of its time. Memory stays bounded by five batches.
            let (ready, to_commit) = std::sync::mpsc::sync_channel::<(PreparedBatch, ReadBatch)>(1);
            let (spent, committed) = std::sync::mpsc::channel::<PreparedBatch>();
            let writer = &mut writer;
            let committer = scope.spawn(move || -> Result<(), ImportError> {
                for (mut prepared, read) in to_commit {
                    let stats = writer.commit(&mut prepared, Some(&read.last_line.to_string()))?;
                    account(stats, &read);
                    let _ = spent.send(prepared);
                }
                Ok(())
            });
            let produced = (|| -> Result<(), ImportError> {
                loop {
                    committed.try_iter().for_each(drop);
                    let Some(mut read) = next_batch()? else { break };
                    let prepared = store.prepare_bulk_batch(std::mem::take(&mut read.resources))?;
                    if ready.send((prepared, read)).is_err() {
                        break; // the committer stopped on an error, reported below
                    }
                }
                Ok(())
            })();
            drop(ready);
            committer
                .join()
                .unwrap_or_else(|_| Err(StoreError::Corrupt("the batch committer panicked".into()).into()))?;
            produced
        })?,
    }
    if bulk {
        writer.keep_indexes_dropped();
    }
    writer.clear_checkpoint()?;
    report.inserted = committed.inserted as u64;
    report.updated = committed.updated as u64;
    report.unchanged = committed.unchanged as u64;
    progress.finish(report.rows);
    report.elapsed = started.elapsed();
    tracing::info!(%report, "imported");
    Ok(report)
}

/// Companion rows read ahead whose provider was not in this run, applied to their owners as
/// stored, `batch_rows` at a time (a batch is mapped once the previous one is committed: rows
/// of one owner may straddle two). No checkpoint: they are read again with the bundle.
fn import_left_over<T: BulkRow + CompanionRow>(
    store: &Store,
    rows: LeftRows<T>,
    settings: &ImportSettings,
    map: impl Fn(&[T], &Store) -> Result<Vec<BulkResource>, ImportError>,
) -> Result<FileReport, ImportError> {
    let started = Instant::now();
    let mut report = rows.report.clone();
    let mut writer = store.bulk_writer(&format!("nppes:{}", report.file))?;
    let bulk = writer.begin_bulk()?;
    for batch in rows.batches(settings.batch_rows) {
        let stats = writer.write_batch(map(&batch, store)?, None)?;
        report.inserted += stats.inserted as u64;
        report.updated += stats.updated as u64;
        report.unchanged += stats.unchanged as u64;
    }
    if bulk {
        writer.keep_indexes_dropped();
    }
    report.elapsed += started.elapsed();
    tracing::info!(%report, "imported");
    Ok(report)
}

/// Reads up to `batch_rows` rows and maps them; `None` at the end of the file. Bad rows are
/// logged and counted in `report`, and skipped.
fn read_batch<R: std::io::Read, T: BulkRow + HasLine>(
    reader: &mut BulkReader<R, T>,
    report: &mut FileReport,
    file: &str,
    batch_rows: usize,
    store: &Store,
    map: &impl Fn(&[T], &Store) -> Result<Vec<BulkResource>, ImportError>,
) -> Result<Option<ReadBatch>, ImportError> {
    let mut rows: Vec<T> = Vec::with_capacity(batch_rows);
    let mut last_line = 0;
    while rows.len() < batch_rows {
        match reader.next_row()? {
            Some(Ok(row)) => {
                last_line = row.line();
                rows.push(row);
            }
            Some(Err(bad)) => {
                tracing::warn!(file, line = bad.line, problem = %bad.message, "row skipped");
                if report.bad_rows.len() < BAD_ROWS_KEPT {
                    report.bad_rows.push(bad);
                }
            }
            None => break,
        }
        report.rows += 1;
    }
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(ReadBatch {
        resources: map(&rows, store)?,
        last_line,
        rows_read: report.rows,
        byte_offset: reader.byte_offset(),
    }))
}

/// The line a row starts on, for checkpoints.
pub trait HasLine {
    fn line(&self) -> u64;
}

macro_rules! has_line {
    ($($t:ty),*) => { $(impl HasLine for $t { fn line(&self) -> u64 { self.line } })* };
}
has_line!(ProviderRow, SecondaryLocationRow, OtherNameRow, EndpointRow);

/// Active rows map to their resources. A deactivated NPI's row comes nearly blank: what is
/// stored for it is withdrawn (kept with its history, out of default searches) rather than
/// replaced by the blank row; only an NPI never stored gets the mapped, withdrawn resources.
fn providers(
    rows: &[ProviderRow],
    store: &Store,
    ctx: &MappingContext,
    companions: Option<&Companions>,
) -> Result<Vec<BulkResource>, ImportError> {
    let (deactivated, active): (Vec<&ProviderRow>, Vec<&ProviderRow>) =
        rows.iter().partition(|row| mapping::deactivation(row).is_some());
    let mut out: Vec<BulkResource> = active
        .iter()
        .flat_map(|row| mapping::provider_resources(row, ctx))
        .collect();
    keep_companion_links(store, &mut out)?;
    if let Some(companions) = companions {
        companions.attach(&active, &mut out);
    }
    if !deactivated.is_empty() {
        let npis: Vec<String> = deactivated.iter().map(|r| r.npi.clone()).collect();
        let (withdrawn, stored) = withdraw_stored(store, &npis)?;
        out.extend(withdrawn);
        for row in deactivated.iter().filter(|r| !stored.contains(&r.npi)) {
            out.extend(mapping::provider_resources(row, ctx));
        }
    }
    Ok(out)
}

/// A provider's row does not carry what the companion files added to its role or organization
/// (secondary locations, endpoints, other names); those are kept from the stored version, so
/// re-importing a file rewrites nothing and a weekly file changes only what it changes.
fn keep_companion_links(store: &Store, resources: &mut [BulkResource]) -> Result<(), StoreError> {
    let ids_of = |resource_type: &str| -> Vec<String> {
        resources
            .iter()
            .filter(|r| r.resource_type == resource_type)
            .map(|r| r.id.clone())
            .collect()
    };
    let (role_ids, org_ids) = (ids_of("PractitionerRole"), ids_of("Organization"));
    if role_ids.is_empty() && org_ids.is_empty() {
        return Ok(());
    }
    let stored = store.snapshot(|tx| {
        let mut all = tx.read_many("PractitionerRole", &role_ids)?;
        all.extend(tx.read_many("Organization", &org_ids)?);
        Ok(all)
    })?;
    let stored: HashMap<(String, String), Value> = stored
        .into_iter()
        .filter_map(|c| {
            let value = serde_json::from_str(c.content.as_deref()?).ok()?;
            Some(((c.resource_type, c.id), value))
        })
        .collect();
    for resource in resources.iter_mut() {
        let Some(old) = stored.get(&(resource.resource_type.to_string(), resource.id.clone())) else {
            continue;
        };
        for element in ["location", "endpoint", "alias"] {
            let Some(kept) = old.get(element).and_then(Value::as_array) else {
                continue;
            };
            let Some(fields) = resource.resource.as_object_mut() else {
                continue;
            };
            let target = fields.entry(element).or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = target.as_array_mut() {
                for item in kept {
                    if !list.contains(item) {
                        list.push(item.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

/// What is stored for these NPIs (person or organization, role, practice location), marked
/// withdrawn where it is not already; and the NPIs that have anything stored.
fn withdraw_stored(store: &Store, npis: &[String]) -> Result<(Vec<BulkResource>, HashSet<String>), StoreError> {
    let lists: [(&'static str, Vec<String>); 4] = [
        (
            "Practitioner",
            npis.iter().map(|n| mapping::practitioner_id(n)).collect(),
        ),
        (
            "Organization",
            npis.iter().map(|n| mapping::organization_id(n)).collect(),
        ),
        (
            "PractitionerRole",
            npis.iter().map(|n| mapping::practitioner_role_id(n)).collect(),
        ),
        (
            "Location",
            npis.iter().map(|n| mapping::practice_location_id(n)).collect(),
        ),
    ];
    let found = store.snapshot(|tx| {
        let mut all = Vec::new();
        for (resource_type, ids) in &lists {
            all.extend(
                tx.read_many(resource_type, ids)?
                    .into_iter()
                    .map(|c| (*resource_type, c)),
            );
        }
        Ok(all)
    })?;
    let mut out = Vec::new();
    let mut stored = HashSet::new();
    for (resource_type, current) in found {
        let Some(mut resource) = current
            .content
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
        else {
            continue;
        };
        let npi = npi_of_id(&current.id);
        stored.insert(npi.clone());
        if withdrawal::is_withdrawn(&resource) {
            continue;
        }
        withdrawal::mark_withdrawn(resource_type, &mut resource, &format!("NPPES deactivated NPI {npi}"));
        if resource_type == "Location" {
            resource["status"] = Value::String("inactive".into());
        }
        out.push(BulkResource {
            resource_type,
            id: current.id,
            resource,
        });
    }
    Ok((out, stored))
}

/// `npi-1234567893-role` → `1234567893`.
pub(super) fn npi_of_id(id: &str) -> String {
    id.trim_start_matches("npi-")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// The deactivation report lists the NPIs deactivated now: what is stored for each is
/// withdrawn. (A reactivated NPI leaves the report and comes back with its next row in a monthly
/// or weekly file, which maps to active resources.)
fn apply_deactivations(store: &Store, path: &Path) -> Result<FileReport, ImportError> {
    let started = Instant::now();
    let mut file = FileReport {
        file: path.display().to_string(),
        ..FileReport::default()
    };
    let report = read_deactivation_report(path).map_err(|e| ImportError::Deactivations(e.to_string()))?;
    let mut writer: BulkWriter = store.bulk_writer("nppes:deactivations")?;
    for chunk in report.rows.chunks(2000) {
        let mut npis = Vec::new();
        for row in chunk {
            file.rows += 1;
            match row {
                Ok(row) => npis.push(row.npi.clone()),
                Err(bad) => {
                    tracing::warn!(file = %file.file, line = bad.line, problem = %bad.message, "row skipped");
                    file.bad_rows.push(bad.clone());
                }
            }
        }
        let (withdrawn, _) = withdraw_stored(store, &npis)?;
        let stats = writer.write_batch(withdrawn, None)?;
        file.updated += stats.updated as u64;
        file.unchanged += stats.unchanged as u64;
    }
    file.elapsed = started.elapsed();
    tracing::info!(report = %file, "deactivations applied");
    Ok(file)
}

/// A progress bar on a terminal (bytes of the file, rows, rows/s, ETA); plain log lines
/// otherwise, so a log collector is not flooded with redraws.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    file: String,
    total_bytes: u64,
    started: Instant,
    last_log: Instant,
    log_every: Duration,
}

impl Progress {
    fn new(file: &str, total_bytes: u64, settings: &ImportSettings) -> Progress {
        let bar = settings.progress_bar.then(|| {
            let bar = indicatif::ProgressBar::new(total_bytes);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {percent}% {msg} eta {eta}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(file.to_string());
            bar
        });
        Progress {
            bar,
            file: file.to_string(),
            total_bytes,
            started: Instant::now(),
            last_log: Instant::now(),
            log_every: settings.log_every,
        }
    }

    fn update(&mut self, bytes: u64, rows: u64) {
        let rate = rows as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        if let Some(bar) = &self.bar {
            bar.set_position(bytes);
            bar.set_message(format!("{rows} rows, {rate:.0} rows/s"));
        } else if self.last_log.elapsed() >= self.log_every {
            self.last_log = Instant::now();
            let percent = if self.total_bytes > 0 {
                bytes as f64 * 100.0 / self.total_bytes as f64
            } else {
                0.0
            };
            let eta = if percent > 0.0 {
                self.started.elapsed().as_secs_f64() * (100.0 - percent) / percent
            } else {
                0.0
            };
            tracing::info!(file = %self.file, rows, rows_per_s = rate as u64, percent = percent as u64, eta_s = eta as u64, "importing");
        }
    }

    fn finish(&self, rows: u64) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(format!("{rows} rows"));
        }
    }
}
