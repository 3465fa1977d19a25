use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn is_rate_limit(&self) -> bool { false }
}

#[llmiter(timeout = "30s")]
async fn ask() -> Result<(), ApiError> { Ok(()) }

fn main() {}
