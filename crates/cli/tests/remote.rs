#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Remote mode: with `BTAR_SERVER` and a token, the CLI on a host without the config calls a real
//! `btar server` (a real PostgreSQL behind it) and prints the same objects the local catalog gives;
//! its writes land in the server's catalog, and its errors keep their codes.

mod common;

use std::process::{Output, Stdio};

use btar_testkit::{PgCluster, as_db_user, conninfo_port, describe};
use common::{Backend, SVC, ServerProcess, World, error_of};
use serde_json::Value;

const TOKEN: &str = "remote-test-token-7d41c0";

fn start_server(w: &World) -> ServerProcess {
    let mut cmd = as_db_user(env!("CARGO_BIN_EXE_btar"));
    cmd.arg("--config")
        .arg(&w.config)
        .args(["server", "--listen", "127.0.0.1:0", "--no-scheduler"])
        .env_remove("BTAR_SERVER")
        .stderr(Stdio::null());
    ServerProcess::spawn(cmd)
}

/// btar as the database user on "another host": no config file (its default `btar.toml` does not
/// exist in the scratch working directory), only the server's URL and a token.
fn remote(w: &World, url: &str, token: &str, args: &[&str]) -> Output {
    let cwd = w.dir.sub("elsewhere");
    as_db_user(env!("CARGO_BIN_EXE_btar"))
        .current_dir(&cwd)
        .args(args)
        .env_remove("BTAR_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("BTAR_TOKEN_FILE")
        .env("BTAR_SERVER", url)
        .env("BTAR_TOKEN", token)
        .output()
        .unwrap()
}

fn json_of(out: &Output, what: &str) -> Value {
    assert!(out.status.success(), "{what}: {}", describe(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", describe(out)))
}

/// Removes fields that hold "now" (they differ between two runs a moment apart).
fn without_now(mut v: Value, keys: &[&str]) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in keys {
            o.remove(*k);
        }
    }
    v
}

#[test]
fn the_cli_against_a_server_prints_what_the_local_catalog_prints() {
    let w = World::with_cluster(Backend::Fs);
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str(&format!(
        "\n[server]\ntoken = \"literal:{TOKEN}\"\nnotify = \"127.0.0.1:0\"\n"
    ));
    std::fs::write(&w.config, text).unwrap();
    let first = w.backup();
    let server = start_server(&w);
    let url = server.url();
    let url = url.as_str();
    let r = |args: &[&str]| remote(&w, url, TOKEN, args);
    let local_json = |args: &[&str]| w.btar_json(args);
    let remote_json = |args: &[&str]| {
        let mut a = vec!["--output", "json"];
        a.extend_from_slice(args);
        json_of(&r(&a), &format!("remote {args:?}"))
    };

    // Reads: the same objects, and the same text for people.
    let jobs = local_json(&["copy-jobs", "list"]);
    let job_id = jobs["copy_jobs"][0]["copy_job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(jobs["copy_jobs"][0]["state"], "COMPLETED", "{jobs}");
    for args in [
        vec!["service", "get", SVC],
        vec!["service", "list"],
        vec!["backup", "list", SVC],
        vec!["copy-jobs", "list"],
        vec!["copy-jobs", "list", "--state", "completed", "--limit", "1"],
        vec!["copy-jobs", "describe", &job_id],
    ] {
        // The server ships WAL as it is archived, which moves a PITR window: compare again
        // until two runs a moment apart see the same state.
        let same = |a: &Output, b: &Output| a.status.success() && a.stdout == b.stdout;
        let mut tries = 0;
        loop {
            let (local_text, remote_text) = (w.btar(&args), r(&args));
            let mut json_args = vec!["--output", "json"];
            json_args.extend_from_slice(&args);
            let (local, remote) = (w.btar(&json_args), r(&json_args));
            if same(&remote_text, &local_text) && same(&remote, &local) {
                break;
            }
            tries += 1;
            assert!(
                tries < 5,
                "{args:?}: remote {} / local {}; text: remote {} / local {}",
                describe(&remote),
                describe(&local),
                describe(&remote_text),
                describe(&local_text)
            );
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    let report = ["report", SVC, "--period", "day"];
    let (a, b) = (remote_json(&report), local_json(&report));
    assert!(a["metrics"]["away"].is_object(), "{a}");
    assert_eq!(
        without_now(a, &["start", "end"]),
        without_now(b, &["start", "end"])
    );
    // A check's details say how long ago a copy was taken: compare the verdicts.
    let check = ["check", SVC];
    let verdicts = |v: Value| {
        let mut v = without_now(v, &["checked_at"]);
        for r in v["results"].as_array_mut().unwrap() {
            r.as_object_mut().unwrap().remove("detail");
        }
        v
    };
    let (a, b) = (remote_json(&check), local_json(&check));
    assert_eq!(a["results"].as_array().unwrap().len(), 3, "{a}");
    assert_eq!(verdicts(a), verdicts(b));
    // The copy job names the destination's retention (no plan here: kept until deleted by hand).
    assert!(
        jobs["copy_jobs"][0]["destination_retention"].is_null(),
        "{jobs}"
    );

    // Writes land in the server's catalog.
    let created = remote_json(&["service", "create", "other", "--cloud", "home"]);
    assert_eq!(created["service_name"], "other");
    assert_eq!(local_json(&["service", "get", "other"]), created);
    let updated = remote_json(&[
        "service",
        "update",
        "other",
        "-c",
        "additional_backup_regions=[\"away\"]",
    ]);
    assert_eq!(
        updated["user_config"]["additional_backup_regions"],
        serde_json::json!(["away"])
    );
    remote_json(&["service", "delete", "other"]);
    let gone = w.btar(&["--output", "json", "service", "get", "other"]);
    assert_eq!(error_of(&gone)["error"]["code"], "not_found");

    // A backup taken by the server; its copy is the server's workers' job.
    let taken = remote_json(&["backup", "create", SVC]);
    let second = taken["backup_name"].as_str().unwrap();
    assert_ne!(second, first);
    assert!(w.backup_names().contains(&second.to_string()));

    // Errors keep their exit code, JSON code and message.
    let args = ["--output", "json", "service", "get", "nosuch"];
    let (remote_err, local_err) = (r(&args), w.btar(&args));
    assert_eq!(remote_err.status.code(), Some(1));
    assert_eq!(error_of(&remote_err), error_of(&local_err));
    let wrong = remote(&w, url, "not-the-token-at-all", &args);
    assert_eq!(wrong.status.code(), Some(1));
    assert_eq!(error_of(&wrong)["error"]["code"], "unauthorized");
    // What needs the local catalog says so instead of reaching for a config that is not there.
    let samples = r(&["report", SVC, "--samples"]);
    assert_eq!(samples.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&samples.stderr).contains("without --server"),
        "{}",
        describe(&samples)
    );

    // A fork from the secondary location, run by the server.
    let forked = remote_json(&["fork", SVC, "--source", "secondary", "--name", "orders-dr"]);
    let fork = PgCluster::adopt(
        std::path::Path::new(forked["data_dir"].as_str().unwrap()),
        conninfo_port(forked["conninfo"].as_str().unwrap()),
    );
    assert_eq!(forked["cloud"], "away", "{forked}");
    assert_eq!(forked["source_service"], SVC);
    assert_eq!(
        local_json(&["service", "get", "orders-dr"])["cloud_name"],
        "away"
    );
    drop(fork);

    // A deleted service's backups stay listed over HTTP, with their expiry (GET
    // …/service/{service}/backups answered 404 once).
    remote_json(&["service", "delete", SVC]);
    let listed = remote_json(&["backup", "list", SVC]);
    let backups = listed["backups"].as_array().cloned().unwrap_or_default();
    assert!(
        backups.iter().any(|b| b["backup_name"] == second),
        "{listed}"
    );
    // This config sets no retention period: listed with no expiry, kept until one is set.
    assert!(
        backups.iter().all(|b| b.get("expires_at").is_some()),
        "no expiry field on a deleted service's backups: {listed}"
    );
    drop(server);
}
