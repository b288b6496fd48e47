use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue};
use clap::Parser;
use relay::cli::{self, Cli};
use relay::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version are not errors.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // One clear line, like every other error of the CLI.
            let rendered = err.render().to_string();
            let line = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: invalid arguments");
            // clap lists the accepted values on a line of their own; keep them on this one.
            match err.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(values)) if !values.is_empty() => {
                    eprintln!("{line} [possible values: {}]", values.join(", "));
                }
                _ => eprintln!("{line}"),
            }
            return ExitCode::from(2);
        }
    };
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(78);
        }
    };
    let logs = relay::telemetry::init(config.log_format);
    let result = cli::run(cli, config).await;
    // Every queued log line out before the closing error, so that it comes last.
    drop(logs);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}
