//! Every rate-limit header format the limiter reads, from OpenAI, Anthropic and plain
//! HTTP, with the exact duration each gives; malformed values are ignored with a debug
//! event, and no string at all makes a parser panic.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use ratellmiter_runtime::RateLimit;
use ratellmiter_runtime::headers::{
    Budget, RateLimitHeaders, classify, is_final_code, parse_http_date, parse_reset,
    parse_retry_after, parse_rfc3339,
};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

/// 2024-05-01T12:00:00Z, the moment the test responses arrive.
fn now() -> SystemTime {
    UNIX_EPOCH + S(1_714_564_800)
}

fn parse(headers: &[(&str, &str)]) -> RateLimitHeaders {
    let map: HashMap<&str, &str> = headers.iter().copied().collect();
    RateLimitHeaders::parse_at(|name| map.get(name).copied(), now())
}

#[test]
fn openai_durations_in_go_notation() {
    let cases = [
        ("6m0s", S(360)),
        ("1s", S(1)),
        ("250ms", MS(250)),
        ("1h2m3.5s", MS(3_723_500)),
        ("17.28s", MS(17_280)),
        ("0s", Duration::ZERO),
        ("0", Duration::ZERO),
        ("1m30s", S(90)),
        ("2h", S(7_200)),
        ("1.5ms", Duration::from_micros(1_500)),
        ("10us", Duration::from_micros(10)),
        ("10µs", Duration::from_micros(10)),
        ("7ns", Duration::from_nanos(7)),
        (".5s", MS(500)),
        ("3", S(3)),       // bare seconds, as some providers send
        ("0.25", MS(250)), // and with a fraction
    ];
    for (text, expected) in cases {
        assert_eq!(parse_reset(text), Some(expected), "{text}");
    }
}

#[test]
fn malformed_durations_are_refused() {
    for text in [
        "",
        "s",
        "-1s",
        "1x",
        "1.2.3s",
        "1 s",
        "ms",
        "1s2",
        "1m-2s",
        "abc",
        ".s",
        "1e3s",
        "99999999999999999999999999999h",
    ] {
        assert_eq!(parse_reset(text), None, "{text:?}");
    }
}

#[test]
fn retry_after_in_seconds_and_as_an_http_date() {
    assert_eq!(parse_retry_after("120", now()), Some(S(120)));
    assert_eq!(parse_retry_after("1.5", now()), Some(MS(1_500)));
    assert_eq!(parse_retry_after(" 7 ", now()), Some(S(7)));
    assert_eq!(
        parse_retry_after("Wed, 01 May 2024 12:00:42 GMT", now()),
        Some(S(42))
    );
    // A date already past means: now.
    assert_eq!(
        parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now()),
        Some(Duration::ZERO)
    );
    for bad in ["soon", "-5", "", "Wed, 01 May 2024 12:00:42 UTC", "1e3"] {
        assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
    }
}

#[test]
fn http_dates_are_checked_field_by_field() {
    let epoch = |secs| Some(UNIX_EPOCH + S(secs));
    assert_eq!(
        parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
        epoch(784_111_777)
    );
    assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), epoch(0));
    assert_eq!(
        parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT"),
        epoch(1_709_251_199)
    );
    for bad in [
        "Sun, 06 Nov 1994 08:49:37",      // no zone
        "Sun 06 Nov 1994 08:49:37 GMT",   // no comma
        "Sun, 6 Nov 1994 08:49:37 GMT",   // one-digit day
        "Sun, 06 Nob 1994 08:49:37 GMT",  // month
        "Sun, 06 Nov 94 08:49:37 GMT",    // two-digit year
        "Sun, 06 Nov 1994 24:00:00 GMT",  // hour
        "Sun, 06 Nov 1994 08:60:00 GMT",  // minute
        "Sun, 29 Feb 2023 08:00:00 GMT",  // not a leap year
        "Sun, 00 Nov 1994 08:49:37 GMT",  // day 0
        "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850, obsolete
        "Sun, 06 Nov 1994 08:49:37 GMT extra",
    ] {
        assert_eq!(parse_http_date(bad), None, "{bad:?}");
    }
}

