//! Engine-level specifications: each scenario drives the pure engine through virtual
//! time and checks the numbers the module docs promise.

use super::adaptive::BETA;
use super::ramp::AVOIDANCE_STEP;
use super::*;
use ratellmiter_sim::metrics::max_in_window;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// rateLLMiter's pacing (linear ramp, a probe after every pause), which most of these
/// tests pin; the slow start of the default has its own tests at the end.
fn cfg(rpm: u32) -> LimiterConfig {
    LimiterConfig {
        rpm,
        ..LimiterConfig::ratellmiter()
    }
}

/// The default pacing (slow start), without the learned limit.
fn slow(rpm: u32) -> LimiterConfig {
    LimiterConfig {
        rpm,
        adaptive: false,
        ..Default::default()
    }
}

/// Issues everything due up to `until`, jumping to each wake-up time; every issued
/// ticket finishes at once with `outcome(id)`.
fn run(p: &mut Pacer, from: Duration, until: Duration) -> Vec<(Duration, Issued)> {
    let mut now = from;
    let mut out = Vec::new();
    loop {
        match p.poll(now) {
            Step::Issued(t) => {
                p.finish(now, &t, Outcome::Success);
                out.push((now, t));
            }
            Step::WaitUntil(at) if at <= until => now = progress(now, at),
            _ => return out,
        }
    }
}

/// The engine never asks to wait for a time that has come: a driver would spin. Checked
/// at every wait, so an engine that stops counting time fails here instead of hanging
/// the test (mutation testing: `advance` returning zero hung `run` for ever).
fn progress(now: Duration, at: Duration) -> Duration {
    assert!(
        at > now,
        "asked at {now:?} to wait until {at:?}: no progress"
    );
    at
}

#[test]
fn saturation_gives_exact_even_spacing_and_window_bounds() {
    // 7, 70 and 700 rpm do not divide 60 s evenly: an interval rounded down would put
    // R + 1 tickets in some 60 s window (8 at 7 rpm).
    for rpm in [7u32, 60, 70, 600, 700, 10_000] {
        let mut p = Pacer::new(cfg(rpm)).unwrap();
        let calls = rpm as usize * 3; // three minutes of demand queued at once
        for _ in 0..calls {
            p.enqueue(Duration::ZERO, Request::NEW).unwrap();
        }
        let issued = run(&mut p, Duration::ZERO, secs(100_000));
        assert_eq!(issued.len(), calls, "rpm {rpm}: every call issued");
        let times: Vec<Duration> = issued.iter().map(|(t, _)| *t).collect();
        let interval = Duration::from_nanos(60_000_000_000u64.div_ceil(u64::from(rpm)));
        // After the ramp (10 s at most: 25% + 10%/s), every gap is exactly 60/R.
        let ramped = times.iter().position(|t| *t >= secs(10)).unwrap();
        for w in times[ramped..].windows(2) {
            assert_eq!(w[1] - w[0], interval, "rpm {rpm}");
        }
        assert!(max_in_window(&times, secs(60)) <= u64::from(rpm));
        assert!(max_in_window(&times, secs(1)) <= u64::from(rpm).div_ceil(60));
        assert_eq!(max_in_window(&times[ramped..], secs(60)), u64::from(rpm));
    }
}

#[test]
fn ramp_after_a_burst_from_idle_starts_at_a_quarter_and_grows_a_tenth_per_second() {
    // rateLLMiter's linear shape. 600 rpm = 10/s: start 2.5/s, step 1/s, full after 7.5 s.
    let mut p = Pacer::new(LimiterConfig {
        rpm: 600,
        ..LimiterConfig::ratellmiter()
    })
    .unwrap();
    for _ in 0..300 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let issued = run(&mut p, Duration::ZERO, secs(60));
    let per_second = |s: u64| {
        issued
            .iter()
            .filter(|(t, _)| *t >= secs(s) && *t < secs(s + 1))
            .count()
    };
    let counts: Vec<usize> = (0..10).map(per_second).collect();
    // Rate at the middle of second s is about 2.5 + s + 0.5 (capped at 10), ±1 for rounding.
    let expected = [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 10.0, 10.0];
    for (s, (&got, &want)) in counts.iter().zip(expected.iter()).enumerate() {
        assert!(
            (got as f64 - want).abs() <= 1.0,
            "second {s}: {got} tickets, want about {want}: {counts:?}"
        );
    }
    // Never more than a step (1/s) plus one ticket of rounding above the second before.
    for w in counts.windows(2) {
        assert!(w[1] <= w[0] + 2, "{counts:?}");
    }
    // The first gap is the start rate's: 1 / 2.5 s.
    assert_eq!(issued[1].0 - issued[0].0, ms(400));
}

