//! Operations: health of the integrations, metrics, alerts.

pub mod alerts;
