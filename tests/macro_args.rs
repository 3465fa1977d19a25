//! Every `#[llmiter(…)]` argument, called under virtual time with numbers to check.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratellmiter::{
    AcquireError, BucketRateLimiter, IsRateLimit, Monitor, RateLimit, current, llmiter, monitor,
};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq)]
enum ApiError {
    RateLimited,
    Gave(AcquireError),
}

impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<RateLimit> {
        matches!(self, ApiError::RateLimited)
            .then_some(RateLimit::retry(Some(Duration::from_secs(2))))
    }
}

impl From<AcquireError> for ApiError {
    fn from(e: AcquireError) -> Self {
        ApiError::Gave(e)
    }
}

/// Counts the call, refuses while the count is at most `refusals`.
fn answer(calls: &AtomicU32, refusals: u32) -> Result<u32, ApiError> {
    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= refusals {
        Err(ApiError::RateLimited)
    } else {
        Ok(n)
    }
}

// ---- choosing the limiter ------------------------------------------------------------

#[llmiter(service = "macro-args-named")]
async fn named(calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, 1)
}

#[tokio::test(start_paused = true)]
async fn service_name_uses_the_monitors_limiter_of_that_name() {
    let l = monitor()
        .add_service("macro-args-named", BucketRateLimiter::new(600))
        .unwrap();
    let calls = AtomicU32::new(0);
    assert_eq!(named(&calls).await, Ok(2));
    let s = l.stats();
    assert_eq!((s.issued, s.rate_limited, s.finished), (2, 1, 1));
}

struct Model {
    model: String,
}

impl Model {
    #[llmiter(service = self.model.as_str())]
    async fn ask(&self, calls: &AtomicU32) -> Result<u32, ApiError> {
        answer(calls, 0)
    }
}

#[llmiter(service = model)]
async fn by_model(model: String, calls: &AtomicU32) -> Result<String, ApiError> {
    answer(calls, 0).map(|_| model)
}

#[tokio::test(start_paused = true)]
async fn service_expression_is_evaluated_for_each_call() {
    let a = monitor()
        .add_service("macro-args-a", BucketRateLimiter::new(600))
        .unwrap();
    let b = monitor()
        .add_service("macro-args-b", BucketRateLimiter::new(600))
        .unwrap();
    let calls = AtomicU32::new(0);
    for model in ["macro-args-a", "macro-args-b", "macro-args-b"] {
        let m = Model {
            model: model.into(),
        };
        m.ask(&calls).await.unwrap();
    }
    assert_eq!(
        by_model("macro-args-a".into(), &calls).await.unwrap(),
        "macro-args-a"
    );
    assert_eq!((a.stats().issued, b.stats().issued), (2, 2));
}

// The only test of this binary on the default limiter, so its counters are ours alone.
/// A monitor of its own, not the global one.
static OWN: std::sync::LazyLock<Monitor> = std::sync::LazyLock::new(Monitor::new);

#[llmiter(monitor = OWN, service = "macro-args-own-monitor")]
async fn on_own_monitor(calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, 1)
}

#[llmiter(monitor = monitor)]
async fn on_given_monitor(monitor: &Monitor, calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, 0)
}

/// `monitor = expr` looks `service` (and the default limiter) up in that monitor: its
/// limiters count the calls, the global monitor's never see them.
#[tokio::test(start_paused = true)]
async fn monitor_chooses_where_the_limiter_is_looked_up() {
    let calls = AtomicU32::new(0);
    assert_eq!(on_own_monitor(&calls).await, Ok(2));
    let own = OWN.limiter("macro-args-own-monitor").stats();
    assert_eq!((own.issued, own.rate_limited), (2, 1));
    assert_eq!(
        monitor().limiter("macro-args-own-monitor").stats().issued,
        0,
        "not the global monitor's"
    );

    let given = Monitor::new();
    assert_eq!(on_given_monitor(&given, &calls).await, Ok(3));
    assert_eq!(given.default_limiter().stats().issued, 1);
}

#[llmiter]
async fn default_service(calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, 0)
}

#[tokio::test(start_paused = true)]
async fn no_service_uses_the_default_limiter() {
    let before = monitor().default_limiter().stats().issued;
    default_service(&AtomicU32::new(0)).await.unwrap();
    assert_eq!(monitor().default_limiter().stats().issued, before + 1);
}

