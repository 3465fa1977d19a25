use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

// The expansion's locals are mixed-site: the body cannot name them.
#[llmiter]
async fn ask() -> Result<(), ApiError> {
    let _ = __llmiter_call;
    Ok(())
}

fn main() {}
