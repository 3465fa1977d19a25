//! Every shape the derive accepts, checked by what each value says.
use std::time::Duration;

use ratellmiter::{IsRateLimit, RateLimit};

#[derive(Debug, IsRateLimit)]
enum ApiError<E> {
    #[rate_limit]
    Busy,
    #[rate_limit]
    Waited(#[retry_after] Duration, String),
    #[rate_limit]
    MaybeWaited {
        code: u16,
        #[retry_after]
        wait: Option<Duration>,
    },
    #[rate_limit(final)]
    Quota { code: String },
    #[rate_limit(transparent)]
    Inner(E),
    #[rate_limit(transparent)]
    Boxed { source: Box<ApiError<std::io::Error>> },
    Other(String),
}

#[derive(Debug, IsRateLimit)]
#[rate_limit(transparent)]
struct Newtype(ApiError<std::io::Error>);

#[derive(Debug, IsRateLimit)]
#[rate_limit(final)]
struct Spent;

#[derive(Debug, IsRateLimit)]
#[rate_limit]
struct TooFast {
    #[retry_after]
    wait: Duration,
}

#[derive(Debug, IsRateLimit)]
enum Never {}

fn main() {
    type E = ApiError<std::io::Error>;
    let s = Duration::from_secs;
    assert_eq!(E::Busy.rate_limit(), Some(RateLimit::retry(None)));
    assert_eq!(E::Waited(s(2), "x".into()).rate_limit(), Some(RateLimit::retry(Some(s(2)))));
    assert_eq!(E::MaybeWaited { code: 429, wait: None }.rate_limit(), Some(RateLimit::retry(None)));
    assert_eq!(E::Quota { code: "insufficient_quota".into() }.rate_limit(), Some(RateLimit::final_quota()));
    assert_eq!(E::Inner(std::io::Error::other("reset")).rate_limit(), None);
    assert_eq!(E::Boxed { source: Box::new(E::Busy) }.rate_limit(), Some(RateLimit::retry(None)));
    assert_eq!(E::Other("bad request".into()).rate_limit(), None);
    assert_eq!(ApiError::<Spent>::Inner(Spent).rate_limit(), Some(RateLimit::final_quota()));
    assert_eq!(Newtype(E::Busy).rate_limit(), Some(RateLimit::retry(None)));
    assert_eq!(TooFast { wait: s(1) }.rate_limit(), Some(RateLimit::retry(Some(s(1)))));
    let _ = |n: &Never| n.rate_limit();
}
