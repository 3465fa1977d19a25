//! Runtime of ratellmiter (placeholder docs).
pub mod config;
pub mod pacer;
pub use config::{ConfigError, LimiterConfig, MonitorConfig};
