use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

#[llmiter(monitor = ratellmiter::monitor(), limiter = ratellmiter::monitor().default_limiter())]
async fn ask() -> Result<(), ApiError> { Ok(()) }

fn main() {}
