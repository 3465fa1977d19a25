//! `llmiter demo`: the README's first command. Starts the mock provider on
//! 127.0.0.1, sends a burst of real HTTP chat completions through ratellmiter (and,
//! with `--compare`, through exponential backoff and a governor token bucket too, each
//! against its own server), shows progress, prints the side-by-side table, and writes
//! the flow log and its graph.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use parking_lot::Mutex;
use ratellmiter_runtime::{MonitorConfig, monitor};

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
    let rows = if args.fast {
        clients
            .iter()
            .map(|&c| run_virtual(&scenario, c))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        writeln!(
            console.out,
            "{} calls of scenario `{}` against a mock provider allowing {} rpm ({} per second); \
             the ideal completion is {:.0} s.",
            scenario.calls.len(),
            scenario_name(args.scenario),
            args.rpm,
            args.rpm.div_ceil(60),
            scenario.ideal.as_secs_f64()
        )?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(over_http(&scenario, clients, args))?
    };
    console.out.write_all(markdown_table(&rows).as_bytes())?;
    if !args.fast {
        graph(&scenario, args, console)?;
    }
    Ok(())
}

fn scenario_name(kind: ScenarioKind) -> String {
    clap::ValueEnum::to_possible_value(&kind)
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Runs every client at once, each against its own mock server, with a progress bar
/// each; ratellmiter's limiters are registered with the monitor for the flow log.
async fn over_http(
    scenario: &Scenario,
    kinds: &[ClientKind],
    args: &DemoArgs,
) -> anyhow::Result<Vec<Row>> {
    monitor().config(MonitorConfig::default().log_dir(&args.dir));
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{prefix:>20} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}",
    )?;
    let mut runs = Vec::new();
    for &kind in kinds {
        let clients = model_clients(scenario, kind)?;
        if kind == ClientKind::Ratellmiter {
            for (m, client) in scenario.models.iter().zip(&clients) {
                if let ModelClient::Limiter { limiter, .. } = client {
                    monitor().add_service(&m.name, (**limiter).clone());
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
        let bar = bars.add(ProgressBar::new(scenario.calls.len() as u64));
        bar.set_style(style.clone());
        bar.set_prefix(kind.label());
        runs.push((kind, clients, server, transport, bar));
    }
    monitor().start();
    let results = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = tokio::task::JoinSet::new();
    for (kind, clients, server, transport, bar) in runs {
        let (scenario, results) = (scenario.clone(), results.clone());
        let concurrency = args.concurrency;
        tasks.spawn(async move {
            let progress = bar.clone();
            let observed = run_workload(&scenario, &clients, &transport, concurrency, move |ok| {
                progress.inc(1);
                if !ok {
                    progress.set_message("(some calls failed)");
                }
            })
            .await?;
            bar.finish();
            let row = Row::new(&scenario, kind, &observed, &server.log());
            results.lock().push(row);
            server.shutdown().await?;
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a client panicked")??;
    }
    monitor().stop();
    let mut rows = std::mem::take(&mut *results.lock());
    rows.sort_by_key(|r| kinds.iter().position(|&k| k == r.client));
    Ok(rows)
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

    fn demo(args: &[&str]) -> anyhow::Result<String> {
        let cli = Cli::try_parse_from(["llmiter", "demo"].iter().chain(args))?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        crate::run(
            cli,
            &mut Console {
                out: &mut out,
                err: &mut err,
            },
        )?;
        Ok(String::from_utf8(out)?)
    }

    #[test]
    fn fast_compare_prints_one_row_per_client() {
        let out = demo(&["--fast", "--compare", "--calls", "60"]).unwrap();
        for client in ClientKind::ALL {
            assert!(
                out.contains(&format!("| burst | {} |", client.label())),
                "{out}"
            );
        }
        assert_eq!(out.lines().count(), 2 + ClientKind::ALL.len());
    }

    #[test]
    fn over_http_it_writes_the_flow_log_and_its_graph() {
        let dir = tempfile::tempdir().unwrap();
        let out = demo(&[
            "--calls",
            "10",
            "--rpm",
            "6000",
            "--dir",
            dir.path().to_str().unwrap(),
        ])
        .unwrap();
        assert!(out.contains("| burst | ratellmiter |"), "{out}");
        assert!(out.contains("| 0 | 0 |"), "no 429 and no failure: {out}");
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
