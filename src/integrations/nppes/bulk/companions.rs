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
use super::reader::{decode_fields, BulkReader, BulkRow};
use super::row::{EndpointRow, OtherNameRow, ProviderRow, SecondaryLocationRow};
use super::source::{DisseminationSource, FileKind};
use crate::store::bulk::BulkResource;
use crate::store::{Store, StoreError};

/// Where a packed row is: its NPI, the line it starts on, and where its fields start in the
/// file's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    npi: u64,
    line: u64,
    start: usize,
}

/// One companion file read ahead, packed: each good row's fields one after the other in one
/// buffer (a length byte before each field, or 255 and four bytes), found by NPI through a
/// sorted index, decoded when used: about the file's own size in memory (5.3 MB for 5.1 MB of
/// CSV at 200,000 generated providers; the `read ahead` log line says it per file).
pub struct ByNpi<T: BulkRow> {
    columns: T::Columns,
    width: usize,
    bytes: Vec<u8>,
    /// Sorted: by NPI, then in the file's order.
    index: Vec<Entry>,
    report: FileReport,
}

impl<T: BulkRow + CompanionRow> ByNpi<T> {
    fn read(source: &mut DisseminationSource, kind: FileKind) -> Result<Option<ByNpi<T>>, ImportError> {
        let Some(file) = source.file(kind).cloned() else {
            return Ok(None);
        };
        let started = Instant::now();
        let mut report = FileReport {
            file: file.name.clone(),
            ..FileReport::default()
        };
        let mut reader = BulkReader::<_, T>::new(source.stream(kind)?)?;
        let (mut bytes, mut index, mut width) = (Vec::new(), Vec::new(), 0);
        while let Some((row, record)) = reader.next_row_and_record()? {
            report.rows += 1;
            match row {
                Ok(row) => {
                    // The reader checked the NPI is ten digits.
                    let Ok(npi) = row.npi().parse::<u64>() else { continue };
                    index.push(Entry {
                        npi,
                        line: row.line(),
                        start: bytes.len(),
                    });
                    width = record.len();
                    pack(record, &mut bytes);
                }
                Err(bad) => {
                    tracing::warn!(file = %report.file, line = bad.line, problem = %bad.message, "row skipped");
                    if report.bad_rows.len() < BAD_ROWS_KEPT {
                        report.bad_rows.push(bad);
                    }
                }
            }
        }
        index.sort_unstable();
        bytes.shrink_to_fit();
        index.shrink_to_fit();
        report.elapsed = started.elapsed();
        let held = bytes.capacity() + index.capacity() * std::mem::size_of::<Entry>();
        tracing::info!(file = %report.file, rows = index.len(), csv_bytes = file.uncompressed_size, held_bytes = held, "read ahead");
        Ok(Some(ByNpi {
            columns: reader.into_columns(),
            width,
            bytes,
            index,
            report,
        }))
    }

    fn row(&self, entry: &Entry) -> Option<T> {
        // Decoded once already when read: it cannot fail now.
        decode_fields::<T>(&self.columns, unpack(&self.bytes, entry.start, self.width), entry.line).ok()
    }

    /// An NPI's rows, in the file's order.
    fn of(&self, npi: u64) -> Vec<T> {
        let from = self.index.partition_point(|e| e.npi < npi);
        self.index[from..]
            .iter()
            .take_while(|e| e.npi == npi)
            .filter_map(|e| self.row(e))
            .collect()
    }

    /// The rows whose provider was not attached, in the file's order.
    fn left_over(self, attached: &HashSet<u64>) -> LeftRows<T> {
        let mut entries: Vec<Entry> = self
            .index
            .iter()
            .filter(|e| !attached.contains(&e.npi))
            .copied()
            .collect();
        entries.sort_unstable_by_key(|e| e.line);
        let mut report = self.report.clone();
        report.with_providers = report.rows - report.bad_rows.len() as u64 - entries.len() as u64;
        LeftRows {
            file: self,
            entries,
            report,
        }
    }
}

/// Appends a record's fields to `bytes`, each after its length: one byte, or 255 and four.
fn pack<'a>(fields: impl IntoIterator<Item = &'a [u8]>, bytes: &mut Vec<u8>) {
    for field in fields {
        match u8::try_from(field.len()) {
            Ok(len) if len < u8::MAX => bytes.push(len),
            _ => {
                bytes.push(u8::MAX);
                bytes.extend_from_slice(&(field.len() as u32).to_le_bytes());
            }
        }
        bytes.extend_from_slice(field);
    }
}

