use ratellmiter::IsRateLimit;

#[derive(Debug, IsRateLimit)]
enum ApiError {
    #[rate_limit(fatal)]
    Quota,
    #[rate_limit(final, transparent)]
    Both(std::io::Error),
    #[rate_limit = "final"]
    Assigned,
}

fn main() {}
