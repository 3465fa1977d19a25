//! Shapes that compile: methods, blocking, generics, and `max_retries = 0` with a
//! non-`Clone` argument.
use std::sync::Arc;
use ratellmiter::{llmiter, AcquireError, IsRateLimit};

#[derive(Debug)]
struct ApiError;
impl IsRateLimit for ApiError {
    fn rate_limit(&self) -> Option<ratellmiter::RateLimit> { None }
}
impl From<AcquireError> for ApiError {
    fn from(_: AcquireError) -> Self { ApiError }
}

struct NotClone;

struct Client { model: String }

impl Client {
    #[llmiter(service = self.model.as_str(), timeout = "1m30s", priority = high, tokens = 10)]
    async fn by_ref(&self) -> Result<(), ApiError> { Ok(()) }
    #[llmiter]
    async fn by_mut(&mut self, extra: &mut Vec<u8>) -> Result<usize, ApiError> { extra.push(1); Ok(self.model.len()) }
    #[llmiter(max_retries = 0)]
    async fn once(self, arg: NotClone) -> Result<NotClone, ApiError> { let _ = self; Ok(arg) }
    #[llmiter(input_tokens = 2_000, output_tokens = self.model.len() as u64)]
    async fn by_kind(&self) -> Result<(), ApiError> { Ok(()) }
    #[llmiter]
    fn blocking(self: Arc<Self>) -> Result<usize, ApiError> { Ok(self.model.len()) }
}

fn main() {}
