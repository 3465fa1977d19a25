//! A tower layer (feature `tower`) that paces any HTTP service: [`Layer`] wraps a
//! `Service<http::Request<B>>` answering `http::Response<_>` (a hyper or reqwest client,
//! async-openai's HTTP service, an axum router in tests).
//!
//! - **Ready at once, waiting inside the response future.** `poll_ready` never waits:
//!   each request waits for its ticket in its response future, so every clone of the
//!   service shares one budget and one queue (with priorities, and re-sends first),
//!   unlike a per-clone `poll_ready` limit.
//! - **A limiter per request**: a fixed [`BucketRateLimiter`], or a function of the
//!   request ([`Layer::per_request`]; [`Layer::by_model`] reads the JSON body's
//!   `model` and takes the monitor's service of that name).
//! - **Answers classified.** Every answer's rate-limit headers feed the limiter (it
//!   holds issuing when the provider says nothing is left, before a 429). A 429, 529,
//!   or 503 with `retry-after` pauses the limiter for the `retry-after` the server sent,
//!   and the request is re-sent **from the front of the line**, up to `max_retries`
//!   (then the last refusal is returned as the response). A refusal whose body names a
//!   spent quota (`insufficient_quota`, …) is returned at once without pausing.
//! - **The body is buffered to be re-sent**: one of known length up to
//!   [`max_body`](Layer::max_body) bytes. Any other is sent once, and if it is refused
//!   for a rate limit the call fails with [`NotResent`], which says why.
//! - **The ticket travels with the answer.** The response body ([`ResponseBody`]) holds
//!   the ticket until it is read to the end or dropped, so a streamed answer (SSE)
//!   counts as in flight while it streams. With [`settle_usage`](Layer::settle_usage)
//!   the `usage` the answer reports (a JSON body, OpenAI's final stream chunk,
//!   Anthropic's `message_delta`) replaces the call's token estimate.
//! - **Errors are boxed** ([`BoxError`]): the inner service's, a request body that
//!   could not be read, an [`AcquireError`](crate::AcquireError), [`NotResent`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use ratellmiter_runtime::BucketRateLimiter;
//! use ratellmiter_runtime::tower::Layer;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // A provider that refuses the first request with `retry-after: 2`, then answers.
//! let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
//! let provider = service_fn(move |_req: Request<Full<bytes::Bytes>>| {
//!     let n = calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     async move {
//!         let response = match n {
//!             0 => Response::builder().status(StatusCode::TOO_MANY_REQUESTS).header("retry-after", "2"),
//!             _ => Response::builder().status(StatusCode::OK),
//!         };
//!         Ok::<_, std::convert::Infallible>(response.body(Full::from(r#"{"usage": {"total_tokens": 42}}"#)).unwrap())
//!     }
//! });
//! let limiter = BucketRateLimiter::builder().rpm(600).tpm(100_000).build().unwrap();
//! let client = ServiceBuilder::new()
//!     .layer(Layer::new(limiter.clone()).settle_usage(true))
//!     .service(provider);
//!
//! let start = tokio::time::Instant::now();
//! let response = client.oneshot(Request::new(Full::from("{}"))).await.unwrap();
//! assert_eq!(response.status(), 200, "re-sent after the 429");
//! assert_eq!(start.elapsed().as_secs(), 2, "after the server's retry-after");
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], br#"{"usage": {"total_tokens": 42}}"#);
//! let s = limiter.stats();
//! assert_eq!((s.rate_limited, s.in_flight, s.tokens_in_window), (1, 0, 42));
//! # }
//! ```

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::classify::{Verdict, is_answer, refusal};
use super::stream::Settle;
use crate::headers::RateLimitHeaders;
use crate::limiter::{Acquire, BucketRateLimiter};
use crate::monitor::{DEFAULT_SERVICE, monitor};
use crate::pacer::{Priority, Request};
use crate::run::InFlight;

/// The error type at the layer's boundary, as tower's own layers use it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest request body buffered for a re-send by default: 16 MiB.
pub const DEFAULT_MAX_BODY: usize = 16 << 20;

