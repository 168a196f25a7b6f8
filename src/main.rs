use clap::Parser;
use webrepl_mount::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("webrepl_mount={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("webrepl-mount: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(cli::run(cli)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("webrepl-mount: {e}");
            e.exit_code()
        }
    };
    // The stdin thread of a terminal may still be blocked in read().
    rt.shutdown_background();
    std::process::exit(code);
}
