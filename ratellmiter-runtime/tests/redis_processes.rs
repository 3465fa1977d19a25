//! OS processes sharing one budget on a real Redis. This binary has its own `main`: run
//! with `RATELLMITER_REDIS_WORKER` set it is one worker process; otherwise it runs the
//! tests below, each spawning workers (this same executable), or with `--bench` the
//! throughput benchmark of BENCHMARKS.md:
//!
//! ```text
//! cargo test -p ratellmiter-runtime --features redis --test redis_processes
//! cargo test -p ratellmiter-runtime --features redis --release --test redis_processes -- --bench
//! ```
//!
//! Each worker writes one line per ticket: the slot Redis granted (µs on Redis's clock)
//! and the time it handed the ticket over (µs on the system clock — the same clock, as
//! every process runs on this host).

#[path = "support/recording.rs"]
mod recording;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ratellmiter_runtime::{BucketRateLimiter, RedisBackend};
use recording::{Recording, max_in_window};
use redis_server::RedisServer;

const WORKER: &str = "RATELLMITER_REDIS_WORKER";
const SECOND: u64 = 1_000_000;

fn main() {
    if let Ok(spec) = std::env::var(WORKER) {
        return worker(&spec);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--bench") {
        return bench();
    }
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let tests: [(&str, fn()); 2] = [
        (
            "four_processes_share_one_6000_rpm_budget",
            four_processes_share_one_6000_rpm_budget,
        ),
        (
            "a_killed_process_leaves_the_others_to_finish",
            a_killed_process_leaves_the_others_to_finish,
        ),
    ];
    for (name, test) in tests {
        if args.iter().any(|a| a == "--list") {
            println!("{name}: test");
            continue;
        }
        if filter.is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        println!("test {name} ...");
        test();
        println!(
            "test {name} ... ok ({:.1} s)",
            start.elapsed().as_secs_f64()
        );
    }
}

/// One worker: `calls` acquires at once on a limiter at `rpm` shared under `key`.
struct Spec {
    url: String,
    key: String,
    calls: usize,
    rpm: u32,
    ramp_start: f64,
    out: PathBuf,
}

impl Spec {
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.url,
            self.key,
            self.calls,
            self.rpm,
            self.ramp_start,
            self.out.display()
        )
    }

    fn decode(s: &str) -> Self {
        let f: Vec<&str> = s.split('|').collect();
        Self {
            url: f[0].into(),
            key: f[1].into(),
            calls: f[2].parse().unwrap(),
            rpm: f[3].parse().unwrap(),
            ramp_start: f[4].parse().unwrap(),
            out: f[5].into(),
        }
    }

    fn spawn(&self) -> Child {
        Command::new(std::env::current_exe().unwrap())
            .env(WORKER, self.encode())
            .spawn()
            .expect("a worker process")
    }
}

