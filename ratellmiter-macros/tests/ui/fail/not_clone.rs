use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

struct Prompt(String);

#[llmiter]
async fn ask(prompt: Prompt, retries: u32) -> Result<String, ApiError> { Ok(format!("{}{retries}", prompt.0)) }

fn main() {}
