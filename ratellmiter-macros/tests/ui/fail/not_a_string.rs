use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

#[llmiter(service = 4)]
async fn ask() -> Result<(), ApiError> { Ok(()) }

#[llmiter(crate = ratellmiter)]
async fn ask_again() -> Result<(), ApiError> { Ok(()) }

fn main() {}
