use ratellmiter::IsRateLimit;

#[derive(Debug)]
struct PlainError;

#[derive(Debug, IsRateLimit)]
enum ApiError {
    #[rate_limit(transparent)]
    Inner(PlainError),
}

fn main() {}
