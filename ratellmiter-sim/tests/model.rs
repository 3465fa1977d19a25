//! The provider model in virtual time: each limit with the numbers it must produce.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use ratellmiter_sim::{
    AccelerationLimit, Decision, Latency, PenaltyBox, Provider, ProviderConfig, RejectKind,
};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn provider(config: ProviderConfig) -> Provider {
    Provider::new(config).expect("valid config")
}

fn rpm(rpm: u32) -> ProviderConfig {
    ProviderConfig {
        rpm,
        ..Default::default()
    }
}

#[test]
fn rpm_600_accepts_10_in_any_second_and_refuses_the_11th() {
    let mut p = provider(rpm(600));
    for i in 0..10 {
        assert!(p.request(ms(i * 10), "m", 1).is_accept(), "request {i}");
    }
    let refused = p.request(ms(100), "m", 1);
    assert_eq!(refused.reject_kind(), Some(RejectKind::Requests));
    // The request at 0 leaves the window (t − 1 s, t] at t = 1 s.
    assert_eq!(refused.retry_after(), Some(ms(900)));
    assert_eq!(
        p.request(ms(999), "m", 1).reject_kind(),
        Some(RejectKind::Requests)
    );
    assert!(p.request(ms(1000), "m", 1).is_accept());
    assert!(p.request(ms(1010), "m", 1).is_accept());
    assert!(!p.request(ms(1015), "m", 1).is_accept());
}

#[test]
fn quantum_is_configurable_and_rounds_up() {
    // 600 rpm over 100 ms windows: ceil(600 × 0.1 / 60) = 1 per 100 ms.
    let mut p = provider(ProviderConfig {
        quantum: ms(100),
        ..rpm(600)
    });
    assert!(p.request(ms(0), "m", 1).is_accept());
    assert_eq!(p.request(ms(50), "m", 1).retry_after(), Some(ms(50)));
    assert!(p.request(ms(100), "m", 1).is_accept());
    // 100 rpm over 1 s: ceil(1.67) = 2.
    assert_eq!(rpm(100).requests_per_quantum(), 2);
}

#[test]
fn the_minute_window_caps_what_rounded_up_quanta_would_allow() {
    // 100 rpm quantizes to 2 per second, which would allow 120 a minute.
    let mut p = provider(rpm(100));
    for s in 0..50 {
        assert!(p.request(secs(s), "m", 1).is_accept());
        assert!(p.request(secs(s), "m", 1).is_accept());
    }
    let refused = p.request(secs(50), "m", 1);
    assert_eq!(refused.reject_kind(), Some(RejectKind::Requests));
    // The first request (at 0) leaves the minute at 60 s.
    assert_eq!(refused.retry_after(), Some(secs(10)));
    let headers = refused.headers().requests;
    assert_eq!((headers.limit, headers.remaining), (100, 0));
    assert_eq!(headers.reset, secs(10));
    assert!(p.request(secs(60), "m", 1).is_accept());
}

#[test]
fn tokens_are_quantized_too_and_oversized_requests_are_final() {
    // 6000 tpm: 100 tokens in any second.
    let mut p = provider(ProviderConfig {
        tpm: Some(6000),
        ..rpm(600)
    });
    assert!(p.request(ms(0), "m", 40).is_accept());
    assert!(p.request(ms(10), "m", 40).is_accept());
    let refused = p.request(ms(20), "m", 40);
    assert_eq!(refused.reject_kind(), Some(RejectKind::Tokens));
    // 40 more fit once the 40 at 0 leave, at 1 s.
    assert_eq!(refused.retry_after(), Some(ms(980)));
    let Decision::Accept(accepted) = p.request(ms(20), "m", 20) else {
        panic!("20 tokens fit exactly");
    };
    let tokens = accepted.headers.tokens.expect("tokens are limited");
    assert_eq!((tokens.limit, tokens.remaining), (6000, 5900));
    assert_eq!(accepted.tokens, 20);

    // Larger than a second's 100 but within the minute's 6000: it goes alone into a
    // quantum holding no other tokens, never "too large".
    let big = p.request(secs(5), "m", 101);
    assert!(big.is_accept(), "{big:?}");
    let after = p.request(ms(5_500), "m", 1);
    assert_eq!(after.reject_kind(), Some(RejectKind::Tokens));
    assert_eq!(
        after.retry_after(),
        Some(ms(500)),
        "once the 101 leave the second"
    );

    let too_large = p.request(secs(10), "m", 6001);
    assert_eq!(too_large.reject_kind(), Some(RejectKind::TooLarge));
    assert_eq!(too_large.retry_after(), None);
}

