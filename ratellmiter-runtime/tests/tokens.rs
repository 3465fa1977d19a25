//! Token budgets against the mock provider's model in virtual time: real limiter calls
//! (`limiter.call().tokens(estimate).run(…)`) go to an in-process
//! [`Provider`] that charges the tokens each call really used. The token windows are
//! measured on the client's own record (when each attempt's body started, and the tokens
//! it really used, reported with `record_usage` later and possibly above the estimate), not on
//! what the provider accepted: the provider refuses anything over its budget itself, so
//! its log could never show an excess.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ratellmiter_runtime::{AcquireError, BucketRateLimiter, IsRateLimit, RateLimit, current};
use ratellmiter_sim::metrics::max_weight_in_window;
use ratellmiter_sim::{Decision, Metrics, Provider, ProviderConfig};
use tokio::time::Instant;

const TPM: u64 = 60_000;
const MINUTE: Duration = Duration::from_secs(60);
const LATENCY: Duration = Duration::from_millis(400);

#[derive(Debug)]
struct Refused(Option<Duration>);

impl IsRateLimit for Refused {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::retry(self.0))
    }
}

/// A provider limited to `TPM` tokens over a plain sliding minute (no sub-minute
/// quantum) and far more requests than the workload makes.
fn provider() -> Arc<Mutex<Provider>> {
    let config = ProviderConfig {
        rpm: 10_000,
        tpm: Some(TPM),
        quantum: MINUTE,
        ..Default::default()
    };
    Arc::new(Mutex::new(Provider::new(config).unwrap()))
}

/// What the client saw: the provider's metrics, and its own record of every attempt
/// (when each attempt's body started, since the start, and the tokens it asked for,
/// counted whether or not the provider accepted it).
struct Observed {
    metrics: Metrics,
    sent: Vec<(Duration, u64)>,
}

impl Observed {
    /// Most tokens the client sent in any 60 s window, by its own record.
    fn max_sent_in_any_60s(&self) -> u64 {
        max_weight_in_window(&self.sent, MINUTE)
    }
}

