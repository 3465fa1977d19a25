use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

#[llmiter(monitor = 5, service = "gpt-4o")]
async fn ask() -> Result<(), ApiError> { Ok(()) }

fn main() {}
