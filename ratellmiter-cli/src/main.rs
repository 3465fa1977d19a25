//! `llmiter`: graphs and summaries of ratellmiter flow logs; see the library's docs.

fn main() -> std::process::ExitCode {
    ratellmiter_cli::main_with(std::env::args_os())
}
