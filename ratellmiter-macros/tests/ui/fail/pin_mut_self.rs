use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

struct Client;

impl Client {
    #[llmiter]
    async fn ask(self: std::pin::Pin<&mut Self>) -> Result<(), ApiError> { Ok(()) }
}

fn main() {}