#[test]
fn steady_demand_at_full_rate_stays_at_full_rate() {
    // One new call every 100 ms (exactly 600 rpm) for 3 minutes: after the first ramp the
    // gaps are exactly 100 ms, with no dip at minute boundaries.
    let mut p = Pacer::new(cfg(600)).unwrap();
    let arrivals: Vec<Duration> = (0..1800u64).map(|i| ms(100 * i)).collect();
    let mut next_arrival = 0;
    let mut now = Duration::ZERO;
    let mut times = Vec::new();
    while times.len() < arrivals.len() {
        while next_arrival < arrivals.len() && arrivals[next_arrival] <= now {
            p.enqueue(now, Request::NEW).unwrap();
            next_arrival += 1;
        }
        let wake = match p.poll(now) {
            Step::Issued(t) => {
                p.finish(now, &t, Outcome::Success);
                times.push(now);
                continue;
            }
            Step::WaitUntil(at) => progress(now, at),
            _ => Duration::MAX,
        };
        now = wake.min(arrivals.get(next_arrival).copied().unwrap_or(Duration::MAX));
        assert!(
            now < Duration::MAX,
            "{} of {} calls issued, and the engine will issue no more",
            times.len(),
            arrivals.len()
        );
    }
    let ramped = times.iter().position(|t| *t >= secs(10)).unwrap();
    for w in times[ramped..].windows(2) {
        assert_eq!(w[1] - w[0], ms(100));
    }
    assert!(times.last().unwrap() > &secs(180));
}

/// Polls until a ticket goes out, jumping to each wake-up time.
fn next_issue(p: &mut Pacer, mut now: Duration) -> (Duration, Issued) {
    loop {
        match p.poll(now) {
            Step::Issued(t) => return (now, t),
            Step::WaitUntil(at) => now = progress(now, at),
            other => panic!("{other:?} at {now:?}"),
        }
    }
}

#[test]
fn rate_limited_calls_go_before_new_ones_fifo() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    let new: Vec<_> = (0..3)
        .map(|_| p.enqueue(Duration::ZERO, Request::NEW).unwrap())
        .collect();
    let r1 = p.enqueue(Duration::ZERO, Request::RETRY).unwrap();
    let r2 = p.enqueue(Duration::ZERO, Request::RETRY).unwrap();
    let order: Vec<WaiterId> = run(&mut p, Duration::ZERO, secs(10))
        .iter()
        .map(|(_, t)| t.id)
        .collect();
    assert_eq!(order, vec![r1, r2, new[0], new[1], new[2]]);
}

#[test]
fn high_priority_overtakes_with_a_bounded_streak() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    let normal: Vec<_> = (0..4)
        .map(|_| p.enqueue(Duration::ZERO, Request::NEW).unwrap())
        .collect();
    let high_req = Request {
        priority: Priority::High,
        ..Request::NEW
    };
    let high: Vec<_> = (0..8)
        .map(|_| p.enqueue(Duration::ZERO, high_req).unwrap())
        .collect();
    let order: Vec<WaiterId> = run(&mut p, Duration::ZERO, secs(10))
        .iter()
        .map(|(_, t)| t.id)
        .collect();
    let expect = vec![
        high[0], high[1], high[2], normal[0], high[3], high[4], high[5], normal[1], high[6],
        high[7], normal[2], normal[3],
    ];
    assert_eq!(order, expect);
}

#[test]
fn cancelled_waiters_are_skipped_and_counted() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    let ids: Vec<_> = (0..5)
        .map(|_| p.enqueue(Duration::ZERO, Request::NEW).unwrap())
        .collect();
    assert!(p.cancel(Duration::ZERO, ids[1]));
    assert!(p.cancel(Duration::ZERO, ids[3]));
    assert!(
        !p.cancel(Duration::ZERO, ids[3]),
        "second cancel is a no-op"
    );
    let order: Vec<WaiterId> = run(&mut p, Duration::ZERO, secs(10))
        .iter()
        .map(|(_, t)| t.id)
        .collect();
    assert_eq!(order, vec![ids[0], ids[2], ids[4]]);
    let c = p.counters();
    assert_eq!(
        (
            c.requested,
            c.issued,
            c.cancelled,
            p.waiting(),
            p.in_flight()
        ),
        (5, 3, 2, 0, 0)
    );
}

#[test]
fn pause_probe_schedule_without_a_service() {
    // Outage: every call refused until t = 30 s. Probe waits 10, 15, 22.5 s.
    let mut p = Pacer::new(cfg(600)).unwrap();
    for _ in 0..5 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let outage_end = secs(30);
    let mut now = Duration::ZERO;
    let mut probes = Vec::new();
    let mut successes = Vec::new();
    while successes.len() < 5 {
        match p.poll(now) {
            Step::Issued(t) => {
                if t.probe {
                    probes.push(now);
                }
                if now < outage_end {
                    p.finish(now, &t, Outcome::RateLimited { retry_after: None });
                    p.enqueue(now, Request::RETRY).unwrap();
                } else {
                    p.finish(now, &t, Outcome::Success);
                    successes.push(now);
                }
            }
            Step::WaitUntil(at) => now = progress(now, at),
            other => panic!("unexpected {other:?} at {now:?}"),
        }
    }
    assert_eq!(probes, vec![secs(10), secs(25), ms(47_500)]);
    assert_eq!(
        successes[0],
        ms(47_500),
        "the successful probe is the first success"
    );
    // Resumed with the ramp from its start: 2.5/s.
    assert_eq!(successes[1] - successes[0], ms(400));
    assert_eq!(p.counters().rate_limited, 3);
}

