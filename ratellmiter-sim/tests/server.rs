//! The HTTP server over real sockets: statuses, headers, bodies and metrics as an
//! OpenAI client sees them. Latencies are zero except where a test is about them.

use std::time::Duration;

use ratellmiter_sim::{Latency, MockServer, Provider, ProviderConfig, RejectKind, server};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};

async fn start(provider: Provider) -> MockServer {
    server::spawn(provider, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind 127.0.0.1:0")
}

async fn start_with(config: ProviderConfig) -> MockServer {
    start(Provider::new(config).expect("valid config")).await
}

fn rpm(rpm: u32) -> ProviderConfig {
    ProviderConfig {
        rpm,
        ..Default::default()
    }
}

async fn chat(client: &Client, mock: &MockServer, body: Value) -> Response {
    client
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&body)
        .send()
        .await
        .expect("the mock answers")
}

fn hello(model: &str) -> Value {
    // 13 characters: 4 prompt tokens.
    json!({"model": model, "messages": [{"role": "user", "content": "Hello, world!"}], "max_tokens": 10})
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn a_completion_is_openai_shaped_with_usage_and_rate_limit_headers() {
    let mock = start_with(ProviderConfig {
        tpm: Some(10_000),
        ..rpm(600)
    })
    .await;
    let client = Client::new();
    let response = chat(&client, &mock, hello("gpt-4o")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("600"));
    assert_eq!(
        header(&response, "x-ratelimit-remaining-requests"),
        Some("599")
    );
    // The request just made leaves the sliding minute in 60 s.
    assert_eq!(
        header(&response, "x-ratelimit-reset-requests"),
        Some("1m0s")
    );
    assert_eq!(header(&response, "x-ratelimit-limit-tokens"), Some("10000"));
    assert_eq!(
        header(&response, "x-ratelimit-remaining-tokens"),
        Some("9986")
    );
    assert_eq!(header(&response, "x-ratelimit-reset-tokens"), Some("1m0s"));
    assert_eq!(header(&response, "retry-after"), None);

    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert!(body["choices"][0]["message"]["content"].is_string());
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 4, "completion_tokens": 10, "total_tokens": 14})
    );
    mock.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_count_content_parts_and_default_to_16_completion_tokens() {
    let mock = start_with(rpm(600)).await;
    let body = json!({"model": "m", "messages": [
        {"role": "system", "content": "12345678"},
        {"role": "user", "content": [{"type": "text", "text": "123"}, {"type": "image_url"}]},
        {"role": "assistant", "content": null},
    ]});
    let body: Value = chat(&Client::new(), &mock, body)
        .await
        .json()
        .await
        .unwrap();
    // 11 characters → 3 prompt tokens; no max_tokens → 16.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 16, "total_tokens": 19})
    );
    assert_eq!(mock.log()[0].tokens, 19);
}

// Paused time keeps the server clock still while real I/O runs, so the numbers are exact.
#[tokio::test(start_paused = true)]
async fn a_refusal_is_429_with_retry_after_and_openai_error_body() {
    // 60 rpm: one request per second.
    let mock = start_with(rpm(60)).await;
    let client = Client::new();
    assert_eq!(
        chat(&client, &mock, hello("m")).await.status(),
        StatusCode::OK
    );
    let response = chat(&client, &mock, hello("m")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    assert_eq!(header(&response, "retry-after-ms"), Some("1000"));
    assert_eq!(
        header(&response, "x-ratelimit-remaining-requests"),
        Some("59")
    );
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["type"], "requests");
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["param"], Value::Null);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("Rate limit reached for m on requests per min (RPM): Limit 60."),
        "{message}"
    );
    assert!(message.contains("Please try again in"), "{message}");
}

#[tokio::test]
async fn a_token_refusal_has_type_tokens() {
    // 6000 tpm allows 100 tokens a second: two 60-token requests are one too many.
    // "tiny" has 10 tpm: the 14-token hello can never fit, not even in a whole minute.
    let provider = Provider::new(ProviderConfig {
        tpm: Some(6000),
        ..rpm(600)
    })
    .and_then(|p| {
        p.with_model(
            "tiny",
            ProviderConfig {
                tpm: Some(10),
                ..rpm(600)
            },
        )
    })
    .unwrap();
    let mock = start(provider).await;
    let client = Client::new();
    let big = json!({"model": "m", "messages": [], "max_tokens": 60});
    assert_eq!(
        chat(&client, &mock, big.clone()).await.status(),
        StatusCode::OK
    );
    let response = chat(&client, &mock, big).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&response, "retry-after").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "tokens");

    let response = chat(&client, &mock, hello("tiny")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&response, "retry-after"),
        None,
        "waiting cannot help"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Request too large for tiny")
    );
}

