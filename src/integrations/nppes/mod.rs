//! NPPES (the CMS National Plan and Provider Enumeration System) building blocks: NPI syntax,
//! the NPI Registry API v2.1 answer and its HTTP client, the NUCC provider taxonomy code set,
//! and the mapping of a registry record onto Plan-Net Practitioner, Organization and
//! PractitionerRole resources; the adapter, its lookup cache, and enrichment inside writes.

pub mod adapter;
pub mod bulk;
pub mod cache;
pub mod client;
pub mod enrichment;
pub mod jobs;
pub mod mapping;
pub mod model;
pub mod npi;
pub mod taxonomy;

pub use client::{Lookup, RegistryClient, RegistryError, SearchCriteria, DEFAULT_BASE_URL};
pub use mapping::{
    enrich_organization, enrich_practitioner, merge_specialties, practitioner_role_for, specialty_codings, Discrepancy,
    Enrichment,
};
pub use model::{Address, ApiError, EnumerationType, Gender, NppesRecord, RegistryAnswer, Taxonomy};
pub use npi::{npis_in, Npi, NpiError, NPI_SYSTEM};
pub use taxonomy::{NuccCodeSet, NuccError, NuccTaxonomy, NUCC_SYSTEM};
