//! NPPES bulk import: the monthly and weekly Data Dissemination files turned into Plan-Net
//! resources, streamed.

pub mod mapping;
pub mod row;
