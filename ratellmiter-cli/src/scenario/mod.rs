//! Workloads against the mock provider and the measures taken of them: the scenarios
//! of the benchmark (burst, over-demand, outages, an over-configured client, an
//! acceleration limit, three models, a token budget, and issue 14's budgets by kind:
//! input and output tokens, a daily quota, a cap in flight), run by each client either in
//! virtual time against the pure model or over HTTP against the mock server.

pub mod clients;
pub mod http;
mod openai_client;
pub mod rate_llmiter;
mod report;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use parking_lot::Mutex;
use ratellmiter_sim::{AccelerationLimit, Latency, Provider, ProviderConfig};
use tokio::sync::Semaphore;
use tokio::time::Instant;

pub use clients::{ClientKind, Configured, ModelClient};
pub use report::{BudgetUse, Row, SHORT_GAP, markdown_table};
pub use transport::{ApiError, Reply, Transport};

/// The scenarios, by name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScenarioKind {
    /// Every call arrives at once on an idle client; the limit is known.
    Burst,
    /// Calls keep arriving at 1.5× the limit for a minute.
    OverDemand,
    /// Steady demand at the limit; the server refuses everything from 30 s to 45 s and
    /// says when it ends (`retry-after`).
    Outage,
    /// The same outage, unannounced.
    OutageSilent,
    /// The client is configured at twice what the server really allows.
    OverConfigured,
    /// The client is configured 10 % above what the server allows, which refuses the
    /// excess at once with a `retry-after` of the time to its next free slot (OpenAI's
    /// fast 429s).
    OverConfigured10,
    /// The server also refuses sharp jumps in traffic (Anthropic's acceleration limit).
    Acceleration,
    /// Three models with different limits, bursting at once.
    ThreeModels,
    /// Calls of 500 tokens against a token-per-minute limit that binds before the
    /// request limit.
    Tokens,
    /// An Anthropic-style model (50 RPM, 30 000 input and 8 000 output tokens a
    /// minute): 150 calls of about 2 000 input tokens, each reserving 1 024 output
    /// tokens and using about 300. The input budget binds (15 calls a minute).
    InputOutput,
    /// 110 calls against 100 requests a day, the day ending 14 h after the start (the
    /// client's wall clock reads 10:00 UTC): 100 go out, the rest cannot today.
    DailyQuota,
    /// 160 calls of 10 s each against a server that refuses a 9th call in flight.
    InFlight,
}

impl ScenarioKind {
    /// Every scenario, in table order.
    pub const ALL: [ScenarioKind; 12] = [
        ScenarioKind::Burst,
        ScenarioKind::OverDemand,
        ScenarioKind::Outage,
        ScenarioKind::OutageSilent,
        ScenarioKind::OverConfigured,
        ScenarioKind::OverConfigured10,
        ScenarioKind::Acceleration,
        ScenarioKind::ThreeModels,
        ScenarioKind::Tokens,
        ScenarioKind::InputOutput,
        ScenarioKind::DailyQuota,
        ScenarioKind::InFlight,
    ];

    /// Whether `client` can run this scenario: async-openai's stack sends one total
    /// per call (`max_tokens`), so it cannot give input and output apart; and a
    /// spent quota cannot be told apart from other errors through it.
    pub fn runs(self, client: ClientKind) -> bool {
        let stack = matches!(
            client,
            ClientKind::AsyncOpenai | ClientKind::AsyncOpenaiLayer
        );
        match self {
            ScenarioKind::InputOutput => !stack,
            ScenarioKind::DailyQuota => client != ClientKind::AsyncOpenaiLayer,
            _ => true,
        }
    }
}

/// The daily-quota scenario's midnight UTC before the start (day 20 000 of the epoch),
/// and the start, 10:00 UTC: the day ends 14 h in.
const QUOTA_DAY_START: Duration = Duration::from_secs(20_000 * 86_400);
const QUOTA_OPENED: Duration = Duration::from_secs(10 * 3_600);

