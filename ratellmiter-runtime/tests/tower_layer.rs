//! Feature `tower`: the layer in front of the mock provider's own HTTP routes, served
//! in-process (no socket) so tokio's paused clock makes every figure exact. Between the
//! layer and the routes a recorder notes what was sent when and what came back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use ratellmiter_runtime::tower::{Layer, NotResent};
use ratellmiter_runtime::{BucketRateLimiter, monitor};
use ratellmiter_sim::{InProcess, Provider, ProviderConfig};
use serde_json::json;
use tokio::time::Instant;
use tower::{Service, ServiceExt, service_fn};

/// One request as the recorder saw it: which call, when, what status, what wait.
#[derive(Debug, Clone, Copy)]
struct Sent {
    call: u32,
    at: Duration,
    status: u16,
    retry_after_ms: Option<u64>,
}

type Log = Arc<Mutex<Vec<Sent>>>;

/// The mock's routes behind a recorder of every request that reaches them.
fn recorded(
    mock: &InProcess,
) -> (
    Log,
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<axum::body::Body>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static,
) {
    let (log, router, start) = (Log::default(), mock.router(), Instant::now());
    let service = service_fn({
        let log = log.clone();
        move |req: Request<Full<Bytes>>| {
            let (log, router) = (log.clone(), router.clone());
            async move {
                let call = req.headers()["x-call"].to_str().unwrap().parse().unwrap();
                let response = router.oneshot(req).await?;
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .map(|v| v.to_str().unwrap().parse().unwrap())
                };
                log.lock().unwrap().push(Sent {
                    call,
                    at: start.elapsed(),
                    status: response.status().as_u16(),
                    retry_after_ms: header("retry-after-ms"),
                });
                Ok(response)
            }
        }
    });
    (log, service)
}

fn chat(call: u32, model: &str) -> Request<Full<Bytes>> {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("x-call", call.to_string())
        .body(Full::from(body.to_string()))
        .unwrap()
}

/// Sends calls `0..n` for `model` at once through `client`, each on its own task,
/// reads every answer to its end, and returns their statuses in call order.
async fn send_all<S, B>(client: &S, n: u32, model: &'static str) -> Vec<StatusCode>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: std::fmt::Debug,
{
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let response = client.oneshot(chat(i, model)).await.unwrap();
                let status = response.status();
                response.into_body().collect().await.unwrap();
                status
            })
        })
        .collect();
    let mut statuses = Vec::with_capacity(calls.len());
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    statuses
}

/// Every request refused with 429 (no retry-after) for the first `length`.
fn outage(length: Duration) -> ProviderConfig {
    ProviderConfig {
        outages: vec![Duration::ZERO..length],
        ..Default::default()
    }
}

fn mock(config: ProviderConfig) -> InProcess {
    ratellmiter_sim::in_process(Provider::new(config).unwrap())
}

/// 300 calls at once, the limiter at 600 rpm, the provider allowing 300 rpm (5 in any
/// second) and saying `retry-after-ms` when it refuses. Every call is answered; after
/// each refusal nothing is sent until the wait the server named has passed, and then
/// the refused calls go before any call not yet sent.
#[tokio::test(start_paused = true)]
async fn a_burst_against_a_slower_provider_is_answered_in_full_refusals_first() {
    let mock = mock(ProviderConfig {
        rpm: 300,
        ..Default::default()
    });
    let (log, provider) = recorded(&mock);
    let limiter = BucketRateLimiter::new(600);
    let client = Layer::new(limiter.clone()).layer(provider);
    let start = Instant::now();
    for status in send_all(&client, 300, "gpt-4o-mini").await {
        assert_eq!(status, StatusCode::OK);
    }
    let elapsed = start.elapsed();
    let log = log.lock().unwrap().clone();
    let refused: Vec<Sent> = log.iter().copied().filter(|s| s.status == 429).collect();
    let s = limiter.stats();
    assert_eq!((s.finished, s.in_flight, s.waiting), (300, 0, 0));
    assert_eq!(s.rate_limited as usize, refused.len());
    assert_eq!(
        log.len(),
        300 + refused.len(),
        "each refusal re-sent once more"
    );
    assert_eq!(
        (refused.len(), elapsed.as_millis()),
        (REFUSED, ELAPSED_MS),
        "the run's exact figures in paused time"
    );
    for r in &refused {
        let wait = Duration::from_millis(r.retry_after_ms.expect("the mock says how long"));
        let next = log
            .iter()
            .find(|s| s.at > r.at)
            .expect("something follows a refusal");
        assert!(
            next.at >= r.at + wait,
            "sent {:?} after a refusal asking {wait:?}",
            next.at - r.at
        );
        assert!(
            next.at - r.at < Duration::from_secs(2),
            "the server's wait, not a 10 s probe"
        );
        // Refused calls before fresh ones: a call sent for the first time after this
        // refusal comes after the refused call's re-send.
        let resent = log
            .iter()
            .position(|s| s.call == r.call && s.at > r.at)
            .unwrap();
        let first_fresh = log
            .iter()
            .position(|s| s.at > r.at && !log.iter().any(|e| e.call == s.call && e.at <= r.at));
        assert!(
            first_fresh.is_none_or(|f| resent < f),
            "call {} re-sent after a fresh call",
            r.call
        );
    }
    let seen = mock.metrics();
    assert_eq!(seen.accepted, 300);
    assert!(seen.max_accepted_in_any_1s <= 5, "{seen:?}");
}

