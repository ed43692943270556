//! NPPES bulk import: the monthly and weekly Data Dissemination files turned into Plan-Net
//! resources, streamed.

pub mod companions;
pub mod deactivation;
#[cfg(test)]
mod fixtures;
pub mod generate;
pub mod headers;
pub mod import;
pub mod mapping;
pub mod reader;
pub mod row;
pub mod source;

pub use deactivation::{read_deactivation_report, DeactivationError, DeactivationReport};
pub use generate::{
    generate, generate_deactivation_report, GenerateOptions, GeneratedFiles, GeneratedSummary, TaxonomyPool,
};
pub use reader::{
    parse_rate, BulkReadError, BulkReader, BulkRow, EndpointReader, OtherNameReader, ParseRate, ProviderReader,
    RowError, SecondaryLocationReader,
};
pub use source::{DisseminationSource, FileKind, SourceError, SourceFile, SourceStream};
