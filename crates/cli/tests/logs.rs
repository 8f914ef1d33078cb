#![allow(clippy::unwrap_used, clippy::expect_used)]
//! btar's own log lines, as a service manager or PostgreSQL's log captures them: plain text without
//! colour codes when stderr is not a terminal, or one JSON object per line on request.

mod common;

use common::{Backend, ServerProcess, World};

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

/// `btar server` logs one line per request — method, path, status, duration — and never the token.
#[test]
fn the_server_logs_each_request_without_the_token() {
    use std::io::{Read, Write};
    let dir = btar_testkit::TestDir::new();
    let cfg = dir.path().join("btar.toml");
    let token = "0123456789abcdef0123";
    std::fs::write(
        &cfg,
        format!(
            "[server]\ntoken = \"literal:{token}\"\nnotify = \"127.0.0.1:0\"\n\n\
             [[region]]\nname = \"home\"\nprovider = \"local\"\nurl = \"file://{}\"\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("server.log");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_btar"));
    cmd.args(["-v", "--log-format", "json", "--config"])
        .arg(&cfg)
        .args(["server", "--listen", "127.0.0.1:0"])
        .stderr(std::fs::File::create(&log).unwrap());
    let server = ServerProcess::spawn(cmd);
    let port = server.port;
    for path in ["/healthz", "/v1/copy-jobs"] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{path}: {reply}");
    }
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(token), "the token was logged: {text}");
    for path in ["/healthz", "/v1/copy-jobs"] {
        let logged = text.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                v["fields"]["message"] == "request"
                    && v["fields"]["path"] == path
                    && v["fields"]["status"] == 200
                    && v["fields"]["method"] == "GET"
            })
        });
        assert!(logged, "no request line for {path}: {text}");
    }
}
