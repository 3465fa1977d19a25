//! `llmiter bench`: every scenario run by every client in virtual time against the
//! pure provider model, printed as the markdown table BENCHMARKS.md holds.

use crate::args::BenchArgs;
use crate::console::Console;
use crate::scenario::{ClientKind, Row, Scenario, ScenarioKind, markdown_table, run_virtual};

/// Runs the benchmark and writes its table to `console.out`.
pub fn run(args: &BenchArgs, console: &mut Console<'_>) -> anyhow::Result<()> {
    let scenarios = if args.scenario.is_empty() {
        ScenarioKind::ALL.to_vec()
    } else {
        args.scenario.clone()
    };
    let clients = if args.client.is_empty() {
        ClientKind::ALL.to_vec()
    } else {
        args.client.clone()
    };
    let rows = table(&scenarios, &clients, args.rpm, args.calls)?;
    console.out.write_all(markdown_table(&rows).as_bytes())?;
    Ok(())
}

/// Every `scenarios` × `clients` run, in that order.
pub fn table(
    scenarios: &[ScenarioKind],
    clients: &[ClientKind],
    rpm: u32,
    calls: usize,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &kind in scenarios {
        let scenario = Scenario::new(kind, rpm, calls)?;
        for &client in clients.iter().filter(|&&c| kind.runs(c)) {
            rows.push(run_virtual(&scenario, client)?);
        }
    }
    Ok(rows)
}
