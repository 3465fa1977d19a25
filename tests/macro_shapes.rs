//! `#[llmiter]` on every shape of function a user writes, each called under virtual
//! time: the number of attempts, and the limiter's counters, show that retries went
//! through the runtime's loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ratellmiter::{BucketRateLimiter, IsRateLimit, RateLimit, llmiter};

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    RateLimited,
    Other(String),
}

impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<RateLimit> {
        matches!(self, ApiError::RateLimited)
            .then_some(RateLimit::retry(Some(Duration::from_secs(1))))
    }
}

/// A server that refuses its first `refusals` calls with a rate limit.
#[derive(Default)]
struct Server {
    refusals: u32,
    calls: AtomicU32,
}

impl Server {
    fn refusing(refusals: u32) -> Arc<Self> {
        Arc::new(Server {
            refusals,
            calls: AtomicU32::new(0),
        })
    }

    /// The call's number (1-based), or a rate limit while refusing.
    fn answer(&self) -> Result<u32, ApiError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.refusals {
            Err(ApiError::RateLimited)
        } else {
            Ok(n)
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

fn limiter() -> BucketRateLimiter {
    BucketRateLimiter::new(600)
}

/// Checks the limiter saw `attempts` tickets, `rate_limited` of them refused, none left out.
fn assert_counted(l: &BucketRateLimiter, attempts: u64, rate_limited: u64) {
    let s = l.stats();
    assert_eq!(
        (s.issued, s.rate_limited, s.in_flight, s.waiting),
        (attempts, rate_limited, 0, 0),
        "{s:?}"
    );
}

// ---- free functions ------------------------------------------------------------------

#[llmiter(limiter = limiter)]
async fn free_owned(
    limiter: &BucketRateLimiter,
    server: Arc<Server>,
    prompt: String,
) -> Result<String, ApiError> {
    let n = server.answer()?;
    Ok(format!("{prompt} #{n}"))
}

#[tokio::test(start_paused = true)]
async fn free_fn_with_owned_args_is_retried_until_it_passes() {
    let (l, server) = (limiter(), Server::refusing(2));
    let out = free_owned(&l, server.clone(), "hi".into()).await;
    assert_eq!(out, Ok("hi #3".to_owned()));
    assert_eq!(server.calls(), 3, "two refusals, then success");
    assert_counted(&l, 3, 2);
}

#[tokio::test(start_paused = true)]
async fn the_future_is_send_and_can_be_spawned() {
    let (l, server) = (limiter(), Server::refusing(1));
    let task_limiter = l.clone();
    let out =
        tokio::spawn(async move { free_owned(&task_limiter, server, "spawned".into()).await })
            .await
            .unwrap();
    assert_eq!(out, Ok("spawned #2".to_owned()));
    assert_counted(&l, 2, 1);
}

/// Generics, a lifetime, a `where` clause, `impl Trait`, a pattern and a `mut` argument.
#[llmiter(limiter = limiter)]
async fn generic<'a, T, S>(
    limiter: &BucketRateLimiter,
    server: &'a Server,
    label: T,
    suffix: impl AsRef<str> + Clone,
    (a, b): (u32, String),
    mut n: u32,
    words: &'a [S],
) -> Result<String, ApiError>
where
    T: std::fmt::Display + Clone,
    S: AsRef<str>,
{
    n += 1;
    let k = server.answer()?;
    let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    Ok(format!(
        "{label}{} {a}{b} n={n} k={k} {}",
        suffix.as_ref(),
        words.join("+")
    ))
}

#[tokio::test(start_paused = true)]
async fn generics_lifetimes_patterns_and_mut_arguments() {
    let (l, server) = (limiter(), Server::refusing(1));
    let out = generic(&l, &server, 'x', "y", (7, "b".into()), 10, &["p", "q"]).await;
    // `n` starts from the caller's 10 again on the retry: each attempt has its own copy.
    assert_eq!(out, Ok("xy 7b n=11 k=2 p+q".to_owned()));
    assert_counted(&l, 2, 1);
}

// ---- methods -------------------------------------------------------------------------

#[derive(Clone)]
struct Client {
    model: String,
    server: Arc<Server>,
    limiters: Vec<BucketRateLimiter>,
    /// Changed through `&mut self`, once per attempt.
    attempts: u32,
}

impl Client {
    fn new(model: &str, refusals: u32) -> Self {
        Client {
            model: model.to_owned(),
            server: Server::refusing(refusals),
            limiters: vec![limiter(), limiter()],
            attempts: 0,
        }
    }

