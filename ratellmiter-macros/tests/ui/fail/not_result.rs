use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn is_rate_limit(&self) -> bool { false }
}

#[llmiter]
async fn ask() -> String { String::new() }

#[derive(Debug)]
struct PlainError;

#[llmiter]
fn blocking() -> Result<(), PlainError> { Ok(()) }

fn main() {}
