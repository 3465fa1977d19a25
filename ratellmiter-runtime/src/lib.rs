//! The runtime of [ratellmiter](https://docs.rs/ratellmiter): the pacing engine, the
//! limiter and its tickets, the monitor and the flow log. Users depend on the
//! `ratellmiter` facade, which re-exports all of this beside the `#[llmiter]` attribute.
#![warn(missing_docs)]
// docs.rs (nightly) marks each integration's items with the feature they need, which
// also tells apart the foreign impls that rustdoc shows under the same name (`Error`).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
mod current;
mod error;
pub mod flow_log;
pub mod headers;
mod integrations;
mod limiter;
mod monitor;
pub mod pacer;
mod rate_limit;
mod run;
pub mod shared;
mod stats;
mod telemetry;

pub use config::{ConfigError, DayReset, LimiterConfig, MonitorConfig, RampShape, UnknownServices};
pub use current::{Current, current};
pub use error::{AcquireError, TryAcquireError};
#[cfg(feature = "async-openai")]
pub use integrations::async_openai;
#[cfg(feature = "http")]
pub use integrations::http;
#[cfg(feature = "reqwest")]
pub use integrations::reqwest;
#[cfg(feature = "reqwest-middleware")]
pub use integrations::reqwest_middleware;
#[cfg(feature = "stream")]
pub use integrations::stream;
#[cfg(feature = "tower")]
pub use integrations::tower;
pub use limiter::{Acquire, AcquireFuture, BucketRateLimiter, LimiterBuilder, Ticket};
pub use monitor::{DEFAULT_SERVICE, Monitor, RegistryError, monitor};
pub use pacer::{Priority, Usage};
pub use rate_limit::{
    BoxFuture, CallOutcome, IsRateLimit, RateLimit, RateLimitKind, RateLimitedService,
};
pub use run::Call;
#[cfg(feature = "redis")]
pub use shared::RedisBackend;
pub use stats::Stats;
