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

#[llmiter(max_retries = 0)]
async fn once() -> u8 { 0 }

struct Client;

impl Client {
    #[llmiter]
    async fn lend(&mut self) -> Option<String> { None }
}

fn main() {}