type ChooseFn = dyn Fn(&RequestView<'_>) -> BucketRateLimiter + Send + Sync;
type Estimator = dyn Fn(&RequestView<'_>) -> u64 + Send + Sync;

/// A tower layer pacing HTTP requests through a [`BucketRateLimiter`]: see the
/// [module docs](self). Cheap to clone; every service it makes shares the limiters.
#[derive(Clone)]
#[must_use = "a layer does nothing until it wraps a service"]
pub struct Layer {
    pub(crate) policy: Policy,
}

/// The service [`Layer`] makes around `S`.
#[derive(Clone)]
pub struct Service<S> {
    pub(crate) inner: S,
    pub(crate) policy: Policy,
}

/// What the layer decides with: which limiter, how many re-sends, what to settle.
#[derive(Clone)]
pub(crate) struct Policy {
    choose: Choose,
    tokens: Option<Arc<Estimator>>,
    max_retries: Option<u32>,
    settle_usage: bool,
    max_body: usize,
}

#[derive(Clone)]
enum Choose {
    Fixed(BucketRateLimiter),
    PerRequest(Arc<ChooseFn>),
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limiter = match &self.choose {
            Choose::Fixed(l) => l.name().to_owned(),
            Choose::PerRequest(_) => "per request".to_owned(),
        };
        f.debug_struct("Policy")
            .field("limiter", &limiter)
            .field("max_retries", &self.max_retries)
            .field("settle_usage", &self.settle_usage)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

impl Layer {
    /// Every request waits for a ticket of `limiter` (a clone shares its budget).
    pub fn new(limiter: BucketRateLimiter) -> Self {
        Self::with(Choose::Fixed(limiter))
    }

    /// Each request waits for a ticket of the limiter `choose` picks for it (by its
    /// path, a header, its body, …).
    ///
    /// ```
    /// use ratellmiter_runtime::{monitor, tower::Layer};
    /// // One limiter per endpoint, from the monitor's services.
    /// let layer = Layer::per_request(|req| monitor().limiter(req.path()));
    /// ```
    pub fn per_request(
        choose: impl Fn(&RequestView<'_>) -> BucketRateLimiter + Send + Sync + 'static,
    ) -> Self {
        Self::with(Choose::PerRequest(Arc::new(choose)))
    }

    /// Each request waits for a ticket of the monitor's service named by the `model`
    /// field of its JSON body (the default service when it has none), so
    /// `monitor().add_service("gpt-4o", …)` paces every `gpt-4o` request.
    ///
    /// ```
    /// use ratellmiter_runtime::{BucketRateLimiter, monitor, tower::Layer};
    /// monitor().add_service("gpt-4o", BucketRateLimiter::new(500));
    /// monitor().add_service("gpt-4o-mini", BucketRateLimiter::new(5_000));
    /// // `{"model": "gpt-4o-mini", …}` waits on the second, `{"model": "gpt-4o", …}` on the first.
    /// let layer = Layer::by_model().settle_usage(true);
    /// ```
    pub fn by_model() -> Self {
        Self::per_request(|req| {
            monitor().limiter(req.model().as_deref().unwrap_or(DEFAULT_SERVICE))
        })
    }

    fn with(choose: Choose) -> Self {
        Self {
            policy: Policy {
                choose,
                tokens: None,
                max_retries: None,
                settle_usage: false,
                max_body: DEFAULT_MAX_BODY,
            },
        }
    }

    /// Re-sends after a rate limit before the refusal is returned (default: the
    /// limiter's `max_retries`, 20).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.policy.max_retries = Some(n);
        self
    }

    /// Charges each request `estimate(request)` tokens to the token budget while it
    /// waits for its ticket.
    pub fn tokens(
        mut self,
        estimate: impl Fn(&RequestView<'_>) -> u64 + Send + Sync + 'static,
    ) -> Self {
        self.policy.tokens = Some(Arc::new(estimate));
        self
    }

    /// Reads the `usage` the answer reports (OpenAI's and Anthropic's JSON, and their
    /// streams' final usage) and settles the token budget with it, replacing the
    /// estimate (default off: the body then passes through unread).
    pub fn settle_usage(mut self, on: bool) -> Self {
        self.policy.settle_usage = on;
        self
    }

    /// The largest request body buffered so it can be re-sent (default
    /// [`DEFAULT_MAX_BODY`]); a larger one, or one of unknown length, is sent once.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.policy.max_body = bytes;
        self
    }
}

impl Layer {
    /// Wraps `inner` (as `tower::Layer::layer` does, without importing the trait).
    pub fn layer<S>(&self, inner: S) -> Service<S> {
        Service {
            inner,
            policy: self.policy.clone(),
        }
    }
}

impl<S> tower_layer::Layer<S> for Layer {
    type Service = Service<S>;

    fn layer(&self, inner: S) -> Service<S> {
        Layer::layer(self, inner)
    }
}

/// What the limiter's chooser and token estimate see of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: Option<&'a [u8]>,
}

impl<'a> RequestView<'a> {
    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The URI's path, e.g. `/v1/chat/completions`.
    pub fn path(&self) -> &'a str {
        self.uri.path()
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request body, when it was buffered.
    pub fn body(&self) -> Option<&'a [u8]> {
        self.body
    }

    /// The `model` field of a JSON body, as OpenAI's and Anthropic's APIs carry it.
    pub fn model(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Model {
            model: String,
        }
        serde_json::from_slice::<Model>(self.body?)
            .ok()
            .map(|m| m.model)
    }
}

/// A request refused for a rate limit that could not be re-sent: its body could not
/// be buffered.
#[derive(Debug, Clone)]
pub struct NotResent {
    status: StatusCode,
    why: &'static str,
}

impl NotResent {
    /// The refusal's status (429, 529 or 503).
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for NotResent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rate limited (HTTP {}) and not re-sent: the request body {}",
            self.status, self.why
        )
    }
}

