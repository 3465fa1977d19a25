//! The `#[llmiter]` attribute and `#[derive(IsRateLimit)]` of
//! [ratellmiter](https://docs.rs/ratellmiter). Use them through the facade
//! (`use ratellmiter::{llmiter, IsRateLimit};`); the generated code reaches the runtime
//! through the facade's hidden `__private` module, so users import nothing else.
#![warn(missing_docs)]

mod args;
mod derive;
mod expand;

use proc_macro::TokenStream;

/// Paces a function that calls an LLM API: each call waits for a ticket from a
/// limiter, and a call that fails with a rate limit (see `IsRateLimit`) is re-run from
/// the front of the line after the limiter's pause, up to `max_retries` times.
///
/// ```
/// use ratellmiter::{llmiter, IsRateLimit};
///
/// #[derive(Debug, IsRateLimit)]
/// enum MyError { #[rate_limit] RateLimited, Other(String) }
///
/// #[llmiter(service = "gpt-4o")]
/// async fn ask(prompt: String) -> Result<String, MyError> {
///     Ok(format!("echo: {prompt}")) // the real client call goes here
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// assert_eq!(ask("hello".into()).await.unwrap(), "echo: hello");
/// assert_eq!(ratellmiter::monitor().limiter("gpt-4o").stats().finished, 1);
/// # }
/// ```
///
/// # What it works on
/// - `async fn` and plain `fn`, free or methods (`&self`, `&mut self`, `self`,
///   `self: Arc<Self>`), in inherent impls and trait impls (native `async fn` in traits
///   and `#[async_trait]`), with generics, lifetimes, `where` clauses, `impl Trait` and
///   pattern arguments. The signature is never changed: visibility, attributes and docs
///   stay as written, and the returned future is `Send` when the body is.
/// - The return type must be a `Result<T, E>` with `E: IsRateLimit`, under any alias
///   (`anyhow::Result<T>`, `io::Result<T>`, your own `type Result<T>`): the check is a
///   trait on the type, not a reading of its name.
///
/// # Each attempt gets its own arguments
/// A rate-limited call runs its body again, so each attempt starts from fresh
/// arguments: owned arguments (`prompt: String`, `self`, `self: Arc<Self>`, bindings of
/// a pattern such as `(a, b): (String, u32)`) are **cloned** for each attempt, and an
/// owned argument that is not `Clone` is a compile error at that argument — unless
/// `max_retries = 0`, which runs the body once and clones nothing. References (`&T`,
/// `&self`) are shared by the attempts; `&mut T` and `&mut self` are lent to one
/// attempt at a time (so a `&mut self` method cannot return a borrow of `self`).
///
/// # Plain `fn`: blocking clients only
/// On a plain `fn` the call blocks its thread while it waits for a ticket
/// (`Call::run_blocking`). That is for blocking clients (`reqwest::blocking`, `ureq`):
/// never call such a function on an async runtime's thread — it panics there with a
/// message saying so instead of stalling the runtime. From async code, go through
/// `tokio::task::spawn_blocking`, or make the function `async`.
///
/// # Arguments
/// All are optional and may come in any order.
///
/// | argument | meaning |
/// |---|---|
/// | `service = "name"` | the monitor's limiter of that name (`monitor().limiter("name")`; an unknown name gets one at the default rate with a warning on stderr, or is refused: see `MonitorConfig::unknown_services`) |
/// | `service = <expr>` | the same, with the name computed for each call from the arguments or `self` (`&str`, `String`, …) |
/// | `limiter = <expr>` | a limiter given directly: `&BucketRateLimiter`, `Arc<BucketRateLimiter>` or `&Arc<…>` |
/// | `max_retries = N` | re-runs after a rate limit before the error is returned (default: the limiter's, 20); `0` never re-runs and clones nothing |
/// | `request_id = <expr>` | an id (`&str`, `String`, …) carried into traces and `ratellmiter::current().request_id()` |
/// | `timeout = "30s"` | give up waiting for a ticket after this long (`ms`, `s`, `m`, `h`, or sums like `"1m30s"`), checked at compile time |
/// | `priority = high` | queue ahead of normal calls (behind re-tries); `normal` is the default |
/// | `tokens = <expr>` | the call's estimated tokens (`u64`), charged to the limiter's tokens-per-minute budget |
/// | `crate = "path"` | where the `ratellmiter` facade is when it is renamed or re-exported |
///
/// Without `service` or `limiter`, the monitor's default limiter is used. With
/// `timeout` or `tokens` the wait itself can fail; the function then returns
/// `Err(E::from(AcquireError))`, so its error type must implement
/// `From<ratellmiter::AcquireError>` (a compile error says so otherwise).
///
/// ```
/// use std::sync::Arc;
/// use ratellmiter::{current, llmiter, AcquireError, BucketRateLimiter, IsRateLimit};
///
/// #[derive(Debug, IsRateLimit)]
/// enum ApiError { #[rate_limit] RateLimited, Gave(AcquireError) }
/// impl From<AcquireError> for ApiError {
///     fn from(e: AcquireError) -> Self { ApiError::Gave(e) }
/// }
///
/// struct Client { model: String, limiters: Vec<Arc<BucketRateLimiter>> }
///
/// impl Client {
///     fn limiter_for(&self, model: &str) -> &Arc<BucketRateLimiter> {
///         &self.limiters[model.len() % self.limiters.len()]
///     }
///
///     // The model's own limiter, by name, chosen per call.
///     #[llmiter(service = self.model.as_str(), max_retries = 3, timeout = "30s")]
///     async fn chat(&self, prompt: &str) -> Result<String, ApiError> {
///         Ok(format!("{}: {prompt}", self.model))
///     }
///
///     // A limiter of our own, an id for the logs, high priority and a token estimate.
///     #[llmiter(limiter = self.limiter_for(model), request_id = id.clone(),
///               priority = high, tokens = 1_000)]
///     async fn complete(&self, model: &str, id: String) -> Result<String, ApiError> {
///         Ok(current().request_id().unwrap_or_default().to_owned())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// let client = Client { model: "gpt-4o".into(), limiters: vec![Arc::new(BucketRateLimiter::new(600))] };
/// assert_eq!(client.chat("hi").await.unwrap(), "gpt-4o: hi");
/// assert_eq!(client.complete("o1", "req-7".into()).await.unwrap(), "req-7");
/// # }
/// ```
///
/// # Equivalent code without the macro
/// The body becomes one call of the runtime's retry loop, the same loop as the closure
/// form `limiter.call()…run(|| …)`:
///
/// ```
/// # use ratellmiter::{llmiter, IsRateLimit};
/// # #[derive(Debug, IsRateLimit)] #[rate_limit] struct MyError;
/// #[llmiter(service = "gpt-4o", max_retries = 3)]
/// async fn ask(prompt: String) -> Result<String, MyError> {
///     Ok(prompt)
/// }
/// ```
/// expands to
/// ```
/// # use ratellmiter::IsRateLimit;
/// # #[derive(Debug, IsRateLimit)] #[rate_limit] struct MyError;
/// async fn ask(prompt: String) -> Result<String, MyError> {
///     let __llmiter_limiter = ::ratellmiter::__private::monitor().limiter("gpt-4o");
///     let __llmiter_call = __llmiter_limiter.call().max_retries(3u32);
///     ::ratellmiter::__private::always_issued({
///         __llmiter_call
///             .run(move || {
///                 let prompt = ::ratellmiter::__private::RetryArg::clone_for_attempt(&prompt);
///                 async move { Ok(prompt) }
///             })
///             .await
///     })
/// }
/// ```
/// (`always_issued` unwraps the `Result<_, AcquireError>` of a call that cannot fail to
/// get a ticket; `RetryArg::clone_for_attempt` is `Clone::clone` with an error message
/// about retries.) A `&mut self` method runs through `Call::run_with` instead, which
/// lends the receiver to one attempt at a time, and a plain `fn` through
/// `Call::run_blocking`.
#[proc_macro_attribute]
pub fn llmiter(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::llmiter(args.into(), item.into()).into()
}