#[tokio::test]
async fn insufficient_quota_is_final() {
    let mock = start_with(ProviderConfig {
        quota_exhausted: true,
        ..rpm(600)
    })
    .await;
    let response = chat(&Client::new(), &mock, hello("m")).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&response, "retry-after"), None);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota");
    assert_eq!(body["error"]["type"], "insufficient_quota");
}

#[tokio::test]
async fn an_outage_answers_its_status_without_retry_after() {
    let mock = start_with(ProviderConfig {
        outages: vec![Duration::ZERO..Duration::from_secs(3600)],
        outage_status: 529,
        ..rpm(600)
    })
    .await;
    let response = chat(&Client::new(), &mock, hello("m")).await;
    assert_eq!(response.status().as_u16(), 529);
    assert_eq!(header(&response, "retry-after"), None);
    assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("600"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert_eq!(mock.metrics().rejected_by_kind[&RejectKind::Outage], 1);
}

#[tokio::test]
async fn a_malformed_request_is_400_with_an_openai_error() {
    let mock = start_with(rpm(600)).await;
    let response = chat(&Client::new(), &mock, json!({"messages": []})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("model"));
    assert_eq!(
        mock.metrics().requests,
        0,
        "a malformed request is not counted"
    );
}

#[tokio::test(start_paused = true)]
async fn models_metrics_and_log_report_what_happened() {
    let provider = Provider::new(rpm(600))
        .and_then(|p| p.with_model("a", rpm(60)))
        .and_then(|p| p.with_model("b", rpm(120)))
        .unwrap();
    let mock = start(provider).await;
    let client = Client::new();
    let models: Value = client
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);

    // "a" allows 1 a second, "b" 2: five quick requests to each give 1 and 2 successes.
    let mut statuses = Vec::new();
    for model in ["a", "b"] {
        for _ in 0..5 {
            statuses.push(chat(&client, &mock, hello(model)).await.status().as_u16());
        }
    }
    assert_eq!(statuses, [200, 429, 429, 429, 429, 200, 200, 429, 429, 429]);

    let url = format!("http://{}/metrics", mock.addr());
    let metrics: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(metrics["requests"], 10);
    assert_eq!(metrics["accepted"], 3);
    assert_eq!(metrics["rejected_by_kind"]["requests"], 7);
    assert_eq!(metrics["max_accepted_in_any_1s"], 3);
    let log = mock.log();
    assert_eq!(log.len(), 10);
    assert_eq!((log[5].model.as_str(), log[5].status), ("b", 200));
    let url = format!("http://{}/log", mock.addr());
    let served: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(served.as_array().unwrap().len(), 10);
    assert_eq!(served[1]["rejection"], "requests");
    assert_eq!(mock.metrics(), ratellmiter_sim::Metrics::from_records(&log));
}

