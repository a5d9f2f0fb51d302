//! `social-realtime`: the one binary. Parses the command line and hands over to the library.

use clap::Parser;

// Many small, short-lived allocations per event (parsing, serialising): mimalloc handles them far better than
// the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use social_realtime::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    social_realtime::telemetry::init_tracing();
    // Installed before any work so that no early count is lost.
    let _ = social_realtime::telemetry::metrics_handle();
    let cli = Cli::parse();
    match social_realtime::commands::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(2)
        }
    }
}
