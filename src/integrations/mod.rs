pub mod resilience;