/// One model of a scenario: what the server enforces and what the client is told.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// The model name.
    pub name: String,
    /// The server's real limits.
    pub server: ProviderConfig,
    /// The limits the client is configured with.
    pub configured: Configured,
}

/// One call of a workload.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallSpec {
    /// Index into [`Scenario::models`].
    pub model: usize,
    /// When the call arrives, since the scenario start.
    pub arrive: Duration,
    /// Its tokens (their total, for a call that gives them by kind).
    pub tokens: u64,
    /// Of them, input tokens, when the call gives them by kind (else 0).
    pub input: u64,
    /// Output tokens reserved (`max_tokens`), when the call gives them by kind.
    pub reserve: u64,
    /// Output tokens the answer uses.
    pub used_output: u64,
}

impl CallSpec {
    /// A call of `tokens` tokens in total, none given by kind.
    fn total(model: usize, arrive: Duration, tokens: u64) -> Self {
        CallSpec {
            model,
            arrive,
            tokens,
            input: 0,
            reserve: 0,
            used_output: 0,
        }
    }
}

/// A workload against a provider.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Which scenario.
    pub kind: ScenarioKind,
    /// Its models.
    pub models: Vec<ModelSpec>,
    /// Its calls, by arrival.
    pub calls: Vec<CallSpec>,
    /// Calls ÷ the server's true rate (of the slowest model, for several).
    pub ideal: Duration,
    /// The outage, if the scenario has one.
    pub outage: Option<std::ops::Range<Duration>>,
}

/// Tokens each call of a scenario uses (only the token scenario limits them).
const CALL_TOKENS: u64 = 500;

/// The server every scenario starts from: `rpm` quantized per second, seeded
/// log-normal latency around 300 ms.
fn server(rpm: u32) -> ProviderConfig {
    ProviderConfig {
        rpm,
        latency: Latency::LogNormal {
            median: Duration::from_millis(300),
            sigma: 0.5,
        },
        seed: 7,
        ..Default::default()
    }
}

fn burst(model: usize, n: usize) -> impl Iterator<Item = CallSpec> {
    (0..n).map(move |_| CallSpec::total(model, Duration::ZERO, CALL_TOKENS))
}

/// `per_sec` calls a second, evenly, for `secs` seconds.
fn steady(per_sec: f64, secs: u64) -> Vec<CallSpec> {
    let n = (per_sec * secs as f64) as usize;
    (0..n)
        .map(|i| CallSpec::total(0, Duration::from_secs_f64(i as f64 / per_sec), CALL_TOKENS))
        .collect()
}

fn secs_for(calls: usize, rpm: u32) -> Duration {
    Duration::from_secs_f64(calls as f64 * 60.0 / rpm as f64)
}