#[tokio::test]
async fn an_accepted_request_takes_its_latency() {
    let mock = start_with(ProviderConfig {
        latency: Latency::Fixed(Duration::from_millis(50)),
        ..rpm(600)
    })
    .await;
    let started = std::time::Instant::now();
    let response = chat(&Client::new(), &mock, hello("m")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

/// Under tokio's paused clock the server's clock is virtual: a 10 s latency and a 30 s
/// outage pass without real waiting.
#[tokio::test(start_paused = true)]
async fn the_server_clock_follows_paused_tokio_time() {
    let mock = start_with(ProviderConfig {
        outages: vec![Duration::ZERO..Duration::from_secs(30)],
        latency: Latency::Fixed(Duration::from_secs(10)),
        ..rpm(600)
    })
    .await;
    let client = Client::new();
    let real = std::time::Instant::now();
    assert_eq!(
        chat(&client, &mock, hello("m")).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        chat(&client, &mock, hello("m")).await.status(),
        StatusCode::OK
    );
    assert!(mock.elapsed() >= Duration::from_secs(40));
    assert!(real.elapsed() < Duration::from_secs(5));
    let log = mock.log();
    assert_eq!(log[0].rejection, Some(RejectKind::Outage));
    assert!(log[1].at >= Duration::from_secs(30));
    mock.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropping_the_server_stops_it() {
    let mock = start_with(rpm(600)).await;
    let url = format!("{}/models", mock.base_url());
    let client = Client::new();
    assert!(client.get(&url).send().await.is_ok());
    drop(mock);
    // Give the server task a moment to close its listener.
    let mut refused = false;
    for _ in 0..50 {
        if Client::new().get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the port still answers after drop");
}

/// The `data:` payloads of an SSE body, and the `event:` names.
fn sse(text: &str) -> (Vec<String>, Vec<String>) {
    let field = |prefix: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .collect::<Vec<_>>()
    };
    (field("data: "), field("event: "))
}

#[tokio::test]
async fn an_openai_stream_ends_with_its_usage_when_asked_then_done() {
    let (mock, client) = (start_with(rpm(600)).await, Client::new());
    let mut body = hello("m");
    body["stream"] = json!(true);
    let plain = chat(&client, &mock, body.clone()).await;
    assert_eq!(plain.headers()["content-type"], "text/event-stream");
    let (data, _) = sse(&plain.text().await.unwrap());
    assert_eq!(data.len(), 8, "role, five words, finish, [DONE]: {data:?}");
    assert!(
        data.iter().all(|d| !d.contains("\"total_tokens\"")),
        "no usage unless asked"
    );

    body["stream_options"] = json!({"include_usage": true});
    let (data, _) = sse(&chat(&client, &mock, body).await.text().await.unwrap());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 14);
    let text: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "This is a mock completion.");
}

#[tokio::test]
async fn anthropic_messages_answer_and_stream_in_anthropic_s_shape() {
    let (mock, client) = (start_with(rpm(600)).await, Client::new());
    let url = format!("{}/messages", mock.base_url());
    let answer: Value = client
        .post(&url)
        .json(&hello("claude"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["type"], "message");
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 4, "output_tokens": 10})
    );

    let mut body = hello("claude");
    body["stream"] = json!(true);
    let text = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (data, events) = sse(&text);
    assert_eq!(events.first().unwrap(), "message_start");
    assert_eq!(events.last().unwrap(), "message_stop");
    let start: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], 4);
    let delta: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(
        (
            delta["type"].as_str(),
            delta["usage"]["output_tokens"].as_u64()
        ),
        (Some("message_delta"), Some(10))
    );
}

/// `error_style: Anthropic`: the refusal is Anthropic's envelope with
/// `anthropic-ratelimit-*` headers (the reset an RFC 3339 time) and `retry-after`, and
/// no OpenAI header.
#[tokio::test]
async fn an_anthropic_style_refusal_has_its_envelope_and_headers() {
    let mock = start_with(ProviderConfig {
        error_style: ratellmiter_sim::ErrorStyle::Anthropic,
        ..rpm(1)
    })
    .await;
    let client = Client::new();
    assert_eq!(
        chat(&client, &mock, hello("claude")).await.status(),
        StatusCode::OK
    );
    let refused = chat(&client, &mock, hello("claude")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&refused, "anthropic-ratelimit-requests-limit"),
        Some("1")
    );
    assert_eq!(
        header(&refused, "anthropic-ratelimit-requests-remaining"),
        Some("0")
    );
    let reset = header(&refused, "anthropic-ratelimit-requests-reset").unwrap();
    assert!(
        reset.len() == 20 && reset.ends_with('Z') && reset.as_bytes()[10] == b'T',
        "{reset}"
    );
    assert!(header(&refused, "retry-after").is_some());
    assert_eq!(header(&refused, "x-ratelimit-limit-requests"), None);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

/// `error_style: Gemini`: a spent daily quota is `RESOURCE_EXHAUSTED` with no header,
/// a `QuotaFailure` naming the per-day quota and a `RetryInfo.retryDelay`.
#[tokio::test]
async fn a_gemini_style_refusal_says_everything_in_its_body() {
    let mock = start_with(ProviderConfig {
        rpd: Some(1),
        error_style: ratellmiter_sim::ErrorStyle::Gemini,
        ..rpm(600)
    })
    .await;
    let client = Client::new();
    assert_eq!(
        chat(&client, &mock, hello("gemini")).await.status(),
        StatusCode::OK
    );
    let refused = chat(&client, &mock, hello("gemini")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "retry-after"), None);
    assert_eq!(header(&refused, "x-ratelimit-limit-requests"), None);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], 429);
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(
        details[0]["@type"],
        "type.googleapis.com/google.rpc.QuotaFailure"
    );
    assert_eq!(
        details[0]["violations"][0]["quotaId"],
        "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    );
    assert_eq!(
        details[1]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    let delay = details[1]["retryDelay"].as_str().unwrap();
    // The day ends 24 h after the server started: about 86 400 s.
    let secs: f64 = delay.trim_end_matches('s').parse().unwrap();
    assert!((86_000.0..=86_400.0).contains(&secs), "{delay}");
}