#[test]
fn a_tpm_smaller_than_a_request_per_second_still_serves_every_request_that_fits_the_minute() {
    // 600 tpm quantizes to 10 tokens a second; requests of 17 tokens used to be
    // refused as too large for ever. Now 35 of them fit each minute (595 tokens), one
    // per quantum, and waiting for the quantum or the minute always helps.
    let mut p = provider(ProviderConfig {
        tpm: Some(600),
        ..rpm(600)
    });
    let mut accepted = 0;
    let mut t = Duration::ZERO;
    while t < secs(60) {
        match p.request(t, "m", 17) {
            Decision::Accept(_) => accepted += 1,
            Decision::Reject(r) => {
                assert_ne!(r.kind, RejectKind::TooLarge, "at {t:?}");
                assert!(r.retry_after.is_some(), "waiting helps: {r:?}");
            }
        }
        t += ms(250);
    }
    assert_eq!(accepted, 35);
    assert_eq!(
        p.request(secs(120), "m", 601).reject_kind(),
        Some(RejectKind::TooLarge),
        "only more than the whole minute is too large"
    );
}

#[test]
fn outages_can_count_from_the_first_request() {
    // The first request comes 100 s after the server started; `+5..+35` is then
    // 105 s..135 s, whatever the server's age.
    let mut p = provider(ProviderConfig {
        outages_after_first_request: vec![secs(5)..secs(35)],
        outage_retry_after: true,
        ..rpm(600)
    });
    assert!(p.request(secs(100), "m", 1).is_accept());
    assert!(p.request(ms(104_999), "m", 1).is_accept());
    let Decision::Reject(refused) = p.request(secs(105), "m", 1) else {
        panic!("outage from 105 s");
    };
    assert_eq!(refused.kind, RejectKind::Outage);
    assert_eq!(refused.retry_after, Some(secs(30)), "it ends at 135 s");
    assert!(!p.request(ms(134_999), "m", 1).is_accept());
    assert!(p.request(secs(135), "m", 1).is_accept());
    // Another model's clock starts at its own first request.
    assert!(p.request(secs(106), "other", 1).is_accept());

    // A window from 0 refuses the first request too; one from the start and one from
    // the first request chain into one outage.
    let mut p = provider(ProviderConfig {
        outages: vec![secs(0)..secs(12)],
        outages_after_first_request: vec![secs(0)..secs(5)],
        outage_retry_after: true,
        ..rpm(600)
    });
    let Decision::Reject(refused) = p.request(secs(10), "m", 1) else {
        panic!("outage");
    };
    assert_eq!(
        refused.retry_after,
        Some(secs(5)),
        "12 s, then 10 s + 5 s = 15 s"
    );
}

#[test]
fn the_tpm_minute_window_caps_what_rounded_up_quanta_would_allow() {
    // 100 tpm quantizes to 2 tokens per second, which would allow 120 a minute.
    let mut p = provider(ProviderConfig {
        tpm: Some(100),
        ..rpm(600)
    });
    for s in 0..50 {
        assert!(p.request(secs(s), "m", 2).is_accept(), "second {s}");
    }
    let refused = p.request(secs(50), "m", 2);
    assert_eq!(refused.reject_kind(), Some(RejectKind::Tokens));
    // The 2 tokens at 0 leave the minute at 60 s.
    assert_eq!(refused.retry_after(), Some(secs(10)));
    assert!(p.request(secs(60), "m", 2).is_accept());
}

