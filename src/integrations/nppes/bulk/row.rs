//! The rows of the NPPES Data Dissemination files, decoded: what the reader produces and the
//! mapping to Plan-Net consumes. Every text value is trimmed; an empty column is `None`.
//! Column names and meanings: CMS "NPPES Data Dissemination – Readme" (V2, 2025).

use chrono::NaiveDate;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    /// Entity Type Code 1: an individual (NPI-1) → Practitioner.
    Individual,
    /// Entity Type Code 2: an organization (NPI-2) → Organization.
    Organization,
}

/// A mailing, practice or secondary practice address with its phone and fax.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkAddress {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    /// 5 or 9 digits as in the file (no hyphen), or a foreign postal code.
    pub postal_code: Option<String>,
    /// Only filled for addresses outside the U.S. in the file; None means US.
    pub country_code: Option<String>,
    pub phone: Option<String>,
    pub phone_extension: Option<String>,
    pub fax: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizedOfficial {
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub title: Option<String>,
    pub phone: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub credential: Option<String>,
}

/// One of the 15 taxonomy blocks (only filled ones are kept, in file order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkTaxonomy {
    pub code: String,
    pub license: Option<String>,
    pub license_state: Option<String>,
    /// "Healthcare Provider Primary Taxonomy Switch" = "Y".
    pub primary: bool,
    /// "Healthcare Provider Taxonomy Group_n" (e.g. "193200000X MULTI-SPECIALTY GROUP").
    pub group: Option<String>,
}

/// One of the 50 other-identifier blocks (only filled ones are kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkIdentifier {
    pub identifier: String,
    /// 01 other, 02 Medicare UPIN, 04 Medicare ID type I, 05 Medicaid, 06 Medicare OSCAR, …
    pub type_code: Option<String>,
    pub state: Option<String>,
    pub issuer: Option<String>,
}

/// One `npidata_pfile` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRow {
    /// The line of the file the record starts on (1 is the header).
    pub line: u64,
    pub npi: String,
    /// None only on a deactivated NPI's row: CMS publishes those with just the NPI and the
    /// deactivation date, the Entity Type Code empty. The reader rejects an empty code elsewhere.
    pub entity_type: Option<EntityType>,
    pub replacement_npi: Option<String>,
    pub organization_name: Option<String>,
    pub last_name: Option<String>,
    pub first_name: Option<String>,
    pub middle_name: Option<String>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    pub credential: Option<String>,
    pub other_organization_name: Option<String>,
    pub other_organization_name_type: Option<String>,
    pub other_last_name: Option<String>,
    pub other_first_name: Option<String>,
    pub mailing: BulkAddress,
    pub practice: BulkAddress,
    pub enumeration_date: Option<NaiveDate>,
    pub last_update: Option<NaiveDate>,
    pub deactivation_reason: Option<String>,
    pub deactivation_date: Option<NaiveDate>,
    pub reactivation_date: Option<NaiveDate>,
    /// "Provider Sex Code" (2025) or "Provider Gender Code" (older files): M, F, or as given.
    pub sex: Option<String>,
    pub authorized_official: Option<AuthorizedOfficial>,
    pub taxonomies: Vec<BulkTaxonomy>,
    pub identifiers: Vec<BulkIdentifier>,
    pub sole_proprietor: Option<bool>,
    pub organization_subpart: Option<bool>,
    pub parent_organization_lbn: Option<String>,
    pub parent_organization_tin: Option<String>,
    pub certification_date: Option<NaiveDate>,
}

/// One `pl_pfile` row: a secondary practice location of an NPI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondaryLocationRow {
    pub line: u64,
    pub npi: String,
    pub address: BulkAddress,
}

/// One `othername_pfile` row (organizations only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherNameRow {
    pub line: u64,
    pub npi: String,
    pub name: String,
    /// 3 Doing Business As, 4 Former Legal Business Name, 5 Other Name.
    pub type_code: Option<String>,
}

/// One `endpoint_pfile` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRow {
    pub line: u64,
    pub npi: String,
    /// DIRECT, FHIR, CONNECT, SOAP, WEB, OTHERS …
    pub endpoint_type: Option<String>,
    pub endpoint_type_description: Option<String>,
    pub endpoint: String,
    /// "Y" when the endpoint belongs to an affiliated organization.
    pub affiliation: Option<bool>,
    pub endpoint_description: Option<String>,
    pub affiliation_legal_business_name: Option<String>,
    pub use_code: Option<String>,
    pub use_description: Option<String>,
    pub other_use_description: Option<String>,
    pub content_type: Option<String>,
    pub content_description: Option<String>,
    pub other_content_description: Option<String>,
    pub affiliation_address: BulkAddress,
}

/// A row of the deactivation report (Excel): the NPI and its deactivation date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeactivationRow {
    pub npi: String,
    pub deactivation_date: Option<NaiveDate>,
}
