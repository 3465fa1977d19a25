use ratellmiter::{llmiter, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}

// A future built by a call, not an `async` block: nothing to rewrite inside.
#[llmiter]
fn ask() -> impl std::future::Future<Output = Result<(), ApiError>> {
    std::future::ready(Ok(()))
}

fn main() {}
