pub mod metrics;
pub mod window;