const REFUSED: usize = 17;
const ELAPSED_MS: u128 = 63_458;

fn axum_chat(body: axum::body::Body) -> Request<axum::body::Body> {
    Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

fn chat_json(model: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 10}).to_string()
}

/// `Layer::by_model()`: each request waits on the monitor's service named by its body's
/// `model`; a model without a service gets the default service.
#[tokio::test(start_paused = true)]
async fn by_model_picks_the_monitor_service_of_the_body_s_model() {
    let mock = mock(ProviderConfig::default());
    let gpt = monitor()
        .add_service("tower-gpt-4o", BucketRateLimiter::new(600))
        .unwrap();
    let mini = monitor()
        .add_service("tower-gpt-4o-mini", BucketRateLimiter::new(600))
        .unwrap();
    let client = Layer::by_model().layer(mock.router());
    for model in ["tower-gpt-4o", "tower-gpt-4o-mini", "tower-gpt-4o-mini"] {
        let body = axum::body::Body::from(chat_json(model));
        let response = client.clone().oneshot(axum_chat(body)).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!((gpt.stats().issued, mini.stats().issued), (1, 2));
}

/// A refusal for a spent quota comes back at once, without a pause or a re-send.
#[tokio::test(start_paused = true)]
async fn a_spent_quota_is_returned_at_once_without_pausing() {
    let mock = mock(ProviderConfig {
        quota_exhausted: true,
        ..Default::default()
    });
    let limiter = BucketRateLimiter::new(600);
    let client = Layer::new(limiter.clone()).layer(mock.router());
    let body = axum::body::Body::from(chat_json("m"));
    let response = client.oneshot(axum_chat(body)).await.unwrap();
    assert_eq!(response.status(), 429);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("insufficient_quota"),
        "the body is kept"
    );
    let s = limiter.stats();
    assert_eq!((s.rate_limited, s.paused, s.in_flight), (0, false, 0));
    assert_eq!(mock.metrics().requests, 1);
}

/// After `max_retries` re-sends the last refusal is the answer, with its body.
#[tokio::test(start_paused = true)]
async fn retries_exhausted_return_the_last_refusal() {
    let mock = mock(outage(Duration::from_secs(3_600)));
    let limiter = BucketRateLimiter::new(6_000);
    let client = Layer::new(limiter.clone())
        .max_retries(2)
        .layer(mock.router());
    let body = axum::body::Body::from(chat_json("m"));
    let response = client.oneshot(axum_chat(body)).await.unwrap();
    assert_eq!(response.status(), 429);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("overloaded"),
        "the refusal's body"
    );
    assert_eq!(
        limiter.stats().rate_limited,
        3,
        "the first refusal and two re-sends"
    );
    assert_eq!(mock.metrics().requests, 3);
}

/// A request body of unknown length is not buffered: sent once, and a rate-limit
/// refusal fails with `NotResent`, saying why.
#[tokio::test(start_paused = true)]
async fn a_streamed_request_body_is_sent_once_and_the_error_says_why() {
    let mock = mock(outage(Duration::from_secs(1)));
    let limiter = BucketRateLimiter::new(6_000);
    let client = Layer::new(limiter.clone()).layer(mock.router());
    let streamed = || {
        let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(chat_json("m"))]);
        axum::body::Body::from_stream(chunks)
    };
    let e = client
        .clone()
        .oneshot(axum_chat(streamed()))
        .await
        .unwrap_err();
    let e = e.downcast::<NotResent>().expect("a NotResent error");
    assert_eq!(e.status(), 429);
    assert!(
        e.to_string()
            .contains("not re-sent: the request body has no known length"),
        "{e}"
    );
    assert_eq!(
        (mock.metrics().requests, limiter.stats().rate_limited),
        (1, 1)
    );
    // After the outage the same stream goes through, sent once.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let ok = client.oneshot(axum_chat(streamed())).await.unwrap();
    assert_eq!(ok.status(), 200);
}

