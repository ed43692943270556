//! What hangs off a provider: its secondary practice locations (`pl_pfile`), other names
//! (`othername_pfile`) and endpoints (`endpoint_pfile`), each row keyed by the owner's NPI.
//!
//! Two ways in. On a monthly file the companion files (about a fortieth of the providers file)
//! are read ahead into memory by NPI and each provider's rows go out with the provider's own
//! resources ([`Companions::attach`]): a first import then writes every resource once, and
//! never needs the search tables' owner indexes before the final rebuild. Rows whose provider
//! was not in this run (a weekly file's, a deactivated NPI's, those before a resumed import's
//! checkpoint) and whole files too large to hold are applied afterwards to the owner as stored
//! ([`secondary_locations`], [`other_names`], [`endpoints`]), in batches, as before.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Instant;

use serde_json::Value;

use super::import::{npi_of_id, FileReport, HasLine, ImportError, BAD_ROWS_KEPT};
use super::mapping;
use super::reader::{BulkReader, BulkRow};
use super::row::{EndpointRow, OtherNameRow, ProviderRow, SecondaryLocationRow};
use super::source::{DisseminationSource, FileKind};
use crate::store::bulk::BulkResource;
use crate::store::{Store, StoreError};

/// One companion file read ahead: its rows by NPI, in the file's order, and what reading gave.
pub struct ByNpi<T> {
    rows: HashMap<String, Vec<T>>,
    pub report: FileReport,
}

impl<T: BulkRow + CompanionRow> ByNpi<T> {
    fn read(source: &mut DisseminationSource, kind: FileKind) -> Result<Option<ByNpi<T>>, ImportError> {
        let Some(file) = source.file(kind) else {
            return Ok(None);
        };
        let started = Instant::now();
        let mut report = FileReport {
            file: file.name.clone(),
            ..FileReport::default()
        };
        let mut reader = BulkReader::<_, T>::new(source.stream(kind)?)?;
        let mut rows: HashMap<String, Vec<T>> = HashMap::new();
        while let Some(row) = reader.next_row()? {
            report.rows += 1;
            match row {
                Ok(row) => rows.entry(row.npi().to_string()).or_default().push(row),
                Err(bad) => {
                    tracing::warn!(file = %report.file, line = bad.line, problem = %bad.message, "row skipped");
                    if report.bad_rows.len() < BAD_ROWS_KEPT {
                        report.bad_rows.push(bad);
                    }
                }
            }
        }
        report.elapsed = started.elapsed();
        Ok(Some(ByNpi { rows, report }))
    }

    fn of(&self, npi: &str) -> &[T] {
        self.rows.get(npi).map_or(&[], Vec::as_slice)
    }

    /// The rows whose provider was not attached, in the file's order.
    fn left_over(&mut self, attached: &HashSet<String>) -> Vec<T> {
        let mut left: Vec<T> = std::mem::take(&mut self.rows)
            .into_iter()
            .filter(|(npi, _)| !attached.contains(npi))
            .flat_map(|(_, rows)| rows)
            .collect();
        left.sort_by_key(|row| row.line());
        left
    }
}

/// The NPI a companion row hangs off.
pub trait CompanionRow: HasLine {
    fn npi(&self) -> &str;
}

macro_rules! companion_row {
    ($($t:ty),*) => { $(impl CompanionRow for $t { fn npi(&self) -> &str { &self.npi } })* };
}
companion_row!(SecondaryLocationRow, OtherNameRow, EndpointRow);

/// The three companion files read ahead, and the NPIs whose rows went out with their provider.
pub struct Companions {
    pub locations: Option<ByNpi<SecondaryLocationRow>>,
    pub other_names: Option<ByNpi<OtherNameRow>>,
    pub endpoints: Option<ByNpi<EndpointRow>>,
    /// Filled by the providers file's reading thread only.
    attached: RefCell<HashSet<String>>,
}

impl Companions {
    /// Reads the bundle's companion files when together they fit in `limit` bytes (as CSV);
    /// `None` otherwise, and they are streamed in their own passes.
    pub fn read_ahead(source: &mut DisseminationSource, limit: u64) -> Result<Option<Companions>, ImportError> {
        let size: u64 = [FileKind::SecondaryLocations, FileKind::OtherNames, FileKind::Endpoints]
            .into_iter()
            .filter_map(|kind| source.file(kind))
            .map(|f| f.uncompressed_size)
            .sum();
        if size > limit || source.file(FileKind::Providers).is_none() {
            return Ok(None);
        }
        Ok(Some(Companions {
            locations: ByNpi::read(source, FileKind::SecondaryLocations)?,
            other_names: ByNpi::read(source, FileKind::OtherNames)?,
            endpoints: ByNpi::read(source, FileKind::Endpoints)?,
            attached: RefCell::new(HashSet::new()),
        }))
    }

