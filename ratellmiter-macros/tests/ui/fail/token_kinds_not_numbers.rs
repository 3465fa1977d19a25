use ratellmiter::{llmiter, AcquireError, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}
impl From<AcquireError> for ApiError {
    fn from(_: AcquireError) -> Self { ApiError }
}

#[llmiter(input_tokens = "2000")]
async fn ask() -> Result<(), ApiError> { Ok(()) }

#[llmiter(output_tokens = 1.5, input_tokens = 2_000, input_tokens = 10)]
async fn ask_again() -> Result<(), ApiError> { Ok(()) }

fn main() {}
