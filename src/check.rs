//! promtool-style checks: `sonde check config FILE...`, `sonde check rules FILE...`,
//! `sonde check web-config FILE...`.

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
                        match c.resolve_rule_files() {
                            Ok(rule_files) => {
                                for rf in rule_files {
                                    println!();
                                    failed |= !check_rule_file(&rf);
                                }
                            }
                            Err(e) => {
                                failed = true;
                                println!("  FAILED: {e}");
                            }
                        }
                    }
                    Err(e) => {
                        failed = true;
                        println!("Checking {}\n  FAILED: {e}", f.display());
                    }
                }
            }
        }
        CheckWhat::Rules { files } => {
            for f in files {
                failed |= !check_rule_file(&f);
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

/// Checks one rule file as `promtool check rules` does; true if it is valid.
fn check_rule_file(f: &std::path::Path) -> bool {
    println!("Checking {}", f.display());
    match crate::rules::file::load_rule_file(f) {
        Ok(groups) => {
            let n: usize = groups.iter().map(|g| g.rules.len()).sum();
            println!("  SUCCESS: {n} rules found");
            true
        }
        Err(e) => {
            println!("  FAILED:\n{e}");
            false
        }
    }
}
