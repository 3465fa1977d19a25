//! A blocking program (plain `fn`s, threads, reqwest's blocking client) paced by one
//! limiter: `#[llmiter]` on a plain `fn` parks the thread until its ticket comes.
//!
//! `cargo run --example blocking --features reqwest` talks to an embedded mock provider; set
//! `OPENAI_BASE_URL` to point it at another OpenAI-compatible server.

mod common;

use ratellmiter::{BucketRateLimiter, Stats, llmiter};

/// One blocking chat completion, paced by `limiter` and re-run after a 429.
#[llmiter(limiter = limiter)]
fn ask(
    limiter: &BucketRateLimiter,
    client: &reqwest::blocking::Client,
    base_url: &str,
    question: &str,
) -> Result<String, common::ChatError> {
    let response = client
        .post(format!("{base_url}/chat/completions"))
        .json(&common::request_body("gpt-4o-mini", question))
        .send()?;
    // `check` reads async responses; a blocking client's 429 or 529 is a rate limit as
    // the `reqwest::Error` of `error_for_status` (without its `retry-after`: the limiter
    // then waits its probe interval).
    let body: serde_json::Value = response.error_for_status()?.json()?;
    Ok(common::answer(&body))
}

/// `threads` threads each ask `per_thread` questions of `base_url` through one limiter
/// at `rpm`; returns its counters. Call it from a plain thread, never from async code.
pub fn run(
    base_url: &str,
    rpm: u32,
    threads: usize,
    per_thread: usize,
) -> Result<Stats, common::ChatError> {
    let limiter = BucketRateLimiter::new(rpm);
    let client = reqwest::blocking::Client::new();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (limiter, client) = (&limiter, &client);
                s.spawn(move || {
                    for i in 0..per_thread {
                        let question = format!("Thread {t}, question {i}");
                        ask(limiter, client, base_url, &question)?;
                    }
                    Ok::<(), common::ChatError>(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().expect("no worker panics"))
    })?;
    Ok(limiter.stats())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The mock provider runs on a runtime of its own; the program itself is blocking.
    let rt = tokio::runtime::Runtime::new()?;
    let (base_url, _mock) = rt.block_on(common::base_url(600));
    let stats = run(&base_url, 600, 4, 10)?;
    println!(
        "{} calls answered, {} refused",
        stats.finished, stats.rate_limited
    );
    Ok(())
}