impl std::error::Error for NotResent {}

impl Policy {
    /// The attempts of one request described by `view`; `resend` says why it cannot be
    /// re-sent, if it cannot.
    pub(crate) fn attempts(
        &self,
        view: &RequestView<'_>,
        resend: Result<(), &'static str>,
    ) -> Attempts {
        let limiter = match &self.choose {
            Choose::Fixed(l) => l.clone(),
            Choose::PerRequest(choose) => choose(view),
        };
        Attempts {
            cost: self.tokens.as_ref().map_or(0, |estimate| estimate(view)),
            max_retries: self
                .max_retries
                .unwrap_or_else(|| limiter.config().max_retries),
            limiter,
            settle_usage: self.settle_usage,
            resend,
            attempt: 0,
        }
    }
}

/// One request's way through the limiter, attempt by attempt: the loop every client
/// adapter runs is `ticket`, send, `judge`.
pub(crate) struct Attempts {
    limiter: BucketRateLimiter,
    cost: u64,
    max_retries: u32,
    settle_usage: bool,
    resend: Result<(), &'static str>,
    attempt: u32,
}

/// What to do after an attempt.
pub(crate) enum Step<H> {
    /// Return this answer.
    Done(H),
    /// Send the request again (its ticket is being waited for at the front).
    Again,
}

impl Attempts {
    /// Waits for the next attempt's ticket (a re-send waits at the front of the line).
    pub(crate) async fn ticket(&self) -> Result<InFlight, BoxError> {
        let request = Request {
            retry: self.attempt > 0,
            priority: Priority::Normal,
            cost: crate::pacer::Cost::tokens(self.cost),
            deadline: None,
        };
        let ticket = Acquire::new(&self.limiter, request, None).await?;
        Ok(InFlight(Some(ticket)))
    }

