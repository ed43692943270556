//! Operations: health of the integrations, metrics, alerts.

pub mod alerts;
pub mod health;
pub mod metrics;
pub mod rules;
pub mod window;