fn worker(spec: &str) {
    let spec = Spec::decode(spec);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let backend = Recording::new(RedisBackend::new(&spec.url, &spec.key).unwrap());
        let limiter = BucketRateLimiter::builder()
            .rpm(spec.rpm)
            .ramp_start(spec.ramp_start)
            .shared(backend.clone())
            .build()
            .unwrap();
        // One ticket clears at a time and they are handed over in the order of their
        // grants: the k-th hand-over is the k-th slot's (its grant came before it).
        let out = std::sync::Arc::new(std::sync::Mutex::new((
            fs::File::create(&spec.out).unwrap(),
            0usize,
        )));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..spec.calls {
            let (limiter, backend, out) = (limiter.clone(), backend.clone(), out.clone());
            tasks.spawn(async move {
                let ticket = limiter.acquire().await.unwrap();
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
                let mut out = out.lock().unwrap();
                let slot = backend.slots()[out.1];
                out.1 += 1;
                writeln!(out.0, "{slot} {}", now.as_micros()).unwrap();
                ticket.finish();
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
    });
}

/// Per worker: (slot, hand-over) of each ticket, in µs.
fn read(path: &Path) -> Vec<(u64, u64)> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

fn wait(child: &mut Child, deadline: Instant) {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "a worker failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a worker did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The window bounds and the smoothness of a union of tickets at `rpm`:
/// on Redis's schedule exactly (never two slots closer than 60/rpm, so at most rpm/60
/// in any second and rpm in any minute); on the hand-over times, no ticket goes before
/// its slot and 99 % go within 20 ms after it. (A ticket handed over late can land in
/// the next second's window, so the hand-over times keep the 1 s bound only to within
/// the lateness: one ticket per 60/rpm of it, whatever the load of the machine.)
fn assert_shared_budget(per_worker: &[Vec<(u64, u64)>], rpm: u64) {
    let interval = 60 * SECOND / rpm;
    let mut slots: Vec<u64> = per_worker.iter().flatten().map(|t| t.0).collect();
    let mut handed: Vec<u64> = per_worker.iter().flatten().map(|t| t.1).collect();
    slots.sort_unstable();
    handed.sort_unstable();
    let gaps: Vec<u64> = slots.windows(2).map(|w| w[1] - w[0]).collect();
    let min_gap = *gaps.iter().min().unwrap();
    assert!(min_gap >= interval, "two slots {min_gap} µs apart");
    assert!(max_in_window(&slots, SECOND) as u64 <= rpm / 60);
    assert!(max_in_window(&slots, 60 * SECOND) as u64 <= rpm);

    let mut late: Vec<i64> = Vec::new();
    for tickets in per_worker {
        for &(slot, at) in tickets {
            late.push(at as i64 - slot as i64);
        }
    }
    late.sort_unstable();
    assert!(late[0] >= -1000, "a ticket went {} µs early", -late[0]);
    let p99 = late[late.len() * 99 / 100];
    assert!(p99 <= 20_000, "p99 hand-over {p99} µs after the slot");
    // Smooth: the schedule runs without holes (the ramp of four processes starting at
    // 25 % each fills it from the start).
    let mut sorted_gaps = gaps.clone();
    sorted_gaps.sort_unstable();
    let p99_gap = sorted_gaps[sorted_gaps.len() * 99 / 100];
    assert!(p99_gap <= 2 * interval, "p99 gap {p99_gap} µs");
    println!(
        "  {} tickets over {:.2} s; gaps min {min_gap} µs, p99 {p99_gap} µs; hand-over \
         p99 {p99} µs late, max {} µs; at most {} handed over in a second",
        slots.len(),
        (slots[slots.len() - 1] - slots[0]) as f64 / SECOND as f64,
        late[late.len() - 1],
        max_in_window(&handed, SECOND),
    );
}

fn specs(server: &RedisServer, dir: &Path, key: &str, n: usize, calls: usize) -> Vec<Spec> {
    (0..n)
        .map(|i| Spec {
            url: server.url(),
            key: key.into(),
            calls,
            rpm: 6000,
            ramp_start: 0.25,
            out: dir.join(format!("worker-{i}.txt")),
        })
        .collect()
}

/// Four processes, 300 calls each at once, one key at 6 000 rpm: 1 200 tickets in
/// about 12 s, never more than 100 in a second across all four, evenly spaced.
fn four_processes_share_one_6000_rpm_budget() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let specs = specs(&server, dir.path(), "four", 4, 300);
    let mut children: Vec<Child> = specs.iter().map(Spec::spawn).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    for child in &mut children {
        wait(child, deadline);
    }
    let per_worker: Vec<_> = specs.iter().map(|s| read(&s.out)).collect();
    assert!(per_worker.iter().all(|t| t.len() == 300));
    assert_shared_budget(&per_worker, 6000);
    let slots: Vec<u64> = per_worker.iter().flatten().map(|t| t.0).collect();
    let span = slots.iter().max().unwrap() - slots.iter().min().unwrap();
    assert!(span < 13 * SECOND, "1 200 tickets took {span} µs");
}

/// Four processes as above; one is killed (SIGKILL) after its 50th ticket. The other
/// three finish their 300 calls each, and the union still keeps the bounds.
fn a_killed_process_leaves_the_others_to_finish() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let specs = specs(&server, dir.path(), "kill", 4, 300);
    let mut children: Vec<Child> = specs.iter().map(Spec::spawn).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read(&specs[0].out).len() < 50 {
        assert!(Instant::now() < deadline, "worker 0 never got 50 tickets");
        std::thread::sleep(Duration::from_millis(5));
    }
    children[0].kill().unwrap();
    children[0].wait().unwrap();
    for child in &mut children[1..] {
        wait(child, deadline);
    }
    let per_worker: Vec<_> = specs.iter().map(|s| read(&s.out)).collect();
    assert!(per_worker[0].len() < 300, "worker 0 was killed mid-run");
    assert!(per_worker[1..].iter().all(|t| t.len() == 300));
    assert_shared_budget(&per_worker, 6000);
}

/// Throughput and round trips per ticket with 1, 4 and 16 processes, at a rate no
/// process can reach (6 000 000 rpm, no ramp): the cost of sharing itself.
fn bench() {
    const TICKETS: usize = 4800;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "| processes | tickets | tickets/s | round trips/ticket | hand-over p50 / p99 after slot |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for n in [1, 4, 16] {
        server.reset_stats();
        let specs: Vec<Spec> = (0..n)
            .map(|i| Spec {
                url: server.url(),
                key: format!("bench-{n}"),
                calls: TICKETS / n,
                rpm: 6_000_000,
                ramp_start: 1.0,
                out: dir.path().join(format!("bench-{n}-{i}.txt")),
            })
            .collect();
        let mut children: Vec<Child> = specs.iter().map(Spec::spawn).collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        for child in &mut children {
            wait(child, deadline);
        }
        let per_worker: Vec<_> = specs.iter().map(|s| read(&s.out)).collect();
        let handed: Vec<u64> = per_worker.iter().flatten().map(|t| t.1).collect();
        let span = handed.iter().max().unwrap() - handed.iter().min().unwrap();
        let mut late: Vec<u64> = per_worker
            .iter()
            .flatten()
            .map(|&(slot, at)| at.saturating_sub(slot))
            .collect();
        late.sort_unstable();
        println!(
            "| {n} | {} | {:.0} | {:.3} | {} µs / {} µs |",
            handed.len(),
            handed.len() as f64 / (span as f64 / SECOND as f64),
            server.round_trips() as f64 / handed.len() as f64,
            late[late.len() / 2],
            late[late.len() * 99 / 100],
        );
    }
}
