#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What the engine layer must get right beyond the default cluster: a cluster whose WAL segments are
//! not 16 MiB (the log numbering comes from the engine and the backup, not a constant), and a
//! service only the catalog knows (a fork) restored by name through the one restore path.

mod common;

use btar_testkit::{InitOptions, PgCluster, conninfo_port};
use common::{Backend, SVC, World, mark, marks};

/// With 64 MiB segments a log id ends at segment 3F; numbered as 16 MiB segments, the next file
/// (log id 1, segment 0) would look 192 segments away: a false gap in every secondary's watermark.
#[test]
fn a_64_mib_segment_cluster_ships_across_a_log_id_and_restores_from_the_secondary() {
    let mut w = World::new(Backend::Fs);
    w.register();
    let archive = format!("{} wal-push --service {SVC} %p", w.btar_prefix());
    let opts = InitOptions {
        wal_segsize_mb: Some(64),
        next_wal_segment: Some("00000001000000000000003D".into()),
    };
    let pg = PgCluster::init_with(&w.dir, "source", Some(&archive), &opts);
    w.write_config(&pg.conninfo());
    w.pg = Some(pg);
    let pg = w.pg();
    assert_eq!(pg.psql("SHOW wal_segment_size"), "64MB");

    mark(pg, "before-backup");
    let taken = w.btar_json(&["backup", "create", SVC]);
    assert_eq!(taken["copies"][0]["job"]["state"], "COMPLETED", "{taken}");
    mark(pg, "after-backup");
    let mut last = pg.switch_and_archive();
    while last.as_str() < "000000010000000100000001" {
        mark(pg, &format!("in-{last}"));
        last = pg.switch_and_archive();
    }
    let expected = marks(pg);

    let pass = w.btar_json(&["replicate"]);
    let shipped = pass["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["destination_region"] == "away")
        .expect("logs shipped to away");
    assert!(shipped["error"].is_null(), "{shipped}");
    let marks_of = shipped["watermarks"].as_array().unwrap();
    assert_eq!(marks_of.len(), 1, "{shipped}");
    let w1 = &marks_of[0];
    assert!(w1["first_missing"].is_null(), "false gap: {w1}");
    assert_eq!(w1["watermark"], last.as_str(), "{w1}");
    assert!(
        w1["first"].as_str().unwrap() <= "00000001000000000000003F",
        "the archive should start before the rollover: {w1}"
    );

    let verified = w.btar(&["verify", SVC, "--region", "away"]);
    assert!(
        verified.status.success(),
        "{}",
        btar_testkit::describe(&verified)
    );
    let (restored, report) = w.restore("restored", &["--region", "away"]);
    assert_eq!(report["restore"]["region"], "away", "{report}");
    assert_eq!(marks(&restored), expected);
}

/// A fork exists only in the catalog (the config never names it); `btar restore` finds it there,
/// restores from its own home region, and replays its own archive.
#[test]
fn a_fork_known_only_to_the_catalog_restores_by_name() {
    let w = World::with_cluster(Backend::Fs);
    mark(w.pg(), "source");
    let taken = w.btar_json(&["backup", "create", SVC]);
    assert_eq!(taken["copies"][0]["job"]["state"], "COMPLETED", "{taken}");
    w.pg().switch_and_archive();
    w.btar_json(&["replicate"]);

    let fork_dir = w.dir.path().join("fork");
    let fd = fork_dir.display().to_string();
    let forked = w.btar_json(&[
        "fork",
        SVC,
        "--source",
        "secondary",
        "--name",
        "orders-fork",
        "--data-dir",
        &fd,
    ]);
    let fork = PgCluster::adopt(
        &fork_dir,
        conninfo_port(forked["conninfo"].as_str().unwrap()),
    );
    assert!(
        !std::fs::read_to_string(&w.config)
            .unwrap()
            .contains("orders-fork")
    );
    let taken = w.btar_json(&["backup", "create", "orders-fork"]);
    assert_eq!(taken["region"], "away", "{taken}");
    mark(&fork, "fork-only");
    fork.switch_and_archive();
    let expected = marks(&fork);
    assert_eq!(expected, vec!["source", "fork-only"]);

    let data_dir = w.dir.path().join("fork-restored");
    let dd = data_dir.display().to_string();
    let port = btar_testkit::free_port();
    let ps = port.to_string();
    let report = w.btar_json(&[
        "restore",
        "orders-fork",
        "--data-dir",
        &dd,
        "--start",
        "--port",
        &ps,
        "--set",
        "listen_addresses=127.0.0.1",
        "--promote-timeout",
        "120s",
    ]);
    let restored = PgCluster::adopt(&data_dir, port);
    assert_eq!(report["restore"]["region"], "away", "{report}");
    assert_eq!(marks(&restored), expected);
}

/// The stores are the truth: with the shared catalog gone (its PostgreSQL unreachable), a service
/// the config declares still restores from its secondary location, with a warning.
#[test]
fn a_restore_works_without_the_catalog() {
    let w = World::with_cluster(Backend::Fs);
    mark(w.pg(), "kept");
    let taken = w.btar_json(&["backup", "create", SVC]);
    assert_eq!(taken["copies"][0]["job"]["state"], "COMPLETED", "{taken}");
    w.pg().switch_and_archive();
    w.btar_json(&["replicate"]);
    let expected = marks(w.pg());

    let mut text = std::fs::read_to_string(&w.config).unwrap();
    let port = btar_testkit::free_port();
    text.push_str(&format!(
        "\n[catalog]\nurl = \"postgres://postgres@127.0.0.1:{port}/gone\"\n"
    ));
    std::fs::write(&w.config, text).unwrap();
    let data_dir = w.dir.path().join("without-catalog");
    let dd = data_dir.display().to_string();
    let pg_port = btar_testkit::free_port();
    let ps = pg_port.to_string();
    let out = w.btar(&[
        "--output",
        "json",
        "restore",
        SVC,
        "--region",
        "away",
        "--data-dir",
        &dd,
        "--start",
        "--port",
        &ps,
        "--set",
        "listen_addresses=127.0.0.1",
    ]);
    let restored = PgCluster::adopt(&data_dir, pg_port);
    assert!(out.status.success(), "{}", btar_testkit::describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("catalog cannot be opened"), "{stderr}");
    assert_eq!(marks(&restored), expected);
}
