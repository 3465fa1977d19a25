use std::time::Duration;
use ratellmiter::IsRateLimit;

#[derive(Debug, IsRateLimit)]
enum ApiError {
    #[rate_limit]
    RateLimited {
        #[retry_after]
        header: Option<Duration>,
        #[retry_after]
        body: Option<Duration>,
    },
    #[rate_limit(final)]
    Quota(#[retry_after] Duration),
}

fn main() {}
