//! `#[llmiter]`'s and `#[derive(IsRateLimit)]`'s paths resolve wherever the facade is:
//! by default `::ratellmiter` (a local item named `ratellmiter` cannot capture it), or
//! `crate = "…"`.

extern crate ratellmiter as renamed;

use renamed::{BucketRateLimiter, IsRateLimit, RateLimit};

/// Shadows the facade's name: a macro writing `ratellmiter::…` would find this.
#[allow(unused_imports)]
use std as ratellmiter;

/// A facade re-exported under another path, as a company-internal crate might.
mod company {
    pub mod llm {
        #[doc(hidden)]
        pub use ::renamed::__private;
    }
}

/// The derive's default path, `::ratellmiter`, despite the local `ratellmiter`.
#[derive(Debug, IsRateLimit)]
enum E {
    #[rate_limit(final)]
    #[allow(dead_code)]
    Spent,
}

#[derive(Debug, IsRateLimit)]
#[rate_limit(crate = "renamed")]
enum Renamed {
    #[rate_limit]
    Busy,
}

#[derive(Debug, IsRateLimit)]
#[rate_limit(transparent, crate = "crate::company::llm")]
struct ReExported(Renamed);

#[renamed::llmiter(limiter = l)]
async fn default_path(l: &BucketRateLimiter) -> Result<u8, E> {
    Ok(1)
}

#[renamed::llmiter(crate = "renamed", limiter = l)]
async fn renamed_crate(l: &BucketRateLimiter) -> Result<u8, E> {
    Ok(2)
}

#[renamed::llmiter(crate = "crate::company::llm", limiter = l)]
async fn re_exported(l: &BucketRateLimiter) -> Result<u8, E> {
    Ok(3)
}

#[tokio::test(start_paused = true)]
async fn every_path_reaches_the_runtime() {
    let l = BucketRateLimiter::new(600);
    let got = [
        default_path(&l).await.unwrap(),
        renamed_crate(&l).await.unwrap(),
        re_exported(&l).await.unwrap(),
    ];
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(l.stats().finished, 3);
}

#[test]
fn the_derive_reaches_the_runtime_by_every_path() {
    assert_eq!(E::Spent.rate_limit(), Some(RateLimit::final_quota()));
    assert_eq!(Renamed::Busy.rate_limit(), Some(RateLimit::retry(None)));
    assert_eq!(
        ReExported(Renamed::Busy).rate_limit(),
        Some(RateLimit::retry(None))
    );
}
