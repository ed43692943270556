//! Streaming readers of the Data Dissemination CSV files: one decoded row per record, from any
//! `Read` (a file, or a zip entry straight from [`super::source::DisseminationSource`]).
//!
//! Columns are found by name in the file's own header, so the 2025 V2 header ("Provider Sex
//! Code") and older ones ("Provider Gender Code") both work, as do the `pl_pfile` spellings
//! "Address- Address Line 1" / "Address-  Address Line 2" (names are compared without
//! whitespace or case).
//!
//! Errors come in two kinds: a bad record ([`RowError`], with the line it starts on) is yielded
//! in place of that row and reading goes on with the next record; an I/O error or a header
//! without a required column ([`BulkReadError`]) ends the reading.
//!
//! Memory: one record at a time. The reader keeps its column map, a 256 KiB input buffer and one
//! `csv::ByteRecord` (the raw bytes of the current record: 10–12 KB for a full `npidata_pfile`
//! row, bounded by CMS's field lengths, ~5 KB of values plus quotes and commas); a row adds its
//! decoded strings on top (at most the record's size again). Nothing grows with the file.

use std::fs::File;
use std::io::Read;
use std::marker::PhantomData;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use csv::{ByteRecord, ReaderBuilder};

use super::row::{
    AuthorizedOfficial, BulkAddress, BulkIdentifier, BulkTaxonomy, EndpointRow, EntityType, OtherNameRow, ProviderRow,
    SecondaryLocationRow,
};
use super::source::{DisseminationSource, FileKind, SourceError};

/// Input buffer of the CSV parser: big enough that a 10 GB file is read in few system calls.
const BUFFER_CAPACITY: usize = 256 * 1024;

/// A fatal error: the file cannot be read on.
#[derive(Debug, thiserror::Error)]
pub enum BulkReadError {
    #[error("cannot read the {file} file: {source}")]
    Io {
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {file} file is empty: it has no header row")]
    NoHeader { file: &'static str },
    #[error("the {file} file's header has no {column:?} column")]
    MissingColumn { file: &'static str, column: String },
    #[error("the {file} file cannot be parsed as CSV: {source}")]
    Csv {
        file: &'static str,
        #[source]
        source: csv::Error,
    },
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// A record that could not be decoded; the reader goes on with the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    /// The physical line the record starts on (1 is the header).
    pub line: u64,
    pub message: String,
}

/// The header row of a file, with names normalized for lookup.
pub struct Header {
    file: &'static str,
    names: Vec<String>,
}

impl Header {
    fn new(file: &'static str, record: &ByteRecord) -> Header {
        let names = record.iter().map(|raw| normalize_name(&decode_text(raw))).collect();
        Header { file, names }
    }

    /// The number of columns every record must have.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        let wanted = normalize_name(name);
        self.names.iter().position(|n| *n == wanted)
    }

    pub fn require(&self, name: &str) -> Result<usize, BulkReadError> {
        self.find(name).ok_or_else(|| BulkReadError::MissingColumn {
            file: self.file,
            column: name.to_string(),
        })
    }

    /// The first of several names a column has had over the years; the error names them all.
    pub fn require_any(&self, names: &[&str]) -> Result<usize, BulkReadError> {
        names
            .iter()
            .find_map(|n| self.find(n))
            .ok_or_else(|| BulkReadError::MissingColumn {
                file: self.file,
                column: names.join("\" or \""),
            })
    }
}

/// CMS's headers differ in spaces around hyphens ("Address- Address Line 1" vs "Address -
/// City Name"); ignoring whitespace and case makes both spellings match. A UTF-8 BOM is dropped
/// too, in case a file was re-saved by a spreadsheet.
fn normalize_name(name: &str) -> String {
    name.trim_start_matches('\u{feff}')
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Decodes one field. The monthly files are ISO-8859-1, but copies that went through other tools
/// arrive as UTF-8; a field that is valid UTF-8 is taken as such (ASCII is both, and a real
/// Latin-1 name such as "JOSÉ" = `4A 4F 53 C9` is never valid UTF-8, while UTF-8 "É" = `C3 89`
/// read as Latin-1 would be the mojibake "Ã\u{89}"), otherwise each byte is its Latin-1 code point.
pub(super) fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// What CMS writes over an SSN, ITIN or EIN typed into an identifier or license field.
fn is_masked(value: &str) -> bool {
    let mut chars = value.chars();
    match chars.next() {
        Some(first @ ('$' | '*' | '_')) => chars.all(|c| c == first),
        _ => false,
    }
}

/// One record's fields, decoded on demand.
pub struct Fields<'a> {
    record: &'a ByteRecord,
}

impl Fields<'_> {
    /// The trimmed value; None when empty or `<UNAVAIL>` (CMS's placeholder for suppressed EINs
    /// and TINs).
    pub fn text(&self, index: usize) -> Option<String> {
        let raw = self.record.get(index)?.trim_ascii();
        if raw.is_empty() || raw == b"<UNAVAIL>" {
            return None;
        }
        let text = decode_text(raw);
        let trimmed = text.trim();
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == text.len() {
            Some(text)
        } else {
            Some(trimmed.to_owned())
        }
    }

    pub fn opt_text(&self, index: Option<usize>) -> Option<String> {
        index.and_then(|i| self.text(i))
    }

    /// An identifier or license number; masked values are dropped.
    pub fn identifier(&self, index: usize) -> Option<String> {
        self.text(index).filter(|v| !is_masked(v))
    }

    /// An `MM/DD/YYYY` date.
    pub fn date(&self, index: usize, column: &str) -> Result<Option<NaiveDate>, String> {
        match self.text(index) {
            None => Ok(None),
            Some(value) => NaiveDate::parse_from_str(&value, "%m/%d/%Y")
                .map(Some)
                .map_err(|_| format!("{column} {value:?} is not a MM/DD/YYYY date")),
        }
    }

    pub fn opt_date(&self, index: Option<usize>, column: &str) -> Result<Option<NaiveDate>, String> {
        index.map_or(Ok(None), |i| self.date(i, column))
    }

    /// "Y" / "N"; anything else (NPPES uses "X" for "not answered") is None.
    pub fn flag(&self, index: usize) -> Option<bool> {
        match self.record.get(index)?.trim_ascii() {
            b"Y" | b"y" => Some(true),
            b"N" | b"n" => Some(false),
            _ => None,
        }
    }

    /// The NPI column: exactly ten ASCII digits (the check digit is the importer's business).
    pub fn npi(&self, index: usize) -> Result<String, String> {
        match self.text(index) {
            Some(npi) if npi.len() == 10 && npi.bytes().all(|b| b.is_ascii_digit()) => Ok(npi),
            Some(other) => Err(format!(
                "NPI {:?} is not 10 digits",
                other.chars().take(40).collect::<String>()
            )),
            None => Err("the NPI is empty".to_string()),
        }
    }
}

/// Decodes a record kept as its fields (see [`BulkReader::next_row_and_record`]).
pub fn decode_fields<'a, T: BulkRow>(
    columns: &T::Columns,
    fields: impl IntoIterator<Item = &'a [u8]>,
    line: u64,
) -> Result<T, String> {
    let record: ByteRecord = fields.into_iter().collect();
    T::decode(columns, &Fields { record: &record }, line)
}