impl Scenario {
    /// The scenario `kind` at a server limit of `rpm`, with `calls` calls where the
    /// scenario is a burst (the others derive their size from `rpm`).
    pub fn new(kind: ScenarioKind, rpm: u32, calls: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(rpm >= 3, "invalid `--rpm`: must be at least 3, got {rpm}");
        anyhow::ensure!(calls >= 1, "invalid `--calls`: must be at least 1");
        let known = |server: ProviderConfig| ModelSpec {
            name: "gpt-4o".into(),
            configured: Configured {
                rpm: server.rpm,
                tpm: server.tpm,
                ..Configured::default()
            },
            server,
        };
        let per_sec = rpm as f64 / 60.0;
        let outage = Duration::from_secs(30)..Duration::from_secs(45);
        let scenario = match kind {
            ScenarioKind::Burst => Scenario {
                kind,
                models: vec![known(server(rpm))],
                calls: burst(0, calls).collect(),
                ideal: secs_for(calls, rpm),
                outage: None,
            },
            ScenarioKind::OverDemand => {
                let calls = steady(1.5 * per_sec, 60);
                Scenario {
                    kind,
                    models: vec![known(server(rpm))],
                    ideal: secs_for(calls.len(), rpm),
                    calls,
                    outage: None,
                }
            }
            ScenarioKind::Outage | ScenarioKind::OutageSilent => {
                let calls = steady(per_sec, 90);
                Scenario {
                    kind,
                    models: vec![known(ProviderConfig {
                        outages: vec![outage.clone()],
                        outage_retry_after: kind == ScenarioKind::Outage,
                        ..server(rpm)
                    })],
                    // Nothing can be sent while the server refuses everything.
                    ideal: secs_for(calls.len(), rpm) + (outage.end - outage.start),
                    calls,
                    outage: Some(outage),
                }
            }
            ScenarioKind::OverConfigured => {
                let real = rpm / 2;
                Scenario {
                    kind,
                    models: vec![ModelSpec {
                        configured: Configured {
                            rpm,
                            ..Configured::default()
                        },
                        ..known(server(real))
                    }],
                    calls: burst(0, calls).collect(),
                    ideal: secs_for(calls, real),
                    outage: None,
                }
            }
            ScenarioKind::OverConfigured10 => Scenario {
                kind,
                models: vec![ModelSpec {
                    configured: Configured {
                        rpm: rpm + rpm / 10,
                        ..Configured::default()
                    },
                    ..known(server(rpm))
                }],
                calls: burst(0, calls).collect(),
                ideal: secs_for(calls, rpm),
                outage: None,
            },
            ScenarioKind::Acceleration => Scenario {
                kind,
                models: vec![known(ProviderConfig {
                    acceleration: Some(AccelerationLimit::for_rpm(rpm)),
                    ..server(rpm)
                })],
                calls: burst(0, calls).collect(),
                ideal: secs_for(calls, rpm),
                outage: None,
            },
            ScenarioKind::ThreeModels => {
                let rpms = [rpm, rpm / 2, rpm / 5];
                let each = calls / 2;
                Scenario {
                    kind,
                    models: rpms
                        .iter()
                        .zip(["gpt-4o", "gpt-4o-mini", "o1"])
                        .map(|(&r, name)| ModelSpec {
                            name: name.into(),
                            ..known(server(r))
                        })
                        .collect(),
                    calls: (0..3).flat_map(|m| burst(m, each)).collect(),
                    ideal: secs_for(each, rpms[2]),
                    outage: None,
                }
            }
            ScenarioKind::Tokens => {
                // The token limit allows a fifth of the request limit's calls.
                let tpm = u64::from(rpm) * CALL_TOKENS / 5;
                let n = calls / 2;
                Scenario {
                    kind,
                    models: vec![known(ProviderConfig {
                        tpm: Some(tpm),
                        ..server(rpm)
                    })],
                    calls: burst(0, n).collect(),
                    ideal: Duration::from_secs_f64(
                        (n as u64 * CALL_TOKENS) as f64 * 60.0 / tpm as f64,
                    ),
                    outage: None,
                }
            }
            ScenarioKind::InputOutput => {
                const ITPM: u64 = 30_000;
                // 1 900 to 2 100 input tokens, counted before sending; 250 to 350 used.
                let calls: Vec<CallSpec> = (0..150u64)
                    .map(|i| {
                        let input = 1_900 + (i * 7_919) % 201;
                        CallSpec {
                            model: 0,
                            arrive: Duration::ZERO,
                            tokens: input + 1_024,
                            input,
                            reserve: 1_024,
                            used_output: 250 + (i * 104_729) % 101,
                        }
                    })
                    .collect();
                let input: u64 = calls.iter().map(|c| c.input).sum();
                let server = ProviderConfig {
                    input_tpm: Some(ITPM),
                    output_tpm: Some(8_000),
                    ..server(50)
                };
                Scenario {
                    kind,
                    models: vec![ModelSpec {
                        name: "claude-sonnet".into(),
                        configured: Configured {
                            rpm: 50,
                            input_tpm: server.input_tpm,
                            output_tpm: server.output_tpm,
                            ..Configured::default()
                        },
                        server,
                    }],
                    ideal: Duration::from_secs_f64(input as f64 * 60.0 / ITPM as f64),
                    calls,
                    outage: None,
                }
            }
            ScenarioKind::DailyQuota => {
                let server = ProviderConfig {
                    rpd: Some(100),
                    first_day_end: Duration::from_secs(86_400) - QUOTA_OPENED,
                    ..server(60)
                };
                let opened = std::time::SystemTime::UNIX_EPOCH + QUOTA_DAY_START + QUOTA_OPENED;
                Scenario {
                    kind,
                    models: vec![ModelSpec {
                        name: "gemini-flash".into(),
                        configured: Configured {
                            rpm: 60,
                            rpd: Some((100, opened)),
                            ..Configured::default()
                        },
                        server,
                    }],
                    calls: burst(0, 110).collect(),
                    // The 100 the day allows; the other 10 cannot go today.
                    ideal: secs_for(100, 60),
                    outage: None,
                }
            }
            ScenarioKind::InFlight => {
                let server = ProviderConfig {
                    max_concurrent: Some(8),
                    latency: Latency::Fixed(Duration::from_secs(10)),
                    ..server(600)
                };
                Scenario {
                    kind,
                    models: vec![ModelSpec {
                        name: "mistral-large".into(),
                        configured: Configured {
                            rpm: 600,
                            max_in_flight: Some(8),
                            ..Configured::default()
                        },
                        server,
                    }],
                    calls: burst(0, 160).collect(),
                    // 8 calls every 10 s.
                    ideal: Duration::from_secs(200),
                    outage: None,
                }
            }
        };
        Ok(scenario)
    }

