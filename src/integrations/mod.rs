//! Outside systems: one adapter trait and registry, the resilience layers every outbound
//! call goes through, idempotency keys and inbound webhooks; one module per system.

pub mod adapter;
pub mod idempotency;
pub mod nppes;
pub mod registry;
pub mod resilience;
pub mod setup;
pub mod webhook;