    /// Settles the attempt's ticket by its answer and decides what comes next.
    pub(crate) async fn judge<A: Answer>(
        &mut self,
        mut guard: InFlight,
        sent: Result<A, BoxError>,
    ) -> Result<Step<A::Held>, BoxError> {
        let answer = match sent {
            Ok(a) => a,
            Err(e) => {
                if let Some(t) = guard.0.take() {
                    t.failed();
                }
                return Err(e);
            }
        };
        let headers = RateLimitHeaders::from_header_map(answer.headers());
        let status = answer.status();
        let ticket = guard.0.take().expect("ticket held");
        ticket.observe_headers(&headers);
        if is_answer(status.as_u16(), &headers) {
            return Ok(Step::Done(
                answer.hold(Settle::new(Some(ticket), self.settle_usage)),
            ));
        }
        // A refusal: its body tells a rate limit from a spent quota. Until the body is
        // read, the guard gives the ticket back unknown if this future is dropped.
        guard.0 = Some(ticket);
        let (held, body) = answer.buffered().await?;
        let ticket = guard.0.take().expect("ticket held");
        match refusal(status.as_u16(), &headers, &body).0 {
            Verdict::Answer => unreachable!("a status that is no answer is a refusal"),
            Verdict::QuotaSpent => {
                tracing::info!(service = self.limiter.name(), %status, "quota spent: not re-sent");
                ticket.failed();
                Ok(Step::Done(held))
            }
            Verdict::RateLimited { retry_after } => {
                ticket.rate_limited(retry_after);
                if let Err(why) = self.resend {
                    return Err(NotResent { status, why }.into());
                }
                if self.attempt >= self.max_retries {
                    tracing::warn!(
                        service = self.limiter.name(),
                        retries = self.max_retries,
                        "retries exhausted: returning the refusal"
                    );
                    self.limiter.note_retry_exhausted();
                    return Ok(Step::Done(held));
                }
                self.attempt += 1;
                Ok(Step::Again)
            }
        }
    }
}

/// An HTTP answer in some client's type: what the limiter reads of it, and how its body
/// comes to hold the ticket.
pub(crate) trait Answer: Sized + Send {
    /// The answer as returned to the caller, its body holding the ticket.
    type Held;
    fn status(&self) -> StatusCode;
    fn headers(&self) -> &HeaderMap;
    /// The answer, its body holding `settle` until read to the end or dropped.
    fn hold(self, settle: Settle) -> Self::Held;
    /// The answer with its body read (a refusal's, to classify): the answer to return,
    /// and the bytes.
    fn buffered(self) -> impl Future<Output = Result<(Self::Held, Bytes), BoxError>> + Send;
}

impl<B> Answer for http::Response<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Held = http::Response<ResponseBody<B>>;

    fn status(&self) -> StatusCode {
        self.status()
    }

    fn headers(&self) -> &HeaderMap {
        self.headers()
    }

    fn hold(self, settle: Settle) -> Self::Held {
        self.map(|body| ResponseBody::holding(body, settle))
    }

    async fn buffered(self) -> Result<(Self::Held, Bytes), BoxError> {
        let (parts, body) = self.into_parts();
        let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
        Ok((
            http::Response::from_parts(parts, ResponseBody::full(bytes.clone())),
            bytes,
        ))
    }
}

/// Waits until `service` is ready.
pub(crate) async fn ready<S: tower_service::Service<R>, R>(
    service: &mut S,
) -> Result<(), S::Error> {
    poll_fn(|cx| service.poll_ready(cx)).await
}

impl<S, B, RB> tower_service::Service<http::Request<B>> for Service<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + From<Bytes> + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = http::Response<ResponseBody<RB>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    /// Ready at once: the wait for a ticket happens in the response future.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (mut inner, policy) = (self.inner.clone(), self.policy.clone());
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let fits = body
                .size_hint()
                .upper()
                .is_some_and(|n| n <= policy.max_body as u64);
            // The body to re-send, or the body to send once and why it cannot be re-sent.
            let (buffered, mut once) = if fits {
                let bytes = body.collect().await.map_err(Into::into)?.to_bytes();
                (Some(bytes), None)
            } else {
                (None, Some(body))
            };
            let resend = match buffered {
                Some(_) => Ok(()),
                None => Err("has no known length within `max_body`, so it was not buffered"),
            };
            let view = RequestView {
                method: &parts.method,
                uri: &parts.uri,
                headers: &parts.headers,
                body: buffered.as_deref(),
            };
            let mut attempts = policy.attempts(&view, resend);
            loop {
                let guard = attempts.ticket().await?;
                let body = match (&buffered, once.take()) {
                    (Some(bytes), _) => B::from(bytes.clone()),
                    (None, Some(body)) => body,
                    (None, None) => unreachable!("a body sent once is never re-sent"),
                };
                let request = http::Request::from_parts(parts.clone(), body);
                let sent = match ready(&mut inner).await.map_err(Into::into) {
                    Ok(()) => inner.call(request).await.map_err(Into::into),
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

pin_project_lite::pin_project! {
    /// The body of an answer through the [`Layer`]: the inner body as it was, holding
    /// the call's ticket until it is read to the end or dropped (and reading the usage
    /// it reports, with [`settle_usage`](Layer::settle_usage)); or, for a refusal
    /// returned as the answer, the bytes already read.
    pub struct ResponseBody<B> {
        #[pin]
        inner: Option<B>,
        read: Option<Bytes>,
        settle: Option<Settle>,
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field(
                "holds_ticket",
                &self.settle.as_ref().is_some_and(Settle::holds_ticket),
            )
            .finish_non_exhaustive()
    }
}

impl<B> ResponseBody<B> {
    fn holding(body: B, settle: Settle) -> Self {
        Self {
            inner: Some(body),
            read: None,
            settle: Some(settle),
        }
    }

    fn full(bytes: Bytes) -> Self {
        Self {
            inner: None,
            read: Some(bytes),
            settle: None,
        }
    }
}

impl<B: Body<Data = Bytes>> Body for ResponseBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let Some(inner) = this.inner.as_pin_mut() else {
            return Poll::Ready(this.read.take().map(|b| Ok(Frame::data(b))));
        };
        let frame = std::task::ready!(inner.poll_frame(cx));
        if let Some(s) = this.settle {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        s.feed(data);
                    }
                }
                Some(Err(_)) => s.failed(),
                None => s.finish(),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(b) => b.is_end_stream(),
            None => self.read.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.inner, &self.read) {
            (Some(b), _) => b.size_hint(),
            (None, Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            (None, None) => SizeHint::with_exact(0),
        }
    }
}

