//! Streamed answers (feature `stream`): [`Metered`] keeps a call's ticket until the
//! stream ends or is dropped, and settles the token budget with the usage the stream
//! reported — OpenAI's final `usage` chunk (`stream_options.include_usage`), Anthropic's
//! `message_start` and `message_delta` usage, or the `usage` of a plain JSON answer.
//!
//! Under `#[llmiter]` (or [`BucketRateLimiter::run`](crate::BucketRateLimiter::run)),
//! return [`Metered::from_current`]: the call ends when the function returns, but its
//! ticket stays in flight with the stream. By hand, give it the ticket:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! use futures_util::StreamExt;
//! use ratellmiter_runtime::{BucketRateLimiter, stream::Metered};
//!
//! let limiter = BucketRateLimiter::builder().rpm(600).tpm(100_000).build().unwrap();
//! let ticket = limiter.acquire().tokens(1_000).await.unwrap(); // the estimate
//! // What an OpenAI stream with `include_usage` sends, chunk by chunk:
//! let chunks = [
//!     "data: {\"choices\":[{\"delta\":{\"content\":\"Paris\"}}]}\n\n",
//!     "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}\n\n",
//!     "data: [DONE]\n\n",
//! ];
//! let body = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>));
//! let mut stream = Metered::new(body, ticket);
//! while let Some(chunk) = stream.next().await {
//!     assert_eq!(limiter.stats().in_flight, 1, "the ticket is held while the stream runs");
//!     chunk.unwrap();
//! }
//! assert_eq!(stream.tokens_seen(), Some(12));
//! let s = limiter.stats();
//! assert_eq!((s.in_flight, s.tokens_in_window), (0, 12), "settled with the real usage");
//! # }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde_json::Value;

use crate::current::take_over;
use crate::limiter::Ticket;

/// The most of a plain (non-SSE) answer kept to read its `usage`; a longer answer
/// settles nothing and keeps the estimate.
const MAX_JSON: usize = 4 << 20;

pin_project_lite::pin_project! {
    /// A stream of byte chunks (an SSE or JSON answer) that holds its call's ticket until
    /// it ends or is dropped, then settles the token budget with the usage it saw
    /// (what it saw so far, when dropped early; the estimate stands when it saw none).
    /// An error item ends the call as failed. See the [module docs](self).
    #[must_use = "a stream does nothing unless polled; dropping it gives the ticket back"]
    pub struct Metered<S> {
        #[pin]
        inner: S,
        settle: Settle,
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Metered<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metered")
            .field("inner", &self.inner)
            .field("holds_ticket", &self.settle.holds_ticket())
            .field("tokens_seen", &self.tokens_seen())
            .finish()
    }
}

impl<S> Metered<S> {
    /// Wraps `inner`, holding `ticket` until it ends.
    pub fn new(inner: S, ticket: Ticket) -> Self {
        Self {
            inner,
            settle: Settle::new(Some(ticket), true),
        }
    }

    /// Wraps `inner`, taking over the ticket of the rate-limited call running on this
    /// task (`#[llmiter]`, `limiter.run`): the call returns, the ticket stays with the
    /// stream. Outside a call, in a task given the call's [`handle`](crate::Current::handle),
    /// or once a stream has taken the ticket, it holds none and passes `inner` through. Take it over once the answer is known to be accepted: a
    /// call that then returns a rate-limit error is not re-run.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
    /// use futures_util::StreamExt;
    /// use ratellmiter_runtime::{BucketRateLimiter, stream::Metered};
    ///
    /// let limiter = BucketRateLimiter::new(600);
    /// let answer: Result<_, std::io::Error> = limiter
    ///     .run(|| async {
    ///         let body = futures_util::stream::iter(["data: {}\n\n"].map(Ok::<_, std::io::Error>));
    ///         Ok(Metered::from_current(body))
    ///     })
    ///     .await;
    /// let mut stream = answer.unwrap();
    /// assert_eq!(limiter.stats().in_flight, 1, "the call returned; its stream holds the ticket");
    /// while stream.next().await.is_some() {}
    /// assert_eq!(limiter.stats().in_flight, 0);
    /// # }
    /// ```
    pub fn from_current(inner: S) -> Self {
        Self {
            inner,
            settle: Settle::new(take_over(), true),
        }
    }