/// A row type of one of the files: how its columns are found and a record decoded.
pub trait BulkRow: Sized {
    /// The file's name in messages.
    const FILE: &'static str;
    /// The column indexes, resolved once from the header.
    type Columns;
    fn columns(header: &Header) -> Result<Self::Columns, BulkReadError>;
    /// Decodes a record that has the header's number of fields; `line` is where it starts.
    fn decode(columns: &Self::Columns, fields: &Fields<'_>, line: u64) -> Result<Self, String>;
}

/// A streaming reader of one file kind; see the module docs.
pub struct BulkReader<R: Read, T: BulkRow> {
    csv: csv::Reader<R>,
    columns: T::Columns,
    width: usize,
    record: ByteRecord,
    /// `record` holds a record that `skip_to_line` read and has not been yielded yet.
    pending: bool,
    finished: bool,
    row: PhantomData<fn() -> T>,
}

pub type ProviderReader<R> = BulkReader<R, ProviderRow>;
pub type SecondaryLocationReader<R> = BulkReader<R, SecondaryLocationRow>;
pub type OtherNameReader<R> = BulkReader<R, OtherNameRow>;
pub type EndpointReader<R> = BulkReader<R, EndpointRow>;

impl<R: Read, T: BulkRow> BulkReader<R, T> {
    /// Reads the header row and resolves the columns: a missing required column is an error
    /// naming it.
    pub fn new(reader: R) -> Result<Self, BulkReadError> {
        let mut csv = ReaderBuilder::new()
            .has_headers(false)
            // Records with the wrong number of fields are reported one by one, not by csv.
            .flexible(true)
            .buffer_capacity(BUFFER_CAPACITY)
            .from_reader(reader);
        let mut header = ByteRecord::new();
        if !csv.read_byte_record(&mut header).map_err(fatal(T::FILE))? {
            return Err(BulkReadError::NoHeader { file: T::FILE });
        }
        let header = Header::new(T::FILE, &header);
        let columns = T::columns(&header)?;
        Ok(BulkReader {
            csv,
            columns,
            width: header.len(),
            record: ByteRecord::new(),
            pending: false,
            finished: false,
            row: PhantomData,
        })
    }

    /// The next row, `Ok(None)` at the end of the file. `Ok(Some(Err(_)))` is a bad record
    /// (read on); `Err(_)` is fatal.
    pub fn next_row(&mut self) -> Result<Option<Result<T, RowError>>, BulkReadError> {
        if self.finished {
            return Ok(None);
        }
        if !self.pending && !self.read_record()? {
            return Ok(None);
        }
        self.pending = false;
        Ok(Some(self.decode_current()))
    }

    /// Like [`BulkReader::next_row`], with the record the row was decoded from (to keep it
    /// compactly and decode it again later with [`decode_fields`]).
    pub fn next_row_and_record(&mut self) -> Result<Option<(Result<T, RowError>, &ByteRecord)>, BulkReadError> {
        Ok(self.next_row()?.map(|row| (row, &self.record)))
    }

    /// The columns resolved from the header, for [`decode_fields`].
    pub fn into_columns(self) -> T::Columns {
        self.columns
    }

    fn read_record(&mut self) -> Result<bool, BulkReadError> {
        match self.csv.read_byte_record(&mut self.record) {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.finished = true;
                Ok(false)
            }
            Err(e) => {
                self.finished = true;
                Err(fatal(T::FILE)(e))
            }
        }
    }

    fn current_line(&self) -> u64 {
        self.record.position().map_or(0, |p| p.line())
    }

    fn decode_current(&self) -> Result<T, RowError> {
        let line = self.current_line();
        if self.record.len() != self.width {
            return Err(RowError {
                line,
                message: format!("expected {} fields, found {}", self.width, self.record.len()),
            });
        }
        T::decode(&self.columns, &Fields { record: &self.record }, line).map_err(|message| RowError { line, message })
    }

    /// The byte offset (in the uncompressed file) where the next record starts: progress
    /// against the file's uncompressed size.
    pub fn byte_offset(&self) -> u64 {
        if self.pending {
            self.record.position().map_or(0, |p| p.byte())
        } else {
            self.csv.position().byte()
        }
    }

