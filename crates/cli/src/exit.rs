//! How btar ends: exit codes (one table, in the README) and errors as JSON under `--output json`.

use std::process::ExitCode;

use btar_control::{ConfigError, ControlError};
use btar_engine::EngineError;

/// Exit codes. `wal-fetch` has its own pair for PostgreSQL (`cmd::wal`): 1 not archived, 127 failed.
pub const FAILED: u8 = 1;
/// `verify` found damage or a gap.
pub const DAMAGE_FOUND: u8 = 2;
/// `replicate` ran, and a copy job or a log shipment failed.
pub const JOB_FAILED: u8 = 3;
/// `check` ran, and a compliance rule failed.
pub const CHECK_FAILED: u8 = 4;
/// The command line itself is wrong (sysexits' EX_USAGE), so a script can tell it from a failure.
pub const USAGE: u8 = 64;

/// A stable, machine-readable kind of failure (the API's error bodies carry the same codes).
pub fn error_code(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ControlError>() {
            return c.code();
        }
        if let Some(c) = cause.downcast_ref::<ConfigError>() {
            return match c {
                ConfigError::UnknownService(..) => "not_found",
                _ => "config",
            };
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return btar_control::engine_code(e);
        }
        if let Some(r) = cause.downcast_ref::<crate::remote::RemoteError>() {
            return r.code;
        }
    }
    "failed"
}

/// Reports a failed command on stderr — as `{"error": {"code", "message"}}` under `--output json` —
/// and returns its exit code.
pub fn report(e: &anyhow::Error, json: bool, code: u8) -> ExitCode {
    if json {
        let body = serde_json::json!({
            "error": {"code": error_code(e), "message": format!("{e:#}")}
        });
        eprintln!("{body}");
    } else {
        eprintln!("error: {e:#}");
    }
    ExitCode::from(code)
}

/// Reports a command line that does not parse, under `--output json`: `{"error": {"code": "usage",
/// "message"}}` on stderr, the message being clap's (with its usage line).
pub fn report_usage(message: &str) {
    let body = serde_json::json!({"error": {"code": "usage", "message": message.trim_end()}});
    eprintln!("{body}");
}
