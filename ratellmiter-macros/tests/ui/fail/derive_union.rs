use ratellmiter::IsRateLimit;

#[derive(IsRateLimit)]
union ApiError {
    code: u32,
    seconds: f32,
}

fn main() {}