    /// The line the next record starts on (or past the end).
    pub fn line(&self) -> u64 {
        if self.pending {
            self.current_line()
        } else {
            self.csv.position().line()
        }
    }

    /// Skips records, without decoding them, until the next one to be yielded is the first that
    /// starts on `line` or later: an interrupted import that committed every row up to line L
    /// resumes with `skip_to_line(L + 1)`. Returns the number of records skipped.
    pub fn skip_to_line(&mut self, line: u64) -> Result<u64, BulkReadError> {
        let mut skipped = 0;
        if self.pending {
            if self.current_line() >= line {
                return Ok(0);
            }
            self.pending = false;
            skipped += 1;
        }
        while !self.finished && self.read_record()? {
            if self.current_line() >= line {
                self.pending = true;
                break;
            }
            skipped += 1;
        }
        Ok(skipped)
    }
}

impl<R: Read, T: BulkRow> Iterator for BulkReader<R, T> {
    type Item = Result<Result<T, RowError>, BulkReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

fn fatal(file: &'static str) -> impl Fn(csv::Error) -> BulkReadError {
    move |error| {
        if error.is_io_error() {
            match error.into_kind() {
                csv::ErrorKind::Io(source) => BulkReadError::Io { file, source },
                _ => unreachable!("is_io_error said Io"),
            }
        } else {
            BulkReadError::Csv { file, source: error }
        }
    }
}

/// The columns of one address in a file.
pub struct AddressColumns {
    line1: usize,
    line2: usize,
    city: usize,
    state: usize,
    postal_code: usize,
    country_code: usize,
    phone: Option<usize>,
    phone_extension: Option<usize>,
    fax: Option<usize>,
}

impl AddressColumns {
    fn read(&self, f: &Fields<'_>) -> BulkAddress {
        BulkAddress {
            line1: f.text(self.line1),
            line2: f.text(self.line2),
            city: f.text(self.city),
            state: f.text(self.state),
            postal_code: f.text(self.postal_code),
            country_code: f.text(self.country_code),
            phone: f.opt_text(self.phone),
            phone_extension: f.opt_text(self.phone_extension),
            fax: f.opt_text(self.fax),
        }
    }
}

/// npidata_pfile mailing / practice address columns: "Provider {First,Second} Line Business
/// {kind} Address", "Provider Business {kind} Address City Name", ….
fn provider_address(header: &Header, kind: &str) -> Result<AddressColumns, BulkReadError> {
    let named = |suffix: &str| header.require(&format!("Provider Business {kind} Address {suffix}"));
    Ok(AddressColumns {
        line1: header.require(&format!("Provider First Line Business {kind} Address"))?,
        line2: header.require(&format!("Provider Second Line Business {kind} Address"))?,
        city: named("City Name")?,
        state: named("State Name")?,
        postal_code: named("Postal Code")?,
        country_code: named("Country Code (If outside U.S.)")?,
        phone: Some(named("Telephone Number")?),
        phone_extension: None,
        fax: Some(named("Fax Number")?),
    })
}

pub struct TaxonomyColumns {
    code: usize,
    license: usize,
    license_state: usize,
    primary: usize,
    /// Added to the file later than the other taxonomy columns.
    group: Option<usize>,
}

pub struct IdentifierColumns {
    identifier: usize,
    type_code: usize,
    state: usize,
    issuer: usize,
}

pub struct ProviderColumns {
    npi: usize,
    entity_type: usize,
    replacement_npi: usize,
    organization_name: usize,
    last_name: usize,
    first_name: usize,
    middle_name: usize,
    name_prefix: usize,
    name_suffix: usize,
    credential: usize,
    other_organization_name: usize,
    other_organization_name_type: usize,
    other_last_name: usize,
    other_first_name: usize,
    mailing: AddressColumns,
    practice: AddressColumns,
    enumeration_date: usize,
    last_update: usize,
    deactivation_reason: usize,
    deactivation_date: usize,
    reactivation_date: usize,
    sex: usize,
    official_last_name: usize,
    official_first_name: usize,
    official_middle_name: usize,
    official_title: usize,
    official_phone: usize,
    official_prefix: Option<usize>,
    official_suffix: Option<usize>,
    official_credential: Option<usize>,
    taxonomies: Vec<TaxonomyColumns>,
    identifiers: Vec<IdentifierColumns>,
    sole_proprietor: usize,
    organization_subpart: usize,
    parent_organization_lbn: usize,
    parent_organization_tin: usize,
    certification_date: Option<usize>,
}

const TAXONOMY_BLOCKS: usize = 15;
const IDENTIFIER_BLOCKS: usize = 50;

impl BulkRow for ProviderRow {
    const FILE: &'static str = "npidata_pfile";
    type Columns = ProviderColumns;