#[test]
fn retry_after_sets_the_pause_and_late_errors_do_not_restart_it() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    let a = p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    let b = p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    let ta = match p.poll(Duration::ZERO) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    let tb = match p.poll(ms(400)) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    assert_eq!((ta.id, tb.id), (a, b));
    p.finish(
        ms(500),
        &ta,
        Outcome::RateLimited {
            retry_after: Some(secs(2)),
        },
    );
    let ra = p.enqueue(ms(500), Request::RETRY).unwrap();
    assert!(p.is_paused());
    // b comes back rate limited during the pause: joins the front, pause unchanged.
    p.finish(
        ms(1500),
        &tb,
        Outcome::RateLimited {
            retry_after: Some(secs(30)),
        },
    );
    let rb = p.enqueue(ms(1500), Request::RETRY).unwrap();
    assert_eq!(p.poll(ms(1500)), Step::WaitUntil(ms(2500)));
    let probe = match p.poll(ms(2500)) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    assert!(probe.probe && probe.id == ra);
    assert_eq!(
        p.poll(ms(2600)),
        Step::WaitUntil(ms(2500) + LimiterConfig::default().probe_timeout),
        "nothing but the probe during a pause, until it times out"
    );
    p.finish(ms(3000), &probe, Outcome::Success);
    assert!(!p.is_paused());
    assert!(matches!(p.poll(ms(3000)), Step::Issued(t) if t.id == rb));
}

#[test]
fn a_service_probe_is_asked_for_instead_of_a_call() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    p.set_external_probe(true);
    let a = p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    let t = match p.poll(Duration::ZERO) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    p.finish(ms(10), &t, Outcome::RateLimited { retry_after: None });
    p.enqueue(ms(10), Request::RETRY).unwrap();
    assert_eq!(p.poll(ms(10)), Step::WaitUntil(ms(10_010)));
    let Step::ProbeService(first) = p.poll(ms(10_010)) else {
        panic!("a service probe")
    };
    assert_eq!(
        p.poll(ms(10_011)),
        Step::WaitUntil(ms(70_010)),
        "its time-out"
    );
    p.probe_result(ms(10_500), first, true);
    assert_eq!(p.poll(ms(10_500)), Step::WaitUntil(ms(25_500)));
    let Step::ProbeService(second) = p.poll(ms(25_500)) else {
        panic!("a service probe")
    };
    // Each probe has its own id, so a late answer to an earlier one is not taken for the
    // current one's (mutation testing: an id counter not advanced went unnoticed).
    assert_ne!(first, second);
    p.probe_result(ms(25_550), first, true);
    p.probe_abandoned(second);
    let Step::ProbeService(third) = p.poll(ms(25_600)) else {
        panic!("an abandoned probe is retried")
    };
    assert_ne!(second, third);
    p.probe_result(ms(26_000), third, false);
    assert!(matches!(p.poll(ms(26_000)), Step::Issued(t) if t.retry && !t.probe));
    let _ = a;
}

#[test]
fn abandoned_probe_ticket_lets_another_call_probe() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    let t = match p.poll(Duration::ZERO) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    p.finish(
        Duration::ZERO,
        &t,
        Outcome::RateLimited {
            retry_after: Some(secs(1)),
        },
    );
    p.enqueue(Duration::ZERO, Request::RETRY).unwrap();
    p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    let probe = match p.poll(secs(1)) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    assert!(probe.probe);
    p.finish(secs(2), &probe, Outcome::Abandoned);
    let next = match p.poll(secs(2)) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    assert!(next.probe && !next.retry, "the next call in line probes");
}

#[test]
fn token_budget_bounds_every_minute_and_paces_tokens() {
    let mut p = Pacer::new(LimiterConfig {
        rpm: 6000,
        tpm: Some(60_000),
        ..cfg(6000)
    })
    .unwrap();
    let req = Request {
        cost: Cost::tokens(1000),
        ..Request::NEW
    };
    for _ in 0..300 {
        p.enqueue(Duration::ZERO, req).unwrap();
    }
    let issued = run(&mut p, Duration::ZERO, secs(1000));
    assert_eq!(issued.len(), 300);
    let times: Vec<Duration> = issued.iter().map(|(t, _)| *t).collect();
    // 60 000 tokens a minute at 1000 a call: at most 60 calls in any 60 s window.
    assert!(max_in_window(&times, secs(60)) <= 60);
    // Once ramped, calls are 1 s apart (1000 tokens at 1000/s), not clumped.
    for w in times[times.len() - 50..].windows(2) {
        assert_eq!(w[1] - w[0], secs(1));
    }
    assert!(matches!(
        p.enqueue(
            Duration::ZERO,
            Request {
                cost: Cost::tokens(60_001),
                ..Request::NEW
            }
        ),
        Err(AcquireError::CostExceedsBudget {
            cost: 60_001,
            tpm: 60_000
        })
    ));
}