/// `workers` tasks make calls for `run_for`; call `i` is estimated at `estimate(i)`
/// tokens and really uses `actual(i)`, reported with `record_usage` once the answer
/// came, `LATENCY` after the request.
async fn workload(
    limiter: &BucketRateLimiter,
    provider: &Arc<Mutex<Provider>>,
    workers: usize,
    run_for: Duration,
    estimate: fn(u64) -> u64,
    actual: fn(u64) -> u64,
) -> Observed {
    let start = Instant::now();
    let counter = Arc::new(Mutex::new(0u64));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (limiter, provider, counter) = (limiter.clone(), provider.clone(), counter.clone());
            let sent = sent.clone();
            tokio::spawn(async move {
                while start.elapsed() < run_for {
                    let i = {
                        let mut c = counter.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    let out: Result<(), Refused> = limiter
                        .call()
                        .tokens(estimate(i))
                        .run(|| {
                            let (provider, sent) = (provider.clone(), sent.clone());
                            async move {
                                // Sent, whatever the provider makes of it.
                                let at = start.elapsed();
                                sent.lock().unwrap().push((at, actual(i)));
                                let decision = provider.lock().unwrap().request(at, "m", actual(i));
                                match decision {
                                    Decision::Accept(_) => {
                                        tokio::time::sleep(LATENCY).await;
                                        current().record_usage(actual(i));
                                        Ok(())
                                    }
                                    Decision::Reject(r) => Err(Refused(r.retry_after)),
                                }
                            }
                        })
                        .await
                        .expect("every estimate fits the budget");
                    out.expect("retries outlast every refusal");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut sent = std::mem::take(&mut *sent.lock().unwrap());
    sent.sort();
    Observed {
        metrics: provider.lock().unwrap().metrics(),
        sent,
    }
}

fn limiter() -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(6_000)
        .tpm(TPM)
        .build()
        .unwrap()
}

/// Tokens the provider accepted in `(from, to]` since the start.
fn accepted_tokens(provider: &Arc<Mutex<Provider>>, from: Duration, to: Duration) -> u64 {
    let p = provider.lock().unwrap();
    p.log()
        .iter()
        .filter(|r| r.accepted() && r.at > from && r.at <= to)
        .map(|r| r.tokens)
        .sum()
}

/// Calls of 500 to 3 000 tokens, estimated exactly, from 20 workers for five minutes:
/// the limiter, not the provider, is what holds them back.
#[tokio::test(start_paused = true)]
async fn a_tpm_bound_workload_never_exceeds_the_budget_in_any_minute() {
    let (limiter, provider) = (limiter(), provider());
    let size = |i: u64| 500 + (i * 7_919) % 2_501;
    let o = workload(&limiter, &provider, 20, 5 * MINUTE, size, size).await;
    let m = &o.metrics;

    assert!(
        o.max_sent_in_any_60s() <= TPM,
        "{}",
        o.max_sent_in_any_60s()
    );
    assert_eq!(m.rejected, 0, "{m:?}");
    // Once ramped up the budget is used: at least 90% of it in each later minute.
    for minute in 1..5 {
        let used = accepted_tokens(&provider, minute * MINUTE, (minute + 1) * MINUTE);
        assert!(used >= TPM * 9 / 10, "minute {minute}: {used} tokens");
    }
    // Requests are far below their limit: tokens were the binding budget.
    assert!(m.max_accepted_in_any_60s < 100, "{m:?}");
}

/// Every call estimated at 2 000 tokens uses 1 000: `record_usage` refunds the
/// difference, so the limiter sends twice the calls an uncorrected budget would allow.
#[tokio::test(start_paused = true)]
async fn over_estimates_are_refunded() {
    let (limiter, provider) = (limiter(), provider());
    let start = Instant::now();
    let o = workload(&limiter, &provider, 20, 4 * MINUTE, |_| 2_000, |_| 1_000).await;
    let (m, end) = (&o.metrics, start.elapsed());

    assert!(
        o.max_sent_in_any_60s() <= TPM,
        "{}",
        o.max_sent_in_any_60s()
    );
    assert_eq!(m.rejected, 0, "{m:?}");
    // Uncorrected, 30 calls a minute would go out; corrected, close to 60.
    for minute in 1..4 {
        let used = accepted_tokens(&provider, minute * MINUTE, (minute + 1) * MINUTE);
        assert!(used >= TPM * 9 / 10, "minute {minute}: {used} tokens");
    }
    // The limiter's own count of the last minute is what the provider charged.
    assert_eq!(
        limiter.stats().tokens_in_window,
        accepted_tokens(&provider, end - MINUTE, end)
    );
}

/// Every call estimated at 500 tokens uses 1 500: `record_usage` charges the extra,
/// which pushes the following calls back, so a minute holds about the budget and the
/// provider refuses next to nothing (the extra of the calls still in flight is the
/// only overshoot the limiter cannot see coming).
#[tokio::test(start_paused = true)]
async fn under_estimates_are_charged_extra() {
    let (limiter, provider) = (limiter(), provider());
    let o = workload(&limiter, &provider, 20, 4 * MINUTE, |_| 500, |_| 1_500).await;
    let m = &o.metrics;

    // Usage comes 400 ms after the request and three times the estimate, yet what the
    // client sent (refused attempts included) stays within the budget: measured 60 000.
    assert!(
        o.max_sent_in_any_60s() <= TPM,
        "{}",
        o.max_sent_in_any_60s()
    );
    let refused_per_minute = m.rejected as f64 / 4.0;
    assert!(refused_per_minute <= 2.0, "{m:?}");
    for minute in 1..4 {
        let used = accepted_tokens(&provider, minute * MINUTE, (minute + 1) * MINUTE);
        assert!(used >= TPM * 8 / 10, "minute {minute}: {used} tokens");
    }
}

/// A call whose estimate exceeds the whole per-minute budget fails at once.
#[tokio::test(start_paused = true)]
async fn a_call_larger_than_the_budget_fails_at_once() {
    let limiter = limiter();
    let start = Instant::now();
    let out = limiter
        .call()
        .tokens(TPM + 1)
        .run(|| async { Ok::<_, Refused>(()) })
        .await;
    assert_eq!(
        out.unwrap_err(),
        AcquireError::CostExceedsBudget {
            cost: TPM + 1,
            tpm: TPM
        }
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(limiter.stats().issued, 0);
}
