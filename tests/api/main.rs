//! HTTP-level tests of the FHIR server, one module per part of the spec they check.
//! Each runs against the real binary, on SQLite and on PostgreSQL.

mod common;

mod auth;
mod bad_input;
mod config;
mod fake_nppes;
mod formats;
mod interactions;
mod logs;
mod nppes;
mod nppes_import;
mod run;
mod search;
mod stores;
mod transactions;
mod validation;
mod versioning;
