pub mod nppes;
