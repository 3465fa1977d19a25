use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn is_rate_limit(&self) -> bool { false }
}

#[llmiter(service = 4)]
async fn ask() -> Result<(), ApiError> { Ok(()) }

#[llmiter(crate = ratellmiter)]
async fn ask_again() -> Result<(), ApiError> { Ok(()) }

fn main() {}