    fn columns(h: &Header) -> Result<ProviderColumns, BulkReadError> {
        let taxonomies = (1..=TAXONOMY_BLOCKS)
            .map(|n| {
                Ok(TaxonomyColumns {
                    code: h.require(&format!("Healthcare Provider Taxonomy Code_{n}"))?,
                    license: h.require(&format!("Provider License Number_{n}"))?,
                    license_state: h.require(&format!("Provider License Number State Code_{n}"))?,
                    primary: h.require(&format!("Healthcare Provider Primary Taxonomy Switch_{n}"))?,
                    group: h.find(&format!("Healthcare Provider Taxonomy Group_{n}")),
                })
            })
            .collect::<Result<_, BulkReadError>>()?;
        let identifiers = (1..=IDENTIFIER_BLOCKS)
            .map(|n| {
                Ok(IdentifierColumns {
                    identifier: h.require(&format!("Other Provider Identifier_{n}"))?,
                    type_code: h.require(&format!("Other Provider Identifier Type Code_{n}"))?,
                    state: h.require(&format!("Other Provider Identifier State_{n}"))?,
                    issuer: h.require(&format!("Other Provider Identifier Issuer_{n}"))?,
                })
            })
            .collect::<Result<_, BulkReadError>>()?;
        Ok(ProviderColumns {
            npi: h.require("NPI")?,
            entity_type: h.require("Entity Type Code")?,
            replacement_npi: h.require("Replacement NPI")?,
            organization_name: h.require("Provider Organization Name (Legal Business Name)")?,
            last_name: h.require("Provider Last Name (Legal Name)")?,
            first_name: h.require("Provider First Name")?,
            middle_name: h.require("Provider Middle Name")?,
            name_prefix: h.require("Provider Name Prefix Text")?,
            name_suffix: h.require("Provider Name Suffix Text")?,
            credential: h.require("Provider Credential Text")?,
            other_organization_name: h.require("Provider Other Organization Name")?,
            other_organization_name_type: h.require("Provider Other Organization Name Type Code")?,
            other_last_name: h.require("Provider Other Last Name")?,
            other_first_name: h.require("Provider Other First Name")?,
            mailing: provider_address(h, "Mailing")?,
            practice: provider_address(h, "Practice Location")?,
            enumeration_date: h.require("Provider Enumeration Date")?,
            last_update: h.require("Last Update Date")?,
            deactivation_reason: h.require("NPI Deactivation Reason Code")?,
            deactivation_date: h.require("NPI Deactivation Date")?,
            reactivation_date: h.require("NPI Reactivation Date")?,
            sex: h.require_any(&["Provider Sex Code", "Provider Gender Code"])?,
            official_last_name: h.require("Authorized Official Last Name")?,
            official_first_name: h.require("Authorized Official First Name")?,
            official_middle_name: h.require("Authorized Official Middle Name")?,
            official_title: h.require("Authorized Official Title or Position")?,
            official_phone: h.require("Authorized Official Telephone Number")?,
            official_prefix: h.find("Authorized Official Name Prefix Text"),
            official_suffix: h.find("Authorized Official Name Suffix Text"),
            official_credential: h.find("Authorized Official Credential Text"),
            taxonomies,
            identifiers,
            sole_proprietor: h.require("Is Sole Proprietor")?,
            organization_subpart: h.require("Is Organization Subpart")?,
            parent_organization_lbn: h.require("Parent Organization LBN")?,
            parent_organization_tin: h.require("Parent Organization TIN")?,
            certification_date: h.find("Certification Date"),
        })
    }

    fn decode(c: &ProviderColumns, f: &Fields<'_>, line: u64) -> Result<ProviderRow, String> {
        let npi = f.npi(c.npi)?;
        let deactivation_date = f.date(c.deactivation_date, "NPI Deactivation Date")?;
        let entity_type = match f.text(c.entity_type).as_deref() {
            Some("1") => Some(EntityType::Individual),
            Some("2") => Some(EntityType::Organization),
            None if deactivation_date.is_some() => None,
            None => return Err("the Entity Type Code is empty on a row that is not deactivated".to_string()),
            Some(other) => return Err(format!("unknown Entity Type Code {other:?}")),
        };
        let official = AuthorizedOfficial {
            last_name: f.text(c.official_last_name),
            first_name: f.text(c.official_first_name),
            middle_name: f.text(c.official_middle_name),
            title: f.text(c.official_title),
            phone: f.text(c.official_phone),
            prefix: f.opt_text(c.official_prefix),
            suffix: f.opt_text(c.official_suffix),
            credential: f.opt_text(c.official_credential),
        };
        let taxonomies = c
            .taxonomies
            .iter()
            .filter_map(|t| {
                Some(BulkTaxonomy {
                    code: f.text(t.code)?,
                    license: f.identifier(t.license),
                    license_state: f.text(t.license_state),
                    primary: f.flag(t.primary) == Some(true),
                    group: f.opt_text(t.group),
                })
            })
            .collect();
        let identifiers = c
            .identifiers
            .iter()
            .filter_map(|i| {
                Some(BulkIdentifier {
                    identifier: f.identifier(i.identifier)?,
                    type_code: f.text(i.type_code),
                    state: f.text(i.state),
                    issuer: f.text(i.issuer),
                })
            })
            .collect();
        Ok(ProviderRow {
            line,
            npi,
            entity_type,
            replacement_npi: f.text(c.replacement_npi),
            organization_name: f.text(c.organization_name),
            last_name: f.text(c.last_name),
            first_name: f.text(c.first_name),
            middle_name: f.text(c.middle_name),
            name_prefix: f.text(c.name_prefix),
            name_suffix: f.text(c.name_suffix),
            credential: f.text(c.credential),
            other_organization_name: f.text(c.other_organization_name),
            other_organization_name_type: f.text(c.other_organization_name_type),
            other_last_name: f.text(c.other_last_name),
            other_first_name: f.text(c.other_first_name),
            mailing: c.mailing.read(f),
            practice: c.practice.read(f),
            enumeration_date: f.date(c.enumeration_date, "Provider Enumeration Date")?,
            last_update: f.date(c.last_update, "Last Update Date")?,
            deactivation_reason: f.text(c.deactivation_reason),
            deactivation_date,
            reactivation_date: f.date(c.reactivation_date, "NPI Reactivation Date")?,
            sex: f.text(c.sex),
            authorized_official: (official != AuthorizedOfficial::default()).then_some(official),
            taxonomies,
            identifiers,
            sole_proprietor: f.flag(c.sole_proprietor),
            organization_subpart: f.flag(c.organization_subpart),
            parent_organization_lbn: f.text(c.parent_organization_lbn),
            parent_organization_tin: f.identifier(c.parent_organization_tin),
            certification_date: f.opt_date(c.certification_date, "Certification Date")?,
        })
    }
}

pub struct SecondaryLocationColumns {
    npi: usize,
    address: AddressColumns,
}

impl BulkRow for SecondaryLocationRow {
    const FILE: &'static str = "pl_pfile";
    type Columns = SecondaryLocationColumns;

