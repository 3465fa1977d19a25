//! placeholder
pub use ratellmiter_runtime::*;
