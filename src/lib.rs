//! Paces calls to LLM APIs so they are never throttled: every call waits for a ticket,
//! tickets are spread evenly over the minute, the rate ramps up after a jump in demand,
//! and after a rate limit (HTTP 429) everything pauses, the server is probed, and the
//! refused calls go first when it accepts calls again — the Rust successor of the
//! Python package rateLLMiter.
//!
//! Depend on this crate alone: it re-exports the runtime ([`BucketRateLimiter`],
//! [`monitor()`], [`IsRateLimit`], …), the [`llmiter`] attribute and
//! `#[derive(IsRateLimit)]`.
//!
//! # Quickstart
//! ```
//! use ratellmiter::{llmiter, monitor, BucketRateLimiter, IsRateLimit, MonitorConfig};
//!
//! #[derive(Debug, IsRateLimit)]
//! enum MyError {
//!     #[rate_limit]          // a 429: paused, probed and re-run
//!     RateLimited { #[retry_after] wait: Option<std::time::Duration> },
//!     #[rate_limit(final)]   // a quota spent: returned at once
//!     QuotaExhausted,
//!     Other(String),         // anything else: returned as it is
//! }
//!
//! /// Paced by the default service.
//! #[llmiter]
//! async fn ask(prompt: &str) -> Result<String, MyError> {
//!     Ok(format!("answer to {prompt}")) // call your LLM client here
//! }
//!
//! /// Paced by the "gpt-4o" service; re-run after a rate limit, ahead of new calls.
//! #[llmiter(service = "gpt-4o")]
//! async fn ask_4o(prompt: String) -> Result<String, MyError> {
//!     if prompt.is_empty() { return Err(MyError::Other("empty prompt".into())); }
//!     Ok(format!("gpt-4o says: {prompt}"))
//! }
//!
//! #[tokio::main(flavor = "current_thread", start_paused = true)]
//! async fn main() -> Result<(), MyError> {
//!     let dir = std::env::temp_dir().join("ratellmiter-doc-quickstart");
//!     monitor().set_config(MonitorConfig::default().default_rpm(300).log_dir(&dir));
//!     monitor().start(); // idempotent; calls made before start() are paced all the same
//!     // A name is registered once: a second add_service for it is an error.
//!     let gpt = monitor().add_service("gpt-4o", BucketRateLimiter::new(500)).expect("registered once");
//!     let same = monitor().limiter("gpt-4o");
//!     assert!(same.same_limiter(&gpt));
//!
//!     assert_eq!(ask_4o("What is the capital of France?".into()).await?, "gpt-4o says: What is the capital of France?");
//!     assert_eq!(ask("Hello").await?, "answer to Hello");
//!
//!     // By hand: wait for a ticket, call, drop the ticket.
//!     let ticket = gpt.acquire().await.expect("no deadline, no token cost");
//!     drop(ticket);
//!
//!     let s = gpt.stats();
//!     assert_eq!((s.issued, s.finished, s.in_flight), (2, 2, 0));
//!     monitor().stop(); // idempotent; start() again afterwards works
//!     Ok(())
//! }
//! ```
//!
//! For code that cannot take an attribute, the closure form runs the same retry loop:
//! `limiter.run(|| async { … }).await`, or `limiter.call().max_retries(3).run(…)`.
#![warn(missing_docs)]

pub use ratellmiter_runtime::*;

#[doc(inline)]
pub use ratellmiter_macros::llmiter;

/// `#[derive(IsRateLimit)]`, beside the trait of the same name (as serde's derives are).
#[doc(inline)]
pub use ratellmiter_macros::IsRateLimit;

#[doc(hidden)]
pub mod __private;

/// The README's Rust examples, compiled and run as doc tests so the quickstart stays true
/// (its quickstart uses the `reqwest` integration).
#[cfg(all(doctest, feature = "reqwest"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