    fn limiter_for(&self, model: &str) -> &BucketRateLimiter {
        &self.limiters[usize::from(model.starts_with("o1"))]
    }

    #[llmiter(limiter = self.limiter_for(&self.model))]
    async fn by_ref(&self, prompt: &str) -> Result<String, ApiError> {
        let n = self.server.answer()?;
        Ok(format!("{}: {prompt} #{n}", self.model))
    }

    #[llmiter(limiter = self.limiters[0].clone())]
    async fn by_mut(&mut self, step: u32) -> Result<u32, ApiError> {
        self.attempts += step;
        self.server.answer()?;
        Ok(self.attempts)
    }

    #[llmiter(limiter = self.limiters[0].clone())]
    async fn by_value(mut self, tag: String) -> Result<String, ApiError> {
        self.attempts += 1;
        self.server.answer()?;
        Ok(format!("{tag} attempts={}", self.attempts))
    }

    #[llmiter(limiter = &self.limiters[0])]
    async fn by_arc(self: Arc<Self>) -> Result<u32, ApiError> {
        let this = Arc::clone(&self);
        this.server.answer()
    }

    #[llmiter(limiter = self.limiter_for(model))]
    async fn pick(&self, model: &str) -> Result<u32, ApiError> {
        self.server.answer()
    }
}

#[tokio::test(start_paused = true)]
async fn shared_self_and_limiter_chosen_per_call() {
    let client = Client::new("o1-mini", 1);
    assert_eq!(client.by_ref("q").await, Ok("o1-mini: q #2".to_owned()));
    assert_counted(&client.limiters[1], 2, 1);
    assert_counted(&client.limiters[0], 0, 0);
    // `limiter = self.limiter_for(model)`: the argument picks the limiter.
    assert_eq!(client.pick("gpt-4o").await, Ok(3));
    assert_counted(&client.limiters[0], 1, 0);
}

#[tokio::test(start_paused = true)]
async fn mut_self_is_lent_to_each_attempt() {
    let mut client = Client::new("gpt-4o", 2);
    assert_eq!(
        client.by_mut(5).await,
        Ok(15),
        "three attempts, each adds 5"
    );
    assert_eq!(client.attempts, 15);
    assert_counted(&client.limiters[0], 3, 2);
}

#[tokio::test(start_paused = true)]
async fn owned_self_is_cloned_for_each_attempt() {
    let client = Client::new("gpt-4o", 2);
    let (server, l) = (client.server.clone(), client.limiters[0].clone());
    // Each attempt starts from the caller's `self`, so `attempts` is 1 in the last one.
    assert_eq!(
        client.by_value("t".into()).await,
        Ok("t attempts=1".to_owned())
    );
    assert_eq!(server.calls(), 3);
    assert_counted(&l, 3, 2);
}

#[tokio::test(start_paused = true)]
async fn arc_self_and_spawned_methods() {
    let client = Arc::new(Client::new("gpt-4o", 1));
    let out = tokio::spawn(client.clone().by_arc()).await.unwrap();
    assert_eq!(out, Ok(2));
    let spawned = client.clone();
    let out = tokio::spawn(async move { spawned.by_ref("s").await })
        .await
        .unwrap();
    assert_eq!(out, Ok("gpt-4o: s #3".to_owned()));
    assert_counted(&client.limiters[0], 3, 1);
}

// ---- trait impls ---------------------------------------------------------------------

trait Ask {
    async fn ask(&self, prompt: String) -> Result<String, ApiError>;
}

impl Ask for Client {
    #[llmiter(limiter = self.limiters[0].clone())]
    async fn ask(&self, prompt: String) -> Result<String, ApiError> {
        let n = self.server.answer()?;
        Ok(format!("{prompt} #{n}"))
    }
}

#[async_trait::async_trait]
trait AskBoxed {
    async fn ask_boxed(&self, prompt: String) -> Result<String, ApiError>;
    async fn count(&mut self) -> Result<u32, ApiError>;
}

#[async_trait::async_trait]
impl AskBoxed for Client {
    #[llmiter(limiter = self.limiters[1].clone(), max_retries = 5)]
    async fn ask_boxed(&self, prompt: String) -> Result<String, ApiError> {
        let n = self.server.answer()?;
        Ok(format!("{prompt} #{n}"))
    }

