#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Storage conformance: the same suite against every backend — in-memory, local filesystem, and a real
//! S3-protocol server on loopback. Each check asserts behaviour a backup system relies on.

use btar_format::verify::verify;
use btar_format::{
    BackupWriter, FileReader, FormatError, Location, LogPut, WriterOptions, backup_name_at,
};
use btar_region::{CancellationToken, Region, RegionConfig, RegionError, RegionKey};
use btar_testkit::{S3Server, fs_region, memory_region};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

const SVC: &str = "svc1";

fn open(cfg: &RegionConfig) -> Region {
    Region::open(cfg, CancellationToken::new()).expect("open region")
}

/// Small frames and packs, so a few hundred KiB already make several of each.
fn opts() -> WriterOptions {
    WriterOptions {
        block_size: 8 * 1024,
        frame_size: 64 * 1024,
        pack_size: 128 * 1024,
    }
}

/// Deterministic, partly compressible test data.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if (i / 4096) % 3 == 0 {
                (i % 251) as u8
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

async fn read_back(loc: &Location, m: &btar_format::Manifest, path: &str) -> Vec<u8> {
    let entry = m.files.iter().find(|f| f.path == path).expect("entry");
    let mut out = Vec::new();
    FileReader::new(loc.clone(), 4)
        .write_to(m, entry, &mut out, &|_| {})
        .await
        .expect("read back");
    out
}

async fn suite(cfg: RegionConfig) {
    let region = open(&cfg);
    raw_object_ops(&region).await;
    round_trips_and_commit_last(&region).await;
    incremental_stores_only_changed_blocks(&region).await;
    tamper_and_loss_are_detected(&region).await;
    wrong_and_missing_keys(&cfg).await;
    logs_refuse_overwrite(&region).await;
    large_multipart_object(&region).await;
    large_log_files_go_frame_by_frame(&region).await;
}

async fn raw_object_ops(r: &Region) {
    r.put("t/a", Bytes::from_static(b"one")).await.unwrap();
    r.put("t/b/c", Bytes::from_static(b"two")).await.unwrap();
    assert_eq!(r.get("t/a").await.unwrap(), Bytes::from_static(b"one"));
    assert_eq!(r.head("t/b/c").await.unwrap().unwrap().size, 3);
    let mut keys: Vec<String> = r.list("t").map_ok(|o| o.key).try_collect().await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["t/a".to_string(), "t/b/c".to_string()]);
    r.delete("t/a").await.unwrap();
    r.delete("t/a").await.unwrap(); // idempotent
    assert!(r.head("t/a").await.unwrap().is_none());
    let e = r.get("t/a").await.unwrap_err();
    assert!(matches!(e, RegionError::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains(r.name()) && e.to_string().contains("t/a"),
        "{e}"
    );
    assert!(
        r.put_if_absent("t/once", Bytes::from_static(b"1"))
            .await
            .unwrap()
    );
    assert!(
        !r.put_if_absent("t/once", Bytes::from_static(b"2"))
            .await
            .unwrap()
    );
    assert_eq!(r.get("t/once").await.unwrap(), Bytes::from_static(b"1"));
    r.delete("t/b/c").await.unwrap();
    r.delete("t/once").await.unwrap();
}

async fn round_trips_and_commit_last(r: &Region) {
    let loc = Location::create(r, SVC, "pg", None).await.unwrap();
    let w = BackupWriter::new(loc.clone(), opts());
    let cs = 64 * 1024;
    let sizes = [0, 1, cs - 1, cs, cs + 1, 5 * cs + 17];
    let mut files = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let d = data(*n, i as u64);
        files.push(
            w.write_file(&format!("f{i}"), 0o600, d.as_slice())
                .await
                .unwrap(),
        );
    }
    let name = backup_name_at(chrono::Utc::now());
    // Every chunk is durable, but nothing is visible until the manifest lands.
    assert!(
        loc.list_backups().await.unwrap().is_empty(),
        "backup visible before commit"
    );
    let m = w
        .finish(
            &name,
            chrono::Utc::now(),
            files,
            serde_json::json!({"k": 1}),
        )
        .await
        .unwrap();
    loc.commit_manifest(&m).await.unwrap();
    assert_eq!(loc.list_backups().await.unwrap(), vec![name.clone()]);
    let m2 = loc.read_manifest(&name).await.unwrap();
    assert_eq!(m2, m);
    for (i, n) in sizes.iter().enumerate() {
        assert_eq!(
            read_back(&loc, &m2, &format!("f{i}")).await,
            data(*n, i as u64),
            "file f{i}"
        );
    }
    // A failed write (reader error mid-file) leaves no manifest.
    struct Failing(usize);
    impl tokio::io::AsyncRead for Failing {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.0 == 0 {
                return std::task::Poll::Ready(Err(std::io::Error::other("disk went away")));
            }
            let n = self.0.min(buf.remaining()).min(10_000);
            buf.put_slice(&vec![3u8; n]);
            self.0 -= n;
            std::task::Poll::Ready(Ok(()))
        }
    }
    let w = BackupWriter::new(loc.clone(), opts());
    let e = w
        .write_file("bad", 0o600, Failing(200_000))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("bad") && e.to_string().contains("disk went away"),
        "{e}"
    );
    assert_eq!(loc.list_backups().await.unwrap().len(), 1);
    loc.delete_manifest(&name).await.unwrap();
}