// ---- max_retries ---------------------------------------------------------------------

#[llmiter(limiter = limiter, max_retries = 2)]
async fn two_retries(limiter: &BucketRateLimiter, calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, u32::MAX)
}

/// Not `Clone`: fine with `max_retries = 0`, which runs the body once.
#[derive(Debug)]
struct Prompt(String);

#[llmiter(limiter = limiter, max_retries = 0)]
async fn no_retry(
    limiter: &BucketRateLimiter,
    prompt: Prompt,
    calls: &AtomicU32,
) -> Result<String, ApiError> {
    answer(calls, 1).map(|_| prompt.0)
}

#[tokio::test(start_paused = true)]
async fn max_retries_bounds_the_attempts() {
    let (l, calls) = (BucketRateLimiter::new(600), AtomicU32::new(0));
    let start = Instant::now();
    assert_eq!(two_retries(&l, &calls).await, Err(ApiError::RateLimited));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the first attempt and two retries"
    );
    assert_eq!(l.stats().rate_limited, 3);
    // Each retry waits out the 2 s the server asked for.
    assert!(
        start.elapsed() >= Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );

    let (l, calls) = (BucketRateLimiter::new(600), AtomicU32::new(0));
    assert_eq!(
        no_retry(&l, Prompt("p".into()), &calls).await,
        Err(ApiError::RateLimited)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        no_retry(&l, Prompt("p".into()), &calls).await,
        Ok("p".into())
    );
}

/// A constant, as much as a literal.
const RETRIES: u32 = 1;

#[llmiter(limiter = limiter, max_retries = RETRIES)]
async fn const_retries(limiter: &BucketRateLimiter, calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, u32::MAX)
}

#[llmiter(limiter = limiter, max_retries = retries + 1)]
async fn expr_retries(
    limiter: &BucketRateLimiter,
    retries: u32,
    calls: &AtomicU32,
) -> Result<u32, ApiError> {
    answer(calls, u32::MAX)
}

#[tokio::test(start_paused = true)]
async fn max_retries_takes_a_constant_or_an_expression() {
    let (l, calls) = (BucketRateLimiter::new(600), AtomicU32::new(0));
    assert_eq!(const_retries(&l, &calls).await, Err(ApiError::RateLimited));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the first attempt and RETRIES = 1"
    );

    let (l, calls) = (BucketRateLimiter::new(600), AtomicU32::new(0));
    assert_eq!(
        expr_retries(&l, 2, &calls).await,
        Err(ApiError::RateLimited)
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "the first attempt and 2 + 1 retries"
    );
}

// ---- request_id ----------------------------------------------------------------------

#[llmiter(limiter = limiter, request_id = format!("req-{n}"))]
async fn with_id(
    limiter: &BucketRateLimiter,
    n: u32,
    seen: &Mutex<Vec<String>>,
) -> Result<(), ApiError> {
    let id = current().request_id().map(str::to_owned);
    seen.lock().unwrap().push(id.unwrap_or_default());
    if seen.lock().unwrap().len() < 2 {
        Err(ApiError::RateLimited)
    } else {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn request_id_is_visible_inside_every_attempt() {
    let (l, seen) = (BucketRateLimiter::new(600), Mutex::new(Vec::new()));
    with_id(&l, 42, &seen).await.unwrap();
    assert_eq!(*seen.lock().unwrap(), ["req-42", "req-42"]);
    assert!(current().request_id().is_none(), "outside the call");
}

// ---- timeout -------------------------------------------------------------------------

#[llmiter(limiter = limiter, timeout = "5s")]
async fn impatient(limiter: &BucketRateLimiter, calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, 0)
}

#[llmiter(limiter = limiter, timeout = Duration::from_millis(1_500))]
async fn impatient_by(limiter: &BucketRateLimiter, calls: &AtomicU32) -> Result<u32, ApiError> {
    answer(calls, 0)
}

#[llmiter(limiter = limiter, timeout = patience)]
async fn impatient_for(
    limiter: &BucketRateLimiter,
    patience: Duration,
    calls: &AtomicU32,
) -> Result<u32, ApiError> {
    answer(calls, 0)
}

/// `timeout = <expr>` is a `Duration`: 1.5 s as written, and an argument's 3 s.
#[tokio::test(start_paused = true)]
async fn timeout_takes_a_duration_expression() {
    let (l, calls) = (BucketRateLimiter::new(600), AtomicU32::new(0));
    l.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(60)));
    let timed_out = |waited| Err(ApiError::Gave(AcquireError::Timeout { waited }));
    assert_eq!(
        impatient_by(&l, &calls).await,
        timed_out(Duration::from_millis(1_500))
    );
    assert_eq!(
        impatient_for(&l, Duration::from_secs(3), &calls).await,
        timed_out(Duration::from_secs(3))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the body never ran");
}

