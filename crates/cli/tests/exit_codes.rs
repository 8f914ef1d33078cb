#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a script sees when a command fails: the documented exit codes, and under `--output json` an
//! error object on stderr with a stable code.

mod common;

use common::{Backend, SVC, World};

fn error_of(out: &std::process::Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("no JSON error ({e}): {stderr}"))
}

#[test]
fn failures_have_documented_codes_and_json_errors() {
    let w = World::new(Backend::Fs);

    let unknown = w.btar(&["--output", "json", "service", "get", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(1));
    let e = error_of(&unknown);
    assert_eq!(e["error"]["code"], "not_found", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("nosuch"),
        "{e}"
    );

    // The database of the test world is not running (port 1): unavailable, not a generic failure.
    let down = w.btar(&["--output", "json", "backup", "create", SVC]);
    assert_eq!(down.status.code(), Some(1));
    assert_eq!(error_of(&down)["error"]["code"], "unavailable");

    // A wrong command line is told apart from a failed command.
    let usage = w.btar(&["service", "get"]);
    assert_eq!(
        usage.status.code(),
        Some(64),
        "{}",
        btar_testkit::describe(&usage)
    );
    let text = w.btar(&["service", "get", "nosuch"]);
    assert!(String::from_utf8_lossy(&text.stderr).starts_with("error: "));
}

/// Completions and the man page come from the same command definition, so they list every command.
#[test]
fn completions_and_man_page_cover_the_commands() {
    let w = World::new(Backend::Fs);
    for shell in ["bash", "zsh", "fish"] {
        let out = w.btar(&["completions", shell]);
        assert!(out.status.success(), "{}", btar_testkit::describe(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        for command in ["wal-push", "copy-jobs", "restore", "fork"] {
            assert!(script.contains(command), "{shell}: {command} missing");
        }
    }
    let man = w.btar(&["man"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.contains(".TH btar 1") && page.contains("wal\\-fetch"),
        "{page}"
    );
}
