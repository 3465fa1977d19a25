//! A mock LLM provider for testing and benchmarking ratellmiter: it throttles the way
//! real providers document, and records what it saw.
//!
//! Two layers:
//! - [`model`]: a pure model of a provider's limits — OpenAI's quantized per-minute
//!   request and token limits, Anthropic's acceleration limit, outage windows, a
//!   penalty box, retry-after on or off, and seeded latencies. Every call takes `now`
//!   since the scenario start, so it runs in virtual time in-process.
//! - [`server`]: an axum server over the model speaking OpenAI's chat-completions wire
//!   format, with `x-ratelimit-*` and `retry-after` headers and OpenAI's error bodies.
//!
//! [`metrics`] measures a run from the request log: window maxima, lag after an
//! outage, and how evenly the accepted requests were spaced.
//!
//! ```
//! use std::time::Duration;
//! use ratellmiter_sim::{Provider, ProviderConfig, RejectKind};
//!
//! // 600 rpm, quantized over 1 s windows: at most 10 requests in any second.
//! let mut provider = Provider::new(ProviderConfig { rpm: 600, ..Default::default() })?;
//! let ms = Duration::from_millis;
//! for i in 0..10 {
//!     assert!(provider.request(ms(i * 10), "gpt-4o", 100).is_accept());
//! }
//! let refused = provider.request(ms(100), "gpt-4o", 100);
//! assert_eq!(refused.reject_kind(), Some(RejectKind::Requests));
//! // The first request leaves the window (0, 1 s] at 1 s.
//! assert_eq!(refused.retry_after(), Some(ms(900)));
//! assert!(provider.request(ms(1000), "gpt-4o", 100).is_accept());
//!
//! let metrics = provider.metrics();
//! assert_eq!((metrics.accepted, metrics.rejected), (11, 1));
//! assert_eq!(metrics.max_accepted_in_any_1s, 10);
//! # Ok::<(), ratellmiter_sim::ConfigError>(())
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod headers;
pub mod kinds;
pub mod metrics;
pub mod model;
pub mod server;
mod window;

pub use config::{
    AccelerationLimit, ConfigError, ErrorStyle, Latency, OutageWindow, PenaltyBox, ProviderConfig,
    parse_outage,
};
pub use kinds::Ask;
pub use metrics::{Metrics, RequestRecord};
pub use model::{Accepted, Decision, LimitState, Provider, RateLimitHeaders, RejectKind, Rejected};
pub use server::{InProcess, MockServer, STREAM_EVENT_INTERVAL, in_process, serve, spawn};
