#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Idle connections must not exhaust the server (issue 10, item 14): `btar server` started with a
//! low soft open-file limit raises it, keeps answering while hundreds of idle TCP connections are
//! open, closes them after `idle_timeout_seconds`, and refuses connections beyond `max_connections`
//! with a 503 instead of letting them queue.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use btar_testkit::TestDir;
use common::ServerProcess;

// Long enough that 400 held connections outlast a loaded machine's accept loop (3 s once did not).
const IDLE_SECS: u64 = 8;
const MAX_CONNECTIONS: usize = 400;

/// `btar server` under `ulimit -Sn 128`: before the fix it kept that limit and ran out of
/// descriptors at about a hundred connections.
fn start(dir: &TestDir) -> ServerProcess {
    let cfg = dir.path().join("btar.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\ntoken = \"literal:0123456789abcdef0123\"\nmax_connections = {MAX_CONNECTIONS}\n\
             idle_timeout_seconds = {IDLE_SECS}\nnotify = \"127.0.0.1:0\"\n\n\
             [[region]]\nname = \"home\"\nprovider = \"local\"\nurl = \"file://{}\"\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -Sn 128 && exec {} --config {} server --listen 127.0.0.1:0",
            env!("CARGO_BIN_EXE_btar"),
            cfg.display()
        ))
        .stderr(Stdio::null());
    ServerProcess::spawn(cmd)
}

/// Status line of a GET, or None when nothing came back within `wait`.
fn get_status(port: u16, path: &str, wait: Duration) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(wait)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_string)
}

fn open_idle(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect()
}

/// True when the server closed the connection (EOF, reset, or a 503 followed by EOF) within `wait`.
fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

fn soft_nofile(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

#[test]
fn idle_connections_neither_starve_the_api_nor_stay_open() {
    let dir = TestDir::new();
    let server = start(&dir);
    let port = server.port;
    assert!(
        soft_nofile(server.child.id()) > 128,
        "the soft open-file limit was not raised"
    );

    // 300 idle connections, more than the 128 descriptors the server started with.
    let started = Instant::now();
    let mut idle = open_idle(port, 300);
    let status = get_status(port, "/v1/openapi.json", Duration::from_secs(10));
    assert_eq!(
        status.as_deref(),
        Some("HTTP/1.1 200 OK"),
        "API did not answer beside 300 idle connections"
    );
    for (i, s) in idle.iter_mut().enumerate() {
        let left = (Duration::from_secs(IDLE_SECS + 5)).saturating_sub(started.elapsed());
        assert!(
            closed_within(s, left.max(Duration::from_millis(100))),
            "idle connection {i} still open after {:?}",
            started.elapsed()
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(IDLE_SECS - 1),
        "idle connections were closed before the timeout"
    );
    drop(idle);

    // At the limit, one more connection is refused at once, with a 503; once the idle ones time out
    // the API answers again.
    let held = open_idle(port, MAX_CONNECTIONS);
    // The probe queues behind the held connections in the listen backlog, so by the time the server
    // accepts it, it holds all of them: a generous wait only matters on a loaded machine.
    // On a loaded machine the server may not have taken the last held connections yet when the first
    // probe arrives (seen once in CI: 200); it must refuse as soon as it holds them all.
    let refused = Instant::now() + Duration::from_secs(IDLE_SECS / 2);
    let mut status = get_status(port, "/v1/openapi.json", Duration::from_secs(10));
    while status.as_deref() == Some("HTTP/1.1 200 OK") && Instant::now() < refused {
        std::thread::sleep(Duration::from_millis(200));
        status = get_status(port, "/v1/openapi.json", Duration::from_secs(10));
    }
    assert_eq!(status.as_deref(), Some("HTTP/1.1 503 Service Unavailable"));
    let deadline = Instant::now() + Duration::from_secs(IDLE_SECS + 10);
    loop {
        let status = get_status(port, "/v1/openapi.json", Duration::from_secs(2));
        if status.as_deref() == Some("HTTP/1.1 200 OK") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "API still refusing after the idle timeout: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(held);
}