#[test]
fn rfc3339_times_with_fractions_and_offsets() {
    let t = UNIX_EPOCH + S(1_714_564_830);
    assert_eq!(parse_rfc3339("2024-05-01T12:00:30Z"), Some(t));
    assert_eq!(parse_rfc3339("2024-05-01t12:00:30z"), Some(t));
    assert_eq!(parse_rfc3339("2024-05-01 12:00:30Z"), Some(t));
    assert_eq!(parse_rfc3339("2024-05-01T07:00:30-05:00"), Some(t));
    assert_eq!(parse_rfc3339("2024-05-01T12:00:30.5Z"), Some(t + MS(500)));
    assert_eq!(
        parse_rfc3339("2024-05-01T12:00:30.123456789123Z"),
        Some(t + Duration::from_nanos(123_456_789))
    );
    for bad in [
        "2024-05-01T12:00:30",       // no offset
        "2024-05-01T12:00:30+0200",  // offset without colon
        "2024-13-01T12:00:30Z",      // month
        "2024-05-32T12:00:30Z",      // day
        "2024-05-01T12:00:30.Z",     // empty fraction
        "2024-05-01T12:00Z",         // no seconds
        "24-05-01T12:00:30Z",        // short year
        "2024-05-01X12:00:30Z",      // separator
        "2024-05-01T12:00:30+24:00", // offset hour
        "2024-05-01T12:00:30Zjunk",
    ] {
        assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
    }
}

#[test]
fn openai_headers() {
    let h = parse(&[
        ("x-ratelimit-limit-requests", "500"),
        ("x-ratelimit-remaining-requests", "499"),
        ("x-ratelimit-reset-requests", "120ms"),
        ("x-ratelimit-limit-tokens", "200000"),
        ("x-ratelimit-remaining-tokens", "199000"),
        ("x-ratelimit-reset-tokens", "300ms"),
        ("retry-after-ms", "1250"),
        ("retry-after", "2"),
    ]);
    assert_eq!(
        h,
        RateLimitHeaders {
            retry_after: Some(MS(1_250)), // the millisecond header wins
            requests: Some(Budget {
                remaining: 499,
                reset: MS(120)
            }),
            tokens: Some(Budget {
                remaining: 199_000,
                reset: MS(300)
            }),
            input_tokens: None,
            output_tokens: None,
            limits: h.limits,
        }
    );
    assert_eq!(h.token_budget(), h.tokens);
    assert_eq!(h.limits.tokens, Some(200_000));
}

#[test]
fn anthropic_headers_with_rfc3339_resets() {
    let h = parse(&[
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("anthropic-ratelimit-requests-reset", "2024-05-01T12:00:01Z"),
        ("anthropic-ratelimit-tokens-remaining", "30000"),
        ("anthropic-ratelimit-tokens-reset", "2024-05-01T12:00:05Z"),
        ("anthropic-ratelimit-input-tokens-remaining", "20000"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2024-05-01T12:00:06Z",
        ),
        ("anthropic-ratelimit-output-tokens-remaining", "400"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "2024-05-01T12:00:00.5Z",
        ),
        ("retry-after", "3"),
    ]);
    let budget = |remaining, reset| Some(Budget { remaining, reset });
    assert_eq!(h.requests, budget(49, S(1)));
    assert_eq!(h.tokens, budget(30_000, S(5)));
    assert_eq!(h.input_tokens, budget(20_000, S(6)));
    assert_eq!(h.output_tokens, budget(400, MS(500)));
    assert_eq!(h.retry_after, Some(S(3)));
    // The output budget is the tightest: 400 tokens left.
    assert_eq!(h.token_budget(), h.output_tokens);
    // A reset already past is a budget that refills now.
    let past = parse(&[
        ("anthropic-ratelimit-requests-remaining", "0"),
        ("anthropic-ratelimit-requests-reset", "2024-05-01T11:59:00Z"),
    ]);
    assert_eq!(past.requests, budget(0, Duration::ZERO));
}