#[test]
fn acceleration_refuses_a_jump_from_a_quiet_second_under_the_minute_limit() {
    // 6000 rpm allows 100 per second, but from silence only the floor of 5 is allowed.
    let mut p = provider(ProviderConfig {
        acceleration: Some(AccelerationLimit {
            factor: 2.0,
            floor: 5,
        }),
        ..rpm(6000)
    });
    for i in 0..5 {
        assert!(p.request(ms(i), "m", 1).is_accept());
    }
    let refused = p.request(ms(5), "m", 1);
    assert_eq!(refused.reject_kind(), Some(RejectKind::Acceleration));
    // At 1000 ms the request at 0 moves to the previous second: 4 + 1 ≤ max(5, 2 × 1).
    assert_eq!(refused.retry_after(), Some(ms(995)));
    // At 1004 ms all 5 are in the previous second: 2 × 5 = 10 are allowed, not 11.
    for i in 0..10 {
        assert!(p.request(ms(1004), "m", 1).is_accept(), "request {i}");
    }
    assert_eq!(
        p.request(ms(1004), "m", 1).reject_kind(),
        Some(RejectKind::Acceleration)
    );
    assert_eq!(AccelerationLimit::for_rpm(6000).floor, 25);
}

#[test]
fn outages_refuse_everything_and_announce_their_end_only_when_configured() {
    let outages = vec![secs(10)..secs(20), secs(20)..secs(25)];
    let mut silent = provider(ProviderConfig {
        outages: outages.clone(),
        ..rpm(600)
    });
    assert!(silent.request(ms(9_999), "m", 1).is_accept());
    let Decision::Reject(refused) = silent.request(secs(10), "m", 1) else {
        panic!("outage");
    };
    assert_eq!(
        (refused.status, refused.kind, refused.retry_after),
        (429, RejectKind::Outage, None)
    );
    assert!(!silent.request(ms(24_999), "m", 1).is_accept());
    assert!(silent.request(secs(25), "m", 1).is_accept());

    let mut announced = provider(ProviderConfig {
        outages,
        outage_retry_after: true,
        outage_status: 529,
        ..rpm(600)
    });
    let Decision::Reject(refused) = announced.request(secs(12), "m", 1) else {
        panic!("outage");
    };
    // Back-to-back outages are one: it ends at 25 s.
    assert_eq!(refused.status, 529);
    assert_eq!(refused.retry_after, Some(secs(13)));
}

#[test]
fn the_penalty_box_refuses_everything_for_its_duration_and_is_not_extended() {
    let mut p = provider(ProviderConfig {
        penalty: Some(PenaltyBox {
            threshold: 3,
            window: secs(10),
            duration: secs(30),
        }),
        ..rpm(60)
    });
    assert!(p.request(ms(0), "m", 1).is_accept());
    assert_eq!(p.request(ms(100), "m", 1).retry_after(), Some(ms(900)));
    assert_eq!(p.request(ms(200), "m", 1).retry_after(), Some(ms(800)));
    // The third refusal puts the client in the box for 30 s, and says so.
    let third = p.request(ms(300), "m", 1);
    assert_eq!(third.reject_kind(), Some(RejectKind::Requests));
    assert_eq!(third.retry_after(), Some(secs(30)));
    // One request a second would be allowed again, but the box refuses everything.
    let refused = p.request(secs(1), "m", 1);
    assert_eq!(refused.reject_kind(), Some(RejectKind::Penalty));
    assert_eq!(refused.retry_after(), Some(ms(29_300)));
    for t in [5_000, 10_000, 30_299] {
        assert_eq!(
            p.request(ms(t), "m", 1).reject_kind(),
            Some(RejectKind::Penalty)
        );
    }
    assert!(p.request(ms(30_300), "m", 1).is_accept());
    // The refusals in the box were not counted: one more refusal does not re-trigger it.
    assert_eq!(
        p.request(ms(30_400), "m", 1).reject_kind(),
        Some(RejectKind::Requests)
    );
    assert!(p.request(ms(31_300), "m", 1).is_accept());
}

#[test]
fn retry_after_can_be_turned_off_and_insufficient_quota_never_carries_one() {
    let mut p = provider(ProviderConfig {
        retry_after: false,
        ..rpm(60)
    });
    assert!(p.request(ms(0), "m", 1).is_accept());
    let refused = p.request(ms(1), "m", 1);
    assert_eq!(
        (refused.reject_kind(), refused.retry_after()),
        (Some(RejectKind::Requests), None)
    );

    let mut p = provider(ProviderConfig {
        quota_exhausted: true,
        ..rpm(60)
    });
    let refused = p.request(ms(0), "m", 1);
    assert_eq!(
        (refused.reject_kind(), refused.retry_after()),
        (Some(RejectKind::InsufficientQuota), None)
    );
}

