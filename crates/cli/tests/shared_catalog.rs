#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Two `btar server` processes on one PostgreSQL catalog share the copy jobs: every job completes,
//! and none is run twice (a second claim of a job would show as a second attempt).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use btar_testkit::as_db_user;
use common::{Backend, SVC, World};

fn server(w: &World) -> Child {
    as_db_user(env!("CARGO_BIN_EXE_btar"))
        .arg("--config")
        .arg(&w.config)
        .args(["server", "--listen", "127.0.0.1:0", "--workers", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn two_servers_share_copy_jobs_without_running_any_twice() {
    let db = btar_testkit::PgDatabase::create_blocking("shared_catalog");
    let w = World::with_cluster(Backend::Fs);
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str(&format!(
        "\n[catalog]\nurl = \"{}\"\n\n[server]\nreconcile_seconds = 1\nnotify = \"127.0.0.1:{}\"\n",
        db.url,
        btar_testkit::free_port()
    ));
    std::fs::write(&w.config, text).unwrap();

    const BACKUPS: usize = 4;
    for i in 0..BACKUPS {
        w.pg().psql(&format!(
            "CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t VALUES ({i})"
        ));
        w.btar_json(&["backup", "create", SVC, "--no-copy"]);
    }
    let created = w.btar_json(&["copy-jobs", "list", "--state", "created"]);
    assert_eq!(created["copy_jobs"].as_array().unwrap().len(), BACKUPS);

    let mut a = server(&w);
    let mut b = server(&w);
    let deadline = Instant::now() + Duration::from_secs(120);
    let jobs = loop {
        let v = w.btar_json(&["copy-jobs", "list"]);
        let jobs = v["copy_jobs"].as_array().unwrap().clone();
        let done = jobs.iter().filter(|j| j["state"] == "COMPLETED").count();
        if done == BACKUPS || Instant::now() > deadline {
            break jobs;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let _ = Command::new("pkill")
        .args(["-INT", "-f", &format!("{} server", w.config.display())])
        .status();
    let _ = (a.wait(), b.wait());
    let listed = w.btar_json(&["backup", "list", SVC]);
    drop(db);

    assert_eq!(jobs.len(), BACKUPS, "{jobs:?}");
    for j in &jobs {
        assert_eq!(j["state"], "COMPLETED", "{j}");
        assert_eq!(j["attempts"], 1, "a job was claimed twice: {j}");
    }
    for b in listed["backups"].as_array().unwrap() {
        assert_eq!(
            b["additional_regions"][0]["status"], "COMPLETED",
            "{listed}"
        );
    }
}
