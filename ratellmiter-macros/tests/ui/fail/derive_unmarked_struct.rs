use ratellmiter::IsRateLimit;

/// A struct has no variants to mark: it says on itself what it is.
#[derive(Debug, IsRateLimit)]
struct ApiError {
    status: u16,
}

/// On an enum the marks go on the variants.
#[derive(Debug, IsRateLimit)]
#[rate_limit]
enum Other {
    RateLimited,
}

fn main() {}
