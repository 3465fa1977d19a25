//! Streamed answers keep their ticket until the stream ends or is dropped, and settle
//! the token budget with the usage the stream reports: through the tower layer (the
//! mock's routes in-process, in paused time: exact), and through `limiter.run` with
//! `Metered::from_current` over real HTTP.

use bytes::Bytes;
use futures_util::StreamExt;
use http::Request;
use http_body_util::BodyExt;
use ratellmiter_runtime::stream::Metered;
use ratellmiter_runtime::tower::Layer;
use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, RateLimit};
use ratellmiter_sim::{Provider, ProviderConfig, STREAM_EVENT_INTERVAL};
use serde_json::{Value, json};
use tower::ServiceExt;

/// "What is the capital of France?" is 30 characters: 8 prompt tokens; 10 completion.
const PROMPT: u64 = 8;
const COMPLETION: u64 = 10;
const ESTIMATE: u64 = 1_000;

fn limiter() -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(600)
        .tpm(100_000)
        .build()
        .unwrap()
}

fn body(stream_options: bool) -> Value {
    let mut body = json!({
        "model": "m",
        "max_tokens": COMPLETION,
        "stream": true,
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    });
    if stream_options {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn post(path: &str, body: &Value) -> Request<axum::body::Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap()
}

/// Reads the answer's body event by event, checking the ticket is held at each, and
/// returns the events' count.
async fn read_holding(
    body: &mut (impl http_body::Body<Data = Bytes, Error: std::fmt::Debug> + Unpin),
    limiter: &BucketRateLimiter,
) -> usize {
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        frame.unwrap();
        frames += 1;
        assert_eq!(limiter.stats().in_flight, 1, "held after frame {frames}");
    }
    frames
}