/// With `settle_usage`, a JSON answer's `usage` replaces the estimate in the budget.
#[tokio::test(start_paused = true)]
async fn the_usage_of_a_json_answer_settles_the_token_budget() {
    let mock = mock(ProviderConfig::default());
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .tpm(100_000)
        .build()
        .unwrap();
    let client = Layer::new(limiter.clone())
        .tokens(|_| 1_000)
        .settle_usage(true)
        .layer(mock.router());
    let body = axum::body::Body::from(chat_json("m"));
    let response = client.oneshot(axum_chat(body)).await.unwrap();
    assert_eq!(
        limiter.stats().tokens_in_window,
        1_000,
        "the estimate while the body is unread"
    );
    response.into_body().collect().await.unwrap();
    // "What is the capital of France?" is 30 characters: 8 prompt tokens, 10 completion.
    let s = limiter.stats();
    assert_eq!((s.tokens_in_window, s.in_flight), (18, 0));
}

/// The answers' headers reach the limiter before any 429: five requests a minute, the
/// limiter at 6 000 rpm; after the fifth answer says `remaining: 0`, the sixth waits
/// for the reset the headers named (when the first leaves the minute) and is accepted.
#[tokio::test(start_paused = true)]
async fn the_answers_headers_hold_the_limiter_before_a_429() {
    let mock = mock(ProviderConfig {
        rpm: 5,
        quantum: Duration::from_secs(60),
        ..Default::default()
    });
    let (log, provider) = recorded(&mock);
    let limiter = BucketRateLimiter::new(6_000);
    let client = Layer::new(limiter.clone()).layer(provider);
    for i in 0..6 {
        let response = client.clone().oneshot(chat(i, "m")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 6, "no refusal, no re-send");
    let ms = |ms| Duration::from_millis(ms);
    let times: Vec<Duration> = log.iter().map(|s| s.at).collect();
    // The slow start's first tickets (22/s, doubling), then the minute the headers named.
    assert_eq!(times, [ms(0), ms(46), ms(90), ms(133), ms(174), ms(60_000)]);
    assert_eq!(limiter.stats().rate_limited, 0);
}

/// A probe whose answer comes back through the layer resumes the limiter when its body
/// has been read: the calls behind it go out at once, not after a second probe. The
/// outage (no `retry-after`) covers the first 5 s; the probe goes at one probe interval.
#[tokio::test(start_paused = true)]
async fn a_probe_answered_through_the_layer_resumes_the_limiter() {
    let mock = mock(outage(Duration::from_secs(5)));
    let (log, provider) = recorded(&mock);
    let limiter = BucketRateLimiter::new(600);
    let client = Layer::new(limiter.clone()).layer(provider);
    for status in send_all(&client, 20, "gpt-4o-mini").await {
        assert_eq!(status, StatusCode::OK);
    }
    let log = log.lock().unwrap().clone();
    let probe = log
        .iter()
        .find(|s| s.status == 200)
        .expect("an accepted probe");
    let refused = log.iter().filter(|s| s.status == 429).count();
    assert_eq!(
        refused, 1,
        "one refusal pauses; the probe then gets through: {log:?}"
    );
    assert_eq!(
        probe.at,
        limiter.config().probe_initial,
        "the probe at one interval"
    );
    let next = log
        .iter()
        .find(|s| s.at > probe.at)
        .expect("calls after the probe");
    assert!(
        next.at - probe.at < Duration::from_secs(1),
        "the next call {:?} after the probe, not a second probe later",
        next.at - probe.at
    );
    let s = limiter.stats();
    assert!(!s.paused, "the probe's success resumed the limiter: {s:?}");
    assert_eq!(s.finished, 20);
    let gaps: Vec<Duration> = log.windows(2).skip(1).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] < g[0]),
        "the rate climbs after the resume: {gaps:?}"
    );
}

