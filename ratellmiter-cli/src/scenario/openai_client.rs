//! async-openai's client in the comparison: with its default retries
//! (`OpenAIRetryLayer`: exponential backoff on 429 and 5xx, honouring `retry-after`),
//! or with ratellmiter's tower layer as its HTTP service. Either way the client's HTTP
//! service ends in the scenario's [`Transport`], so the rows run in virtual time
//! against the pure model as over real HTTP, against the same provider as the others.

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use async_openai::middleware::retry::OpenAIRetryLayer;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs,
};
use ratellmiter_runtime::BucketRateLimiter;
use ratellmiter_runtime::tower::Layer;
use ratellmiter_sim::headers::{
    REMAINING_REQUESTS, REMAINING_TOKENS, RESET_REQUESTS, RESET_TOKENS, RETRY_AFTER,
    RETRY_AFTER_MS, format_duration,
};
use tower::ServiceBuilder;

use super::transport::{ApiError, Reply, Transport};

/// Which stack carries async-openai's requests.
#[derive(Clone)]
pub enum Stack {
    /// async-openai's own `OpenAIRetryLayer`, as its default client has it.
    OwnRetries,
    /// ratellmiter's layer with this limiter.
    Layer(BucketRateLimiter),
}

/// One chat completion for `model` asking about `tokens` tokens, through `stack`.
pub async fn call(
    stack: &Stack,
    transport: &Transport,
    model: &str,
    tokens: u64,
) -> Result<Reply, ApiError> {
    let inner = tower::service_fn({
        let transport = transport.clone();
        move |factory: HttpRequestFactory| {
            let transport = transport.clone();
            async move { answer(&transport, factory).await }
        }
    });
    let config = OpenAIConfig::new().with_api_base("http://transport.invalid/v1");
    let client = match stack {
        Stack::OwnRetries => Client::with_config(config).with_http_service(
            ServiceBuilder::new()
                .layer(OpenAIRetryLayer::default())
                .service(inner),
        ),
        Stack::Layer(limiter) => {
            let mut layer = Layer::new(limiter.clone()).settle_usage(true);
            if limiter.config().tpm.is_some() {
                layer = layer.tokens(move |_| tokens);
            }
            Client::with_config(config).with_http_service(layer.layer(inner))
        }
    };
    let request = CreateChatCompletionRequestArgs::default()
        .model(model)
        .messages([ChatCompletionRequestUserMessage::from("What is the capital of France?").into()])
        .max_tokens(u32::try_from(tokens).unwrap_or(u32::MAX))
        .build()
        .map_err(|e| ApiError::Other(e.to_string()))?;
    match client.chat().create(request).await {
        Ok(answer) => Ok(Reply {
            tokens: answer.usage.map_or(tokens, |u| u64::from(u.total_tokens)),
            requests_left: None,
            tokens_left: None,
        }),
        Err(OpenAIError::ApiError(e)) if matches!(e.status_code.as_u16(), 429 | 503 | 529) => {
            Err(ApiError::RateLimited {
                status: e.status_code.as_u16(),
                retry_after: None,
            })
        }
        Err(e) => Err(ApiError::Other(e.to_string())),
    }
}

/// The transport's answer to the request `factory` builds, as the HTTP response an
/// OpenAI-compatible server would give: status, rate-limit headers, JSON body.
async fn answer(
    transport: &Transport,
    factory: HttpRequestFactory,
) -> Result<reqwest::Response, OpenAIError> {
    let request = factory.build().await?;
    let body: serde_json::Value = request
        .body()
        .and_then(reqwest::Body::as_bytes)
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or_default();
    let model = body["model"].as_str().unwrap_or_default();
    let tokens = body["max_tokens"].as_u64().unwrap_or_default();
    let mut response = http::Response::builder().header("content-type", "application/json");
    let body = match transport.send(model, tokens).await {
        Ok(reply) => {
            let budget = [
                (REMAINING_REQUESTS, RESET_REQUESTS, reply.requests_left),
                (REMAINING_TOKENS, RESET_TOKENS, reply.tokens_left),
            ];
            for (remaining, reset, left) in budget {
                if let Some((n, at)) = left {
                    response = response
                        .header(remaining, n)
                        .header(reset, format_duration(at));
                }
            }
            serde_json::json!({
                "id": "chatcmpl-scenario", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Paris."}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 0, "completion_tokens": reply.tokens, "total_tokens": reply.tokens},
            })
        }
        Err(ApiError::RateLimited {
            status,
            retry_after,
        }) => {
            response = response.status(status);
            if let Some(wait) = retry_after {
                response = response
                    .header(RETRY_AFTER_MS, wait.as_millis().to_string())
                    .header(RETRY_AFTER, wait.as_secs_f64().ceil().to_string());
            }
            serde_json::json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})
        }
        Err(e @ (ApiError::Other(_) | ApiError::QuotaExhausted)) => {
            return Err(OpenAIError::InvalidArgument(e.to_string()));
        }
    };
    let response = response
        .body(body.to_string())
        .map_err(|e| OpenAIError::InvalidArgument(e.to_string()))?;
    Ok(reqwest::Response::from(response))
}
