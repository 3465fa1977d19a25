//! The quickstart example against a provider stricter than its limiter: a 429 is read
//! by the `reqwest` integration, waited out and the call re-run. A process of its own:
//! the example registers its service on the global monitor, once per process (a second
//! `add_service` for a name is refused), as `tests/examples.rs` does too.

#[allow(dead_code)]
#[path = "../examples/quickstart.rs"]
mod quickstart;

use ratellmiter_sim::{Provider, ProviderConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_waits_out_a_429_and_re_runs_the_call() {
    // The server allows 60 rpm (one call a second), the limiter is told 6 000: the
    // second call is refused once, then re-run after the server's retry-after.
    let provider = Provider::new(ProviderConfig {
        rpm: 60,
        ..Default::default()
    })
    .unwrap();
    let server = ratellmiter_sim::spawn(provider, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let stats = quickstart::run(&server.base_url(), 6_000, 2).await.unwrap();
    assert_eq!((stats.finished, stats.rate_limited), (2, 1));
    let seen = server.metrics();
    assert_eq!((seen.accepted, seen.rejected), (2, 1));
}
