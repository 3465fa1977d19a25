use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn is_rate_limit(&self) -> bool { false }
}

#[llmiter(service = "gpt-4o", limiter = ratellmiter::monitor().default_limiter())]
async fn ask() -> Result<(), ApiError> { Ok(()) }

fn main() {}