async fn commit(
    loc: &Location,
    w: &BackupWriter,
    name: &str,
    files: Vec<btar_format::FileEntry>,
) -> btar_format::Manifest {
    let m = w
        .finish(name, chrono::Utc::now(), files, serde_json::Value::Null)
        .await
        .unwrap();
    loc.commit_manifest(&m).await.unwrap();
    m
}

async fn incremental_stores_only_changed_blocks(r: &Region) {
    let loc = Location::create(r, "incr", "pg", None).await.unwrap();
    let bs = 8 * 1024;
    let d1 = data(160 * bs, 99);
    let w1 = BackupWriter::new(loc.clone(), opts());
    let f = w1.write_file("rel", 0o600, d1.as_slice()).await.unwrap();
    let m1 = commit(&loc, &w1, "b1", vec![f]).await;
    assert_eq!(m1.stats.chunk_refs, 160);
    assert!(m1.packs.len() > 1, "{} packs", m1.packs.len());
    assert_eq!(m1.stats.new_objects, 2 * m1.packs.len() as u64);

    // Three pages changed in place, one appended: the next backup stores those four blocks only,
    // and its manifest still describes the whole file in a handful of extents.
    let mut d2 = d1.clone();
    for page in [3usize, 77, 150] {
        d2[page * bs + 100] ^= 0xff;
    }
    d2.extend_from_slice(&data(bs, 1234));
    let w2 = BackupWriter::new(loc.clone(), opts());
    let f = w2.write_file("rel", 0o600, d2.as_slice()).await.unwrap();
    assert!(
        f.extents.len() <= 2 * 4 + m1.packs.len() * 2,
        "{:?}",
        f.extents
    );
    let m2 = commit(&loc, &w2, "b2", vec![f]).await;
    assert_eq!(m2.stats.new_chunks, 4, "{:?}", m2.stats);
    assert_eq!(m2.stats.new_objects, 2, "one new pack and its index");
    assert_eq!(read_back(&loc, &m2, "rel").await, d2);
    assert_eq!(read_back(&loc, &m1, "rel").await, d1);

    // A backup that died after its packs were durable but before its manifest leaves nothing
    // visible, and the rerun reuses those packs instead of uploading them again.
    let w3 = BackupWriter::new(loc.clone(), opts());
    let f = w3
        .write_file("rel", 0o600, data(40 * bs, 5).as_slice())
        .await
        .unwrap();
    w3.finish("b3", chrono::Utc::now(), vec![f], serde_json::Value::Null)
        .await
        .unwrap();
    drop(w3);
    assert_eq!(loc.list_backups().await.unwrap(), vec!["b1", "b2"]);
    let d4 = data(40 * bs, 5);
    let w4 = BackupWriter::new(loc.clone(), opts());
    let f = w4.write_file("rel", 0o600, d4.as_slice()).await.unwrap();
    let m4 = commit(&loc, &w4, "b4", vec![f]).await;
    assert_eq!(m4.stats.new_chunks, 0, "{:?}", m4.stats);
    assert_eq!(read_back(&loc, &m4, "rel").await, d4);
    assert!(verify(&loc, None, 4).await.unwrap().is_clean());
}

