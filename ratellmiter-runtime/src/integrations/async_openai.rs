//! async-openai (feature `async-openai`): [`IsRateLimit`] for
//! [`OpenAIError`](::async_openai::error::OpenAIError).
//!
//! and the [tower layer](crate::tower) as the client's HTTP service.
//!
//! **Through the layer** (recommended), the limiter sees every response: its status,
//! its rate-limit headers (`retry-after` included, which async-openai's errors drop),
//! and a refused request is re-sent from the front of the line before async-openai
//! ever sees the refusal — one line:
//!
//! ```no_run
//! use async_openai::{Client, config::OpenAIConfig, middleware::ReqwestService};
//! use ratellmiter_runtime::{BucketRateLimiter, tower::Layer};
//!
//! let config = OpenAIConfig::new().with_api_base("http://127.0.0.1:8080/v1");
//! let limiter = BucketRateLimiter::new(500);
//! let client = Client::with_config(config)
//!     .with_http_service(Layer::new(limiter).layer(ReqwestService::new(Default::default())));
//! // client.chat().create(request).await: paced, re-sent after a 429, headers observed.
//! ```
//!
//! (`Layer::by_model()` picks the monitor's service named by each request's `model`.)
//!
//! **Around the call** (the older way, still supported): `limiter.run(|| client.chat()…)`
//! classifies the `OpenAIError`. An API error is a rate limit for status 429 (and
//! Anthropic-style 529); its code or type `insufficient_quota` (any of the
//! [final codes](crate::headers::FINAL_ERROR_CODES)) makes it final, returned at once.
//! async-openai keeps no response headers in its errors, so `retry_after` is then
//! always `None` and the limiter waits its probe interval.
//!
//! Either way, leave out async-openai's default HTTP service: it retries 429s and 5xx
//! itself (three times, with backoff), hiding them from the limiter and stacking its
//! waits on the limiter's. Build the client on a plain
//! [`ReqwestService`](::async_openai::middleware::ReqwestService):
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

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::async_openai::error::OpenAIError;
use ::async_openai::middleware::HttpRequestFactory;

use super::tower::{Step, ready, uri, view};
use crate::headers::{classify, is_final_code};
use crate::rate_limit::{IsRateLimit, RateLimit};
use crate::tower::{BoxError, Service};

/// The layer as async-openai's HTTP service (`Client::with_http_service`): every
/// request async-openai builds waits for its ticket, and a refused one is rebuilt from
/// its factory and re-sent from the front of the line.
impl<S> tower_service::Service<HttpRequestFactory> for Service<S>
where
    S: tower_service::Service<HttpRequestFactory, Response = ::reqwest::Response>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
{
    type Response = ::reqwest::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<::reqwest::Response, BoxError>> + Send>>;

    /// Ready at once: the wait for a ticket happens in the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let (mut inner, policy) = (self.inner.clone(), self.policy.clone());
        Box::pin(async move {
            // Built once to choose the limiter and estimate; each attempt rebuilds it.
            let request = factory.build().await?;
            let uri = uri(&request);
            let mut attempts = policy.attempts(&view(&request, &uri), Ok(()));
            loop {
                let guard = attempts.ticket().await?;
                let sent = match ready(&mut inner).await.map_err(Into::into) {
                    Ok(()) => inner.call(factory.clone()).await.map_err(Into::into),
                    Err(e) => Err(e),
                };
                match attempts.judge(guard, sent).await? {
                    Step::Done(answer) => return Ok(answer),
                    Step::Again => {}
                }
            }
        })
    }
}

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
