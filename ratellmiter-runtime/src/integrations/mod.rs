//! Integrations with HTTP clients, each behind the cargo feature of its name:
//! [`IsRateLimit`](crate::IsRateLimit) for their error types, and the provider's
//! rate-limit headers fed to [`current()`](crate::current()) so the limiter slows down
//! before a 429.

#[cfg(feature = "anyhow")]
mod anyhow;
#[cfg(feature = "async-openai")]
pub mod async_openai;
#[cfg(any(feature = "reqwest", feature = "tower"))]
mod classify;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "reqwest-middleware")]
pub mod reqwest_middleware;
#[cfg(feature = "stream")]
pub mod stream;
#[cfg(feature = "tower")]
pub mod tower;
