use ratellmiter::IsRateLimit;

#[derive(Debug, IsRateLimit)]
enum ApiError {
    #[rate_limit(transparent)]
    Two(std::io::Error, String),
    #[rate_limit(transparent)]
    None,
}

#[derive(Debug, IsRateLimit)]
#[rate_limit(transparent)]
struct Wrapper {
    first: std::io::Error,
    second: std::io::Error,
}

fn main() {}