#[tokio::test(start_paused = true)]
async fn an_openai_stream_holds_its_ticket_to_the_last_chunk_and_settles_its_usage() {
    let mock = ratellmiter_sim::in_process(Provider::new(ProviderConfig::default()).unwrap());
    let limiter = limiter();
    let client = Layer::new(limiter.clone())
        .tokens(|_| ESTIMATE)
        .settle_usage(true)
        .layer(mock.router());
    let start = tokio::time::Instant::now();
    let response = client
        .oneshot(post("/v1/chat/completions", &body(true)))
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.into_body();
    // Role, five words, finish, usage, [DONE]: nine events, 10 ms apart.
    assert_eq!(read_holding(&mut body, &limiter).await, 9);
    assert_eq!(start.elapsed(), 8 * STREAM_EVENT_INTERVAL);
    let s = limiter.stats();
    assert_eq!((s.in_flight, s.finished), (0, 1));
    assert_eq!(
        s.tokens_in_window,
        PROMPT + COMPLETION,
        "the final chunk's usage, not the estimate"
    );
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_stream_settles_input_and_output_tokens() {
    let mock = ratellmiter_sim::in_process(Provider::new(ProviderConfig::default()).unwrap());
    let limiter = limiter();
    let client = Layer::new(limiter.clone())
        .tokens(|_| ESTIMATE)
        .settle_usage(true)
        .layer(mock.router());
    let response = client
        .oneshot(post("/v1/messages", &body(false)))
        .await
        .unwrap();
    let mut body = response.into_body();
    // message_start, block start, five deltas, block stop, message_delta, message_stop.
    assert_eq!(read_holding(&mut body, &limiter).await, 10);
    let s = limiter.stats();
    assert_eq!((s.in_flight, s.tokens_in_window), (0, PROMPT + COMPLETION));
}

/// Dropped after two events, the stream gives its ticket back at once; it settles with
/// what it saw: Anthropic's `message_start` said 8 input tokens and 1 output so far.
#[tokio::test(start_paused = true)]
async fn a_stream_dropped_after_two_chunks_gives_its_ticket_back_with_what_it_saw() {
    let mock = ratellmiter_sim::in_process(Provider::new(ProviderConfig::default()).unwrap());
    let limiter = limiter();
    let client = Layer::new(limiter.clone())
        .tokens(|_| ESTIMATE)
        .settle_usage(true)
        .layer(mock.router());
    let response = client
        .oneshot(post("/v1/messages", &body(false)))
        .await
        .unwrap();
    let mut body = response.into_body();
    for _ in 0..2 {
        body.frame().await.unwrap().unwrap();
    }
    assert_eq!(limiter.stats().in_flight, 1);
    drop(body);
    let s = limiter.stats();
    assert_eq!((s.in_flight, s.finished, s.rate_limited), (0, 1, 0));
    assert_eq!(s.tokens_in_window, PROMPT + 1);
}

#[derive(Debug)]
struct Failed(reqwest::Error);

impl IsRateLimit for Failed {
    fn rate_limit(&self) -> Option<RateLimit> {
        self.0.rate_limit()
    }
}

/// The closure form of `#[llmiter]` returns the stream: the call is over, its ticket
/// is not; the final usage chunk settles the budget. Real HTTP, real time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_returned_from_a_limited_call_keeps_the_call_s_ticket() {
    let server = ratellmiter_sim::spawn(
        Provider::new(ProviderConfig::default()).unwrap(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let (client, limiter) = (reqwest::Client::new(), limiter());
    let url = format!("{}/chat/completions", server.base_url());
    let stream = limiter
        .call()
        .tokens(ESTIMATE)
        .run(|| async {
            let response = client
                .post(&url)
                .json(&body(true))
                .send()
                .await
                .map_err(Failed)?;
            let response = response.error_for_status().map_err(Failed)?;
            Ok::<_, Failed>(Metered::from_current(response.bytes_stream()))
        })
        .await
        .unwrap();
    let mut stream = stream.unwrap();
    assert_eq!(
        limiter.stats().in_flight,
        1,
        "the call returned; the stream holds its ticket"
    );
    assert_eq!(limiter.stats().tokens_in_window, ESTIMATE);
    let mut text = Vec::new();
    while let Some(chunk) = stream.next().await {
        text.extend_from_slice(&chunk.unwrap());
    }
    assert!(String::from_utf8_lossy(&text).ends_with("data: [DONE]\n\n"));
    assert_eq!(stream.tokens_seen(), Some(PROMPT + COMPLETION));
    let s = limiter.stats();
    assert_eq!((s.in_flight, s.finished), (0, 1));
    assert_eq!(s.tokens_in_window, PROMPT + COMPLETION);
}

/// A call cancelled after its stream took the ticket over is settled once, by the
/// stream: another call's ticket still counts as in flight.
#[tokio::test(start_paused = true)]
async fn a_call_cancelled_after_its_stream_took_the_ticket_settles_it_once() {
    let limiter = limiter();
    let other = limiter.acquire().await.unwrap();
    let cancelled = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        limiter.run(|| async {
            let _stream = Metered::from_current(futures_util::stream::empty::<
                Result<Bytes, std::io::Error>,
            >());
            std::future::pending::<Result<(), std::io::Error>>().await
        }),
    )
    .await;
    assert!(cancelled.is_err(), "timed out");
    let s = limiter.stats();
    assert_eq!(
        (s.in_flight, s.finished),
        (1, 1),
        "only the other call is in flight"
    );
    drop(other);
    assert_eq!(limiter.stats().in_flight, 0);
}

/// Two calls cancelled while running; only the first handed its ticket to a stream.
/// Each guard learns about its own ticket only: the second comes back as abandoned
/// and nothing stays in flight (mutation testing, issue 19: a hand-over record keyed
/// the same for every ticket went unnoticed).
#[tokio::test(start_paused = true)]
async fn a_hand_over_to_a_stream_is_told_only_to_its_own_call() {
    let limiter = limiter();
    let streaming = tokio::spawn({
        let l = limiter.clone();
        async move {
            l.run(|| async {
                let _stream = Metered::from_current(futures_util::stream::empty::<
                    Result<Bytes, std::io::Error>,
                >());
                std::future::pending::<Result<(), std::io::Error>>().await
            })
            .await
        }
    });
    let plain = tokio::spawn({
        let l = limiter.clone();
        async move {
            l.run(std::future::pending::<Result<(), std::io::Error>>)
                .await
        }
    });
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(limiter.stats().in_flight, 2, "both calls run");
    plain.abort();
    assert!(plain.await.unwrap_err().is_cancelled());
    assert_eq!(
        limiter.stats().in_flight,
        1,
        "the plain call's ticket came back"
    );
    streaming.abort();
    assert!(streaming.await.unwrap_err().is_cancelled());
    let s = limiter.stats();
    assert_eq!((s.in_flight, s.finished), (0, 2), "{s:?}");
}
