#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The streamed tail of a log file on a real filesystem region: overlapping pieces read back as one
//! prefix, a piece altered on disk is refused (never skipped), a moved piece fails its key binding,
//! and the tail of an archived file is swept.

use btar_format::Location;
use btar_region::{CancellationToken, Region};
use btar_testkit::{TestDir, files_under, fs_region};
use bytes::Bytes;

const SEG: u64 = 1 << 20;
const NAME: &str = "000000010000000000000003";

async fn location(dir: &TestDir) -> Location {
    let r = Region::open(&fs_region("r", &dir.sub("store")), CancellationToken::new()).unwrap();
    Location::create(&r, "svc", "pg", None).await.unwrap()
}

fn wal(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test]
async fn overlapping_pieces_read_back_as_one_prefix_and_damage_is_refused() {
    let dir = TestDir::new();
    let loc = location(&dir).await;
    let w = wal(50_000);
    assert!(loc.read_tail("00000001", NAME).await.unwrap().is_none());
    // As a restarted streamer leaves them: 0..20k, 20k..30k, then again 0..45k, and 45k..50k.
    for (a, b) in [(0, 20_000), (20_000, 30_000), (0, 45_000), (45_000, 50_000)] {
        loc.put_tail_piece("00000001", NAME, a, &w[a as usize..b], SEG)
            .await
            .unwrap();
    }
    // A piece that does not start at 0 after a hole is not part of the readable prefix.
    loc.put_tail_piece("00000001", NAME, 60_000, &w[..100], SEG)
        .await
        .unwrap();
    let t = loc.read_tail("00000001", NAME).await.unwrap().unwrap();
    assert_eq!(t.bytes, w);
    assert_eq!(t.file_len, SEG);
    assert!(
        loc.put_tail_piece("00000001", NAME, SEG - 10, &w[..100], SEG)
            .await
            .is_err(),
        "a piece beyond the file is refused"
    );

    // One flipped byte in a piece the prefix uses: an error naming it, not a shorter tail.
    let victim = files_under(&dir.sub("store"))
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .ends_with("000000000000afc8-000000000000c350")
        })
        .expect("piece 45000..50000 on disk");
    let mut bytes = std::fs::read(&victim).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let err = loc.read_tail("00000001", NAME).await.unwrap_err();
    assert!(err.to_string().contains("afc8"), "{err}");
}

#[tokio::test]
async fn a_moved_piece_fails_and_archived_tails_are_swept() {
    let dir = TestDir::new();
    let loc = location(&dir).await;
    let w = wal(4_000);
    loc.put_tail_piece("00000001", NAME, 0, &w, SEG)
        .await
        .unwrap();
    // The same sealed bytes under another file's name do not open there.
    let other = "000000010000000000000004";
    let src = files_under(&dir.sub("store"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains(NAME))
        .unwrap();
    let dst = std::path::PathBuf::from(src.to_string_lossy().replace(NAME, other));
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(&src, &dst).unwrap();
    assert!(loc.read_tail("00000001", other).await.is_err());

    // Nothing archived yet: the sweep keeps both tails; once NAME is archived its tail goes.
    assert_eq!(loc.sweep_superseded_tails().await.unwrap(), 0);
    let mut full = w.clone();
    full.resize(SEG as usize, 0);
    loc.put_log("00000001", NAME, Bytes::from(full))
        .await
        .unwrap();
    assert_eq!(loc.sweep_superseded_tails().await.unwrap(), 1);
    assert!(loc.read_tail("00000001", NAME).await.unwrap().is_none());
    assert!(loc.tail_pieces("00000001", other).await.unwrap().len() == 1);
}