    #[llmiter(limiter = self.limiters[1].clone())]
    async fn count(&mut self) -> Result<u32, ApiError> {
        self.attempts += 1;
        self.server.answer()?;
        Ok(self.attempts)
    }
}

#[tokio::test(start_paused = true)]
async fn native_async_fn_in_trait_impl() {
    let client = Client::new("gpt-4o", 1);
    assert_eq!(client.ask("a".into()).await, Ok("a #2".to_owned()));
    assert_counted(&client.limiters[0], 2, 1);
}

#[tokio::test(start_paused = true)]
async fn async_trait_methods_are_retried_and_send() {
    let mut client = Client::new("gpt-4o", 2);
    assert_eq!(client.count().await, Ok(3));
    let client = Arc::new(client);
    let spawned = client.clone();
    let out = tokio::spawn(async move { spawned.ask_boxed("b".into()).await })
        .await
        .unwrap();
    assert_eq!(out, Ok("b #4".to_owned()));
    assert_counted(&client.limiters[1], 4, 2);
}

// ---- return types written as aliases -------------------------------------------------

mod aliases {
    use super::*;

    pub type Result<T> = std::result::Result<T, ApiError>;

    #[llmiter(limiter = limiter)]
    pub async fn own_alias(limiter: &BucketRateLimiter, server: &Server) -> Result<u32> {
        server.answer()
    }