    fn columns(h: &Header) -> Result<SecondaryLocationColumns, BulkReadError> {
        // Normalization makes "Address- Address Line 1" and "Address-  Address Line 2" match.
        let named = |suffix: &str| h.require(&format!("Provider Secondary Practice Location Address - {suffix}"));
        Ok(SecondaryLocationColumns {
            npi: h.require("NPI")?,
            address: AddressColumns {
                line1: named("Address Line 1")?,
                line2: named("Address Line 2")?,
                city: named("City Name")?,
                state: named("State Name")?,
                postal_code: named("Postal Code")?,
                country_code: named("Country Code (If outside U.S.)")?,
                phone: Some(named("Telephone Number")?),
                // "Added with DUA #18577": absent from older files.
                phone_extension: h.find("Provider Secondary Practice Location Address - Telephone Extension"),
                fax: h.find("Provider Practice Location Address - Fax Number"),
            },
        })
    }

    fn decode(c: &SecondaryLocationColumns, f: &Fields<'_>, line: u64) -> Result<SecondaryLocationRow, String> {
        Ok(SecondaryLocationRow {
            line,
            npi: f.npi(c.npi)?,
            address: c.address.read(f),
        })
    }
}

pub struct OtherNameColumns {
    npi: usize,
    name: usize,
    type_code: usize,
}

impl BulkRow for OtherNameRow {
    const FILE: &'static str = "othername_pfile";
    type Columns = OtherNameColumns;

    fn columns(h: &Header) -> Result<OtherNameColumns, BulkReadError> {
        Ok(OtherNameColumns {
            npi: h.require("NPI")?,
            name: h.require("Provider Other Organization Name")?,
            type_code: h.require("Provider Other Organization Name Type Code")?,
        })
    }

    fn decode(c: &OtherNameColumns, f: &Fields<'_>, line: u64) -> Result<OtherNameRow, String> {
        Ok(OtherNameRow {
            line,
            npi: f.npi(c.npi)?,
            name: f.text(c.name).ok_or("the Provider Other Organization Name is empty")?,
            type_code: f.text(c.type_code),
        })
    }
}

pub struct EndpointColumns {
    npi: usize,
    endpoint_type: usize,
    endpoint_type_description: usize,
    endpoint: usize,
    affiliation: usize,
    endpoint_description: usize,
    affiliation_legal_business_name: usize,
    use_code: usize,
    use_description: usize,
    other_use_description: usize,
    content_type: usize,
    content_description: usize,
    other_content_description: usize,
    affiliation_address: AddressColumns,
}

impl BulkRow for EndpointRow {
    const FILE: &'static str = "endpoint_pfile";
    type Columns = EndpointColumns;

    fn columns(h: &Header) -> Result<EndpointColumns, BulkReadError> {
        Ok(EndpointColumns {
            npi: h.require("NPI")?,
            endpoint_type: h.require("Endpoint Type")?,
            endpoint_type_description: h.require("Endpoint Type Description")?,
            endpoint: h.require("Endpoint")?,
            affiliation: h.require("Affiliation")?,
            endpoint_description: h.require("Endpoint Description")?,
            affiliation_legal_business_name: h.require("Affiliation Legal Business Name")?,
            use_code: h.require("Use Code")?,
            use_description: h.require("Use Description")?,
            other_use_description: h.require("Other Use Description")?,
            content_type: h.require("Content Type")?,
            content_description: h.require("Content Description")?,
            other_content_description: h.require("Other Content Description")?,
            affiliation_address: AddressColumns {
                line1: h.require("Affiliation Address Line One")?,
                line2: h.require("Affiliation Address Line Two")?,
                city: h.require("Affiliation Address City")?,
                state: h.require("Affiliation Address State")?,
                postal_code: h.require("Affiliation Address Postal Code")?,
                country_code: h.require("Affiliation Address Country")?,
                phone: None,
                phone_extension: None,
                fax: None,
            },
        })
    }

    fn decode(c: &EndpointColumns, f: &Fields<'_>, line: u64) -> Result<EndpointRow, String> {
        Ok(EndpointRow {
            line,
            npi: f.npi(c.npi)?,
            endpoint_type: f.text(c.endpoint_type),
            endpoint_type_description: f.text(c.endpoint_type_description),
            endpoint: f.text(c.endpoint).ok_or("the Endpoint is empty")?,
            affiliation: f.flag(c.affiliation),
            endpoint_description: f.text(c.endpoint_description),
            affiliation_legal_business_name: f.text(c.affiliation_legal_business_name),
            use_code: f.text(c.use_code),
            use_description: f.text(c.use_description),
            other_use_description: f.text(c.other_use_description),
            content_type: f.text(c.content_type),
            content_description: f.text(c.content_description),
            other_content_description: f.text(c.other_content_description),
            affiliation_address: c.affiliation_address.read(f),
        })
    }
}

/// What [`parse_rate`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParseRate {
    /// Records read, good and bad.
    pub rows: u64,
    pub bad_rows: u64,
    pub elapsed: Duration,
}

