#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `btar cost` on a real PostgreSQL backup copied to a second filesystem region: per location, the
//! stored bytes and objects are what the store holds, the copy's bytes are counted in the region
//! they went to, and a `[[price]]` turns them into money by the documented formula. A price for a
//! region that is not declared is refused.

mod common;

use common::{Backend, SVC, World, mark};

/// Bytes and objects of the service's files in a filesystem store.
fn held(w: &World, region: &str) -> (u64, u64) {
    let root = w
        .dir
        .path()
        .join(format!("store-{region}/btar/v1/services/{SVC}"));
    let files = btar_testkit::files_under(&root);
    let bytes = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    (bytes, files.len() as u64)
}

#[test]
fn cost_counts_what_each_location_holds_and_prices_it() {
    let w = World::with_cluster(Backend::Fs);
    mark(w.pg(), "a");
    w.backup();
    let mut text = std::fs::read_to_string(&w.config).unwrap();
    text.push_str("\n[[price]]\nregion = \"away\"\ngb_month = 0.02\ntransfer_gb = 0.09\n");
    std::fs::write(&w.config, &text).unwrap();

    let r = w.btar_json(&["cost", SVC, "--period", "day"]);
    let line = |region: &str| {
        r["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["region"] == region)
            .unwrap_or_else(|| panic!("no {region}: {r}"))
            .clone()
    };
    let (home, away) = (line("home"), line("away"));
    assert_eq!(home["role"], "primary");
    assert_eq!(away["role"], "secondary");
    for (l, region) in [(&home, "home"), (&away, "away")] {
        let (bytes, objects) = held(&w, region);
        assert_eq!(l["stored_bytes"].as_u64().unwrap(), bytes, "{region}: {r}");
        assert_eq!(l["objects"].as_u64().unwrap(), objects, "{region}: {r}");
        let gbh = bytes as f64 / 1e9 * 24.0;
        assert!((l["gb_hours"].as_f64().unwrap() - gbh).abs() < 1e-9, "{r}");
    }
    assert!(home["logical_bytes"].as_u64().unwrap() > home["stored_bytes"].as_u64().unwrap());
    assert_eq!(away["copy_jobs"], 1, "{r}");
    let copied = away["copy_bytes"].as_u64().unwrap();
    assert!(copied > 0, "{r}");
    assert_eq!(home["copy_bytes"], 0);
    // Only `away` has a price: storage for a day plus the bytes copied in.
    assert!(home.get("price").is_none(), "{r}");
    let expect = away["gb_hours"].as_f64().unwrap() / 730.0 * 0.02 + copied as f64 / 1e9 * 0.09;
    assert!(
        (away["price"].as_f64().unwrap() - expect).abs() < 1e-12,
        "{r}"
    );
    assert!(
        (r["total_price"].as_f64().unwrap() - expect).abs() < 1e-12,
        "{r}"
    );

    text.push_str("\n[[price]]\nregion = \"nowhere\"\ngb_month = 0.02\n");
    std::fs::write(&w.config, &text).unwrap();
    let out = w.btar(&["cost", SVC]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        btar_testkit::describe(&out)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("`nowhere`, which is not declared"));
}