/// The `width` fields [`pack`] wrote at `start`.
fn unpack(bytes: &[u8], start: usize, width: usize) -> Vec<&[u8]> {
    let mut at = start;
    let mut fields = Vec::with_capacity(width);
    for _ in 0..width {
        let mut len = usize::from(bytes[at]);
        at += 1;
        if len == usize::from(u8::MAX) {
            len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes")) as usize;
            at += 4;
        }
        fields.push(&bytes[at..at + len]);
        at += len;
    }
    fields
}

/// A companion file's rows still to apply to their stored owners, and its report so far.
pub struct LeftRows<T: BulkRow> {
    file: ByNpi<T>,
    entries: Vec<Entry>,
    pub report: FileReport,
}

impl<T: BulkRow + CompanionRow> LeftRows<T> {
    /// The rows, decoded `size` at a time.
    pub fn batches(&self, size: usize) -> impl Iterator<Item = Vec<T>> + '_ {
        self.entries
            .chunks(size.max(1))
            .map(|chunk| chunk.iter().filter_map(|e| self.file.row(e)).collect())
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
    locations: Option<ByNpi<SecondaryLocationRow>>,
    other_names: Option<ByNpi<OtherNameRow>>,
    endpoints: Option<ByNpi<EndpointRow>>,
    /// Filled by the providers file's reading thread only.
    attached: RefCell<HashSet<u64>>,
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
            let Ok(npi) = row.npi.parse::<u64>() else { continue };
            let locations = self.locations.as_ref().map(|f| f.of(npi)).unwrap_or_default();
            let other_names = self.other_names.as_ref().map(|f| f.of(npi)).unwrap_or_default();
            let endpoints = self.endpoints.as_ref().map(|f| f.of(npi)).unwrap_or_default();
            if locations.is_empty() && other_names.is_empty() && endpoints.is_empty() {
                continue;
            }
            attached.insert(npi);
            let owner = owners
                .get(&("PractitionerRole", mapping::practitioner_role_id(&row.npi)))
                .or_else(|| owners.get(&("Organization", mapping::organization_id(&row.npi))))
                .copied();
            let mut new = Vec::new();
            for location in &locations {
                let owner = owner.map(|i| &mut out[i]);
                new.push(secondary_location(location, owner.map(|o| (o.resource_type, &mut o.resource))).0);
            }
            for name in &other_names {
                if let Some(i) = owner {
                    other_name(name, (out[i].resource_type, &mut out[i].resource));
                }
            }
            for endpoint_row in &endpoints {
                let owner = owner.map(|i| &mut out[i].resource);
                new.push(endpoint(endpoint_row, owner).0);
            }
            dedupe(&mut new);
            added.extend(new);
        }
        out.extend(added);
    }

    /// The rows whose provider was not in this run, file by file; what was attached is counted
    /// in each file's report.
    pub fn into_left_over(self) -> LeftOver {
        let attached = self.attached.into_inner();
        LeftOver {
            locations: self.locations.map(|f| f.left_over(&attached)),
            other_names: self.other_names.map(|f| f.left_over(&attached)),
            endpoints: self.endpoints.map(|f| f.left_over(&attached)),
        }
    }
}

/// Companion rows still to apply to their stored owners.
pub struct LeftOver {
    pub locations: Option<LeftRows<SecondaryLocationRow>>,
    pub other_names: Option<LeftRows<OtherNameRow>>,
    pub endpoints: Option<LeftRows<EndpointRow>>,
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

#[cfg(test)]
mod tests {
    use super::{pack, unpack};

    #[test]
    fn packed_fields_come_back_as_they_were_whatever_their_length() {
        let long = vec![b'x'; 300];
        let exactly_255 = vec![b'y'; 255];
        let first: Vec<&[u8]> = vec![
            b"1234567893",
            b"",
            b"200 OAK ST",
            &long,
            &exactly_255,
            "JOS\u{c9}".as_bytes(),
        ];
        let second: Vec<&[u8]> = vec![b"1", b"", b"", b"", b"", b"z"];
        let mut bytes = Vec::new();
        pack(first.iter().copied(), &mut bytes);
        let at = bytes.len();
        pack(second.iter().copied(), &mut bytes);
        assert_eq!(unpack(&bytes, 0, first.len()), first);
        assert_eq!(unpack(&bytes, at, second.len()), second);
    }
}
