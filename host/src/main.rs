//! The `verge` binary: parse the command line, set up logging, run.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use verge::cli::{Cli, LogFormat};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    // Colour only for a person at a terminal who has not said NO_COLOR.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    // A panic is a bug or a corrupt file caught below (storage turns redb's
    // panics into errors): one log line, not a backtrace on stderr.
    std::panic::set_hook(Box::new(|info| {
        let text = info.to_string().replace('\n', " ");
        tracing::error!(panic = text, "panic");
    }));
    // The one serving runtime configuration, the benches' too.
    let runtime = match verge::daemon::runtime_builder().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("verge: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let json_errors = cli.json_errors();
    match runtime.block_on(cli.run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{}", verge::cli::report_error(&err, json_errors));
            std::process::ExitCode::FAILURE
        }
    }
}
