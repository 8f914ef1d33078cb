//! A MariaDB test world: a source server started by the harness and a config with filesystem
//! regions `home` and `away` (the service's secondary), shared by the MariaDB test files.
#![allow(dead_code)]

use std::path::Path;

use btar_region::RegionConfig;
use btar_testkit::{MariaDb, TestDir, free_port, fs_region};

use crate::common::btar_with;

pub const SVC: &str = "shop";

/// Writes a config with `regions` and the MariaDB service `shop` on `port` (home, copied to away).
pub fn write_config(path: &Path, regions: &[RegionConfig], port: u16) {
    #[derive(serde::Serialize)]
    struct Mysql {
        host: &'static str,
        port: u16,
        user: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Service {
        name: &'static str,
        engine: &'static str,
        cloud: &'static str,
        additional_backup_regions: Vec<&'static str>,
        mysql: Mysql,
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        region: &'a [RegionConfig],
        service: Vec<Service>,
    }
    let f = File {
        region: regions,
        service: vec![Service {
            name: SVC,
            engine: "mysql",
            cloud: "home",
            additional_backup_regions: vec!["away"],
            mysql: Mysql {
                host: "127.0.0.1",
                port,
                user: "root",
            },
        }],
    };
    // 1 MiB packs: a backup of a few MB writes several, so one can be damaged or killed midway.
    let text = toml::to_string(&f).unwrap() + "\n[storage]\npack_size_mib = 1\n";
    std::fs::write(path, text).unwrap();
}

/// `btar restore --region away --start` of the service into `dir/sub` on a free loopback port; the
/// restored server (stopped when dropped), btar's output and the data directory.
pub fn restore_from_away(
    dir: &Path,
    config: &Path,
    sub: &str,
    extra: &[&str],
) -> (MariaDb, std::process::Output, std::path::PathBuf) {
    let data_dir = dir.join(sub);
    let port = free_port();
    let (p, dd) = (port.to_string(), data_dir.display().to_string());
    let mut args = vec![
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
        &p,
        "--set",
        "bind-address=127.0.0.1",
        "--promote-timeout",
        "60s",
    ];
    args.extend_from_slice(extra);
    let out = btar_with(config, &args);
    (MariaDb::adopt(&data_dir, port), out, data_dir)
}

/// A source MariaDB and a config with two filesystem regions, `home` and `away`.
pub fn two_regions() -> (TestDir, MariaDb, std::path::PathBuf) {
    let dir = TestDir::new();
    let regions = vec![
        fs_region("home", &dir.sub("store-home")),
        fs_region("away", &dir.sub("store-away")),
    ];
    let src = MariaDb::start(&dir, "source");
    let config = dir.path().join("btar.toml");
    write_config(&config, &regions, src.port);
    (dir, src, config)
}

/// Rows and checksum of the test table: equal iff the same data.
pub fn fingerprint(db: &MariaDb) -> String {
    db.sql("SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, ':', v))), 0) FROM shop.items")
}
