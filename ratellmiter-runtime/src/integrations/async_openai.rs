//! async-openai (feature `async-openai`): [`IsRateLimit`] for
//! [`OpenAIError`](::async_openai::error::OpenAIError).
//!
//! An API error is a rate limit for status 429 (and Anthropic-style 529); its code or
//! type `insufficient_quota` (any of the [final codes](crate::headers::FINAL_ERROR_CODES))
//! makes it final, returned at once. async-openai keeps no response headers in its
//! errors, so `retry_after` is always `None` and the limiter waits its probe interval.
//!
//! async-openai's default client retries 429s and 5xx itself (three times, with
//! backoff), hiding them from the limiter and stacking its waits on the limiter's.
//! Build the client on a plain [`ReqwestService`](::async_openai::middleware::ReqwestService)
//! instead, so the limiter does the waiting:
//!
//! ```no_run
//! use async_openai::{Client, config::OpenAIConfig, middleware::ReqwestService};
//! use async_openai::types::chat::CreateChatCompletionRequestArgs;
//! use ratellmiter::BucketRateLimiter;
//!
//! # async fn ask() -> Result<(), Box<dyn std::error::Error>> {
//! let config = OpenAIConfig::new().with_api_base("http://127.0.0.1:8080/v1");
//! let client = Client::with_config(config).with_http_service(ReqwestService::new(Default::default()));
//! let limiter = BucketRateLimiter::new(500);
//! let request = CreateChatCompletionRequestArgs::default()
//!     .model("gpt-4o-mini")
//!     .messages([async_openai::types::chat::ChatCompletionRequestUserMessage::from("Hi").into()])
//!     .build()?;
//! let answer = limiter
//!     .run(|| async { client.chat().create(request.clone()).await })
//!     .await?;
//! # Ok(()) }
//! ```

use ::async_openai::error::OpenAIError;

use crate::headers::{classify, is_final_code};
use crate::rate_limit::{IsRateLimit, RateLimit};

/// `async_openai::error::OpenAIError` (feature `async-openai`): a rate limit for status
/// 429 (and 529), final for a [final code](crate::headers::FINAL_ERROR_CODES).
#[cfg_attr(docsrs, doc(cfg(feature = "async-openai")))]
impl IsRateLimit for OpenAIError {
    fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            OpenAIError::ApiError(e) => {
                let api = &e.api_error;
                let is_final = [&api.code, &api.r#type]
                    .into_iter()
                    .flatten()
                    .any(|c| is_final_code(c));
                classify(e.status_code.as_u16(), None, is_final)
            }
            OpenAIError::Reqwest(e) => classify(e.status()?.as_u16(), None, false),
            _ => None,
        }
    }
}