    /// The pure provider model of this scenario's server.
    pub fn provider(&self) -> anyhow::Result<Provider> {
        let mut provider = Provider::new(self.models[0].server.clone())?;
        for m in &self.models {
            provider = provider.with_model(m.name.clone(), m.server.clone())?;
        }
        Ok(provider)
    }
}

/// What a client observed of a workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// When the last call returned, since the start.
    pub completion: Duration,
    /// Calls that returned an error (retries ran out).
    pub failed: u64,
    /// Of them, calls the client failed itself because the day's quota was spent.
    pub quota_exhausted: u64,
    /// When the last failing call returned.
    pub last_failure: Option<Duration>,
}

/// The clients of `kind` for each model of `scenario`. Must run inside the tokio
/// runtime that drives the calls (limiters read its clock).
pub fn model_clients(scenario: &Scenario, kind: ClientKind) -> anyhow::Result<Vec<ModelClient>> {
    scenario
        .models
        .iter()
        .map(|m| ModelClient::new(kind, m.configured))
        .collect()
}

/// Runs every call of `scenario` through `clients` (one per model) on `transport`, at
/// most `concurrency` at once, each call starting at its arrival time; `on_done` is
/// called as each ends, with whether it succeeded.
pub async fn run_workload(
    scenario: &Scenario,
    clients: &[ModelClient],
    transport: &Transport,
    concurrency: usize,
    on_done: impl Fn(bool) + Send + Sync + 'static,
) -> anyhow::Result<Observed> {
    let start = Instant::now();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let on_done = Arc::new(on_done);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, call) in scenario.calls.iter().copied().enumerate() {
        let client = clients[call.model].clone();
        let model = scenario.models[call.model].name.clone();
        let (transport, permits) = (transport.clone(), permits.clone());
        let (on_done, observed) = (on_done.clone(), observed.clone());
        tasks.spawn(async move {
            tokio::time::sleep_until(start + call.arrive).await;
            let _permit = permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let out = client.call(&transport, &model, &call, i as u64).await;
            let ok = out.is_ok();
            let mut o = observed.lock();
            let at = start.elapsed();
            o.completion = o.completion.max(at);
            o.failed += u64::from(!ok);
            if let Err(e) = &out {
                o.quota_exhausted += u64::from(*e == ApiError::QuotaExhausted);
                o.last_failure = o.last_failure.max(Some(at));
            }
            drop(o);
            on_done(ok);
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a call panicked")?;
    }
    let observed = observed.lock().clone();
    Ok(observed)
}

/// Runs `scenario` with client `kind` in virtual time against the pure model: minutes
/// of traffic in milliseconds, the same result every time.
pub fn run_virtual(scenario: &Scenario, kind: ClientKind) -> anyhow::Result<Row> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    rt.block_on(async {
        let provider = Arc::new(Mutex::new(scenario.provider()?));
        let transport = Transport::Model {
            provider: provider.clone(),
            origin: Instant::now(),
        };
        let clients = model_clients(scenario, kind)?;
        let observed =
            run_workload(scenario, &clients, &transport, scenario.calls.len(), |_| {}).await?;
        let log = provider.lock().log().to_vec();
        Ok(Row::new(scenario, kind, &observed, &log))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: ScenarioKind, client: ClientKind, calls: usize) -> Row {
        run_virtual(&Scenario::new(kind, 600, calls).unwrap(), client).unwrap()
    }

    #[test]
    fn a_known_limit_is_never_exceeded_and_the_burst_ends_near_ideal() {
        // BENCHMARKS.md's burst: 600 calls at 600 rpm, ideal 60 s. The target is 1.05 ×
        // ideal; measured 1.052 (the slow start costs about 2.8 s, the last answer's
        // latency 0.3 s), marked missed there, so this pins the measured figure.
        let row = run(ScenarioKind::Burst, ClientKind::Ratellmiter, 600);
        assert_eq!((row.refused, row.failed), (0, 0));
        assert_eq!(row.max_1s, [10], "ceil(600 / 60) per second");
        assert!(row.max_60s[0] <= 600);
        assert!(row.vs_ideal <= 1.053, "{row:?}");
        assert!(row.gap_cv.unwrap() < 0.5, "{row:?}");
    }

    /// async-openai's default retries (three, with backoff) give up on most of a burst
    /// of 300 against 600 rpm; through ratellmiter's layer the same client gets every
    /// call answered with no refusal, exactly as ratellmiter's own row.
    #[test]
    fn async_openai_drops_most_of_a_burst_alone_and_none_through_the_layer() {
        let own = run(ScenarioKind::Burst, ClientKind::AsyncOpenai, 300);
        assert!(own.failed > 200, "{own:?}");
        assert!(own.refused > 3 * own.failed, "{own:?}");
        let layer = run(ScenarioKind::Burst, ClientKind::AsyncOpenaiLayer, 300);
        let ours = run(ScenarioKind::Burst, ClientKind::Ratellmiter, 300);
        assert_eq!((layer.refused, layer.failed), (0, 0));
        assert_eq!(
            (layer.completion, layer.max_1s.clone()),
            (ours.completion, ours.max_1s)
        );
    }

    #[test]
    fn backoff_alone_floods_the_server_with_refused_calls() {
        let row = run(ScenarioKind::Burst, ClientKind::Backoff, 100);
        assert_eq!(row.failed, 0);
        assert!(row.refused > 100, "{row:?}");
        assert_eq!(row.max_1s, [100], "the whole burst in the first second");
    }

    #[test]
    fn the_governor_bucket_reads_tokio_s_paused_clock() {
        // governor at 600 rpm lets its whole bucket (600) go at once, then one per
        // 100 ms of virtual time: 700 calls need 10 s more, not a real-time wait.
        let row = run(ScenarioKind::Burst, ClientKind::Governor, 700);
        assert_eq!(row.failed, 0);
        assert!(row.refused > 0);
        assert!(row.completion >= Duration::from_secs(10), "{row:?}");
    }

    #[test]
    fn after_an_announced_outage_the_first_success_comes_within_2_s() {
        let row = run(ScenarioKind::Outage, ClientKind::Ratellmiter, 600);
        assert!(row.outage_lag.unwrap() <= Duration::from_secs(2), "{row:?}");
    }

    #[test]
    fn after_a_silent_outage_the_first_success_comes_within_one_probe_interval() {
        // Probes at 10 s, then 15 s, 22.5 s… after the first refusal: the outage
        // (30 s to 45 s) ends within the second interval.
        // The target is one probe interval (10 s); measured 10.055 s in virtual time,
        // 55 ms over, marked missed in BENCHMARKS.md, so this pins the measured figure.
        let row = run(ScenarioKind::OutageSilent, ClientKind::Ratellmiter, 600);
        assert!(
            row.outage_lag.unwrap() <= Duration::from_millis(10_055),
            "{row:?}"
        );
    }

    #[test]
    fn the_token_budget_avoids_the_429s_rate_only_pacing_gets() {
        let ours = run(ScenarioKind::Tokens, ClientKind::Ratellmiter, 200);
        let rate_only = run(ScenarioKind::Tokens, ClientKind::RateLlmiter, 200);
        assert_eq!(ours.refused, 0, "{ours:?}");
        assert!(rate_only.refused > 0, "{rate_only:?}");
        assert!(ours.completion < rate_only.completion);
    }

    /// Issue 14's three scenarios, as BENCHMARKS.md shows them (the runs are
    /// deterministic, so the figures are exact): no refusal in any; the input budget
    /// at ≥ 90 % every whole minute once warm; the 10 calls a spent day cannot take
    /// fail as `QuotaExhausted` the moment the 100th goes out; 8 calls of 10 s in
    /// flight give 0.8 calls a second.
    #[test]
    fn budgets_by_kind_are_used_without_refusals() {
        let io = run(ScenarioKind::InputOutput, ClientKind::Ratellmiter, 1);
        assert_eq!((io.refused, io.failed), (0, 0), "{io:?}");
        let Some(BudgetUse::InputPerMinute(share)) = io.budget else {
            panic!("{io:?}")
        };
        assert_eq!(format!("{share:.3}"), "0.930", "{io:?}");
        assert_eq!(format!("{:.1}", io.completion.as_secs_f64()), "650.7");

        let day = run(ScenarioKind::DailyQuota, ClientKind::Ratellmiter, 1);
        assert_eq!((day.refused, day.failed), (0, 10), "{day:?}");
        assert_eq!(
            day.budget,
            Some(BudgetUse::Quota {
                sent: 100,
                exhausted: 10,
                fail_lag: Some(Duration::ZERO),
            })
        );

        let cap = run(ScenarioKind::InFlight, ClientKind::Ratellmiter, 1);
        assert_eq!((cap.refused, cap.failed), (0, 0), "{cap:?}");
        assert_eq!(cap.budget, Some(BudgetUse::CallsPerSecond(0.8)), "{cap:?}");
    }

    #[test]
    fn bad_sizes_are_named() {
        let err = Scenario::new(ScenarioKind::Burst, 0, 10).unwrap_err();
        assert!(err.to_string().contains("--rpm"), "{err}");
        let err = Scenario::new(ScenarioKind::Burst, 600, 0).unwrap_err();
        assert!(err.to_string().contains("--calls"), "{err}");
    }

    #[test]
    fn the_table_has_one_line_per_run() {
        let rows = [
            run(ScenarioKind::ThreeModels, ClientKind::Ratellmiter, 20),
            run(ScenarioKind::ThreeModels, ClientKind::RateLlmiter, 20),
        ];
        let table = markdown_table(&rows);
        assert_eq!(table.lines().count(), 4);
        assert!(table.contains("| three-models | ratellmiter |"), "{table}");
        // Per model, in scenario order, never above 600, 300 and 120 rpm allow.
        for (got, limit) in rows[0].max_1s.iter().zip([10, 5, 2]) {
            assert!((1..=limit).contains(got), "{:?}", rows[0]);
        }
    }
}
