#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What a script sees when a command fails: the documented exit codes, and under `--output json` an
//! error object on stderr with a stable code.

mod common;

use common::{Backend, SVC, World, error_of};

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
    // The OpenAPI document without a server, for client generators.
    let doc = w.btar_json(&["openapi"]);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"]["/v1/copy-jobs"]["get"]["operationId"],
        "listCopyJobs"
    );
    let man = w.btar(&["man"]);
    assert!(man.status.success());
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        page.contains(".TH btar 1") && page.contains("wal\\-fetch"),
        "{page}"
    );
}

/// `-c KEY=VALUE` is `service`'s user_config entry (Aiven's CLI); the config file is `--config` /
/// `-C` (or BTAR_CONFIG), so help lists one `-c` per command and a misplaced path is explained.
#[test]
fn dash_c_is_a_user_config_entry_and_the_config_file_is_dash_capital_c() {
    let w = World::new(Backend::Fs);
    let help = w.btar(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("-C, --config"), "{help}");
    assert!(!help.contains("-c,"), "{help}");
    let update_help = w.btar(&["service", "update", "--help"]);
    let update_help = String::from_utf8_lossy(&update_help.stdout);
    assert!(update_help.contains("-c, --user-config"), "{update_help}");

    // -C FILE before the command, -c KEY=VALUE after it, in one command line.
    let cfg = w.config.to_str().unwrap();
    let out = btar_testkit::as_db_user(env!("CARGO_BIN_EXE_btar"))
        .env_remove("BTAR_CONFIG")
        .args([
            "-C",
            cfg,
            "--output",
            "json",
            "service",
            "update",
            common::SVC,
        ])
        .args(["-c", "additional_backup_regions=[]"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", btar_testkit::describe(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["user_config"]["additional_backup_regions"],
        serde_json::json!([])
    );

    // The old habit `service update -c /path/btar.toml NAME` is a usage error that says where the
    // config file goes, as JSON under --output json.
    let wrong = w.btar(&["--output", "json", "service", "update", "-c", cfg, "x"]);
    assert_eq!(
        wrong.status.code(),
        Some(64),
        "{}",
        btar_testkit::describe(&wrong)
    );
    let e = error_of(&wrong);
    assert_eq!(e["error"]["code"], "usage", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--config FILE"),
        "{e}"
    );
}

/// Commands that used to print bare values print objects under --output json.
#[test]
fn keygen_and_catalog_rebuild_print_objects() {
    let w = World::new(Backend::Fs);
    let key = w.btar_json(&["keygen"]);
    assert_eq!(key["key"].as_str().unwrap().len(), 64, "{key}");
    let text = w.btar(&["keygen"]);
    assert_eq!(String::from_utf8_lossy(&text.stdout).trim().len(), 64);
    w.register();
    let rebuilt = w.btar_json(&["catalog", "rebuild"]);
    let rows = rebuilt["indexed"].as_array().unwrap();
    assert!(!rows.is_empty(), "{rebuilt}");
    for row in rows {
        assert!(
            row["service"].is_string() && row["region"].is_string(),
            "{row}"
        );
        assert!(row["backups"].is_u64(), "{row}");
    }
}

/// A `[storage]` key btar no longer reads, or a value out of range, stops every command with the
/// config error (exit 1, code `config`) naming the key and what to use instead; the format v1 keys
/// used to load and be ignored without a word, so an operator tuning them changed nothing.
#[test]
fn retired_and_out_of_range_storage_keys_are_refused_naming_the_fix() {
    let w = World::new(Backend::Fs);
    let conninfo = "host=127.0.0.1 port=1 user=postgres dbname=postgres";
    for (setting, needles) in [
        // 2^54 KiB: the audit's value, which `* 1024` would wrap to 0.
        (
            "chunk_size_kib = 18014398509481984",
            &[
                "chunk_size_kib",
                "no longer",
                "block_size_kib",
                "pack_size_mib",
            ][..],
        ),
        (
            "max_in_flight = 8",
            &["max_in_flight", "no longer", "parallel_files"],
        ),
        (
            "block_size_kib = 18014398509481984",
            &["block_size_kib", "1..=1024", "18014398509481984"],
        ),
        ("parallel_files = 0", &["parallel_files", "1..=256"]),
    ] {
        w.write_config(conninfo);
        w.set_storage(setting);
        let out = w.btar(&["--output", "json", "service", "get", SVC]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{setting}: {}",
            btar_testkit::describe(&out)
        );
        let e = error_of(&out);
        assert_eq!(e["error"]["code"], "config", "{setting}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        for needle in needles {
            assert!(
                message.contains(needle),
                "{setting}: `{needle}` not in {message}"
            );
        }
        assert!(
            message.contains("btar.toml"),
            "{setting}: names the file: {message}"
        );
    }
}