#[test]
fn headers_report_the_sliding_minute() {
    let mut p = provider(ProviderConfig {
        tpm: Some(10_000),
        ..rpm(600)
    });
    for t in [0, 100] {
        p.request(ms(t), "m", 30);
    }
    let h = *p.request(ms(200), "m", 40).headers();
    assert_eq!((h.requests.limit, h.requests.remaining), (600, 597));
    // Capacity returns when the request at 0 leaves the minute.
    assert_eq!(h.requests.reset, ms(59_800));
    let tokens = h.tokens.expect("tokens are limited");
    assert_eq!(
        (tokens.limit, tokens.remaining, tokens.reset),
        (10_000, 9_900, ms(59_800))
    );
    assert_eq!(
        provider(rpm(600)).request(ms(0), "m", 1).headers().tokens,
        None
    );
}

#[test]
fn latencies_are_deterministic_for_a_seed() {
    let config = |seed| ProviderConfig {
        rpm: 6000,
        latency: Latency::Uniform {
            min: ms(10),
            max: ms(100),
        },
        seed,
        ..Default::default()
    };
    let latencies = |seed| {
        let mut p = provider(config(seed));
        (0..50)
            .map(|i| match p.request(ms(i * 100), "m", 1) {
                Decision::Accept(a) => a.latency,
                Decision::Reject(r) => panic!("refused: {r:?}"),
            })
            .collect::<Vec<_>>()
    };
    let first = latencies(7);
    assert_eq!(first, latencies(7));
    assert_ne!(first, latencies(8));
    assert!(first.iter().all(|l| (ms(10)..=ms(100)).contains(l)));

    // Log-normal: the median of many draws is near the configured median.
    let mut p = provider(ProviderConfig {
        rpm: 6_000_000,
        latency: Latency::LogNormal {
            median: ms(200),
            sigma: 0.5,
        },
        seed: 1,
        ..Default::default()
    });
    let mut draws: Vec<Duration> = (0..2001)
        .filter_map(|i| match p.request(ms(i), "m", 1) {
            Decision::Accept(a) => Some(a.latency),
            Decision::Reject(_) => None,
        })
        .collect();
    assert_eq!(draws.len(), 2001);
    draws.sort();
    let median = draws[1000];
    assert!(ms(180) < median && median < ms(220), "median {median:?}");
}

#[test]
fn each_model_has_its_own_limits_and_unknown_models_the_default() {
    let mut p = Provider::new(rpm(600))
        .and_then(|p| p.with_model("small", rpm(60)))
        .and_then(|p| {
            p.with_model(
                "tokens",
                ProviderConfig {
                    tpm: Some(600),
                    ..rpm(600)
                },
            )
        })
        .expect("valid configs");
    assert_eq!(p.models(), ["small", "tokens"]);
    assert_eq!(p.config("unknown").rpm, 600);
    assert!(p.request(ms(0), "small", 1).is_accept());
    assert_eq!(
        p.request(ms(0), "small", 1).reject_kind(),
        Some(RejectKind::Requests)
    );
    assert_eq!(
        p.request(ms(0), "tokens", 601).reject_kind(),
        Some(RejectKind::TooLarge)
    );
    for _ in 0..10 {
        assert!(p.request(ms(0), "a", 1).is_accept());
        assert!(p.request(ms(0), "b", 1).is_accept());
    }
    assert!(!p.request(ms(0), "a", 1).is_accept());
    let m = p.metrics();
    assert_eq!((m.requests, m.accepted), (24, 21));
}

#[test]
fn time_going_backwards_is_taken_as_the_latest_now() {
    let mut p = provider(rpm(60));
    assert!(p.request(secs(5), "m", 1).is_accept());
    assert_eq!(p.request(secs(1), "m", 1).retry_after(), Some(secs(1)));
    assert_eq!(p.log()[1].at, secs(5));
}

