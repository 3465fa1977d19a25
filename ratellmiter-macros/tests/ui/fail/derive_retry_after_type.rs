use ratellmiter::IsRateLimit;

#[derive(Debug, IsRateLimit)]
enum ApiError {
    #[rate_limit]
    RateLimited {
        #[retry_after]
        seconds: u64,
    },
}

fn main() {}
