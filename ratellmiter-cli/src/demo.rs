//! `llmiter demo`: the README's first command. Starts the mock provider on
//! 127.0.0.1, sends a burst of real HTTP chat completions through ratellmiter (and,
//! with `--compare`, through exponential backoff, a governor token bucket and
//! rateLLMiter's own algorithm too, each against its own server, saying what separates
//! each client from the one above it), shows each client's progress every second,
//! prints the side-by-side table, and writes the flow log and its graph.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ratellmiter_runtime::{MonitorConfig, monitor};
use ratellmiter_sim::MockServer;
use tokio::time::Instant;

use crate::args::{Cli, DemoArgs};
use crate::console::Console;
use crate::scenario::{
    ClientKind, ModelClient, Row, Scenario, ScenarioKind, Transport, markdown_table, model_clients,
    run_virtual, run_workload,
};

/// Runs the demo.
pub fn run(args: &DemoArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.concurrency >= 1,
        "invalid `--concurrency`: must be at least 1"
    );
    let scenario = Scenario::new(args.scenario, args.rpm, args.calls)?;
    let clients: &[ClientKind] = if args.compare {
        &ClientKind::ALL
    } else {
        &[ClientKind::Ratellmiter]
    };
    introduce(&scenario, clients, args, console)?;
    let rows = if args.fast {
        clients
            .iter()
            .map(|&c| run_virtual(&scenario, c))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(over_http(&scenario, clients, args, console))?
    };
    console.out.write_all(markdown_table(&rows).as_bytes())?;
    if !args.fast {
        graph(&scenario, args, console)?;
    }
    Ok(())
}

/// Says what runs: the workload, the server's real limits against what the clients are
/// told, and with several clients what separates each from the one above it.
fn introduce(
    scenario: &Scenario,
    clients: &[ClientKind],
    args: &DemoArgs,
    console: &mut Console<'_>,
) -> anyhow::Result<()> {
    let limits: Vec<String> = scenario
        .models
        .iter()
        .map(|m| {
            format!(
                "{} allows {} rpm, the clients are told {}",
                m.name, m.server.rpm, m.configured.rpm
            )
        })
        .collect();
    let in_flight = if args.fast {
        "every call in flight at once (virtual time)".to_owned()
    } else {
        format!("at most {} in flight per client", args.concurrency)
    };
    writeln!(
        console.out,
        "{} calls of scenario `{}`, {in_flight}; {}; the ideal completion is {:.0} s.",
        scenario.calls.len(),
        scenario_name(args.scenario),
        limits.join("; "),
        scenario.ideal.as_secs_f64()
    )?;
    if clients.len() > 1 {
        for kind in clients {
            writeln!(console.out, "- {}: {}", kind.label(), kind.difference())?;
        }
    }
    Ok(())
}

fn scenario_name(kind: ScenarioKind) -> String {
    clap::ValueEnum::to_possible_value(&kind)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// One client's run over HTTP: its mock server and the calls done so far.
struct HttpRun {
    kind: ClientKind,
    server: MockServer,
    done: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
}

/// Runs every client at once, each against its own mock server, reporting progress
/// each second: a bar per client on a terminal, else a line on `console.err`.
/// ratellmiter's limiters are registered with the monitor for the flow log.
async fn over_http(
    scenario: &Scenario,
    kinds: &[ClientKind],
    args: &DemoArgs,
    console: &mut Console<'_>,
) -> anyhow::Result<Vec<Row>> {
    monitor().set_config(MonitorConfig::default().log_dir(&args.dir));
    let bars = std::io::stderr().is_terminal().then(MultiProgress::new);
    let style = ProgressStyle::with_template(
        "{prefix:>20} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
    )?;
    let total = scenario.calls.len() as u64;
    let mut runs = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, &kind) in kinds.iter().enumerate() {
        let clients = model_clients(scenario, kind)?;
        if kind == ClientKind::Ratellmiter {
            for (m, client) in scenario.models.iter().zip(&clients) {
                if let ModelClient::Limiter { limiter, .. } = client {
                    monitor().add_service(&m.name, limiter.clone())?;
                }
            }
        }
        let server = ratellmiter_sim::spawn(scenario.provider()?, ([127, 0, 0, 1], 0).into())
            .await
            .context("cannot start the mock provider")?;
        let transport = Transport::Http {
            client: reqwest::Client::new(),
            base_url: server.base_url(),
        };
        let bar = bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(total));
            bar.set_style(style.clone());
            bar.set_prefix(kind.label());
            bar
        });
        let done = Arc::new(AtomicU64::new(0));
        let (scenario, counter) = (scenario.clone(), done.clone());
        let concurrency = args.concurrency;
        tasks.spawn(async move {
            let observed = run_workload(&scenario, &clients, &transport, concurrency, move |_| {
                counter.fetch_add(1, Ordering::Relaxed);
            })
            .await?;
            anyhow::Ok((index, observed))
        });
        runs.push(HttpRun {
            kind,
            server,
            done,
            bar,
        });
    }
    monitor().start();
    let start = Instant::now();
    let mut observed = vec![None; runs.len()];
    let mut each_second = tokio::time::interval(Duration::from_secs(1));
    each_second.tick().await;
    loop {
        tokio::select! {
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (index, o) = joined.context("a client panicked")??;
                observed[index] = Some(o);
            }
            _ = each_second.tick() => report(&runs, total, start.elapsed(), console)?,
        }
    }
    report(&runs, total, start.elapsed(), console)?;
    monitor().stop();
    let mut rows = Vec::new();
    for (run, observed) in runs.into_iter().zip(observed) {
        let observed = observed.context("a client's run did not report")?;
        if let Some(bar) = &run.bar {
            bar.finish();
        }
        rows.push(Row::new(scenario, run.kind, &observed, &run.server.log()));
        run.server.shutdown().await?;
    }
    Ok(rows)
}

