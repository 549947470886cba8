//! promtool-style checks: `sonde check config FILE...`, `sonde check web-config FILE...`.

use crate::cli::{CheckWhat, Command};
use crate::config::Config;
use std::process::ExitCode;

/// Runs a check subcommand; prints findings and returns non-zero on any error.
pub fn run(cmd: Command) -> ExitCode {
    let Command::Check { what } = cmd;
    let mut failed = false;
    match what {
        CheckWhat::Config { files } => {
            for f in files {
                match Config::load(&f) {
                    Ok(c) => {
                        println!(
                            "Checking {}\n  SUCCESS: {} is valid prometheus config file syntax",
                            f.display(),
                            f.display()
                        );
                        for w in c.warnings() {
                            println!("  WARNING: {w}");
                        }
                    }
                    Err(e) => {
                        failed = true;
                        println!("Checking {}\n  FAILED: {e}", f.display());
                    }
                }
            }
        }
        CheckWhat::WebConfig { files } => {
            for f in files {
                match crate::config::WebConfig::load(&f) {
                    Ok(_) => println!("{} SUCCESS", f.display()),
                    Err(e) => {
                        failed = true;
                        println!("{} FAILED: {e}", f.display());
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