#[test]
fn usage_corrections_refund_the_budget() {
    let mut p = Pacer::new(LimiterConfig {
        rpm: 6000,
        tpm: Some(6_000),
        ..cfg(6000)
    })
    .unwrap();
    let req = Request {
        cost: Cost::tokens(1000),
        ..Request::NEW
    };
    p.enqueue(Duration::ZERO, req).unwrap();
    p.enqueue(Duration::ZERO, req).unwrap();
    let t = match p.poll(Duration::ZERO) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    // 1000 tokens at 100/s under the start ramp share: far in the future.
    let Step::WaitUntil(before) = p.poll(Duration::ZERO) else {
        panic!()
    };
    p.record_usage(&t, 100);
    let Step::WaitUntil(after) = p.poll(Duration::ZERO) else {
        panic!()
    };
    assert_eq!(
        before - after,
        secs(9),
        "900 tokens refunded at 100 tokens/s"
    );
    assert_eq!(p.tokens_in_window(ms(1)), 100);
}

#[test]
fn headers_saying_nothing_remains_hold_issuing_until_reset() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    for _ in 0..3 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let t = match p.poll(Duration::ZERO) {
        Step::Issued(t) => t,
        o => panic!("{o:?}"),
    };
    p.observe_budget(
        ms(100),
        Some(Budget {
            remaining: 0,
            reset: secs(5),
        }),
        None,
    );
    p.finish(ms(100), &t, Outcome::Success);
    assert_eq!(p.poll(ms(400)), Step::WaitUntil(ms(5100)));
    let issued = run(&mut p, ms(400), secs(10));
    assert_eq!(issued[0].0, ms(5100));
    assert_eq!(
        issued[1].0 - issued[0].0,
        ms(400),
        "the rate in force goes on after the hold"
    );
    assert_eq!(p.counters().rate_limited, 0);
    // `remaining: 2` allows two more, then waits for the reset.
    for _ in 0..4 {
        p.enqueue(secs(20), Request::NEW).unwrap();
    }
    p.observe_budget(
        secs(20),
        Some(Budget {
            remaining: 2,
            reset: secs(30),
        }),
        None,
    );
    let issued = run(&mut p, secs(20), secs(100));
    let times: Vec<_> = issued.iter().map(|(t, _)| *t).collect();
    assert_eq!(times[2], secs(50), "{times:?}");
}

#[test]
fn set_rpm_changes_spacing_from_the_next_ticket() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    for _ in 0..400 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let first = run(&mut p, Duration::ZERO, secs(20));
    let last = first.last().unwrap().0;
    p.set_rpm(last, 300).unwrap();
    let rest = run(&mut p, last, secs(40));
    assert_eq!(
        rest[0].0 - last,
        ms(200),
        "the next ticket already keeps 60/300 s"
    );
    p.set_rpm(secs(40), 1200).unwrap();
    let faster = run(&mut p, secs(40), secs(60));
    let gaps: Vec<_> = faster.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.first().unwrap() > &ms(50),
        "a raise goes through the ramp"
    );
    assert_eq!(*gaps.last().unwrap(), ms(50));
    assert_eq!(p.set_rpm(secs(60), 0).unwrap_err().field(), "rpm");
}

#[test]
fn try_issue_never_queues() {
    let mut p = Pacer::new(cfg(60)).unwrap();
    let t = p.try_issue(Duration::ZERO, Request::NEW).unwrap();
    assert_eq!(t.waited, Duration::ZERO);
    assert_eq!(
        p.try_issue(ms(1), Request::NEW),
        Err(TryAcquireError::NotBefore(secs(4)))
    );
    assert_eq!(p.waiting(), 0);
    p.enqueue(ms(2), Request::NEW).unwrap();
    assert_eq!(
        p.try_issue(secs(5), Request::NEW),
        Err(TryAcquireError::Queued)
    );
}

#[test]
fn adaptive_ceiling_drops_on_a_confirmed_episode_and_recovers() {
    let mut p = Pacer::new(LimiterConfig {
        adaptive: true,
        ..cfg(600)
    })
    .unwrap();
    for _ in 0..400 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let limited = Outcome::RateLimited {
        retry_after: Some(secs(1)),
    };
    run(&mut p, Duration::ZERO, secs(15));
    assert_eq!(p.allowed_rate(), 10.0);
    let (_, t) = next_issue(&mut p, secs(15));
    p.finish(secs(16), &t, limited);
    assert_eq!(
        p.learned_rate(secs(16)),
        10.0,
        "one episode is only a suspect"
    );
    assert!(
        !p.drain_events()
            .any(|(_, e)| matches!(e, Event::LearnedRate(_)))
    );
    // The pause is the server's retry_after; the probe then succeeds and the ramp
    // climbs back to the full rate.
    let (at, probe) = next_issue(&mut p, secs(16));
    assert!(probe.probe && at == secs(17));
    p.finish(secs(17), &probe, Outcome::Success);
    run(&mut p, secs(17), secs(30));
    assert_eq!(p.allowed_rate(), 10.0);
    // Refused again at the same rate: now it is learned.
    let (at, t) = next_issue(&mut p, secs(30));
    p.finish(at, &t, limited);
    assert!((p.learned_rate(at) - BETA * 10.0).abs() < 1e-9);
    assert!(
        p.drain_events()
            .any(|(_, e)| e == Event::LearnedRate(BETA * 10.0))
    );
    assert_eq!(p.learned_rate(at + secs(200)), 10.0, "recovered after calm");
}

