//! Limits as the providers define them, in virtual time against the mock provider's
//! model: Anthropic's input and output tokens per minute (output reserved from
//! `max_tokens`, corrected after the answer), a daily request quota spent in the
//! morning, and a cap on calls in flight.
//!
//! Every figure is measured on the client's own record (when each attempt's body ran,
//! and what it sent and used), never on what the provider accepted: the provider
//! refuses any excess by itself, so its log could never show one. The provider's
//! refusals are counted by the client too (each `Reject` it got back).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ratellmiter_runtime::{
    AcquireError, BucketRateLimiter, ConfigError, IsRateLimit, RateLimit, Usage, current,
};
use ratellmiter_sim::metrics::max_weight_in_window;
use ratellmiter_sim::{Ask, Decision, Latency, Provider, ProviderConfig};
use tokio::time::Instant;

const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, PartialEq)]
enum Failure {
    Refused(Option<Duration>),
    Acquire(AcquireError),
    Broken,
}

impl IsRateLimit for Failure {
    fn rate_limit(&self) -> Option<RateLimit> {
        match self {
            Failure::Refused(after) => Some(RateLimit::retry(*after)),
            _ => None,
        }
    }
}

impl From<AcquireError> for Failure {
    fn from(e: AcquireError) -> Self {
        Failure::Acquire(e)
    }
}

fn shared(provider: Provider) -> Arc<Mutex<Provider>> {
    Arc::new(Mutex::new(provider))
}

/// One attempt as the client saw it: when its body ran, what it sent and used, and
/// whether the provider refused it.
#[derive(Debug, Clone, Copy)]
struct Sent {
    at: Duration,
    ended: Duration,
    input: u64,
    output_used: u64,
    refused: bool,
}

type Record = Arc<Mutex<Vec<Sent>>>;

/// One call to the mock: `input` tokens in, `reserve` output reserved, `used` output
/// produced after `latency`; recorded on `record` whatever the provider answers.
async fn attempt(
    provider: &Arc<Mutex<Provider>>,
    record: &Record,
    start: Instant,
    input: u64,
    reserve: u64,
    used: u64,
) -> Result<(), Failure> {
    let at = start.elapsed();
    let ask = Ask {
        input,
        output: reserve,
    };
    let decision = provider
        .lock()
        .unwrap()
        .request_kinds(at, "m", input + reserve, ask);
    match decision {
        Decision::Accept(a) => {
            tokio::time::sleep(a.latency).await;
            provider.lock().unwrap().answered("m", a.id, used);
            current().record_usage(Usage::new(input, used));
            record.lock().unwrap().push(Sent {
                at,
                ended: start.elapsed(),
                input,
                output_used: used,
                refused: false,
            });
            Ok(())
        }
        Decision::Reject(r) => {
            record.lock().unwrap().push(Sent {
                at,
                ended: at,
                input,
                output_used: 0,
                refused: true,
            });
            Err(Failure::Refused(r.retry_after))
        }
    }
}