async fn tamper_and_loss_are_detected(r: &Region) {
    let loc = Location::create(r, "tamper", "pg", None).await.unwrap();
    let w = BackupWriter::new(loc.clone(), opts());
    let f = w
        .write_file("x", 0o600, data(120 * 8 * 1024, 5).as_slice())
        .await
        .unwrap();
    let m = commit(&loc, &w, "b1", vec![f.clone()]).await;
    assert!(m.packs.len() >= 3, "{} packs", m.packs.len());
    assert!(verify(&loc, None, 4).await.unwrap().is_clean());

    // Flip one byte of a stored pack: the frame holding it no longer opens.
    let victim = loc.pack_key(&m.packs[1]);
    let mut bytes = r.get(&victim).await.unwrap().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    r.put(&victim, Bytes::from(bytes)).await.unwrap();
    let mut out = Vec::new();
    let e = FileReader::new(loc.clone(), 2)
        .write_to(&m, &f, &mut out, &|_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(e, FormatError::WrongKeyOrTampered { .. }) && e.to_string().contains(&victim),
        "{e}"
    );

    // A pack stored under another pack's name is caught by its index.
    let other = r.get(&loc.pack_index_key(&m.packs[0])).await.unwrap();
    r.put(&loc.pack_index_key(&m.packs[2]), other)
        .await
        .unwrap();
    let e = loc.get_pack_index(&m.packs[2]).await.unwrap_err();
    assert!(
        e.to_string().contains(&loc.pack_index_key(&m.packs[2])),
        "{e}"
    );

    // And a deleted pack is reported missing, naming the backup.
    r.delete(&loc.pack_key(&m.packs[0])).await.unwrap();

    let rep = verify(&loc, None, 4).await.unwrap();
    assert!(!rep.is_clean());
    let damaged: Vec<&str> = rep.damaged.iter().map(|p| p.key.as_str()).collect();
    assert!(damaged.contains(&victim.as_str()), "{damaged:?}");
    assert!(
        damaged.contains(&loc.pack_key(&m.packs[2]).as_str()),
        "{damaged:?}"
    );
    assert_eq!(rep.missing.len(), 1, "{:?}", rep.missing);
    assert_eq!(rep.missing[0].key, loc.pack_key(&m.packs[0]));
    assert!(rep.missing[0].reason.contains("b1"));
    // One-backup verification finds the same.
    let rep1 = verify(&loc, Some("b1"), 4).await.unwrap();
    assert_eq!(rep1.damaged.len(), 2, "{:?}", rep1.damaged);
    assert_eq!(rep1.missing.len(), 1);

    // A manifest of a newer format is refused, naming the version found (as a v1 btar refuses v2).
    let mut newer = m.clone();
    newer.backup_name = "from-the-future".into();
    newer.format_version = 99;
    loc.commit_manifest(&newer).await.unwrap();
    let e = loc.read_manifest("from-the-future").await.unwrap_err();
    assert!(
        matches!(
            e,
            FormatError::UnsupportedVersion {
                found: 99,
                supported: 2,
                ..
            }
        ),
        "{e}"
    );
    loc.delete_manifest("from-the-future").await.unwrap();

    // A tampered manifest is damage, not a crash.
    let mk = btar_format::layout::manifest("tamper", "b1");
    let mut mb = r.get(&mk).await.unwrap().to_vec();
    let last = mb.len() - 1;
    mb[last] ^= 1;
    r.put(&mk, Bytes::from(mb)).await.unwrap();
    let e = loc.read_manifest("b1").await.unwrap_err();
    assert!(e.to_string().contains(&mk), "{e}");
    let rep = verify(&loc, None, 4).await.unwrap();
    assert!(rep.damaged.iter().any(|p| p.key == mk));
}

async fn wrong_and_missing_keys(cfg: &RegionConfig) {
    let mut wrong = cfg.clone();
    wrong.key = Some(format!("hex:{}", RegionKey::generate().to_hex()));
    let e = Location::open(&open(&wrong), SVC).await.unwrap_err();
    assert!(matches!(e, FormatError::WrongKeyOrTampered { .. }), "{e}");
    assert!(e.to_string().contains(&cfg.name), "{e}");
    let mut none = cfg.clone();
    none.key = None;
    let e = Location::open(&open(&none), SVC).await.unwrap_err();
    assert!(
        matches!(e, FormatError::Region(RegionError::MissingKey { .. })),
        "{e}"
    );
    let e = Location::open(&open(cfg), "no-such-service")
        .await
        .unwrap_err();
    assert!(matches!(e, FormatError::NoLocation { .. }), "{e}");
}