#[cfg(any(feature = "async-openai", feature = "reqwest-middleware"))]
mod reqwest_answer {
    //! reqwest's types through the layer's engine, for async-openai's HTTP service and
    //! the reqwest middleware.

    use bytes::Bytes;
    use http::{HeaderMap, StatusCode, Uri};
    use http_body_util::BodyExt;
    use reqwest::ResponseBuilderExt;

    use super::{Answer, BoxError, RequestView, ResponseBody, Settle};

    impl Answer for reqwest::Response {
        type Held = reqwest::Response;

        fn status(&self) -> StatusCode {
            self.status()
        }

        fn headers(&self) -> &HeaderMap {
            self.headers()
        }

        fn hold(self, settle: Settle) -> reqwest::Response {
            let url = self.url().clone();
            let (parts, body) = http::Response::<reqwest::Body>::from(self).into_parts();
            rebuild(
                url,
                parts,
                reqwest::Body::wrap(ResponseBody::holding(body, settle)),
            )
        }

        async fn buffered(self) -> Result<(reqwest::Response, Bytes), BoxError> {
            let url = self.url().clone();
            let (parts, body) = http::Response::<reqwest::Body>::from(self).into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok((
                rebuild(url, parts, reqwest::Body::from(bytes.clone())),
                bytes,
            ))
        }
    }

    /// A reqwest response from its parts, keeping its URL.
    fn rebuild(
        url: reqwest::Url,
        parts: http::response::Parts,
        body: reqwest::Body,
    ) -> reqwest::Response {
        let mut builder = http::Response::builder();
        if let Some(h) = builder.headers_mut() {
            *h = parts.headers;
        }
        if let Some(e) = builder.extensions_mut() {
            *e = parts.extensions;
        }
        let response = builder
            .status(parts.status)
            .version(parts.version)
            .url(url)
            .body(body)
            .expect("the parts of a valid response");
        reqwest::Response::from(response)
    }

    /// A reqwest request's URI, for its [`RequestView`].
    pub(crate) fn uri(request: &reqwest::Request) -> Uri {
        // A parsed `Url` is always a valid URI.
        request.url().as_str().parse().unwrap_or_default()
    }

    /// What the chooser sees of `request`, its URI parsed by [`uri`].
    pub(crate) fn view<'a>(request: &'a reqwest::Request, uri: &'a Uri) -> RequestView<'a> {
        RequestView {
            method: request.method(),
            uri,
            headers: request.headers(),
            body: request.body().and_then(reqwest::Body::as_bytes),
        }
    }
}

#[cfg(any(feature = "async-openai", feature = "reqwest-middleware"))]
pub(crate) use reqwest_answer::{uri, view};