/// Anthropic's tier-1-like model: 50 RPM, 30 000 ITPM, 8 000 OTPM. Calls of about
/// 2 000 input tokens reserve 1 024 output tokens (`max_tokens`) and use about 300.
/// Input is the binding budget (15 calls a minute; output would allow 26, requests
/// 50): the reservation is held only until the answer says what was used, so it does
/// not throttle the calls below what the input allows. Once warm, each minute uses at
/// least 90 % of the input budget, and the provider refuses nothing.
#[tokio::test(start_paused = true)]
async fn anthropic_input_and_output_budgets_are_used_without_refusals() {
    const ITPM: u64 = 30_000;
    const OTPM: u64 = 8_000;
    let provider = shared(
        Provider::new(ProviderConfig {
            rpm: 50,
            input_tpm: Some(ITPM),
            output_tpm: Some(OTPM),
            latency: Latency::Fixed(Duration::from_millis(1_500)),
            ..Default::default()
        })
        .unwrap(),
    );
    let limiter = BucketRateLimiter::builder()
        .rpm(50)
        .input_tpm(ITPM)
        .output_tpm(OTPM)
        .build()
        .unwrap();
    let record: Record = Arc::default();
    let start = Instant::now();
    let run_for = 10 * MINUTE;
    let counter = Arc::new(Mutex::new(0u64));
    let workers: Vec<_> = (0..20)
        .map(|_| {
            let (limiter, provider, record, counter) = (
                limiter.clone(),
                provider.clone(),
                record.clone(),
                counter.clone(),
            );
            tokio::spawn(async move {
                while start.elapsed() < run_for {
                    let i = {
                        let mut c = counter.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    // 1 900 to 2 100 input tokens, counted before sending; 250 to 350 used.
                    let input = 1_900 + (i * 7_919) % 201;
                    let used = 250 + (i * 104_729) % 101;
                    limiter
                        .call()
                        .input_tokens(input)
                        .output_tokens(1_024)
                        .run(|| attempt(&provider, &record, start, input, 1_024, used))
                        .await
                        .unwrap()
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let sent = record.lock().unwrap().clone();

    let refused = sent.iter().filter(|s| s.refused).count();
    assert_eq!(refused, 0, "the provider refused {refused} calls");
    let inputs: Vec<_> = sent.iter().map(|s| (s.at, s.input)).collect();
    let outputs: Vec<_> = sent.iter().map(|s| (s.at, s.output_used)).collect();
    let requests: Vec<_> = sent.iter().map(|s| (s.at, 1)).collect();
    assert!(max_weight_in_window(&inputs, MINUTE) <= ITPM);
    assert!(max_weight_in_window(&outputs, MINUTE) <= OTPM);
    assert!(max_weight_in_window(&requests, MINUTE) <= 50);
    // Once warm (after the first minute), every minute uses ≥ 90 % of the input budget.
    let mut shares = Vec::new();
    for minute in 1..10 {
        let (from, to) = (minute * MINUTE, (minute + 1) * MINUTE);
        let used: u64 = inputs
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, n)| n)
            .sum();
        shares.push(used as f64 / ITPM as f64);
    }
    eprintln!("input budget used per minute: {shares:.3?}");
    assert!(shares.iter().all(|s| *s >= 0.90), "{shares:.3?}");
}

/// A simulated day: the limiter's wall clock starts at 09:58:20 UTC, so 100 calls at
/// 60 rpm spend the 100 requests a day by about 10:00. The 101st fails at once with
/// `QuotaExhausted` naming the next UTC midnight; calls queued behind the 100th fail
/// when it goes out, not hours later. The next day's calls go out again, and the
/// provider (whose day ends at the same midnight) refused nothing.
#[tokio::test(start_paused = true)]
async fn a_spent_daily_quota_fails_at_once_until_the_next_day() {
    let midnight = SystemTime::UNIX_EPOCH + Duration::from_secs(20_000 * 86_400);
    let opened = midnight + Duration::from_secs(9 * 3600 + 58 * 60 + 20);
    let until_midnight = Duration::from_secs(86_400 - (9 * 3600 + 58 * 60 + 20));
    let provider = shared(
        Provider::new(ProviderConfig {
            rpm: 60,
            rpd: Some(100),
            first_day_end: until_midnight,
            latency: Latency::Fixed(Duration::from_millis(500)),
            ..Default::default()
        })
        .unwrap(),
    );
    let limiter = BucketRateLimiter::builder()
        .rpm(60)
        .rpd(100)
        .wall_clock(opened)
        .build()
        .unwrap();
    let record: Record = Arc::default();
    let start = Instant::now();
    let call = || {
        let (limiter, provider, record) = (limiter.clone(), provider.clone(), record.clone());
        async move {
            let out = limiter
                .call()
                .run(|| attempt(&provider, &record, start, 10, 0, 10))
                .await;
            (start.elapsed(), out)
        }
    };
    // 110 calls at once: 100 go out at the pace, 10 fail when the 100th goes out.
    let calls: Vec<_> = (0..110).map(|_| tokio::spawn(call())).collect();
    let mut failed = Vec::new();
    for c in calls {
        let (at, out) = c.await.unwrap();
        match out {
            Ok(r) => r.unwrap(),
            Err(e) => failed.push((at, e)),
        }
    }
    let tomorrow = midnight + Duration::from_secs(86_400);
    let spent = AcquireError::QuotaExhausted {
        resets_at: tomorrow,
    };
    let sent = record.lock().unwrap().clone();
    let last = sent.iter().map(|s| s.at).max().unwrap();
    assert_eq!(sent.len(), 100);
    assert_eq!(failed.len(), 10);
    assert!(
        failed.iter().all(|(at, e)| *e == spent && *at == last),
        "{failed:?}"
    );
    eprintln!("the 100th call went out {last:?} after 09:58:20");
    // Spent at about 10:00 of the simulated day (100 calls at 1/s after the ramp).
    assert!(
        last >= Duration::from_secs(99) && last <= Duration::from_secs(104),
        "{last:?}"
    );
    assert_eq!(limiter.stats().requests_left_today, Some(0));

    // The 101st: at once, naming the reset.
    let asked = start.elapsed();
    let (at, out) = call().await;
    assert_eq!(out.unwrap_err(), spent);
    assert_eq!(at, asked, "failed at once");
    // A call whose deadline reaches past the reset waits for it instead.
    let patient = tokio::spawn({
        let (limiter, provider, record) = (limiter.clone(), provider.clone(), record.clone());
        async move {
            limiter
                .call()
                .timeout(until_midnight)
                .run(|| attempt(&provider, &record, start, 10, 0, 10))
                .await
        }
    });

    // The next day.
    tokio::time::sleep_until(start + until_midnight).await;
    for _ in 0..5 {
        call().await.1.unwrap().unwrap();
    }
    patient.await.unwrap().unwrap().unwrap();
    let sent = record.lock().unwrap().clone();
    let next_day = sent.iter().filter(|s| s.at >= until_midnight).count();
    assert_eq!(next_day, 6);
    assert!(sent.iter().all(|s| !s.refused));
    assert_eq!(limiter.stats().requests_left_today, Some(94));
}

/// At most 8 calls in flight, each taking 10 s, from 40 workers: never more than 8
/// bodies run at once (by the client's own start and end times), and the calls go out
/// at 8 per 10 s, 0.8 calls a second, once the first 8 are out.
#[tokio::test(start_paused = true)]
async fn max_in_flight_caps_calls_and_keeps_the_pipe_full() {
    let provider = shared(
        Provider::new(ProviderConfig {
            rpm: 600,
            max_concurrent: Some(8),
            latency: Latency::Fixed(Duration::from_secs(10)),
            ..Default::default()
        })
        .unwrap(),
    );
    let limiter = BucketRateLimiter::builder()
        .rpm(600)
        .max_in_flight(8)
        .build()
        .unwrap();
    let record: Record = Arc::default();
    let start = Instant::now();
    let run_for = 5 * MINUTE;
    let workers: Vec<_> = (0..40)
        .map(|_| {
            let (limiter, provider, record) = (limiter.clone(), provider.clone(), record.clone());
            tokio::spawn(async move {
                while start.elapsed() < run_for {
                    limiter
                        .call()
                        .run(|| attempt(&provider, &record, start, 10, 0, 10))
                        .await
                        .unwrap()
                        .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let sent = record.lock().unwrap().clone();
    assert!(sent.iter().all(|s| !s.refused));
    // The most bodies running at any moment, from the client's own start/end times
    // (an end at the same instant as a start frees its place first).
    let mut edges: Vec<(Duration, i32)> = sent
        .iter()
        .flat_map(|s| [(s.at, 1), (s.ended, -1)])
        .collect();
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    assert_eq!(most, 8);
    // Sustained: calls started from 20 s to 280 s, per second.
    let steady = sent
        .iter()
        .filter(|s| s.at >= Duration::from_secs(20) && s.at < Duration::from_secs(280))
        .count();
    let per_second = steady as f64 / 260.0;
    eprintln!("calls per second with 8 in flight: {per_second:.4}");
    assert!((0.79..=0.81).contains(&per_second), "{per_second}");
}

/// A ticket comes back however its call ends: a return, an error, a panic, a
/// cancellation. With `max_in_flight(4)` and four calls of each kind in flight, a fifth
/// call gets its ticket as soon as any of them ends.
#[tokio::test(start_paused = true)]
async fn a_place_in_flight_comes_back_however_the_call_ends() {
    let limiter = BucketRateLimiter::builder()
        .rpm(6_000)
        .max_in_flight(4)
        .build()
        .unwrap();
    let hold = |secs: u64, end: &'static str| {
        let limiter = limiter.clone();
        tokio::spawn(async move {
            limiter
                .call()
                .run(|| async move {
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    match end {
                        "panic" => panic!("the call panicked"),
                        "error" => Err(Failure::Broken),
                        _ => Ok(()),
                    }
                })
                .await
        })
    };
    let returned = hold(1, "ok");
    let failed = hold(2, "error");
    let panicked = hold(3, "panic");
    let cancelled = hold(100, "ok");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(limiter.stats().in_flight, 4);
    let start = Instant::now();
    let next = |limit: Duration| {
        let limiter = limiter.clone();
        // The ticket is kept: its place stays taken.
        async move {
            let t = limiter.acquire().timeout(limit).await?;
            Ok::<_, AcquireError>((t, start.elapsed()))
        }
    };
    // Each place comes back when its call ends (calls started at about 0.0 to 0.3 s).
    let wait = Duration::from_secs(10);
    let first = next(wait).await.unwrap();
    returned.await.unwrap().unwrap().unwrap();
    let second = next(wait).await.unwrap();
    assert_eq!(failed.await.unwrap().unwrap().unwrap_err(), Failure::Broken);
    let third = next(wait).await.unwrap();
    assert!(panicked.await.unwrap_err().is_panic());
    let lone = tokio::spawn(next(wait));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !lone.is_finished(),
        "the cancelled call still holds its place"
    );
    cancelled.abort();
    let fourth = lone.await.unwrap().unwrap();
    assert!(first.1 <= Duration::from_millis(600), "{:?}", first.1);
    assert!(second.1 <= Duration::from_millis(1_600), "{:?}", second.1);
    assert!(third.1 <= Duration::from_millis(2_600), "{:?}", third.1);
    assert!(fourth.1 >= Duration::from_millis(3_400), "{:?}", fourth.1);
    assert_eq!(limiter.stats().in_flight, 4);
    drop((first, second, third, fourth));
    assert_eq!(limiter.stats().in_flight, 0);
}

/// Budgets are validated like the others: a bad value is an error naming its field.
#[test]
fn every_budget_is_validated_by_name() {
    let b = || BucketRateLimiter::builder().rpm(50);
    let field = |r: Result<BucketRateLimiter, ConfigError>| r.map(|_| ()).unwrap_err().field();
    assert_eq!(field(b().input_tpm(0).build()), "input_tpm");
    assert_eq!(field(b().output_tpm(0).build()), "output_tpm");
    assert_eq!(field(b().rpd(0).build()), "rpd");
    assert_eq!(field(b().tpd(0).build()), "tpd");
    assert_eq!(field(b().max_in_flight(0).build()), "max_in_flight");
    assert_eq!(field(b().input_tpm(u64::MAX).build()), "input_tpm");
    assert_eq!(field(b().tpd(u64::MAX).build()), "tpd");
}

/// An estimate above a whole budget of its kind fails at once, naming that budget.
#[tokio::test(start_paused = true)]
async fn an_estimate_above_a_whole_budget_of_its_kind_fails_at_once() {
    let limiter = BucketRateLimiter::builder()
        .rpm(50)
        .input_tpm(30_000)
        .output_tpm(8_000)
        .tpd(20_000)
        .build()
        .unwrap();
    let ok = || async { Ok::<_, Failure>(()) };
    let out = limiter.call().output_tokens(8_001).run(ok).await;
    assert_eq!(
        out.unwrap_err(),
        AcquireError::CostExceedsBudget {
            cost: 8_001,
            tpm: 8_000
        }
    );
    let out = limiter.call().input_tokens(30_001).run(ok).await;
    assert_eq!(
        out.unwrap_err(),
        AcquireError::CostExceedsBudget {
            cost: 30_001,
            tpm: 30_000
        }
    );
    // A total without a split counts as input.
    let out = limiter.call().tokens(30_001).run(ok).await;
    assert!(matches!(
        out,
        Err(AcquireError::CostExceedsBudget { tpm: 30_000, .. })
    ));
    let out = limiter
        .call()
        .input_tokens(15_000)
        .output_tokens(6_000)
        .run(ok)
        .await;
    assert_eq!(
        out.unwrap_err(),
        AcquireError::CostExceedsDailyBudget {
            cost: 21_000,
            tpd: 20_000
        }
    );
    assert_eq!(limiter.stats().issued, 0);
}

/// A spent daily quota and a call's deadline: a deadline before the reset fails the
/// call at once, naming the reset; a deadline at the reset waits for it.
#[tokio::test(start_paused = true)]
async fn a_deadline_before_the_reset_fails_at_once_and_one_at_it_waits() {
    // 23:59:00 UTC: the quota comes back in 60 s.
    let midnight = SystemTime::UNIX_EPOCH + Duration::from_secs(20_000 * 86_400);
    let limiter = BucketRateLimiter::builder()
        .rpm(60)
        .rpd(1)
        .wall_clock(midnight - MINUTE)
        .build()
        .unwrap();
    let start = Instant::now();
    drop(limiter.acquire().await.unwrap());
    let spent = AcquireError::QuotaExhausted {
        resets_at: midnight,
    };
    let before = limiter
        .acquire()
        .deadline(start + MINUTE - Duration::from_millis(1))
        .await;
    assert_eq!(before.unwrap_err(), spent);
    assert_eq!(start.elapsed(), Duration::ZERO, "failed at once");
    // At the reset is not before it: the call is not refused but waits. The deadline
    // and the reset then fall on the same instant, and the deadline is seen first.
    let at_reset = limiter.acquire().deadline(start + MINUTE).await;
    assert_eq!(
        at_reset.unwrap_err(),
        AcquireError::Timeout { waited: MINUTE }
    );
    assert_eq!(start.elapsed(), MINUTE, "waited for the reset");
    // The next day's quota.
    drop(limiter.acquire().await.unwrap());
    assert_eq!(start.elapsed(), MINUTE);
}
