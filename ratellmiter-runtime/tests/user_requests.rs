//! What users of rate limiters keep asking for (issue 9): live quotas, non-blocking and
//! deadline acquires, priorities, final errors, exact waits, limiters shared by clones.

use std::time::Duration;

use ratellmiter_runtime::{
    AcquireError, BucketRateLimiter, IsRateLimit, Monitor, Priority, RateLimit, TryAcquireError,
};
use tokio::time::Instant;

fn limiter(rpm: u32) -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(rpm)
        .adaptive(false)
        .build()
        .unwrap()
}

/// Issue times of `n` back-to-back acquires, relative to `t0`.
async fn issue_times(l: &BucketRateLimiter, n: usize, t0: Instant) -> Vec<Duration> {
    let mut out = Vec::new();
    for _ in 0..n {
        drop(l.acquire().await.unwrap());
        out.push(t0.elapsed());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_quota_changed_mid_run_changes_spacing_from_the_next_ticket() {
    let l = limiter(600);
    let t0 = Instant::now();
    let before = issue_times(&l, 100, t0).await;
    assert_eq!(before[99] - before[98], Duration::from_millis(100));
    l.set_rpm(300).unwrap();
    let after = issue_times(&l, 5, t0).await;
    assert_eq!(
        after[0] - before[99],
        Duration::from_millis(200),
        "the very next ticket keeps 60/300 s"
    );
    assert_eq!(after[4] - after[3], Duration::from_millis(200));
    // A raise through the monitor by name: reached through the ramp, then exact.
    let monitor = Monitor::new();
    let named = monitor.add_service("tier-up", l.clone()).unwrap();
    monitor.set_rpm("tier-up", 1200).unwrap();
    let raised = issue_times(&named, 200, t0).await;
    assert!(
        raised[1] - raised[0] > Duration::from_millis(50),
        "ramp, not a jump"
    );
    assert_eq!(raised[199] - raised[198], Duration::from_millis(50));
    assert_eq!(monitor.set_rpm("tier-up", 0).unwrap_err().field(), "rpm");
    let s = l.stats();
    assert_eq!(
        (s.issued, s.in_flight),
        (305, 0),
        "no ticket lost or doubled"
    );
}

#[tokio::test(start_paused = true)]
async fn try_acquire_never_waits() {
    let l = limiter(60);
    let t0 = Instant::now();
    let first = l.acquire().try_now().expect("free at start");
    match l.acquire().try_now() {
        // The slow start's 22 % of 1/s after idleness: 1/0.22 s.
        Err(TryAcquireError::NotBefore(at)) => {
            assert_eq!(at - t0, Duration::from_nanos(4_545_454_546))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "no time passed");
    assert_eq!(l.stats().waiting, 0, "nothing queued");
    drop(first);
    tokio::time::sleep(Duration::from_nanos(4_545_454_546)).await;
    assert!(l.acquire().try_now().is_ok());
    // With a call queued, try_now does not jump the line.
    let l2 = l.clone();
    let queued = tokio::spawn(async move { l2.acquire().await.unwrap().waited() });
    tokio::task::yield_now().await;
    assert_eq!(l.acquire().try_now().unwrap_err(), TryAcquireError::Queued);
    assert!(queued.await.unwrap() > Duration::ZERO);
    // Paused after a rate limit.
    l.acquire()
        .await
        .unwrap()
        .rate_limited(Some(Duration::from_secs(5)));
    assert_eq!(l.acquire().try_now().unwrap_err(), TryAcquireError::Paused);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_returns_at_the_deadline_and_does_not_delay_the_calls_behind() {
    let l = limiter(60); // one ticket every second once ramped; 1/0.22 s after idle
    let t0 = Instant::now();
    drop(l.acquire().await.unwrap()); // slot 0 used: the next is at 4.546 s (the timer's ms)
    let la = l.clone();
    let a = tokio::spawn(async move {
        la.acquire()
            .timeout(Duration::from_secs(1))
            .await
            .map(|t| t.waited())
    });
    tokio::task::yield_now().await;
    let lb = l.clone();
    let b = tokio::spawn(async move {
        let _ticket = lb.acquire().await.unwrap();
        t0.elapsed()
    });
    let err = a.await.unwrap().unwrap_err();
    assert_eq!(
        err,
        AcquireError::Timeout {
            waited: Duration::from_secs(1)
        }
    );
    assert!(err.to_string().contains("gave up waiting"));
    assert_eq!(
        b.await.unwrap(),
        Duration::from_millis(4_546),
        "b takes the slot a would have had, on time"
    );
    let s = l.stats();
    assert_eq!((s.cancelled, s.waiting, s.in_flight), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn high_priority_overtakes_while_normal_calls_keep_a_share() {
    let l = limiter(600);
    drop(l.acquire().await.unwrap());
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for i in 0..40 {
        let l = l.clone();
        let priority = if i < 20 {
            Priority::Normal
        } else {
            Priority::High
        };
        handles.push(tokio::spawn(async move {
            drop(l.acquire().priority(priority).await.unwrap());
            (t0.elapsed(), priority)
        }));
        tokio::task::yield_now().await;
    }
    let mut done = Vec::new();
    for h in handles {
        done.push(h.await.unwrap());
    }
    done.sort_by_key(|(t, _)| *t);
    let order: Vec<Priority> = done.iter().map(|(_, p)| *p).collect();
    // The normal calls queued first; the high ones overtake them three at a time
    // (the bounded streak), so normal calls still get one ticket in four.
    let first_16: Vec<Priority> = order[..16].to_vec();
    let highs = first_16.iter().filter(|p| **p == Priority::High).count();
    assert_eq!(highs, 12, "{order:?}");
    for chunk in order[..20].chunks(4) {
        assert!(
            chunk.contains(&Priority::Normal),
            "no normal starvation: {order:?}"
        );
    }
}

#[derive(Debug, PartialEq)]
enum QuotaError {
    InsufficientQuota,
}

impl IsRateLimit for QuotaError {
    fn rate_limit(&self) -> Option<RateLimit> {
        Some(RateLimit::final_quota())
    }
}

#[tokio::test(start_paused = true)]
async fn a_final_error_is_returned_after_one_attempt_without_pausing() {
    let l = limiter(600);
    let mut attempts = 0;
    let out: Result<(), QuotaError> = l
        .run(|| {
            attempts += 1;
            async { Err(QuotaError::InsufficientQuota) }
        })
        .await;
    assert_eq!(out, Err(QuotaError::InsufficientQuota));
    assert_eq!(attempts, 1);
    let s = l.stats();
    assert!(!s.paused);
    assert_eq!((s.rate_limited, s.finished), (0, 1));
}

#[derive(Clone)]
struct Client {
    limiter: BucketRateLimiter,
}

#[tokio::test(start_paused = true)]
async fn cloned_clients_share_one_budget() {
    let a = Client {
        limiter: limiter(600),
    };
    let b = a.clone();
    assert!(a.limiter.same_limiter(&b.limiter));
    let t0 = Instant::now();
    let mut times = Vec::new();
    for i in 0..200 {
        let c = if i % 2 == 0 { &a } else { &b };
        drop(c.limiter.acquire().await.unwrap());
        times.push(t0.elapsed());
    }
    assert_eq!(
        times[199] - times[198],
        Duration::from_millis(100),
        "one budget: 10/s in total"
    );
    assert_eq!(a.limiter.stats().issued, 200);
    assert!(
        !limiter(600).same_limiter(&a.limiter),
        "a new limiter is a new budget"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_estimate_above_the_budget_fails_at_once() {
    let l = BucketRateLimiter::builder()
        .rpm(600)
        .tpm(10_000)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let err = l.acquire().tokens(10_001).await.unwrap_err();
    assert_eq!(
        err,
        AcquireError::CostExceedsBudget {
            cost: 10_001,
            tpm: 10_000
        }
    );
    assert_eq!(t0.elapsed(), Duration::ZERO);
    assert_eq!(l.stats().waiting, 0);
}

/// A call refused by hand (`Ticket::rate_limited`) and asked for again with `.retry()`
/// goes to the front: after the pause it is the probe, ahead of the three normal calls
/// that queued before it, and it counts as a re-issue.
#[tokio::test(start_paused = true)]
async fn a_refused_call_asked_again_with_retry_goes_ahead_of_queued_calls() {
    let l = limiter(600);
    let refused = l.acquire().await.unwrap();
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for name in ["normal-1", "normal-2", "normal-3"] {
        let l = l.clone();
        handles.push(tokio::spawn(async move {
            l.acquire().await.unwrap().finish();
            (t0.elapsed(), name)
        }));
        tokio::task::yield_now().await;
    }
    refused.rate_limited(None);
    let again = {
        let l = l.clone();
        tokio::spawn(async move {
            l.acquire().retry().await.unwrap().finish();
            (t0.elapsed(), "retry")
        })
    };
    let mut done = vec![again.await.unwrap()];
    for h in handles {
        done.push(h.await.unwrap());
    }
    done.sort();
    let order: Vec<&str> = done.iter().map(|(_, n)| *n).collect();
    assert_eq!(order, ["retry", "normal-1", "normal-2", "normal-3"]);
    assert_eq!(
        done[0].0,
        Duration::from_secs(10),
        "the probe after a 10 s pause"
    );
    let s = l.stats();
    assert_eq!((s.reissued, s.rate_limited, s.in_flight), (1, 1, 0));
}

/// The blocking form takes the same options: a token cost, a priority and a deadline,
/// on a plain thread without a runtime.
#[test]
fn the_blocking_form_takes_tokens_priority_and_a_deadline() {
    let l = BucketRateLimiter::builder()
        .rpm(600)
        .tpm(1_000)
        .build()
        .unwrap();
    let all = l
        .acquire()
        .tokens(1_000)
        .priority(Priority::High)
        .blocking()
        .expect("the whole budget, once");
    all.finish();
    // The budget is spent for a minute: a deadline 50 ms away passes first.
    let started = std::time::Instant::now();
    let err = l
        .acquire()
        .tokens(1)
        .timeout(Duration::from_millis(50))
        .blocking()
        .unwrap_err();
    assert!(matches!(err, AcquireError::Timeout { waited } if waited >= Duration::from_millis(50)));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(
        l.acquire().tokens(1_001).blocking().unwrap_err(),
        AcquireError::CostExceedsBudget {
            cost: 1_001,
            tpm: 1_000
        }
    );
    let s = l.stats();
    assert_eq!((s.issued, s.cancelled, s.waiting), (1, 1, 0));
}
