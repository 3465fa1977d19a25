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
/// - A plain `fn` returning a future whose body ends in an `async` block — `async move
///   { … }` behind `-> impl Future<Output = Result<…>> + Send` (the usual way to promise
///   `Send` in a trait), `Box::pin(async { … })` (what `#[async_trait]` writes) or
///   `async move { … }.boxed()` — is rewritten inside the block: the block is what waits
///   for tickets and is re-run, the statements before it run once per call (the locals
///   they bind are cloned for each attempt like owned arguments), and a block without
///   `move` becomes `move` (a returned future cannot borrow the function's arguments, so
///   nothing it captured changes). A `fn` returning a future any other way is refused
///   with a message saying so.
/// - `self: Box<Self>` is owned like `self` (cloned for each attempt, so `Self: Clone`);
///   `self: Pin<&mut Self>` (or any `Pin<&mut T>` argument) is lent like `&mut self`,
///   reborrowed for each attempt with `as_mut()`.
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
/// `&self`) are shared by the attempts; `&mut T`, `&mut self` and `Pin<&mut …>` are lent
/// to one attempt at a time (so a `&mut self` method cannot return a borrow of `self`).
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
/// | `limiter = <expr>` | a limiter given directly: a `BucketRateLimiter` or a `&BucketRateLimiter` |
/// | `monitor = <expr>` | the `Monitor` that `service` (or the default limiter) is looked up in, instead of the global `monitor()`: a `&Monitor`, a `static` `LazyLock<Monitor>`, an `Arc<Monitor>`; not with `limiter` |
/// | `max_retries = N` | re-runs after a rate limit before the error is returned (default: the limiter's, 20); `0` never re-runs and clones nothing; a `u32` constant or expression (`max_retries = MAX_RETRIES`) works too |
/// | `request_id = <expr>` | an id (`&str`, `String`, …) carried into traces and `ratellmiter::current().request_id()` |
/// | `timeout = "30s"` | give up waiting for a ticket after this long (`ms`, `s`, `m`, `h`, or sums like `"1m30s"`), checked at compile time; or a `Duration` expression (`timeout = Duration::from_secs(30)`) |
/// | `priority = high` | queue ahead of normal calls (behind re-tries); `normal` is the default |
/// | `tokens = <expr>` | the call's estimated tokens in all (`u64`), charged to the limiter's tokens-per-minute budget (`tpm`, and `input_tpm` when no split is given) |
/// | `input_tokens = <expr>` | the call's estimated input tokens (`u64`), charged to `input_tpm` (and with `output_tokens` to `tpm`) |
/// | `output_tokens = <expr>` | the output the call reserves, its `max_tokens` (`u64`), charged to `output_tpm` until `current().record_usage(Usage::new(input, output))` corrects it |
/// | `crate = "path"` | where the `ratellmiter` facade is when it is renamed or re-exported |
///
/// Without `service` or `limiter`, the monitor's default limiter is used. With
/// `timeout`, `tokens`, `input_tokens` or `output_tokens` the wait itself can fail (a
/// deadline, an estimate above a whole budget, a spent daily quota:
/// `AcquireError::QuotaExhausted`); the function then returns
/// `Err(E::from(AcquireError))`, so its error type must implement
/// `From<ratellmiter::AcquireError>` (a compile error says so otherwise). Without any
/// of them the wait cannot fail, so a spent daily quota (`rpd`, `tpd`) is waited for.
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
/// struct Client { model: String, limiters: Vec<BucketRateLimiter> }
///
/// impl Client {
///     fn limiter_for(&self, model: &str) -> &BucketRateLimiter {
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
/// let client = Client { model: "gpt-4o".into(), limiters: vec![BucketRateLimiter::new(600)] };
/// assert_eq!(client.chat("hi").await.unwrap(), "gpt-4o: hi");
/// assert_eq!(client.complete("o1", "req-7".into()).await.unwrap(), "req-7");
/// # }
/// ```
///
/// Constants and expressions where a number or a duration is asked for, a monitor of
/// one's own, and a trait method promising a `Send` future:
///
/// ```
/// use std::future::Future;
/// use std::sync::LazyLock;
/// use std::time::Duration;
/// use ratellmiter::{llmiter, AcquireError, BucketRateLimiter, IsRateLimit, Monitor};
///
/// #[derive(Debug, IsRateLimit)]
/// enum ApiError { #[rate_limit] RateLimited, Gave(AcquireError) }
/// impl From<AcquireError> for ApiError {
///     fn from(e: AcquireError) -> Self { ApiError::Gave(e) }
/// }
///
/// const RETRIES: u32 = 3;
/// /// Not the global monitor: its own services, its own limits.
/// static TENANT: LazyLock<Monitor> = LazyLock::new(Monitor::new);
///
/// #[llmiter(monitor = TENANT, service = "gpt-4o", max_retries = RETRIES,
///           timeout = Duration::from_secs(30))]
/// async fn ask(prompt: &str) -> Result<String, ApiError> {
///     Ok(prompt.to_uppercase())
/// }
///
/// trait Chat {
///     fn chat(&self, prompt: String) -> impl Future<Output = Result<String, ApiError>> + Send;
/// }
///
/// struct Client { limiter: BucketRateLimiter }
///
/// impl Chat for Client {
///     // Rewritten inside the `async move` block: that is what waits and is re-run.
///     #[llmiter(limiter = &self.limiter)]
///     fn chat(&self, prompt: String) -> impl Future<Output = Result<String, ApiError>> + Send {
///         async move { Ok(format!("re: {prompt}")) }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// TENANT.add_service("gpt-4o", BucketRateLimiter::new(60)).unwrap();
/// assert_eq!(ask("hi").await.unwrap(), "HI");
/// assert_eq!(TENANT.limiter("gpt-4o").stats().finished, 1);
/// let client = Client { limiter: BucketRateLimiter::new(600) };
/// assert_eq!(client.chat("hi".into()).await.unwrap(), "re: hi");
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
///         ::ratellmiter::__private::Call::run(__llmiter_call, move || {
///             let prompt = ::ratellmiter::__private::RetryArg::clone_for_attempt(&prompt);
///             async move { Ok(prompt) }
///         })
///         .await
///     })
/// }
/// ```
/// (The `__llmiter_…` locals are hygienic, `Span::mixed_site()`: the body can neither
/// name them nor have its own names shadowed by them. `always_issued` unwraps the `Result<_, AcquireError>` of a call that cannot fail to
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
