#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The shipped systemd units are valid units that run this btar's real commands.

use std::path::Path;
use std::process::Command;

#[test]
fn systemd_units_verify_and_name_real_commands() {
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/systemd");
    let dir = btar_testkit::TestDir::new();
    for name in [
        "btar.service",
        "btar-backup@.service",
        "btar-log-follow@.service",
        "btar-log-stream@.service",
    ] {
        let text = std::fs::read_to_string(units.join(name)).unwrap();
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart=/usr/local/bin/btar "))
            .unwrap_or_else(|| panic!("{name}: no ExecStart of btar"));
        // The command line the unit runs parses (with a placeholder for the template's %i).
        let args: Vec<String> = exec
            .split_whitespace()
            .map(|a| a.replace("%i", "orders"))
            .chain(["--help".to_string()])
            .collect();
        let help = Command::new(env!("CARGO_BIN_EXE_btar"))
            .args(&args)
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{name}: `btar {exec}` does not parse"
        );
        // systemd's own checker, with ExecStart pointing at the built binary.
        let local = dir.path().join(name);
        std::fs::write(
            &local,
            text.replace("/usr/local/bin/btar", env!("CARGO_BIN_EXE_btar")),
        )
        .unwrap();
        let verified = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&local)
            .output()
            .expect("systemd-analyze (apt install systemd)");
        let stderr = String::from_utf8_lossy(&verified.stderr);
        assert!(
            verified.status.success() && stderr.trim().is_empty(),
            "{name}: {stderr}"
        );
    }
}