#[test]
fn a_hold_keeps_the_full_rate_and_counts_no_ramp_growth() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    for _ in 0..300 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let before = run(&mut p, Duration::ZERO, secs(15));
    let last = before.last().unwrap().0;
    assert_eq!(p.allowed_rate(), 10.0);
    p.observe_budget(
        last,
        Some(Budget {
            remaining: 0,
            reset: secs(3),
        }),
        None,
    );
    let after = run(&mut p, last, last + secs(10));
    assert_eq!(after[0].0, last + secs(3), "nothing before the reset");
    assert_eq!(
        after[1].0 - after[0].0,
        ms(100),
        "full rate right after the hold"
    );
    assert_eq!(p.counters().rate_limited, 0);
}

/// Anthropic's output-token headers hold the next call by its output charge. An answer
/// that changes nothing for that call neither holds it again nor lifts the hold; a newer
/// one showing room lifts it at once, and the ramp counts its growth from the lift.
#[test]
fn kind_headers_hold_the_next_call_until_a_newer_answer_lifts_it() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    let (_, t) = next_issue(&mut p, Duration::ZERO);
    p.finish(Duration::ZERO, &t, Outcome::Success);
    let answer = Request {
        cost: Cost {
            tokens: 0,
            input: 10,
            output: 1_000,
        },
        ..Request::NEW
    };
    p.enqueue(ms(100), answer).unwrap();
    p.enqueue(ms(100), answer).unwrap();
    let left = |remaining| {
        Some(Budget {
            remaining,
            reset: secs(5),
        })
    };
    p.observe_kinds(ms(100), None, left(500));
    p.observe_budget(
        ms(500),
        Some(Budget {
            remaining: 100,
            reset: secs(60),
        }),
        None,
    );
    let holds: Vec<_> = p
        .drain_events()
        .filter(|(_, e)| matches!(e, Event::Hold { .. }))
        .collect();
    assert_eq!(
        holds,
        [(ms(100), Event::Hold { until: ms(5_100) })],
        "one hold, from the first answer"
    );
    assert_eq!(p.poll(ms(600)), Step::WaitUntil(ms(5_100)));
    p.observe_kinds(secs(2), None, left(2_500));
    assert_eq!(next_issue(&mut p, secs(2)).0, secs(2), "lifted at once");
    assert_eq!(
        next_issue(&mut p, secs(2)).0,
        ms(2_400),
        "at the rate in force, 2.5 a second"
    );
    assert!(
        (p.allowed_rate() - 2.9).abs() < 1e-9,
        "0.4 s of growth since the lift: {}",
        p.allowed_rate()
    );
}

/// Tickets per whole second of `issued`, for the first `n` seconds.
fn per_second(issued: &[(Duration, Issued)], from: Duration, n: u64) -> Vec<usize> {
    (0..n)
        .map(|s| {
            let lo = from + secs(s);
            issued
                .iter()
                .filter(|(t, _)| *t >= lo && *t < lo + secs(1))
                .count()
        })
        .collect()
}

#[test]
fn slow_start_after_a_burst_doubles_to_the_full_rate_in_under_three_seconds() {
    // 600 rpm = 10/s: from 2.2/s, doubling each second while calls wait.
    let mut p = Pacer::new(slow(600)).unwrap();
    for _ in 0..300 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let issued = run(&mut p, Duration::ZERO, secs(60));
    assert_eq!(per_second(&issued, Duration::ZERO, 5), [3, 6, 10, 10, 10]);
    assert_eq!(
        issued[1].0 - issued[0].0,
        Duration::from_nanos(454_545_455),
        "the start rate's gap"
    );
    // Against the full rate from the start (the last of 300 at 29.9 s), the ramp costs
    // 1.14 s of quota, once.
    assert_eq!(issued.len(), 300);
    assert_eq!(issued[299].0, Duration::from_nanos(31_040_532_965));
}

#[test]
fn slow_start_resumes_at_the_accepted_rate_after_a_short_pause() {
    // A refusal at full rate with a retry-after of 200 ms: a momentary excess. Issuing
    // goes on at 10/s when the server said, without waiting for a probe's answer.
    let mut p = Pacer::new(slow(600)).unwrap();
    for _ in 0..400 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let before = run(&mut p, Duration::ZERO, secs(10));
    let (at, t) = before.last().copied().unwrap();
    p.finish(
        at,
        &t,
        Outcome::RateLimited {
            retry_after: Some(ms(200)),
        },
    );
    p.enqueue(at, Request::RETRY).unwrap();
    let after = run(&mut p, at, at + secs(10));
    assert!(!after[0].1.probe && after[0].0 == at + ms(200));
    assert_eq!(per_second(&after, after[0].0, 3), [10, 10, 10]);
}