    /// The tokens the stream reported so far, if it reported any.
    pub fn tokens_seen(&self) -> Option<u64> {
        self.settle.tokens()
    }
}

impl<S, B, E> Stream for Metered<S>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    type Item = Result<B, E>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = std::task::ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(chunk)) => this.settle.feed(chunk.as_ref()),
            Some(Err(_)) => this.settle.failed(),
            None => this.settle.finish(),
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A ticket held by an answer's body: fed the body's bytes, it settles the token budget
/// with the usage they reported when the body ends or is dropped (the call succeeded),
/// or on [`failed`](Self::failed).
pub(crate) struct Settle {
    ticket: Option<Ticket>,
    usage: Option<UsageScanner>,
}

impl Settle {
    /// Holds `ticket` (if any); reads the usage from the bytes fed when `scan_usage`.
    pub(crate) fn new(ticket: Option<Ticket>, scan_usage: bool) -> Self {
        Self {
            ticket,
            usage: scan_usage.then(UsageScanner::default),
        }
    }

    pub(crate) fn holds_ticket(&self) -> bool {
        self.ticket.is_some()
    }

    /// The answer ended: the call succeeded.
    pub(crate) fn finish(&mut self) {
        // The status said the call was accepted, so even a body dropped half-read is a
        // success, a probe's included (a dropped probe ticket counts as abandoned).
        // While panicking the ticket drops as abandoned.
        if let Some(ticket) = self.record()
            && !std::thread::panicking()
        {
            ticket.finish();
        }
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if let Some(u) = &mut self.usage {
            u.feed(chunk);
        }
    }

    pub(crate) fn tokens(&self) -> Option<u64> {
        self.usage.as_ref().and_then(UsageScanner::tokens)
    }

    /// The answer broke off with an error: the call failed.
    pub(crate) fn failed(&mut self) {
        if let Some(t) = self.record() {
            t.failed();
        }
    }

    /// Settles the budget with what was seen and gives the ticket back to the caller.
    fn record(&mut self) -> Option<Ticket> {
        let ticket = self.ticket.take()?;
        if let Some(usage) = self.usage.as_ref().and_then(|u| u.usage.settled()) {
            ticket.record_usage(usage);
        }
        Some(ticket)
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Reads the token usage out of an answer fed in chunks: server-sent events line by
/// line (each `data:` a JSON object), or one JSON document.
#[derive(Default)]
struct UsageScanner {
    /// Bytes of an unfinished line (SSE) or of the document so far (JSON).
    pending: Vec<u8>,
    format: Option<Format>,
    usage: Usage,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Sse,
    Json,
    /// A JSON answer longer than [`MAX_JSON`]: not read.
    TooLong,
}

/// Tokens reported so far; later reports replace earlier ones (Anthropic's output
/// count is cumulative).
#[derive(Default, Clone, Copy)]
struct Usage {
    input: Option<u64>,
    output: Option<u64>,
    total: Option<u64>,
    /// Input tokens read from the prompt cache, counted in `input` (OpenAI's
    /// `prompt_tokens_details.cached_tokens`).
    cached: Option<u64>,
    /// Anthropic's cache reads, which its `input_tokens` does not count.
    cache_reads: Option<u64>,
}

impl UsageScanner {
    fn feed(&mut self, chunk: &[u8]) {
        let format = match self.format {
            Some(f) => f,
            None => match chunk.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => *self.format.insert(Format::Json),
                Some(_) => *self.format.insert(Format::Sse),
                None => return,
            },
        };
        match format {
            Format::Json if self.pending.len() + chunk.len() > MAX_JSON => {
                self.format = Some(Format::TooLong);
                self.pending = Vec::new();
            }
            Format::Json => {
                self.pending.extend_from_slice(chunk);
                // Cheap enough: a JSON answer arrives in a few chunks; parse once whole.
                if let Ok(doc) = serde_json::from_slice::<Value>(&self.pending) {
                    self.usage.update(&doc);
                }
            }
            Format::Sse => {
                self.pending.extend_from_slice(chunk);
                let mut start = 0;
                while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
                    let line = &self.pending[start..start + end];
                    if let Some(data) = line.strip_prefix(b"data:")
                        && let Ok(event) = serde_json::from_slice::<Value>(data.trim_ascii())
                    {
                        self.usage.update(&event);
                    }
                    start += end + 1;
                }
                self.pending.drain(..start);
            }
            Format::TooLong => {}
        }
    }