    #[llmiter(limiter = limiter)]
    pub async fn io_result(limiter: &BucketRateLimiter) -> std::io::Result<u32> {
        Err(std::io::Error::other("not a rate limit"))
    }
}

#[tokio::test(start_paused = true)]
async fn aliased_results_are_detected_through_the_trait() {
    let (l, server) = (limiter(), Server::refusing(1));
    assert_eq!(aliases::own_alias(&l, &server).await, Ok(2));
    assert_counted(&l, 2, 1);
    // An I/O error is never a rate limit: one attempt, passed straight through.
    let l = limiter();
    assert!(aliases::io_result(&l).await.is_err());
    assert_counted(&l, 1, 0);
    assert_eq!(l.stats().finished, 1);
}

#[tokio::test(start_paused = true)]
async fn other_errors_pass_straight_through() {
    #[llmiter(limiter = limiter)]
    async fn failing(limiter: &BucketRateLimiter, calls: &AtomicU32) -> Result<(), ApiError> {
        calls.fetch_add(1, Ordering::SeqCst);
        Err(ApiError::Other("bad request".into()))
    }
    let (l, calls) = (limiter(), AtomicU32::new(0));
    assert_eq!(
        failing(&l, &calls).await,
        Err(ApiError::Other("bad request".into()))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_counted(&l, 1, 0);
}

// ---- functions returning a future ----------------------------------------------------

/// The usual way to promise `Send` in a trait: a `fn` returning `impl Future + Send`
/// whose body is one `async move` block. The macro rewrites inside the block.
trait AskSend {
    fn ask_send(
        &self,
        prompt: String,
    ) -> impl std::future::Future<Output = Result<String, ApiError>> + Send;
}

impl AskSend for Client {
    #[llmiter(limiter = self.limiters[0].clone())]
    fn ask_send(
        &self,
        prompt: String,
    ) -> impl std::future::Future<Output = Result<String, ApiError>> + Send {
        let server = self.server.clone();
        async move {
            let n = server.answer()?;
            Ok(format!("{prompt} #{n}"))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn impl_future_send_body_is_retried_and_spawned() {
    let client = Arc::new(Client::new("gpt-4o", 1));
    let spawned = client.clone();
    let out = tokio::spawn(async move { spawned.ask_send("f".into()).await })
        .await
        .unwrap();
    assert_eq!(out, Ok("f #2".to_owned()));
    assert_counted(&client.limiters[0], 2, 1);
}

/// `Box::pin(async { … })` without `move`, written by hand: the block takes `server`
/// by value because it moves it (a returned future cannot borrow an argument).
#[llmiter(limiter = l)]
fn pinned_box(
    l: BucketRateLimiter,
    server: Arc<Server>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u32, ApiError>> + Send>> {
    Box::pin(async {
        let server = server;
        server.answer()
    })
}

/// `async move { … }.boxed()` (futures' `FutureExt`).
#[llmiter(limiter = l)]
fn boxed<'a>(
    l: &'a BucketRateLimiter,
    server: &'a Server,
) -> futures_util::future::BoxFuture<'a, Result<u32, ApiError>> {
    use futures_util::FutureExt;
    async move { server.answer() }.boxed()
}

#[tokio::test(start_paused = true)]
async fn box_pin_without_move_and_boxed_bodies_are_retried() {
    let (l, server) = (limiter(), Server::refusing(1));
    assert_eq!(pinned_box(l.clone(), server).await, Ok(2));
    assert_counted(&l, 2, 1);

    let (l, server) = (limiter(), Server::refusing(2));
    assert_eq!(boxed(&l, &server).await, Ok(3));
    assert_counted(&l, 3, 2);
}

// ---- receivers: Box<Self>, Pin<&mut Self> --------------------------------------------

impl Client {
    /// Owned like `self`: each attempt gets its own clone of the box.
    #[llmiter(limiter = self.limiters[0].clone())]
    async fn boxed_self(mut self: Box<Self>) -> Result<u32, ApiError> {
        self.attempts += 1;
        self.server.answer()?;
        Ok(self.attempts)
    }

    /// Lent to each attempt like `&mut self`, reborrowed with `as_mut()`.
    #[llmiter(limiter = self.limiters[0].clone())]
    async fn pinned_self(mut self: std::pin::Pin<&mut Self>) -> Result<u32, ApiError> {
        self.attempts += 1;
        self.server.answer()?;
        Ok(self.attempts)
    }
}

/// A pinned argument that is not the receiver, lent the same way.
#[llmiter(limiter = l)]
async fn pinned_arg(
    l: &BucketRateLimiter,
    mut client: std::pin::Pin<&mut Client>,
) -> Result<u32, ApiError> {
    client.attempts += 10;
    client.server.answer()?;
    Ok(client.attempts)
}

#[tokio::test(start_paused = true)]
async fn box_self_is_cloned_and_pinned_self_is_lent() {
    let client = Client::new("gpt-4o", 2);
    let l = client.limiters[0].clone();
    // Each attempt clones the box, so the last one starts again from 0.
    assert_eq!(Box::new(client.clone()).boxed_self().await, Ok(1));
    assert_counted(&l, 3, 2);

    // The pinned receiver is lent to each of the 2 attempts in turn: both increments stay.
    let mut client = Client::new("gpt-4o", 1);
    let l = client.limiters[0].clone();
    assert_eq!(std::pin::Pin::new(&mut client).pinned_self().await, Ok(2));
    assert_eq!(client.attempts, 2);
    assert_counted(&l, 2, 1);

    let l = limiter();
    assert_eq!(
        pinned_arg(&l, std::pin::Pin::new(&mut client)).await,
        Ok(12)
    );
    assert_counted(&l, 1, 0);
}

// ---- hygiene -------------------------------------------------------------------------

/// Arguments named like the expansion's locals reach the body as the caller's values:
/// the macro's locals are mixed-site and cannot shadow them.
#[llmiter(limiter = l)]
async fn named_like_locals(
    l: &BucketRateLimiter,
    __llmiter_limiter: u32,
    __llmiter_call: &str,
) -> Result<String, ApiError> {
    Ok(format!("{__llmiter_call}{__llmiter_limiter}"))
}

#[tokio::test(start_paused = true)]
async fn the_body_sees_its_own_names_not_the_macros() {
    let l = limiter();
    assert_eq!(named_like_locals(&l, 7, "n=").await, Ok("n=7".to_owned()));
    assert_counted(&l, 1, 0);
}