#[test]
fn slow_start_ramps_again_after_an_outage() {
    // The first probe is refused too (an outage): after the second probe succeeds the
    // rate starts again from 2.2/s and doubles back to 10/s.
    let mut p = Pacer::new(slow(600)).unwrap();
    for _ in 0..400 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let before = run(&mut p, Duration::ZERO, secs(10));
    let (at, t) = before.last().copied().unwrap();
    p.finish(at, &t, Outcome::RateLimited { retry_after: None });
    p.enqueue(at, Request::RETRY).unwrap();
    let (probe_at, probe) = next_issue(&mut p, at);
    assert!(probe.probe && probe_at == at + secs(10));
    p.finish(probe_at, &probe, Outcome::RateLimited { retry_after: None });
    p.enqueue(probe_at, Request::RETRY).unwrap();
    let (second_at, second) = next_issue(&mut p, probe_at);
    assert!(second.probe && second_at == probe_at + secs(15));
    p.finish(second_at, &second, Outcome::Success);
    let after = run(&mut p, second_at, second_at + secs(10));
    assert_eq!(per_second(&after, second_at, 4), [3, 6, 10, 10]);
}

/// Mutation testing (issue 19) found `cost > tpm` could be `>=` unnoticed: a call
/// costing exactly the whole budget is allowed (it runs alone in its minute), one token
/// more is refused with both figures.
#[test]
fn a_call_costing_exactly_the_whole_budget_runs_and_one_token_more_is_refused() {
    let mut p = Pacer::new(LimiterConfig {
        tpm: Some(6_000),
        ..cfg(60)
    })
    .unwrap();
    let whole = Request {
        cost: Cost::tokens(6_000),
        ..Request::NEW
    };
    let id = p.enqueue(Duration::ZERO, whole).unwrap();
    assert!(matches!(p.poll(Duration::ZERO), Step::Issued(t) if t.id == id && t.cost == 6_000));
    let over = Request {
        cost: Cost::tokens(6_001),
        ..Request::NEW
    };
    let err = p.enqueue(Duration::ZERO, over).unwrap_err();
    assert_eq!(
        err,
        AcquireError::CostExceedsBudget {
            cost: 6_001,
            tpm: 6_000
        }
    );
    assert_eq!(
        err.to_string(),
        "a call estimated at 6001 tokens can never run under a budget of 6000 tokens per minute"
    );
    assert_eq!(
        p.counters().requested,
        1,
        "the refused call was never queued"
    );
}

/// After a spell of demand below the rate, the rate falls back to what was seen plus a
/// step (never below the start), so the next burst ramps again from the start rate:
/// 2.5/s for the linear shape (25 % of 10/s), 2.2/s for the slow start (22 %). Mutation
/// testing found the fall-back's `*` could become `+` unnoticed (the fall-back then
/// stays at the full rate, or lands above the start).
#[test]
fn after_demand_falls_below_the_rate_the_next_burst_starts_from_the_start_rate() {
    for (config, first_gap) in [
        (cfg(600), ms(400)),
        (slow(600), Duration::from_nanos(454_545_455)),
    ] {
        let mut p = Pacer::new(config).unwrap();
        for _ in 0..600 {
            p.enqueue(Duration::ZERO, Request::NEW).unwrap();
        }
        let burst = run(&mut p, Duration::ZERO, secs(1_000));
        let mut now = burst.last().unwrap().0;
        // A trickle: one call every 2 s for 20 s, each served at once.
        for _ in 0..10 {
            now += secs(2);
            p.enqueue(now, Request::NEW).unwrap();
            assert_eq!(run(&mut p, now, now).len(), 1);
        }
        now += secs(2);
        for _ in 0..50 {
            p.enqueue(now, Request::NEW).unwrap();
        }
        let next = run(&mut p, now, now + secs(60));
        assert_eq!(next[1].0 - next[0].0, first_gap, "{:?}", &next[..3]);
    }
}

/// A service probe's answer that comes after its episode ended, during the next pause,
/// says nothing about that pause (mutation testing: the episode check `<` could become
/// `==` unnoticed).
#[test]
fn a_probe_answer_from_an_earlier_pause_does_not_end_the_next_one() {
    let mut p = Pacer::new(cfg(600)).unwrap();
    p.set_external_probe(true);
    let limited = |p: &mut Pacer, now: Duration| {
        p.enqueue(now, Request::NEW).unwrap();
        let Step::Issued(t) = p.poll(now) else {
            panic!("a ticket at {now:?}")
        };
        p.finish(now, &t, Outcome::RateLimited { retry_after: None });
        p.enqueue(now, Request::RETRY).unwrap();
    };
    limited(&mut p, Duration::ZERO);
    let Step::ProbeService(old) = p.poll(secs(10)) else {
        panic!("a service probe")
    };
    p.probe_abandoned(old);
    let Step::ProbeService(answered) = p.poll(secs(11)) else {
        panic!("a service probe")
    };
    p.probe_result(secs(12), answered, false);
    assert!(!p.is_paused());
    let _ = run(&mut p, secs(12), secs(12));
    // A second pause; then the first episode's abandoned probe answers "open", late.
    limited(&mut p, secs(20));
    assert!(p.is_paused());
    p.probe_result(secs(21), old, false);
    assert!(p.is_paused(), "a stale answer ended the pause");
}