/// Progress after `elapsed`: each client's calls done of `total` and the 429s its
/// server answered, on the bars, or without a terminal as one line on `console.err`.
fn report(
    runs: &[HttpRun],
    total: u64,
    elapsed: Duration,
    console: &mut Console<'_>,
) -> anyhow::Result<()> {
    let mut line = Vec::new();
    for run in runs {
        let done = run.done.load(Ordering::Relaxed);
        let refused = run.server.metrics().rejected;
        match &run.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(format!("{refused} × 429"));
            }
            None => line.push(format!(
                "{}: {done}/{total} done, {refused} × 429",
                run.kind.label()
            )),
        }
    }
    if !line.is_empty() {
        writeln!(
            console.err,
            "[{:>4.0} s] {}",
            elapsed.as_secs_f64(),
            line.join(" | ")
        )?;
    }
    Ok(())
}

/// Draws ratellmiter's flow with the graph command, from the log just written.
fn graph(scenario: &Scenario, args: &DemoArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let dir = args.dir.to_string_lossy().into_owned();
    let mut argv = vec!["llmiter".to_owned(), "--dir".into(), dir];
    if scenario.models.len() > 1 {
        argv.push("--compare".into());
    } else {
        argv.extend(["--name".into(), scenario.models[0].name.clone()]);
    }
    let cli = Cli::try_parse_from(argv)?;
    write!(console.out, "flow graph: ")?;
    crate::graph::run(&cli.graph, console)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `llmiter demo args` printed: results, then progress and warnings.
    fn demo(args: &[&str]) -> anyhow::Result<(String, String)> {
        let cli = Cli::try_parse_from(["llmiter", "demo"].iter().chain(args))?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        crate::run(
            cli,
            &mut Console {
                out: &mut out,
                err: &mut err,
            },
        )?;
        Ok((String::from_utf8(out)?, String::from_utf8(err)?))
    }

    #[test]
    fn fast_compare_says_what_separates_the_clients_and_prints_one_row_each() {
        let (out, _) = demo(&["--fast", "--compare", "--calls", "60"]).unwrap();
        for client in ClientKind::ALL {
            assert!(
                out.contains(&format!("- {}: {}\n", client.label(), client.difference())),
                "{out}"
            );
            assert!(
                out.contains(&format!("| burst | {} |", client.label())),
                "{out}"
            );
        }
        assert!(
            out.starts_with("60 calls of scenario `burst`, every call in flight at once"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1 + 2 * ClientKind::ALL.len() + 2);
    }

    #[test]
    fn over_http_it_reports_progress_and_writes_the_flow_log_and_its_graph() {
        let dir = tempfile::tempdir().unwrap();
        let (out, err) = demo(&[
            "--calls",
            "10",
            "--rpm",
            "6000",
            "--concurrency",
            "3",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .unwrap();
        assert!(
            out.contains(
                "at most 3 in flight per client; gpt-4o allows 6000 rpm, the clients are told 6000"
            ),
            "{out}"
        );
        assert!(out.contains("| burst | ratellmiter |"), "{out}");
        assert!(out.contains("| 0 | 0 |"), "no 429 and no failure: {out}");
        // Without a terminal, progress is a line on stderr; the last one after the end.
        let last = err.lines().last().unwrap_or_default();
        assert!(
            last.starts_with('[') && last.ends_with("] ratellmiter: 10/10 done, 0 × 429"),
            "{err}"
        );
        let files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(files.iter().any(|f| f.ends_with(".jsonl")), "{files:?}");
        assert!(
            files.iter().any(|f| f.ends_with("_gpt-4o_iroef.png")),
            "{files:?}"
        );
    }

    #[test]
    fn a_zero_concurrency_is_refused_by_name() {
        let err = demo(&["--fast", "--concurrency", "0"]).unwrap_err();
        assert!(err.to_string().contains("--concurrency"), "{err}");
    }
}