#[test]
fn malformed_values_are_ignored_and_logged() {
    let logs = capture_debug(|| {
        let h = parse(&[
            ("x-ratelimit-remaining-requests", "-3"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-remaining-tokens", "100"),
            ("x-ratelimit-reset-tokens", "soon"),
            ("anthropic-ratelimit-output-tokens-remaining", "5"),
            ("anthropic-ratelimit-output-tokens-reset", "yesterday"),
            ("retry-after-ms", "NaN"),
            ("retry-after", "in a while"),
        ]);
        // A budget needs both halves; a bad retry-after-ms falls back to retry-after.
        assert_eq!(h, RateLimitHeaders::default());
        let h = parse(&[("retry-after-ms", "oops"), ("retry-after", "4")]);
        assert_eq!(h.retry_after, Some(S(4)));
    });
    for header in [
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-output-tokens-reset",
        "retry-after-ms",
        "retry-after",
    ] {
        assert!(
            logs.contains(&format!("header=\"{header}\""))
                || logs.contains(&format!("header={header}")),
            "no debug event for {header}: {logs}"
        );
    }
    assert_eq!(
        logs.matches("ignored a malformed rate-limit header")
            .count(),
        6,
        "{logs}"
    );
}

#[test]
fn status_codes_and_final_codes() {
    let wait = Some(S(2));
    assert_eq!(classify(429, wait, false), Some(RateLimit::retry(wait)));
    assert_eq!(classify(529, None, false), Some(RateLimit::retry(None)));
    assert_eq!(classify(503, wait, false), Some(RateLimit::retry(wait)));
    assert_eq!(classify(503, None, false), None);
    assert_eq!(classify(500, wait, false), None);
    assert_eq!(classify(200, None, false), None);
    assert_eq!(classify(429, wait, true), Some(RateLimit::final_quota()));
    assert!(is_final_code("insufficient_quota"));
    assert!(is_final_code("enforced_spend_limit_reached"));
    assert!(!is_final_code("rate_limit_exceeded"));
}

/// Runs `f` with a subscriber that prints debug events into a string.
fn capture_debug(f: impl FnOnce()) -> String {
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = sink.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

proptest! {
    /// No string makes a parser panic; whatever they accept is a real duration or time.
    #[test]
    fn parsers_never_panic(value in any::<String>(), ascii in "[0-9a-zA-Z:.,+ µ-]{0,40}") {
        for v in [value.as_str(), ascii.as_str()] {
            let _ = parse_reset(v);
            let _ = parse_retry_after(v, now());
            let _ = parse_http_date(v);
            let _ = parse_rfc3339(v);
            let _ = parse(&[
                ("x-ratelimit-remaining-requests", v),
                ("x-ratelimit-reset-requests", v),
                ("anthropic-ratelimit-tokens-remaining", v),
                ("anthropic-ratelimit-tokens-reset", v),
                ("retry-after", v),
                ("retry-after-ms", v),
            ]);
        }
    }

    /// Go durations built from parts parse back to their sum.
    #[test]
    fn go_durations_round_trip(h in 0u64..100, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
        let text = format!("{h}h{m}m{s}.{ms:03}s");
        let expected = S(h * 3600 + m * 60 + s) + MS(ms);
        prop_assert_eq!(parse_reset(&text), Some(expected));
    }
}

/// A provider allowing 20 requests per sliding minute, whose every answer carries
/// OpenAI's `x-ratelimit-*-requests` headers, behind a limiter configured for 600 rpm:
/// the headers, parsed and reported through `current()`, hold the limiter at
/// `remaining: 0` until the reset, so it never meets a 429 — and still uses the whole
/// budget.
#[tokio::test(start_paused = true)]
async fn remaining_zero_and_a_reset_pause_the_limiter_without_a_429() {
    use std::sync::{Arc, Mutex};

    use ratellmiter_runtime::{BucketRateLimiter, IsRateLimit, RateLimit, current};
    use ratellmiter_sim::headers::format_duration;
    use ratellmiter_sim::{Decision, Provider, ProviderConfig};

    #[derive(Debug)]
    struct Refused;
    impl IsRateLimit for Refused {
        fn rate_limit(&self) -> Option<RateLimit> {
            Some(RateLimit::retry(None))
        }
    }

    let config = ProviderConfig {
        rpm: 20,
        quantum: S(60),
        ..Default::default()
    };
    let provider = Arc::new(Mutex::new(Provider::new(config).unwrap()));
    let limiter = BucketRateLimiter::new(600);
    let start = tokio::time::Instant::now();
    let minutes = 3;
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (limiter, provider) = (limiter.clone(), provider.clone());
            tokio::spawn(async move {
                while start.elapsed() < S(60 * minutes) {
                    let out: Result<(), Refused> = limiter
                        .run(|| async {
                            let decision =
                                provider.lock().unwrap().request(start.elapsed(), "m", 10);
                            // The response's headers as text, as a client receives them.
                            let state = decision.headers().requests;
                            let (remaining, reset) =
                                (state.remaining.to_string(), format_duration(state.reset));
                            current().observe_rate_limits(&RateLimitHeaders::parse(
                                |name| match name {
                                    "x-ratelimit-remaining-requests" => Some(remaining.as_str()),
                                    "x-ratelimit-reset-requests" => Some(reset.as_str()),
                                    _ => None,
                                },
                            ));
                            tokio::time::sleep(MS(200)).await;
                            match decision {
                                Decision::Accept(_) => Ok(()),
                                Decision::Reject(_) => Err(Refused),
                            }
                        })
                        .await;
                    out.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let m = provider.lock().unwrap().metrics();
    assert_eq!(m.rejected, 0, "{m:?}");
    assert_eq!(limiter.stats().rate_limited, 0);
    // 20 a minute for three minutes, and the calls that waited for the last reset.
    assert!((60..=65).contains(&m.accepted), "{m:?}");
}

/// The limits themselves, as a limiter that learns them takes them: Anthropic's
/// per-kind token limits, and Groq's request limit, which is per day (its reset is
/// hours away), beside its tokens per minute.
#[test]
fn limit_headers_of_anthropic_and_groq() {
    use ratellmiter_runtime::{BucketRateLimiter, current};
    let anthropic = parse(&[
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-tokens-limit", "8000"),
        ("anthropic-ratelimit-input-tokens-limit", "30000"),
        ("anthropic-ratelimit-output-tokens-limit", "8000"),
    ]);
    assert_eq!(anthropic.limits.requests, Some(50));
    assert_eq!(anthropic.limits.input_tokens, Some(30_000));
    assert_eq!(anthropic.limits.output_tokens, Some(8_000));
    let groq = parse(&[
        ("x-ratelimit-limit-requests", "14400"),
        ("x-ratelimit-remaining-requests", "14370"),
        ("x-ratelimit-reset-requests", "2m59.56s"),
        ("x-ratelimit-limit-tokens", "18000"),
        ("x-ratelimit-remaining-tokens", "17997"),
        ("x-ratelimit-reset-tokens", "7.66s"),
    ]);
    let learn = |h: RateLimitHeaders| {
        let limiter = BucketRateLimiter::builder()
            .rpm(10)
            .learn_limits(true)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(limiter.run(|| async {
            current().observe_rate_limits(&h);
            Ok::<_, std::io::Error>(())
        }))
        .unwrap();
        limiter.config()
    };
    let cfg = learn(anthropic);
    // Anthropic's `tokens` limit is the tightest of the two kinds: not a budget of its own.
    assert_eq!(
        (cfg.rpm, cfg.tpm, cfg.input_tpm, cfg.output_tpm),
        (50, None, Some(30_000), Some(8_000))
    );
    let cfg = learn(groq);
    assert_eq!(
        (cfg.rpm, cfg.rpd, cfg.tpm),
        (10, Some(14_400), Some(18_000))
    );
}
