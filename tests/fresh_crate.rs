//! A new user's first program, built as they would build it (issue 18): a crate outside
//! the workspace with the README's dependency lines (the facade by path), an error enum
//! using `#[derive(IsRateLimit)]` to wrap reqwest's error and the integration's
//! `RateLimitError` beside a final variant, run against two mock providers over HTTP —
//! one that answers, one whose quota is spent (`insufficient_quota`). The spent quota
//! must come back at once: one request, no pause, no retry loop.
//!
//! The crate resolves from a copy of the workspace's `Cargo.lock`, offline when the
//! registry cache allows it, and builds in a target directory of its own under
//! `target/tmp` (the workspace's is locked by the `cargo test` running this), kept
//! between runs so only the first one compiles the dependencies.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ratellmiter_sim::{MockServer, Provider, ProviderConfig};

const MAIN_RS: &str = r#"
use std::time::{Duration, Instant};

use ratellmiter::reqwest::{RateLimitError, check};
use ratellmiter::{BucketRateLimiter, IsRateLimit, MonitorConfig, llmiter, monitor};

#[derive(Debug, thiserror::Error, IsRateLimit)]
enum AppError {
    #[error(transparent)]
    #[rate_limit(transparent)]
    RateLimited(#[from] RateLimitError),
    #[error(transparent)]
    #[rate_limit(transparent)]
    Http(#[from] reqwest::Error),
    #[error("this run's own budget is spent")]
    #[rate_limit(final)]
    BudgetSpent,
}

#[llmiter(service = "gpt-4o-mini")]
async fn ask(client: &reqwest::Client, base_url: &str, prompt: &str) -> Result<String, AppError> {
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]});
    let response = client.post(format!("{base_url}/chat/completions")).json(&body).send().await?;
    let answer: serde_json::Value = check(response).await?.error_for_status()?.json().await?;
    Ok(answer["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned())
}

#[tokio::main]
async fn main() {
    let urls: Vec<String> = std::env::args().skip(1).collect();
    monitor().set_config(MonitorConfig::default().logging(false));
    monitor().add_service("gpt-4o-mini", BucketRateLimiter::new(600)).unwrap();
    let client = reqwest::Client::new();
    let answer = ask(&client, &urls[0], "What is the capital of France?").await.unwrap();
    println!("answered={}", !answer.is_empty());
    let t0 = Instant::now();
    let spent = ask(&client, &urls[1], "What is the capital of France?");
    let Ok(outcome) = tokio::time::timeout(Duration::from_secs(5), spent).await else {
        println!("final=false: still waiting after 5 s");
        return;
    };
    let err = outcome.unwrap_err();
    let verdict = err.rate_limit();
    println!(
        "final={} ms={} own_final={} error={err}",
        verdict.is_some_and(|r| r.is_final()),
        t0.elapsed().as_millis(),
        AppError::BudgetSpent.rate_limit().is_some_and(|r| r.is_final()),
    );
}
"#;

/// The workspace root (the facade's manifest directory).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The README's `[dependencies]` block under "Quickstart", with the facade by path.
fn readme_dependencies() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let quickstart = &readme[readme.find("## Quickstart").unwrap()..];
    let start = quickstart.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &quickstart[start..start + quickstart[start..].find("```").unwrap()];
    let facade = r#"ratellmiter = { version = "0.1","#;
    assert!(
        block.contains(facade),
        "the README's dependency lines changed:\n{block}"
    );
    block.replace(
        facade,
        &format!(
            "ratellmiter = {{ path = {:?},",
            root().display().to_string()
        ),
    )
}

/// Writes the crate into a fresh directory outside the workspace.
fn write_crate() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ratellmiter-fresh-crate-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"first-hour\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n{}",
        readme_dependencies()
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), MAIN_RS).unwrap();
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    dir
}

/// `cargo run` of the crate, offline first, then (when the registry cache lacks
/// something) online.
fn cargo_run(dir: &Path, args: &[String]) -> Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fresh-crate-target");
    let run = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.arg("run").arg("--quiet").current_dir(dir);
        if offline {
            cmd.arg("--offline");
        }
        cmd.arg("--").args(args);
        cmd.env("CARGO_TARGET_DIR", &target).output().unwrap()
    };
    let offline = run(true);
    if offline.status.success() {
        return offline;
    }
    let stderr = String::from_utf8_lossy(&offline.stderr);
    if stderr.contains("--offline") || stderr.contains("offline mode") {
        return run(false);
    }
    offline
}

async fn mock(quota_exhausted: bool) -> MockServer {
    let provider = Provider::new(ProviderConfig {
        rpm: 600,
        quota_exhausted,
        ..Default::default()
    })
    .unwrap();
    ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_crate_returns_insufficient_quota_at_once() {
    let (answers, spent) = (mock(false).await, mock(true).await);
    let dir = write_crate();
    let args = [answers.base_url(), spent.base_url()];
    let out = tokio::task::spawn_blocking(move || cargo_run(&dir, &args))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("answered=true"), "{stdout}");
    assert!(stdout.contains("final=true"), "{stdout}");
    assert!(stdout.contains("own_final=true"), "{stdout}");
    assert!(stdout.contains("insufficient_quota"), "{stdout}");
    // At once: far below the 10 s a pause before the first probe would take.
    let ms: u64 = stdout
        .split("ms=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms < 2_000, "{stdout}");
    // One request reached the spent account: no retry.
    let seen = spent.metrics();
    assert_eq!((seen.requests, seen.rejected), (1, 1), "{seen:?}");
    assert_eq!(answers.metrics().accepted, 1);
}

/// One reqwest for the whole workspace (the integration, the examples, the CLI, the mock
/// and async-openai), named in the README's dependency lines: a user who copies them
/// builds against the version the integration implements `IsRateLimit` for.
#[test]
fn the_workspace_builds_on_one_reqwest_and_the_readme_names_it() {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let versions: Vec<&str> = lock
        .split("[[package]]")
        .filter(|p| p.contains("\nname = \"reqwest\"\n"))
        .filter_map(|p| p.split("\nversion = \"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(versions.len(), 1, "{versions:?}");
    let minor = versions[0].rsplit_once('.').unwrap().0;
    assert!(
        readme_dependencies().contains(&format!("reqwest = {{ version = \"{minor}\"")),
        "the README's quickstart should ask for reqwest {minor}"
    );
}
