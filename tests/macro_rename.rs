//! `#[llmiter]`'s paths resolve wherever the facade is: by default `::ratellmiter`
//! (a local item named `ratellmiter` cannot capture it), or `crate = "…"`.

extern crate ratellmiter as renamed;

use renamed::{BucketRateLimiter, IsRateLimit};

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

#[derive(Debug)]
struct E;
impl IsRateLimit for E {
    fn is_rate_limit(&self) -> bool {
        false
    }
}

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