impl ParseRate {
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// The raw parse baseline of the import benchmark: reads the `npidata_pfile` end to end through
/// [`ProviderReader`], decoding every row and discarding it. `path` is the CSV itself, or a
/// Data Dissemination zip or folder holding it.
pub fn parse_rate(path: &Path) -> Result<ParseRate, BulkReadError> {
    let started = Instant::now();
    let is_csv = path.is_file() && path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let (rows, bad_rows) = if is_csv {
        let file = File::open(path).map_err(|source| BulkReadError::Io {
            file: ProviderRow::FILE,
            source,
        })?;
        count_rows(ProviderReader::new(file)?)?
    } else {
        count_in_bundle(path)?
    };
    Ok(ParseRate {
        rows,
        bad_rows,
        elapsed: started.elapsed(),
    })
}

fn count_in_bundle(path: &Path) -> Result<(u64, u64), BulkReadError> {
    let mut source = DisseminationSource::open(path)?;
    let reader = ProviderReader::new(source.stream(FileKind::Providers)?)?;
    count_rows(reader)
}

fn count_rows<R: Read>(reader: ProviderReader<R>) -> Result<(u64, u64), BulkReadError> {
    let (mut rows, mut bad) = (0, 0);
    for item in reader {
        rows += 1;
        // black_box: the decoded row must not be optimized away in a release build.
        if std::hint::black_box(item?).is_err() {
            bad += 1;
        }
    }
    Ok((rows, bad))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{header, npidata, pl, provider, record};
    use super::super::headers::{NPIDATA_COLUMNS_V2, PL_COLUMNS_V2};
    use super::*;

    fn read_all(bytes: &[u8]) -> Vec<Result<ProviderRow, RowError>> {
        ProviderReader::new(bytes)
            .expect("header")
            .map(|item| item.expect("no fatal error"))
            .collect()
    }

    fn one(bytes: &[u8]) -> ProviderRow {
        let mut rows = read_all(bytes);
        assert_eq!(rows.len(), 1);
        rows.remove(0).expect("a good row")
    }

    #[test]
    fn finds_columns_by_name_in_the_2025_and_the_2021_header() {
        let row = provider("1234567893", &[("Provider Sex Code", b"F")]);
        assert_eq!(one(&npidata(std::slice::from_ref(&row))).sex.as_deref(), Some("F"));

        // The 2021 header differs in column 42 only; the record is the same.
        let mut columns = NPIDATA_COLUMNS_V2;
        columns[41] = "Provider Gender Code";
        let mut file = header(&columns);
        file.extend_from_slice(&row);
        let read = one(&file);
        assert_eq!(read.sex.as_deref(), Some("F"));
        assert_eq!(read.npi, "1234567893");
        assert_eq!(read.entity_type, Some(EntityType::Individual));
        assert_eq!(read.last_name.as_deref(), Some("SMITH"));
        assert_eq!(read.enumeration_date, NaiveDate::from_ymd_opt(2005, 5, 23));
    }

    #[test]
    fn columns_in_another_order_are_found() {
        let mut columns = NPIDATA_COLUMNS_V2;
        columns.swap(0, 5);
        let mut file = header(&columns);
        file.extend_from_slice(&record(
            &columns,
            &[
                ("NPI", b"1234567893"),
                ("Entity Type Code", b"2"),
                ("Provider Organization Name (Legal Business Name)", b"ACME CLINIC LLC"),
                ("Provider Last Name (Legal Name)", b""),
            ],
        ));
        let row = one(&file);
        assert_eq!(row.npi, "1234567893");
        assert_eq!(row.organization_name.as_deref(), Some("ACME CLINIC LLC"));
        assert_eq!(row.last_name, None);
    }

    #[test]
    fn a_missing_required_column_is_fatal_and_named() {
        let columns: Vec<&str> = NPIDATA_COLUMNS_V2
            .iter()
            .copied()
            .filter(|c| *c != "Entity Type Code")
            .collect();
        match ProviderReader::new(&header(&columns)[..]) {
            Err(BulkReadError::MissingColumn { column, .. }) => assert_eq!(column, "Entity Type Code"),
            other => panic!("expected a missing column, got {:?}", other.err()),
        }
        let columns: Vec<&str> = NPIDATA_COLUMNS_V2
            .iter()
            .copied()
            .filter(|c| *c != "Provider Sex Code")
            .collect();
        let error = ProviderReader::new(&header(&columns)[..]).err().expect("fatal");
        assert!(error.to_string().contains("Provider Gender Code"), "{error}");
        assert!(matches!(
            ProviderReader::new(&b""[..]),
            Err(BulkReadError::NoHeader { .. })
        ));
    }

    #[test]
    fn latin1_bytes_decode_to_their_code_points() {
        let row = one(&npidata(&[provider(
            "1234567893",
            &[
                ("Provider First Name", b"JOS\xC9"),
                ("Provider Last Name (Legal Name)", b"MU\xD1OZ"),
            ],
        )]));
        assert_eq!(row.first_name.as_deref(), Some("JOSÉ"));
        assert_eq!(row.last_name.as_deref(), Some("MUÑOZ"));
    }

    #[test]
    fn utf8_fields_pass_through() {
        let row = one(&npidata(&[provider(
            "1234567893",
            &[
                ("Provider First Name", "JOSÉ".as_bytes()),
                ("Provider Last Name (Legal Name)", "MUÑOZ".as_bytes()),
                // One field Latin-1, its neighbour UTF-8: decided per field.
                ("Provider Middle Name", b"ZO\xCB"),
            ],
        )]));
        assert_eq!(row.first_name.as_deref(), Some("JOSÉ"));
        assert_eq!(row.last_name.as_deref(), Some("MUÑOZ"));
        assert_eq!(row.middle_name.as_deref(), Some("ZOË"));
    }

    #[test]
    fn a_multi_line_field_keeps_the_start_lines_of_its_record_and_the_next() {
        let file = npidata(&[
            provider("1234567893", &[]),
            provider(
                "1245319599",
                &[(
                    "Provider Second Line Business Practice Location Address",
                    b"SUITE 200\nBLDG B",
                )],
            ),
            provider("1679576722", &[]),
        ]);
        let rows: Vec<ProviderRow> = read_all(&file).into_iter().map(|r| r.unwrap()).collect();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [2, 3, 5]);
        assert_eq!(rows[1].practice.line2.as_deref(), Some("SUITE 200\nBLDG B"));
        assert_eq!(rows[2].npi, "1679576722");
    }

