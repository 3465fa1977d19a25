use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

#[llmiter(max_retries = "3")]
async fn ask() -> Result<(), ApiError> { Ok(()) }

fn main() {}