/// One refusal of a Gemini-style mock as the recorder read it from the body.
#[derive(Debug, Clone)]
struct GeminiSent {
    call: u32,
    at: Duration,
    status: u16,
    retry_delay: Option<Duration>,
    quota_id: Option<String>,
    has_retry_header: bool,
}

/// The mock's routes behind a recorder that reads each answer's Gemini error body
/// (`RetryInfo.retryDelay`, `QuotaFailure` quota id) and passes it on unchanged.
type GeminiLog = Arc<Mutex<Vec<GeminiSent>>>;

fn gemini_recorded(
    mock: &InProcess,
) -> (
    GeminiLog,
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static,
) {
    let (log, router, start) = (GeminiLog::default(), mock.router(), Instant::now());
    let service = service_fn({
        let log = log.clone();
        move |req: Request<Full<Bytes>>| {
            let (log, router) = (log.clone(), router.clone());
            async move {
                let call = req.headers()["x-call"].to_str().unwrap().parse().unwrap();
                let at = start.elapsed();
                let (parts, body) = router.oneshot(req).await?.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let details = json["error"]["details"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let retry_delay = details.iter().find_map(|d| {
                    let v = d["retryDelay"].as_str()?;
                    Some(Duration::from_secs_f64(
                        v.trim_end_matches('s').parse().ok()?,
                    ))
                });
                let quota_id = details
                    .iter()
                    .find_map(|d| d["violations"][0]["quotaId"].as_str().map(str::to_owned));
                log.lock().unwrap().push(GeminiSent {
                    call,
                    at,
                    status: parts.status.as_u16(),
                    retry_delay,
                    quota_id,
                    has_retry_header: parts.headers.contains_key("retry-after"),
                });
                Ok(Response::from_parts(parts, Full::from(bytes)))
            }
        }
    });
    (log, service)
}

/// A Gemini-style provider (60 rpm, 4 requests a day) refuses with no retry-after
/// header, only `RetryInfo.retryDelay` and a `QuotaFailure` in the body. Six calls at
/// once through a limiter told 600 rpm: after each per-minute refusal nothing is sent
/// before the body's retryDelay has passed, and the 4 the day allows are answered; the
/// other two get the per-day refusal, which the layer treats as final: it hands back
/// the 429 and never re-sends that call.
#[tokio::test(start_paused = true)]
async fn a_gemini_body_s_retry_delay_is_honoured_and_a_daily_quota_is_final() {
    let mock = mock(ProviderConfig {
        rpm: 60,
        rpd: Some(4),
        error_style: ratellmiter_sim::ErrorStyle::Gemini,
        ..Default::default()
    });
    let (log, provider) = gemini_recorded(&mock);
    let limiter = BucketRateLimiter::new(600);
    let client = Layer::new(limiter.clone()).layer(provider);
    let mut statuses: Vec<u16> = send_all(&client, 6, "gemini-flash")
        .await
        .iter()
        .map(StatusCode::as_u16)
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let log = log.lock().unwrap().clone();
    assert!(log.iter().all(|s| !s.has_retry_header), "{log:?}");
    let per_minute: Vec<&GeminiSent> = log
        .iter()
        .filter(|s| {
            s.status == 429
                && s.quota_id
                    .as_deref()
                    .is_some_and(|q| q.contains("PerMinute"))
        })
        .collect();
    assert!(
        !per_minute.is_empty(),
        "the burst meets the per-second limit: {log:?}"
    );
    for r in &per_minute {
        let wait = r.retry_delay.expect("a per-minute refusal says how long");
        let next = log.iter().find(|s| s.at > r.at).expect("a re-send follows");
        assert!(
            next.at >= r.at + wait,
            "sent {:?} after a refusal asking {wait:?}",
            next.at - r.at
        );
        assert!(
            next.at - r.at < wait + Duration::from_secs(1),
            "the body's wait, not a 10 s probe: {:?}",
            next.at - r.at
        );
    }
    let daily: Vec<&GeminiSent> = log
        .iter()
        .filter(|s| {
            s.quota_id.as_deref() == Some("GenerateRequestsPerDayPerProjectPerModel-FreeTier")
        })
        .collect();
    assert_eq!(daily.len(), 2, "{log:?}");
    for d in daily {
        assert!(
            !log.iter().any(|s| s.call == d.call && s.at > d.at),
            "call {} re-sent after a per-day refusal: {log:?}",
            d.call
        );
    }
}