    /// Adds each provider's companion rows to the resources its row mapped to (`out`): its
    /// secondary Locations and Endpoints, linked from its PractitionerRole or Organization, and
    /// its other names as the Organization's aliases, in the files' order.
    pub fn attach(&self, providers: &[&ProviderRow], out: &mut Vec<BulkResource>) {
        let owners: HashMap<(&'static str, String), usize> = out
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.resource_type, "PractitionerRole" | "Organization"))
            .map(|(i, r)| ((r.resource_type, r.id.clone()), i))
            .collect();
        let mut added = Vec::new();
        let mut attached = self.attached.borrow_mut();
        for row in providers {
            let npi = row.npi.as_str();
            let locations = self.locations.as_ref().map_or(&[][..], |f| f.of(npi));
            let other_names = self.other_names.as_ref().map_or(&[][..], |f| f.of(npi));
            let endpoints = self.endpoints.as_ref().map_or(&[][..], |f| f.of(npi));
            if locations.is_empty() && other_names.is_empty() && endpoints.is_empty() {
                continue;
            }
            attached.insert(npi.to_string());
            let owner = owners
                .get(&("PractitionerRole", mapping::practitioner_role_id(npi)))
                .or_else(|| owners.get(&("Organization", mapping::organization_id(npi))))
                .copied();
            let mut new = Vec::new();
            for location in locations {
                let owner = owner.map(|i| &mut out[i]);
                new.push(secondary_location(location, owner.map(|o| (o.resource_type, &mut o.resource))).0);
            }
            for name in other_names {
                if let Some(i) = owner {
                    other_name(name, (out[i].resource_type, &mut out[i].resource));
                }
            }
            for endpoint_row in endpoints {
                let owner = owner.map(|i| &mut out[i].resource);
                new.push(endpoint(endpoint_row, owner).0);
            }
            dedupe(&mut new);
            added.extend(new);
        }
        out.extend(added);
    }

    /// The rows whose provider was not in this run, file by file, in the files' order; what
    /// was attached is counted in each file's report.
    pub fn into_left_over(mut self) -> LeftOver {
        let attached = self.attached.into_inner();
        fn split<T: BulkRow + CompanionRow>(
            file: Option<&mut ByNpi<T>>,
            attached: &HashSet<String>,
        ) -> Option<(FileReport, Vec<T>)> {
            let file = file?;
            let left = file.left_over(attached);
            let mut report = file.report.clone();
            report.with_providers = report.rows - report.bad_rows.len() as u64 - left.len() as u64;
            Some((report, left))
        }
        LeftOver {
            locations: split(self.locations.as_mut(), &attached),
            other_names: split(self.other_names.as_mut(), &attached),
            endpoints: split(self.endpoints.as_mut(), &attached),
        }
    }
}

/// Companion rows still to apply to their stored owners, with each file's report so far.
pub struct LeftOver {
    pub locations: Option<(FileReport, Vec<SecondaryLocationRow>)>,
    pub other_names: Option<(FileReport, Vec<OtherNameRow>)>,
    pub endpoints: Option<(FileReport, Vec<EndpointRow>)>,
}

/// A stable small number from a row's content: companion rows have no id of their own, and a
/// content-derived one keeps re-imports idempotent without remembering counters per NPI.
fn content_number(parts: &[Option<&str>]) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut hasher);
    (hasher.finish() % 1_000_000_000) as usize
}

