use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

#[llmiter]
async fn ask() -> String { String::new() }

#[derive(Debug)]
struct PlainError;

#[llmiter]
fn blocking() -> Result<(), PlainError> { Ok(()) }

fn main() {}