/// Derives `IsRateLimit`: says which errors of an enum (or struct) are rate limits, so
/// the limiter pauses and re-runs the call, or returns a final one at once.
///
/// On an enum's variants:
///
/// | attribute | the variant is |
/// |---|---|
/// | *(none)* | not a rate limit: returned to the caller as it is |
/// | `#[rate_limit]` | a rate limit worth waiting out; a field marked `#[retry_after]` (of type `Duration` or `Option<Duration>`) says for how long |
/// | `#[rate_limit(final)]` | a rate limit that waiting cannot cure (a quota spent): returned at once, the limiter does not pause |
/// | `#[rate_limit(transparent)]` | whatever its one field's error says (`reqwest::Error`, async-openai's `OpenAIError`, `anyhow::Error`, an error of your own): all of it is forwarded, so nothing can be half-forwarded |
///
/// On a struct, one of the three goes on the struct itself (`transparent` for a
/// newtype). `#[rate_limit(crate = "my_facade::ratellmiter")]` on the type says where
/// the facade is when it is re-exported.
///
/// ```
/// use std::time::Duration;
/// use ratellmiter::{IsRateLimit, RateLimit};
///
/// #[derive(Debug, IsRateLimit)]
/// enum ChatError {
///     #[rate_limit]
///     Busy { #[retry_after] wait: Duration },
///     #[rate_limit(final)]
///     QuotaSpent,
///     #[rate_limit(transparent)]
///     Io(std::io::Error),
///     BadRequest(String),
/// }
///
/// /// Forwards everything of the wrapped error.
/// #[derive(Debug, IsRateLimit)]
/// #[rate_limit(transparent)]
/// struct Wrapped(ChatError);
///
/// let busy = ChatError::Busy { wait: Duration::from_secs(2) };
/// assert_eq!(busy.rate_limit(), Some(RateLimit::retry(Some(Duration::from_secs(2)))));
/// assert!(Wrapped(ChatError::QuotaSpent).rate_limit().unwrap().is_final());
/// assert_eq!(ChatError::BadRequest("no".into()).rate_limit(), None);
/// ```
///
/// The derive expands to one `match`:
///
/// ```
/// # use std::time::Duration;
/// # use ratellmiter::{IsRateLimit, RateLimit};
/// # #[derive(Debug)]
/// # enum ChatError { Busy { wait: Duration }, QuotaSpent, Io(std::io::Error), BadRequest(String) }
/// impl IsRateLimit for ChatError {
///     fn rate_limit(&self) -> Option<RateLimit> {
///         match self {
///             Self::Busy { wait, .. } => Some(RateLimit::retry(Some(*wait))),
///             Self::QuotaSpent { .. } => Some(RateLimit::final_quota()),
///             Self::Io { 0: e, .. } => e.rate_limit(),
///             Self::BadRequest { .. } => None,
///         }
///     }
/// }
/// ```
#[proc_macro_derive(IsRateLimit, attributes(rate_limit, retry_after))]
pub fn derive_is_rate_limit(input: TokenStream) -> TokenStream {
    derive::is_rate_limit(input.into()).into()
}