/// A driver 5 ms late at every wake, with a new call queuing behind the line at each
/// one: the slots stay on the theoretical schedule, because only a call that becomes
/// the head restarts the count of lateness. Mutation testing found the head check in
/// `enqueue` could be inverted unnoticed (every call queued behind the line then pushed
/// the head's slot to its arrival: 5 ms lost per ticket, the 20th at 1.995 s).
///
/// What lateness does cost is pinned too: the 1 s bound counts actual issue times, so
/// the 11th ticket may not go before the (late) 1st plus 1 s, and its wake for that is
/// late again: each second's window adds one lateness (the real-time bench's +0.3 %).
#[test]
fn a_call_queued_behind_the_line_does_not_push_the_heads_slot() {
    let mut p = Pacer::new(LimiterConfig {
        rpm: 600,
        ramp_start: 1.0,
        adaptive: false,
        ..Default::default()
    })
    .unwrap();
    for _ in 0..20 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let mut now = ms(5);
    let mut issued = Vec::new();
    while issued.len() < 20 {
        match p.poll(now) {
            Step::Issued(t) => {
                p.finish(now, &t, Outcome::Success);
                issued.push(now);
            }
            Step::WaitUntil(at) => {
                now = progress(now, at) + ms(5);
                p.enqueue(now, Request::NEW).unwrap();
            }
            other => panic!("{other:?}"),
        }
    }
    let late = |k: u64| if k < 10 { ms(5) } else { ms(10) };
    let expected: Vec<Duration> = (0..20).map(|k| ms(100 * k) + late(k)).collect();
    assert_eq!(issued, expected);
}

/// The tuning constants are private; `tests/invariants.rs` and the module docs state
/// these values, so a change here must change them too.
#[test]
fn the_tuning_constants_are_those_the_docs_state() {
    assert_eq!(AVOIDANCE_STEP, 0.10);
    assert_eq!(adaptive::FLOOR, 0.01);
    assert_eq!(BETA, 0.9);
    assert_eq!(adaptive::REPEAT_SHARE, 1.25);
    assert_eq!(adaptive::AT_CEILING, 0.8);
}

/// What a ticket says of its call (mutation testing: every accessor of `Issued` and
/// `Usage` returning a constant, and `waited` counted as `now + enqueued`, passed the
/// engine's other tests).
#[test]
fn a_ticket_and_a_usage_report_what_they_were_given() {
    let mut p = Pacer::new(cfg(60)).unwrap();
    let split = Cost {
        tokens: 0,
        input: 300,
        output: 200,
    };
    p.enqueue(
        Duration::ZERO,
        Request {
            cost: split,
            ..Request::NEW
        },
    )
    .unwrap();
    let (at, first) = next_issue(&mut p, Duration::ZERO);
    assert_eq!(at, Duration::ZERO);
    assert_eq!(
        (first.cost(), first.input(), first.output()),
        (500, 300, 200)
    );
    assert_eq!((first.waited(), first.epoch()), (Duration::ZERO, 0));

    // A call that arrives at 500 ms and goes out later waited the difference.
    p.enqueue(ms(500), Request::NEW).unwrap();
    let (at, second) = next_issue(&mut p, ms(500));
    assert!(at > ms(500), "{at:?}");
    assert_eq!(second.waited(), at - ms(500));
    assert_eq!((second.cost(), second.input(), second.output()), (0, 0, 0));

    // After a pause and a successful probe the epoch has moved on.
    p.finish(at, &second, Outcome::RateLimited { retry_after: None });
    p.enqueue(at, Request::RETRY).unwrap();
    let (at, probe) = next_issue(&mut p, at);
    assert!(probe.is_probe());
    p.finish(at, &probe, Outcome::Success);
    p.enqueue(at, Request::NEW).unwrap();
    let (_, after) = next_issue(&mut p, at);
    assert_eq!(after.epoch(), 1);

    // A total with no split is charged to the input budget; a split with no input is not.
    assert_eq!(Cost::tokens(700).input_charge(), 700);
    let output_only = Cost {
        tokens: 500,
        input: 0,
        output: 200,
    };
    assert_eq!(output_only.input_charge(), 0);

    let used = Usage::new(2_000, 300).cached_input(1_500);
    assert_eq!(
        (used.input(), used.output(), used.cached()),
        (2_000, 300, 1_500)
    );
    assert_eq!(used.total(), 2_300);
    assert_eq!(Usage::from(420).total(), 420);
    // The input budget counts no cache reads.
    assert_eq!(used.as_cost().input, 500);
}

/// A new token budget takes effect from the next ticket, whether it replaces one or adds
/// the first (mutation testing: `Budgets::set_tpm` and `TokenBudget::set_tpm` doing
/// nothing passed the other tests).
#[test]
fn set_tpm_changes_the_token_spacing_from_the_next_ticket() {
    let calls = Request {
        cost: Cost::tokens(100),
        ..Request::NEW
    };
    for tpm in [Some(600), None] {
        let mut p = Pacer::new(LimiterConfig {
            tpm,
            ..slow(600_000)
        })
        .unwrap();
        for _ in 0..3 {
            p.enqueue(Duration::ZERO, calls).unwrap();
        }
        let (at, _) = next_issue(&mut p, Duration::ZERO);
        assert_eq!(at, Duration::ZERO);
        if tpm.is_some() {
            // 100 tokens at 600 a minute: the next no sooner than 10 s (later still
            // while the ramp, at 22 % after idleness, slows the token spacing too).
            assert!(
                matches!(p.poll(at), Step::WaitUntil(t) if t >= secs(10)),
                "{tpm:?}"
            );
        }
        p.set_tpm(at, 6_000).unwrap();
        assert_eq!(p.config().tpm, Some(6_000));
        let (second, _) = next_issue(&mut p, at);
        let (third, _) = next_issue(&mut p, second);
        // 100 tokens at 6 000 a minute: 1 s apart (at the ramp's full share), never
        // the 10 s of the old budget nor back to back with no budget. The ticket after
        // the change was spaced by the budget in force when the one before went out.
        let gap = third - second;
        assert!(
            gap >= secs(1) && gap < secs(10),
            "{tpm:?}: {second:?} {third:?}"
        );
    }
}