#[test]
fn bad_configs_name_their_field() {
    let field = |config: ProviderConfig| Provider::new(config).unwrap_err().field();
    assert_eq!(field(rpm(0)), "rpm");
    assert_eq!(
        field(ProviderConfig {
            tpm: Some(0),
            ..rpm(1)
        }),
        "tpm"
    );
    assert_eq!(
        field(ProviderConfig {
            quantum: Duration::ZERO,
            ..rpm(1)
        }),
        "quantum"
    );
    assert_eq!(
        field(ProviderConfig {
            quantum: secs(61),
            ..rpm(1)
        }),
        "quantum"
    );
    let accel = |factor, floor| ProviderConfig {
        acceleration: Some(AccelerationLimit { factor, floor }),
        ..rpm(1)
    };
    assert_eq!(field(accel(0.5, 1)), "acceleration.factor");
    assert_eq!(field(accel(f64::NAN, 1)), "acceleration.factor");
    assert_eq!(field(accel(2.0, 0)), "acceleration.floor");
    assert_eq!(
        field(ProviderConfig {
            outages: vec![secs(5)..secs(5)],
            ..rpm(1)
        }),
        "outages"
    );
    assert_eq!(
        field(ProviderConfig {
            outage_status: 500,
            ..rpm(1)
        }),
        "outage_status"
    );
    let penalty = |threshold, window, duration| ProviderConfig {
        penalty: Some(PenaltyBox {
            threshold,
            window,
            duration,
        }),
        ..rpm(1)
    };
    assert_eq!(field(penalty(0, secs(1), secs(1))), "penalty.threshold");
    assert_eq!(field(penalty(1, Duration::ZERO, secs(1))), "penalty.window");
    assert_eq!(
        field(penalty(1, secs(1), Duration::ZERO)),
        "penalty.duration"
    );
    let latency = |latency| ProviderConfig { latency, ..rpm(1) };
    assert_eq!(
        field(latency(Latency::Uniform {
            min: ms(2),
            max: ms(1)
        })),
        "latency"
    );
    assert_eq!(
        field(latency(Latency::LogNormal {
            median: ms(1),
            sigma: -1.0
        })),
        "latency"
    );

    let err = Provider::new(rpm(1))
        .unwrap()
        .with_model("gpt-4o", rpm(0))
        .unwrap_err();
    assert_eq!((err.field(), err.model()), ("rpm", Some("gpt-4o")));
    assert_eq!(
        err.to_string(),
        "invalid `rpm` for model `gpt-4o`: must be at least 1"
    );
}

/// Under random traffic, every limit holds in the metrics, and every announced
/// retry-after is exact: the same request is refused 1 ns before it and accepted at it.
#[test]
fn retry_after_is_exact_and_limits_hold_under_random_traffic() {
    let mut p = provider(ProviderConfig {
        tpm: Some(12_000),
        acceleration: Some(AccelerationLimit {
            factor: 2.0,
            floor: 5,
        }),
        penalty: Some(PenaltyBox {
            threshold: 20,
            window: secs(5),
            duration: secs(2),
        }),
        ..rpm(600)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut now = Duration::ZERO;
    let mut checked = 0;
    for _ in 0..3000 {
        now += Duration::from_micros(rng.random_range(0..200_000));
        let tokens = rng.random_range(1..=40);
        let Decision::Reject(refused) = p.request(now, "m", tokens) else {
            continue;
        };
        let Some(retry_after) = refused.retry_after else {
            continue;
        };
        // Ask forks of the provider, as it is after the refusal, what happens then.
        let at = now + retry_after;
        assert!(
            p.clone().request(at, "m", tokens).is_accept(),
            "{refused:?} at {now:?}"
        );
        let just_before = p.clone().request(at - Duration::from_nanos(1), "m", tokens);
        assert!(!just_before.is_accept(), "{refused:?} at {now:?}");
        checked += 1;
    }
    assert!(checked > 100, "only {checked} retry-afters checked");
    let m = p.metrics();
    assert!(m.accepted > 500, "{m:?}");
    assert!(m.max_accepted_in_any_1s <= 10, "{m:?}");
    assert!(m.max_accepted_in_any_60s <= 600, "{m:?}");
    assert!(m.max_accepted_tokens_in_any_60s <= 12_000, "{m:?}");
    for kind in [
        RejectKind::Requests,
        RejectKind::Tokens,
        RejectKind::Acceleration,
        RejectKind::Penalty,
    ] {
        assert!(
            m.rejected_by_kind.contains_key(&kind),
            "no {kind:?} in {m:?}"
        );
    }
}
