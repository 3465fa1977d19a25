//! reqwest-middleware (feature `reqwest-middleware`): [`Middleware`] gives a
//! `reqwest_middleware::ClientWithMiddleware` the [tower layer](crate::tower)'s
//! behaviour — each request waits for its ticket, every response's rate-limit headers
//! feed the limiter, a refused request is re-sent from the front of the line, the
//! response body holds the ticket until it is read (settling the usage with
//! [`settle_usage`](crate::tower::Layer::settle_usage)).
//!
//! Beside reqwest-retry: ratellmiter owns rate limits (429, 529, 503 with
//! `retry-after`), so put it *inside* reqwest-retry (later in the chain, nearer the
//! network) and give reqwest-retry the transient failures only — connection errors,
//! 500/502/504 — or it retries the 429s too and its backoff stacks on the limiter's
//! pause. A request whose body is a stream cannot be cloned: it is sent once, and a
//! rate-limit refusal then fails with [`NotResent`](crate::tower::NotResent).
//!
//! ```no_run
//! # async fn ask() -> Result<(), Box<dyn std::error::Error>> {
//! use ratellmiter_runtime::{BucketRateLimiter, reqwest_middleware::Middleware, tower::Layer};
//!
//! let limiter = BucketRateLimiter::new(500);
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(reqwest_tracing::TracingMiddleware::default())
//!     .with(Middleware::from(Layer::new(limiter).settle_usage(true)))
//!     .build();
//! let answer = client
//!     .post("http://127.0.0.1:8080/v1/chat/completions")
//!     .body(r#"{"model": "gpt-4o-mini", "messages": []}"#)
//!     .send()
//!     .await?;
//! # Ok(()) }
//! ```

use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::Next;

use super::tower::{Policy, Step, uri, view};
use crate::limiter::BucketRateLimiter;
use crate::tower::Layer;

/// A reqwest-middleware [`Middleware`](reqwest_middleware::Middleware) pacing requests
/// as [`Layer`] does; built from one (`Middleware::from(layer)`) or from a limiter.
#[derive(Debug, Clone)]
pub struct Middleware {
    policy: Policy,
}

impl Middleware {
    /// Every request waits for a ticket of `limiter`: `Middleware::from(Layer::new(limiter))`.
    ///
    /// ```
    /// use ratellmiter_runtime::{BucketRateLimiter, reqwest_middleware::Middleware};
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(Middleware::new(BucketRateLimiter::new(500)))
    ///     .build();
    /// ```
    pub fn new(limiter: BucketRateLimiter) -> Self {
        Self::from(Layer::new(limiter))
    }
}

impl From<Layer> for Middleware {
    /// The layer's settings: its limiter choice, `max_retries`, token estimate and usage.
    fn from(layer: Layer) -> Self {
        Self {
            policy: layer.policy,
        }
    }
}

#[async_trait::async_trait]
impl reqwest_middleware::Middleware for Middleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let uri = uri(&request);
        let resend = match request.try_clone() {
            Some(_) => Ok(()),
            None => Err("is a stream, which cannot be cloned"),
        };
        let mut attempts = self.policy.attempts(&view(&request, &uri), resend);
        let mut once = Some(request);
        loop {
            let guard = attempts.ticket().await.map_err(boxed)?;
            let attempt = match &once {
                Some(r) => r.try_clone().or_else(|| once.take()),
                None => None,
            }
            .expect("a request is re-sent only when it can be cloned");
            let sent = next
                .clone()
                .run(attempt, extensions)
                .await
                .map_err(|e| Box::new(e) as crate::tower::BoxError);
            match attempts.judge(guard, sent).await.map_err(boxed)? {
                Step::Done(answer) => return Ok(answer),
                Step::Again => {}
            }
        }
    }
}

/// A boxed error as reqwest-middleware carries it, the inner service's own unboxed.
fn boxed(e: crate::tower::BoxError) -> reqwest_middleware::Error {
    match e.downcast::<reqwest_middleware::Error>() {
        Ok(e) => *e,
        Err(e) => reqwest_middleware::Error::Middleware(anyhow::Error::from_boxed(e)),
    }
}
