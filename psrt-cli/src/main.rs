//! psrt-cli: publish to or subscribe at a PSRT server from the shell.
//! `psrt-cli --help` lists the options; errors print one line and exit 1.

use std::process::ExitCode;

use clap::Parser;
use psrt_cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("psrt-cli: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(psrt_cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let message = err.to_string();
            eprintln!("psrt-cli: {message}");
            if let Some(hint) = psrt_proto::tls::hint(&message) {
                eprintln!("psrt-cli: hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
