use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn is_rate_limit(&self) -> bool { false }
}

#[llmiter(max_retries = -1)]
async fn ask() -> Result<(), ApiError> { Ok(()) }

fn main() {}