    fn tokens(&self) -> Option<u64> {
        self.usage.tokens()
    }
}

impl Usage {
    /// Reads `usage` (OpenAI, Anthropic's answer and `message_delta`) or
    /// `message.usage` (Anthropic's `message_start`) of one JSON object.
    fn update(&mut self, doc: &Value) {
        let usage = match (&doc["usage"], &doc["message"]["usage"]) {
            (u @ Value::Object(_), _) | (_, u @ Value::Object(_)) => u,
            _ => return,
        };
        let count = |key: &str| usage[key].as_u64();
        if let Some(n) = count("total_tokens") {
            self.total = Some(n);
        }
        if let Some(n) = count("prompt_tokens").or_else(|| count("input_tokens")) {
            self.input = Some(n);
        }
        if let Some(n) = count("completion_tokens").or_else(|| count("output_tokens")) {
            self.output = Some(n);
        }
        if let Some(n) = usage["prompt_tokens_details"]["cached_tokens"].as_u64() {
            self.cached = Some(n);
        }
        if let Some(n) = count("cache_read_input_tokens") {
            self.cache_reads = Some(n);
        }
    }

    /// The usage to settle the ticket with, by kind when the answer gave the kinds.
    fn settled(&self) -> Option<crate::pacer::Usage> {
        if self.input.is_none() && self.output.is_none() {
            return self.total.map(crate::pacer::Usage::from);
        }
        let reads = self.cache_reads.unwrap_or(0);
        let input = self.input.unwrap_or(0).saturating_add(reads);
        Some(
            crate::pacer::Usage::new(input, self.output.unwrap_or(0))
                .cached_input(self.cached.unwrap_or(0).saturating_add(reads)),
        )
    }

    fn tokens(&self) -> Option<u64> {
        self.total.or(match (self.input, self.output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&str]) -> Option<u64> {
        let mut s = UsageScanner::default();
        for c in chunks {
            s.feed(c.as_bytes());
        }
        s.tokens()
    }

    fn settled(chunks: &[&str]) -> Option<crate::pacer::Usage> {
        let mut s = UsageScanner::default();
        for c in chunks {
            s.feed(c.as_bytes());
        }
        s.usage.settled()
    }

    /// The usage settles each budget by its kind: Anthropic's cache reads are input the
    /// input budget does not count; OpenAI's cached tokens are inside its prompt tokens.
    #[test]
    fn usage_is_settled_by_kind_with_cache_reads() {
        let anthropic = settled(&[
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":200,\"cache_read_input_tokens\":1800,\"output_tokens\":1}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":300}}\n\n",
        ])
        .unwrap();
        assert_eq!(
            (anthropic.input(), anthropic.cached(), anthropic.output()),
            (2_000, 1_800, 300)
        );
        let openai = settled(&[r#"{"usage":{"prompt_tokens":900,"completion_tokens":50,"total_tokens":950,"prompt_tokens_details":{"cached_tokens":512}}}"#]).unwrap();
        assert_eq!(
            (openai.input(), openai.cached(), openai.total()),
            (900, 512, 950)
        );
        assert_eq!(
            settled(&[r#"{"usage":{"total_tokens":42}}"#])
                .unwrap()
                .total(),
            42
        );
    }

    #[test]
    fn openai_final_usage_chunk_split_across_reads() {
        let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#;
        let (a, b) = usage.split_at(40);
        assert_eq!(
            scan(&["data: {\"choices\":[]}\n\n", a, b, "\n\ndata: [DONE]\n\n"]),
            Some(12)
        );
    }

    #[test]
    fn anthropic_input_from_message_start_and_cumulative_output_from_message_delta() {
        let events = [
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
        ];
        assert_eq!(scan(&events[..1]), Some(26), "what an early drop saw");
        assert_eq!(scan(&events), Some(40));
    }

    #[test]
    fn a_json_answer_in_pieces_and_an_answer_without_usage() {
        assert_eq!(
            scan(&[
                "{\"usage\": {\"input_tokens\": 4,",
                " \"output_tokens\": 6}}"
            ]),
            Some(10)
        );
        assert_eq!(scan(&["data: {\"choices\":[]}\n\n"]), None);
        assert_eq!(scan(&["not json at all"]), None);
    }
}