/// A secondary practice location, linked from its owner when known: a role lists it, an
/// organization is named as its manager. Whether the owner changed.
fn secondary_location(row: &SecondaryLocationRow, owner: Option<(&'static str, &mut Value)>) -> (BulkResource, bool) {
    let a = &row.address;
    let n = content_number(&[a.line1.as_deref(), a.city.as_deref(), a.postal_code.as_deref()]);
    let mut location = mapping::secondary_location(row, n);
    let changed = match owner {
        Some(("Organization", _)) => {
            mapping::set_managing_organization(&mut location.resource, &mapping::organization_id(&row.npi));
            false
        }
        Some((_, owner)) => mapping::link_location(owner, &location.id),
        None => false,
    };
    (location, changed)
}

/// An other name, as its organization's alias; whether the owner changed.
fn other_name(row: &OtherNameRow, owner: (&'static str, &mut Value)) -> bool {
    match owner {
        ("Organization", org) => mapping::add_alias(org, row),
        _ => false,
    }
}

/// An endpoint, linked from its owner when known; whether the owner changed.
fn endpoint(row: &EndpointRow, owner: Option<&mut Value>) -> (BulkResource, bool) {
    let n = content_number(&[Some(row.endpoint.as_str()), row.endpoint_type.as_deref()]);
    let endpoint = mapping::endpoint(row, n);
    let changed = owner.is_some_and(|owner| mapping::link_endpoint(owner, &endpoint.id));
    (endpoint, changed)
}

/// The stored owners of a batch of companion rows: the PractitionerRole of an individual, the
/// Organization of an organization, by NPI.
struct Owners {
    by_npi: HashMap<String, (&'static str, String, Value)>,
    changed: HashSet<String>,
}

impl Owners {
    fn load(store: &Store, npis: impl Iterator<Item = String>) -> Result<Owners, StoreError> {
        let npis: Vec<String> = npis.collect::<HashSet<_>>().into_iter().collect();
        let role_ids: Vec<String> = npis.iter().map(|n| mapping::practitioner_role_id(n)).collect();
        let org_ids: Vec<String> = npis.iter().map(|n| mapping::organization_id(n)).collect();
        let (roles, orgs) = store.snapshot(|tx| {
            Ok((
                tx.read_many("PractitionerRole", &role_ids)?,
                tx.read_many("Organization", &org_ids)?,
            ))
        })?;
        let mut by_npi = HashMap::new();
        for (resource_type, current) in roles
            .into_iter()
            .map(|c| ("PractitionerRole", c))
            .chain(orgs.into_iter().map(|c| ("Organization", c)))
        {
            let Some(value) = current
                .content
                .as_deref()
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
            else {
                continue;
            };
            by_npi.insert(npi_of_id(&current.id), (resource_type, current.id, value));
        }
        Ok(Owners {
            by_npi,
            changed: HashSet::new(),
        })
    }

    fn get_mut(&mut self, npi: &str) -> Option<(&'static str, &mut Value)> {
        self.by_npi.get_mut(npi).map(|(t, _, v)| (*t, v))
    }

    fn mark(&mut self, npi: &str, changed: bool) {
        if changed {
            self.changed.insert(npi.to_string());
        }
    }

    fn into_resources(self) -> Vec<BulkResource> {
        let changed = self.changed;
        self.by_npi
            .into_iter()
            .filter(|(npi, _)| changed.contains(npi))
            .map(|(_, (resource_type, id, resource))| BulkResource {
                resource_type,
                id,
                resource,
            })
            .collect()
    }
}

/// A batch of `pl_pfile` rows applied to their stored owners.
pub fn secondary_locations(rows: &[SecondaryLocationRow], store: &Store) -> Result<Vec<BulkResource>, ImportError> {
    let mut owners = Owners::load(store, rows.iter().map(|r| r.npi.clone()))?;
    let mut out = Vec::new();
    for row in rows {
        let (location, changed) = secondary_location(row, owners.get_mut(&row.npi));
        owners.mark(&row.npi, changed);
        out.push(location);
    }
    dedupe(&mut out);
    out.extend(owners.into_resources());
    Ok(out)
}

/// A batch of `othername_pfile` rows applied to their stored organizations.
pub fn other_names(rows: &[OtherNameRow], store: &Store) -> Result<Vec<BulkResource>, ImportError> {
    let mut owners = Owners::load(store, rows.iter().map(|r| r.npi.clone()))?;
    for row in rows {
        let changed = owners.get_mut(&row.npi).is_some_and(|owner| other_name(row, owner));
        owners.mark(&row.npi, changed);
    }
    Ok(owners.into_resources())
}

/// A batch of `endpoint_pfile` rows applied to their stored owners.
pub fn endpoints(rows: &[EndpointRow], store: &Store) -> Result<Vec<BulkResource>, ImportError> {
    let mut owners = Owners::load(store, rows.iter().map(|r| r.npi.clone()))?;
    let mut out = Vec::new();
    for row in rows {
        let (endpoint, changed) = endpoint(row, owners.get_mut(&row.npi).map(|(_, owner)| owner));
        owners.mark(&row.npi, changed);
        out.push(endpoint);
    }
    dedupe(&mut out);
    out.extend(owners.into_resources());
    Ok(out)
}

/// The same resource twice in one batch (a duplicated row): the last one wins.
fn dedupe(resources: &mut Vec<BulkResource>) {
    let mut seen = HashSet::new();
    resources.reverse();
    resources.retain(|r| seen.insert((r.resource_type, r.id.clone())));
    resources.reverse();
}