    #[test]
    fn bad_records_are_reported_with_their_line_and_their_neighbours_read() {
        let mut short = provider("1245319599", &[]);
        // Drops the last field: 329 instead of 330.
        let cut = short[..short.len() - 1].iter().rposition(|&b| b == b',').unwrap();
        short.truncate(cut);
        short.push(b'\n');
        let file = npidata(&[
            provider("1234567893", &[]),
            short,
            provider("12345", &[]),
            provider("1245319599", &[("Entity Type Code", b"3")]),
            provider("1245319599", &[("Provider Enumeration Date", b"13/45/2020")]),
            provider("1245319599", &[("Entity Type Code", b"")]),
            provider(
                "1679576722",
                &[("Provider First Line Business Mailing Address", b"1 MAIN ST, 'REAR'")],
            ),
        ]);
        let rows = read_all(&file);
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[0].as_ref().unwrap().line, 2);
        let errors: Vec<(u64, &str)> = rows[1..6]
            .iter()
            .map(|r| {
                let e = r.as_ref().unwrap_err();
                (e.line, e.message.as_str())
            })
            .collect();
        assert_eq!(errors[0], (3, "expected 330 fields, found 329"));
        assert_eq!(errors[1], (4, "NPI \"12345\" is not 10 digits"));
        assert_eq!(errors[2], (5, "unknown Entity Type Code \"3\""));
        assert_eq!(errors[3].0, 6);
        assert!(
            errors[3].1.contains("Provider Enumeration Date \"13/45/2020\""),
            "{}",
            errors[3].1
        );
        assert_eq!(errors[4].0, 7);
        let last = rows[6].as_ref().unwrap();
        assert_eq!((last.line, last.npi.as_str()), (8, "1679576722"));
        assert_eq!(last.mailing.line1.as_deref(), Some("1 MAIN ST, 'REAR'"));
    }

    #[test]
    fn unavailable_and_masked_values_are_dropped() {
        let row = one(&npidata(&[provider(
            "1234567893",
            &[
                ("Entity Type Code", b"2"),
                ("Employer Identification Number (EIN)", b"<UNAVAIL>"),
                ("Parent Organization TIN", b"<UNAVAIL>"),
                ("Parent Organization LBN", b" ACME HEALTH "),
                ("Is Organization Subpart", b"Y"),
                ("Is Sole Proprietor", b"X"),
                ("Provider License Number_1", b"********"),
                ("Provider License Number State Code_1", b"OH"),
                ("Other Provider Identifier_1", b"$$$$$$$$$"),
                ("Other Provider Identifier Type Code_1", b"01"),
                ("Other Provider Identifier_2", b"_________"),
                ("Other Provider Identifier_3", b"P00164715"),
                ("Other Provider Identifier Type Code_3", b"05"),
            ],
        )]));
        assert_eq!(row.parent_organization_tin, None);
        assert_eq!(row.parent_organization_lbn.as_deref(), Some("ACME HEALTH"));
        assert_eq!(row.organization_subpart, Some(true));
        assert_eq!(row.sole_proprietor, None);
        assert_eq!(row.taxonomies[0].license, None);
        assert_eq!(row.taxonomies[0].license_state.as_deref(), Some("OH"));
        assert_eq!(row.identifiers.len(), 1);
        assert_eq!(row.identifiers[0].identifier, "P00164715");
        assert_eq!(row.identifiers[0].type_code.as_deref(), Some("05"));
    }

    #[test]
    fn only_filled_taxonomy_and_identifier_blocks_are_kept() {
        let row = one(&npidata(&[provider(
            "1234567893",
            &[
                ("Healthcare Provider Taxonomy Code_1", b"207Q00000X"),
                ("Provider License Number_1", b"35.012345"),
                ("Provider License Number State Code_1", b"OH"),
                ("Healthcare Provider Primary Taxonomy Switch_1", b"N"),
                ("Healthcare Provider Taxonomy Code_15", b"207R00000X"),
                ("Healthcare Provider Primary Taxonomy Switch_15", b"Y"),
                (
                    "Healthcare Provider Taxonomy Group_15",
                    b"193200000X MULTI-SPECIALTY GROUP",
                ),
                // A block with no code is not a taxonomy.
                ("Provider License Number State Code_7", b"TX"),
                ("Other Provider Identifier_50", b"A-1"),
                ("Other Provider Identifier Issuer_50", b"BCBS"),
                ("Other Provider Identifier State_50", b"MI"),
            ],
        )]));
        let codes: Vec<(&str, bool)> = row.taxonomies.iter().map(|t| (t.code.as_str(), t.primary)).collect();
        assert_eq!(codes, [("207Q00000X", false), ("207R00000X", true)]);
        assert_eq!(row.taxonomies[0].license.as_deref(), Some("35.012345"));
        assert_eq!(
            row.taxonomies[1].group.as_deref(),
            Some("193200000X MULTI-SPECIALTY GROUP")
        );
        assert_eq!(
            row.identifiers,
            [BulkIdentifier {
                identifier: "A-1".into(),
                type_code: None,
                state: Some("MI".into()),
                issuer: Some("BCBS".into()),
            }]
        );
        assert_eq!(row.authorized_official, None);
    }

    #[test]
    fn deactivated_rows_may_have_no_entity_type() {
        let row = one(&npidata(&[record(
            &NPIDATA_COLUMNS_V2,
            &[("NPI", b"1234567893"), ("NPI Deactivation Date", b"06/15/2010")],
        )]));
        assert_eq!(row.entity_type, None);
        assert_eq!(row.deactivation_date, NaiveDate::from_ymd_opt(2010, 6, 15));
        assert!(row.taxonomies.is_empty());
    }

    #[test]
    fn skip_to_line_resumes_at_the_first_record_on_or_after_it() {
        let file = npidata(&[
            provider("1234567893", &[]),
            provider(
                "1245319599",
                &[("Provider First Line Business Mailing Address", b"1 A ST\nUNIT 2")],
            ),
            provider("1679576722", &[]),
            provider("1003000126", &[]),
        ]);
        // Records start on lines 2, 3 (two lines), 5, 6.
        let mut reader = ProviderReader::new(&file[..]).unwrap();
        assert_eq!(reader.skip_to_line(4).unwrap(), 2);
        assert_eq!(reader.line(), 5);
        let offset = reader.byte_offset();
        assert_eq!(&file[offset as usize..offset as usize + 12], b"\"1679576722\"");
        let next = reader.next_row().unwrap().unwrap().unwrap();
        assert_eq!((next.line, next.npi.as_str()), (5, "1679576722"));
        // Skipping to a line already passed skips nothing.
        assert_eq!(reader.skip_to_line(3).unwrap(), 0);
        assert_eq!(reader.next().unwrap().unwrap().unwrap().npi, "1003000126");
        assert!(reader.next().is_none());

        let mut reader = ProviderReader::new(&file[..]).unwrap();
        assert_eq!(reader.skip_to_line(100).unwrap(), 4);
        assert!(reader.next().is_none());
    }

    #[test]
    fn an_io_error_is_fatal_and_ends_the_reading() {
        struct Failing<'a>(&'a [u8]);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("disk gone"));
                }
                let n = self.0.len().min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let file = npidata(&[provider("1234567893", &[])]);
        // The stream breaks in the middle of the row.
        let mut reader = ProviderReader::new(Failing(&file[..file.len() - 100])).unwrap();
        assert!(matches!(reader.next(), Some(Err(BulkReadError::Io { .. }))));
        assert!(reader.next().is_none());
    }

    #[test]
    fn secondary_locations_accept_cms_odd_header_spellings() {
        let file = pl(&[record(
            &PL_COLUMNS_V2,
            &[
                ("NPI", b"1234567893"),
                (
                    "Provider Secondary Practice Location Address- Address Line 1",
                    b"12 ELM ST",
                ),
                (
                    "Provider Secondary Practice Location Address-  Address Line 2",
                    b"STE 4",
                ),
                ("Provider Secondary Practice Location Address - City Name", b"DAYTON"),
                ("Provider Secondary Practice Location Address - State Name", b"OH"),
                (
                    "Provider Secondary Practice Location Address - Postal Code",
                    b"454021234",
                ),
                (
                    "Provider Secondary Practice Location Address - Telephone Extension",
                    b"12",
                ),
                ("Provider Practice Location Address - Fax Number", b"9375550100"),
            ],
        )]);
        let rows: Vec<_> = SecondaryLocationReader::new(&file[..]).unwrap().collect();
        let row = rows[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(row.line, 2);
        assert_eq!(row.address.line1.as_deref(), Some("12 ELM ST"));
        assert_eq!(row.address.line2.as_deref(), Some("STE 4"));
        assert_eq!(row.address.postal_code.as_deref(), Some("454021234"));
        assert_eq!(row.address.phone_extension.as_deref(), Some("12"));
        assert_eq!(row.address.fax.as_deref(), Some("9375550100"));
    }

    #[test]
    fn endpoints_and_other_names_are_read() {
        let endpoints = b"\"NPI\",\"Endpoint Type\",\"Endpoint Type Description\",\"Endpoint\",\"Affiliation\",\"Endpoint Description\",\"Affiliation Legal Business Name\",\"Use Code\",\"Use Description\",\"Other Use Description\",\"Content Type\",\"Content Description\",\"Other Content Description\",\"Affiliation Address Line One\",\"Affiliation Address Line Two\",\"Affiliation Address City\",\"Affiliation Address State\",\"Affiliation Address Country\",\"Affiliation Address Postal Code\"\n\"1306849591\",\"DIRECT\",\"Direct Messaging Address\",\"svogel89246@direct.geisinger.edu\",\"N\",\"\",\"\",\"DIRECT\",\"Direct\",\"\",\"\",\"\",\"\",\"16 Woodbine Ln\",\"\",\"Danville\",\"PA\",\"US\",\"178218029\"\n";
        let rows: Vec<_> = EndpointReader::new(&endpoints[..]).unwrap().collect();
        let row = rows[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(row.endpoint, "svogel89246@direct.geisinger.edu");
        assert_eq!(row.affiliation, Some(false));
        assert_eq!(row.affiliation_address.city.as_deref(), Some("Danville"));
        assert_eq!(row.affiliation_address.postal_code.as_deref(), Some("178218029"));

        let names = b"\"NPI\",\"Provider Other Organization Name\",\"Provider Other Organization Name Type Code\"\n\"1992708929\",\"ATLANTA EYE SURGERY CENTER\",\"3\"\n\"1992708929\",\"\",\"3\"\n";
        let rows: Vec<_> = OtherNameReader::new(&names[..]).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows[0].as_ref().unwrap().name, "ATLANTA EYE SURGERY CENTER");
        assert_eq!(rows[1].as_ref().unwrap_err().line, 3);
    }
}