async fn logs_refuse_overwrite(r: &Region) {
    let loc = Location::create(r, SVC, "pg", None).await.unwrap();
    let seg = Bytes::from(data(100_000, 7));
    let name = "000000010000000000000001";
    assert_eq!(
        loc.put_log("00000001", name, seg.clone()).await.unwrap(),
        LogPut::Stored
    );
    assert_eq!(
        loc.put_log("00000001", name, seg.clone()).await.unwrap(),
        LogPut::AlreadyPresent
    );
    let e = loc
        .put_log("00000001", name, Bytes::from(data(100_000, 8)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    assert_eq!(
        loc.get_log("00000001", name).await.unwrap().unwrap(),
        seg.to_vec()
    );
    assert!(
        loc.get_log("00000001", "000000010000000000000002")
            .await
            .unwrap()
            .is_none()
    );
    let logs: Vec<_> = loc.list_logs().try_collect().await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].name, name);
}

/// Log files above one frame (binlogs reach 1 GiB) are pushed, compared, fetched and verified a
/// frame at a time; files stored whole before frames existed read back through the same calls.
async fn large_log_files_go_frame_by_frame(r: &Region) {
    use btar_format::log_frames::{FRAME, is_framed};
    let loc = Location::create(r, SVC, "pg", None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tl, name) = ("binlog", "binlog.000001");
    let content = data(2 * FRAME + 12_345, 21);
    let file = dir.path().join(name);
    std::fs::write(&file, &content).unwrap();
    assert_eq!(
        loc.put_log_file(tl, name, &file).await.unwrap(),
        LogPut::Stored
    );
    let key = loc.log_key(tl, name);
    let sealed = r.get(&key).await.unwrap();
    assert!(is_framed(&sealed), "a file over one frame is stored framed");
    // Retried: the same content is success; a changed byte, a cut or a longer file is refused.
    assert_eq!(
        loc.put_log_file(tl, name, &file).await.unwrap(),
        LogPut::AlreadyPresent
    );
    for changed in [
        {
            let mut c = content.clone();
            c[FRAME + 7] ^= 1;
            c
        },
        content[..content.len() - 1].to_vec(),
        [&content[..], b"x"].concat(),
    ] {
        let other = dir.path().join("other").join(name);
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        std::fs::write(&other, &changed).unwrap();
        let e = loc.put_log_file(tl, name, &other).await.unwrap_err();
        assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    }
    // Read back every way.
    let fetched = dir.path().join("fetched");
    assert!(loc.fetch_log_file_to(tl, name, &fetched).await.unwrap());
    assert!(std::fs::read(&fetched).unwrap() == content);
    assert!(loc.get_log(tl, name).await.unwrap().unwrap() == content);
    assert_eq!(
        loc.check_log(tl, name).await.unwrap(),
        Some(content.len() as u64)
    );
    assert!(
        !loc.fetch_log_file_to(tl, "binlog.000009", &fetched)
            .await
            .unwrap()
    );
    assert!(loc.check_log(tl, "binlog.000009").await.unwrap().is_none());
    // Copied into another location: re-sealed frame by frame for its key.
    let other = Location::create(
        &open(&memory_region("conf-other")),
        SVC,
        "pg",
        Some((loc.descriptor(), loc.chunk_id_key())),
    )
    .await
    .unwrap();
    let resealed = other.reseal_log_from(&loc, tl, name, &sealed).unwrap();
    assert!(other.open_log(tl, name, &resealed).unwrap() == content);
    assert!(loc.open_log(tl, name, &resealed).is_err());
    // Damage: a flipped byte in the middle, a cut at a frame boundary, a missing end.
    let mut flipped = sealed.to_vec();
    flipped[FRAME + 100] ^= 1;
    r.put(&key, Bytes::from(flipped)).await.unwrap();
    assert!(loc.check_log(tl, name).await.is_err());
    let first_frame = 8 + 4 + u32::from_le_bytes(sealed[8..12].try_into().unwrap()) as usize;
    r.put(&key, sealed.slice(..first_frame)).await.unwrap();
    let e = loc.check_log(tl, name).await.unwrap_err();
    assert!(e.to_string().contains("truncated"), "{e}");
    assert!(loc.fetch_log_file_to(tl, name, &fetched).await.is_err());
    r.put(&key, sealed.slice(..sealed.len() - 5)).await.unwrap();
    assert!(loc.check_log(tl, name).await.is_err());
    r.delete(&key).await.unwrap();
    // Stored whole (as every log file was before frames): read, compared and fetched the same way.
    let legacy = "binlog.000002";
    let legacy_file = dir.path().join(legacy);
    std::fs::write(&legacy_file, &content).unwrap();
    loc.put_log(tl, legacy, Bytes::from(content.clone()))
        .await
        .unwrap();
    assert!(!is_framed(&r.get(&loc.log_key(tl, legacy)).await.unwrap()));
    assert_eq!(
        loc.put_log_file(tl, legacy, &legacy_file).await.unwrap(),
        LogPut::AlreadyPresent
    );
    assert!(loc.fetch_log_file_to(tl, legacy, &fetched).await.unwrap());
    assert!(std::fs::read(&fetched).unwrap() == content);
    // A file of at most one frame is stored whole, readable by older btar.
    let small = "binlog.000003";
    std::fs::write(dir.path().join(small), b"small binlog").unwrap();
    loc.put_log_file(tl, small, &dir.path().join(small))
        .await
        .unwrap();
    assert!(!is_framed(&r.get(&loc.log_key(tl, small)).await.unwrap()));
    assert_eq!(
        loc.check_log(tl, small).await.unwrap(),
        Some(b"small binlog".len() as u64)
    );
    for n in [legacy, small] {
        r.delete(&loc.log_key(tl, n)).await.unwrap();
    }
}

