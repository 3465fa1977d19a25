//! `current()` is a task-local: a task the call spawns does not see it, unless the call
//! passes its handle along — moved into the task, or as the task's scope.

use ratellmiter_runtime::{BucketRateLimiter, current};

fn limiter() -> BucketRateLimiter {
    BucketRateLimiter::builder()
        .rpm(600)
        .tpm(100_000)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_spawned_task_reaches_the_call_through_its_handle_or_its_scope() {
    let limiter = limiter();
    let out: Result<(bool, bool, Option<String>), std::io::Error> = limiter
        .call()
        .tokens(1_000)
        .request_id("req-9")
        .run(|| async {
            // Alone, the spawned task is outside the call.
            let alone = tokio::spawn(async { current().is_active() }).await.unwrap();
            // The handle, moved in: its reports reach the call's ticket.
            let handle = current().handle();
            tokio::spawn(async move { handle.record_usage(700) })
                .await
                .unwrap();
            // Scoped: code in the task finds the call through `current()` itself.
            let (scoped, id) = tokio::spawn(current().handle().scope(async {
                (
                    current().is_active(),
                    current().request_id().map(str::to_owned),
                )
            }))
            .await
            .unwrap();
            Ok((alone, scoped, id))
        })
        .await
        .unwrap();
    assert_eq!(out.unwrap(), (false, true, Some("req-9".to_owned())));
    assert_eq!(
        limiter.stats().tokens_in_window,
        700,
        "the handle's report replaced the estimate"
    );
}

/// A handle kept past the call's end does nothing, and a scope outside any call runs
/// its future unchanged.
#[tokio::test(start_paused = true)]
async fn a_handle_after_the_call_and_a_scope_outside_one_do_nothing() {
    let limiter = limiter();
    let kept = limiter
        .call()
        .tokens(1_000)
        .run(|| async { Ok::<_, std::io::Error>(current().handle()) })
        .await
        .unwrap()
        .unwrap();
    kept.record_usage(5);
    assert_eq!(limiter.stats().tokens_in_window, 1_000);
    assert!(
        !current()
            .handle()
            .scope(async { current().is_active() })
            .await
    );
}