/// The provider's limit headers configure the budgets once, and only within the limits
/// the engine takes (mutation testing: `||` → `&&` in the once-only test, a learned
/// daily quota left at the configured one, the daily limit checked against the
/// per-minute maximum — all passed the other tests).
#[test]
fn limits_learned_from_headers_apply_once_and_within_range() {
    let mut p = Pacer::new(LimiterConfig {
        learn_limits: true,
        rpd: Some(100),
        ..slow(600)
    })
    .unwrap();
    let two_a_day = Learned {
        rpd: Some(2),
        ..Learned::default()
    };
    p.learn_limits(Duration::ZERO, two_a_day);
    assert_eq!(p.config().rpd, Some(2));
    // Learned once: a later answer changes nothing.
    p.learn_limits(
        Duration::ZERO,
        Learned {
            rpd: Some(50),
            tpm: Some(1_000),
            ..Learned::default()
        },
    );
    assert_eq!((p.config().rpd, p.config().tpm), (Some(2), None));
    for _ in 0..2 {
        p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    }
    let (at, _) = next_issue(&mut p, Duration::ZERO);
    next_issue(&mut p, at);
    // The learned quota of two is spent: the third call of the day fails at once.
    assert!(matches!(
        p.enqueue(secs(1), Request::NEW),
        Err(AcquireError::QuotaExhausted { .. })
    ));

    // A daily quota above what the engine takes is ignored.
    let mut p = Pacer::new(LimiterConfig {
        learn_limits: true,
        ..slow(600)
    })
    .unwrap();
    let too_many = crate::config::MAX_RPD + 1;
    p.learn_limits(
        Duration::ZERO,
        Learned {
            rpd: Some(too_many),
            ..Learned::default()
        },
    );
    assert_eq!(p.config().rpd, None);

    // Without `learn_limits` nothing is learned.
    let mut p = Pacer::new(slow(600)).unwrap();
    p.learn_limits(Duration::ZERO, two_a_day);
    assert_eq!(p.config().rpd, None);
}

/// The engine's side of a shared budget: the store's rate is the rate in force, a
/// refusal pauses the fleet through the store (not this engine), the store's pauses
/// teach the adaptive limit once confirmed, each resume starts a new epoch with the
/// curve counting from it (only after a pause that taught something), and the store's
/// hold keeps tickets back until it ends.
#[test]
fn a_shared_budget_follows_the_store() {
    let mut p = Pacer::new(LimiterConfig {
        rpm: 600,
        ..Default::default()
    })
    .unwrap();
    p.set_shared(true);
    assert_eq!(
        p.allowed_rate(),
        10.0,
        "shared: the ceiling, the store ramps"
    );
    p.observe_fleet_rate(4.0);
    assert_eq!(p.allowed_rate(), 4.0, "the fleet's rate");
    p.enqueue(Duration::ZERO, Request::NEW).unwrap();
    let (at, t) = next_issue(&mut p, Duration::ZERO);
    p.finish(at, &t, Outcome::RateLimited { retry_after: None });
    assert!(
        !p.is_paused(),
        "the store pauses the fleet, not this engine"
    );

    let first = p.epoch();
    p.fleet_paused(secs(1));
    p.shared_resumed(secs(2));
    assert_eq!(p.epoch(), first + 1, "a resume starts an epoch");
    p.fleet_paused(secs(3));
    p.shared_resumed(secs(33));
    let events: Vec<_> = p.drain_events().map(|(_, e)| e).collect();
    assert_eq!(
        events,
        [Event::Resume, Event::LearnedRate(BETA * 4.0), Event::Resume],
        "the second pause at the same rate confirmed the first"
    );
    assert!(
        (p.learned_rate(secs(33)) - BETA * 4.0).abs() < 1e-9,
        "30 s of pause are not 30 s of calm"
    );
    // A pause that teaches nothing (4 a second is far under the recovered ceiling)
    // leaves the curve's clock alone.
    p.fleet_paused(secs(100));
    p.shared_resumed(secs(130));
    assert_eq!(p.learned_rate(secs(130)), 10.0);

    p.set_shared(false);
    assert_eq!(p.allowed_rate(), 10.0, "alone again: from the ceiling");
    p.enqueue(secs(140), Request::NEW).unwrap();
    p.hold_shared(secs(140), secs(145));
    assert_eq!(p.poll(secs(140)), Step::WaitUntil(secs(145)));
}
