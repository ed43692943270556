//! Validation of resources on write (and, later, by `$validate`). Structure first: JSON Schema
//! from the R4 `fhir.schema.json` (precise element paths), then fhirbolt's strict parse as a
//! second opinion on what JSON Schema cannot express.

pub mod structure;

pub use structure::StructureValidator;
