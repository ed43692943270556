//! ProviderCard Integrations: a FHIR R4 Plan-Net 1.2.0 provider directory.
//!
//! Layers, top to bottom (see README "Architecture"): `http` (actix edge, asking `auth` who
//! may do what) → `fhir` (REST semantics) → `validation` and `search` → `store` (diesel,
//! SQLite or PostgreSQL).

pub mod auth;
pub mod cli;
pub mod config;
pub mod fhir;
pub mod fhirpath;
pub mod http;
pub mod import;
pub mod integrations;
pub mod jobs;
pub mod ops;
pub mod search;
pub mod server;
pub mod store;
pub mod validation;