#[tokio::test(start_paused = true)]
async fn timeout_returns_the_converted_error_at_the_deadline() {
    let (l, calls) = (BucketRateLimiter::new(600), AtomicU32::new(0));
    // A rate limit asking for 60 s pauses the limiter.
    l.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(60)));
    let start = Instant::now();
    let out = impatient(&l, &calls).await;
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(
        out,
        Err(ApiError::Gave(AcquireError::Timeout {
            waited: Duration::from_secs(5)
        }))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the body never ran");
    assert_eq!(
        (l.stats().waiting, l.stats().cancelled),
        (0, 1),
        "it left the queue"
    );
}

// ---- priority ------------------------------------------------------------------------

#[llmiter(limiter = limiter, priority = high)]
async fn urgent(
    limiter: BucketRateLimiter,
    log: Arc<Mutex<Vec<&'static str>>>,
) -> Result<(), ApiError> {
    log.lock().unwrap().push("high");
    Ok(())
}

#[llmiter(limiter = limiter, priority = normal)]
async fn routine(
    limiter: BucketRateLimiter,
    log: Arc<Mutex<Vec<&'static str>>>,
    name: &'static str,
) -> Result<(), ApiError> {
    log.lock().unwrap().push(name);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn high_priority_overtakes_queued_normal_calls() {
    let l = BucketRateLimiter::new(60);
    let log = Arc::new(Mutex::new(Vec::new()));
    l.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(10))); // everyone queues
    let mut tasks = Vec::new();
    for name in ["n1", "n2", "n3"] {
        tasks.push(tokio::spawn(routine(l.clone(), log.clone(), name)));
    }
    tokio::task::yield_now().await; // the normal calls are queued first
    tasks.push(tokio::spawn(urgent(l.clone(), log.clone())));
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        ["high", "n1", "n2", "n3"],
        "high first, normal calls in order"
    );
}

// ---- tokens --------------------------------------------------------------------------

#[llmiter(limiter = limiter, tokens = estimate)]
async fn weighted(
    limiter: &BucketRateLimiter,
    estimate: u64,
    calls: &AtomicU32,
) -> Result<u32, ApiError> {
    answer(calls, 0)
}

#[tokio::test(start_paused = true)]
async fn tokens_are_charged_and_an_impossible_estimate_fails_at_once() {
    let l = BucketRateLimiter::builder()
        .rpm(600)
        .tpm(1_000)
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    assert_eq!(weighted(&l, 400, &calls).await, Ok(1));
    assert_eq!(l.stats().tokens_in_window, 400);
    let start = Instant::now();
    let out = weighted(&l, 2_000, &calls).await;
    assert_eq!(
        out,
        Err(ApiError::Gave(AcquireError::CostExceedsBudget {
            cost: 2_000,
            tpm: 1_000
        }))
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---- other attributes keep working ---------------------------------------------------

/// Documented, `must_use`, instrumented above and below, lint attributes kept.
#[must_use = "the answer matters"]
#[tracing::instrument(skip(limiter))]
#[llmiter(limiter = limiter)]
#[allow(clippy::needless_pass_by_value)]
#[tracing::instrument(level = "debug", skip_all)]
async fn decorated(limiter: &BucketRateLimiter, prompt: String) -> Result<usize, ApiError> {
    Ok(prompt.len())
}

#[cfg(any())]
#[llmiter]
async fn compiled_out() -> Result<(), ApiError> {
    compile_error!("a `#[cfg]`-ed out function is never expanded")
}

#[tokio::test(start_paused = true)]
async fn other_attributes_keep_working() {
    let l = BucketRateLimiter::new(600);
    assert_eq!(decorated(&l, "four".into()).await, Ok(4));
    assert_eq!(l.stats().finished, 1);
}
