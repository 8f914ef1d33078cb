#![allow(clippy::unwrap_used, clippy::expect_used)]
//! btar's own log lines, as a service manager or PostgreSQL's log captures them: plain text without
//! colour codes when stderr is not a terminal, or one JSON object per line on request.

mod common;

use common::{Backend, World};

#[test]
fn captured_logs_carry_no_colour_codes_and_json_logs_parse() {
    let w = World::new(Backend::Fs);
    let text = w.btar(&["-v", "service", "list"]);
    assert!(text.status.success(), "{}", btar_testkit::describe(&text));
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("INFO"), "expected info lines: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI codes in captured logs: {stderr:?}"
    );

    let json = w.btar(&["-vv", "--log-format", "json", "service", "list"]);
    assert!(json.status.success(), "{}", btar_testkit::describe(&json));
    let stderr = String::from_utf8_lossy(&json.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}