async fn large_multipart_object(r: &Region) {
    let parts: Vec<Bytes> = (0..24).map(|i| Bytes::from(data(1 << 20, i))).collect();
    let s = futures::stream::iter(parts.clone().into_iter().map(Ok)).boxed();
    let n = r.put_multipart("big/object", s).await.unwrap();
    assert_eq!(n, 24 << 20);
    assert_eq!(
        r.get("big/object").await.unwrap(),
        Bytes::from(parts.concat())
    );
    // A failing stream aborts the upload: nothing becomes visible.
    let failing = futures::stream::iter(parts.into_iter().take(12).map(Ok))
        .chain(futures::stream::once(async { Err(RegionError::Cancelled) }))
        .boxed();
    assert!(r.put_multipart("big/aborted", failing).await.is_err());
    assert!(r.head("big/aborted").await.unwrap().is_none());
    r.delete("big/object").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_memory() {
    suite(memory_region("mem-a")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    suite(fs_region("fs-a", dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_s3() {
    let s3 = S3Server::start();
    suite(s3.region("s3-a", "bucket-a")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_a_typed_error_naming_the_region() {
    let mut s3 = S3Server::start();
    let cfg = s3.region("s3-down", "bucket-down");
    let r = open(&cfg);
    r.put("x", Bytes::from_static(b"1")).await.unwrap();
    s3.stop();
    let e = r.get("x").await.unwrap_err();
    assert!(
        matches!(e, RegionError::Unavailable { attempts: 3, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("s3-down"), "{e}");
    let e = Location::create(&r, SVC, "pg", None).await.unwrap_err();
    assert!(e.to_string().contains("s3-down"), "{e}");
}

#[tokio::test]
async fn bad_region_configs_fail_before_io() {
    let mut cfg = memory_region("ok");
    cfg.url = "s3://bucket".into();
    cfg.provider = "local".into();
    let e = Region::open(&cfg, CancellationToken::new()).unwrap_err();
    assert!(e.to_string().contains("does not match provider"), "{e}");
    let s3 = S3Server::start();
    let mut cfg = s3.region("s3-x", "b");
    cfg.options.insert("aws_no_such_option".into(), "1".into());
    let e = Region::open(&cfg, CancellationToken::new()).unwrap_err();
    assert!(
        e.to_string()
            .contains("unknown S3 option `aws_no_such_option`"),
        "{e}"
    );
}

/// A location whose descriptor vanishes while a writer holds it open (an unmount, a deleted bucket)
/// acknowledges nothing: the log file written meanwhile is refused and its stray object removed.
#[tokio::test]
async fn a_location_removed_while_open_acknowledges_nothing() {
    let region = Region::open(&memory_region("vanishing"), CancellationToken::new()).unwrap();
    let loc = Location::create(&region, "svc", "pg", None).await.unwrap();
    region
        .delete(&btar_format::layout::descriptor("svc"))
        .await
        .unwrap();
    let err = loc
        .put_log(
            "00000001",
            "000000010000000000000001",
            Bytes::from_static(b"wal"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, FormatError::NoLocation { .. }), "{err}");
    let key = btar_format::layout::log("svc", "00000001", "000000010000000000000001");
    assert!(region.head(&key).await.unwrap().is_none(), "stray log left");
}
