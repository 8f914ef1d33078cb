//! The one place where object keys are formatted. Everything under a region's URL:
//!
//! ```text
//! btar/v1/services/<service>/service.json               descriptor: engine, wrapped chunk-id key, version
//! btar/v1/services/<service>/chunks/<id[0..2]>/<id>     sealed, compressed chunk (format v1)
//! btar/v1/services/<service>/packs/<id[0..2]>/<id>.pack sealed frames of blocks (format v2)
//! btar/v1/services/<service>/packs/<id[0..2]>/<id>.idx  sealed index of that pack, written after it
//! btar/v1/services/<service>/packs/<id[0..2]>/<id>.superseded-<unix secs>
//!                                                       empty: the pack was repacked at that time
//! btar/v1/services/<service>/backups/<backup>.manifest  sealed manifest, written last
//! btar/v1/services/<service>/logs/<timeline>/<name>     sealed WAL segment / binlog file
//! btar/v1/services/<service>/stream/<timeline>/<name>/<start>-<end>
//!                                                       sealed piece of a log file not yet archived
//!                                                       (bytes start..end, 16 hex digits each),
//!                                                       written by the streamer
//! ```
//! Chunks and packs fan out by the first byte of their id so filesystem regions keep directories
//! small. The `v1` in the root names the layout of keys, which format v2 kept; the version of each
//! object is inside it (envelope, manifest, descriptor).

use crate::chunk::ChunkId;
use crate::error::FormatError;

pub const ROOT: &str = "btar/v1/services";
pub const MANIFEST_SUFFIX: &str = ".manifest";

/// Service, backup and log names become path segments, so they are restricted to a safe alphabet.
pub fn validate_name(name: &str) -> Result<(), FormatError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(FormatError::InvalidName {
            name: name.to_string(),
            reason: "use 1-128 letters, digits, `-`, `_` or `.`, not starting with `.`".into(),
        })
    }
}

pub fn services_prefix() -> String {
    format!("{ROOT}/")
}

pub fn service_prefix(service: &str) -> String {
    format!("{ROOT}/{service}")
}

pub fn descriptor(service: &str) -> String {
    format!("{ROOT}/{service}/service.json")
}

pub fn chunks_prefix(service: &str) -> String {
    format!("{ROOT}/{service}/chunks")
}

pub fn chunk(service: &str, id: &ChunkId) -> String {
    let hex = id.to_hex();
    format!("{ROOT}/{service}/chunks/{}/{hex}", &hex[..2])
}

/// The chunk id named by a chunk key, if the key is one.
pub fn parse_chunk_key(key: &str) -> Option<ChunkId> {
    let name = key.rsplit('/').next()?;
    ChunkId::from_hex(name).ok()
}

pub const PACK_SUFFIX: &str = ".pack";
pub const PACK_INDEX_SUFFIX: &str = ".idx";

pub fn packs_prefix(service: &str) -> String {
    format!("{ROOT}/{service}/packs")
}

pub fn pack(service: &str, id: &ChunkId) -> String {
    let hex = id.to_hex();
    format!("{ROOT}/{service}/packs/{}/{hex}{PACK_SUFFIX}", &hex[..2])
}

pub fn pack_index(service: &str, id: &ChunkId) -> String {
    let hex = id.to_hex();
    format!(
        "{ROOT}/{service}/packs/{}/{hex}{PACK_INDEX_SUFFIX}",
        &hex[..2]
    )
}

/// The pack id named by a pack or pack-index key, if the key is one.
pub fn parse_pack_key(key: &str) -> Option<ChunkId> {
    let name = key.rsplit('/').next()?;
    let hex = name
        .strip_suffix(PACK_SUFFIX)
        .or_else(|| name.strip_suffix(PACK_INDEX_SUFFIX))?;
    ChunkId::from_hex(hex).ok()
}

pub const SUPERSEDED_SUFFIX: &str = ".superseded-";

/// The marker a repack leaves beside a pack it moved the live blocks out of, at `at` (seconds
/// since the epoch). The time is in the key so a listing tells it without a GET.
pub fn superseded_marker(service: &str, id: &ChunkId, at: i64) -> String {
    let hex = id.to_hex();
    format!(
        "{ROOT}/{service}/packs/{}/{hex}{SUPERSEDED_SUFFIX}{at}",
        &hex[..2]
    )
}

/// The pack id and time named by a superseded marker's key, if the key is one.
pub fn parse_superseded_key(key: &str) -> Option<(ChunkId, i64)> {
    let name = key.rsplit('/').next()?;
    let (hex, at) = name.split_once(SUPERSEDED_SUFFIX)?;
    Some((ChunkId::from_hex(hex).ok()?, at.parse().ok()?))
}

pub fn backups_prefix(service: &str) -> String {
    format!("{ROOT}/{service}/backups")
}

pub fn manifest(service: &str, backup: &str) -> String {
    format!("{ROOT}/{service}/backups/{backup}{MANIFEST_SUFFIX}")
}

pub fn parse_manifest_key(key: &str) -> Option<String> {
    let name = key.rsplit('/').next()?;
    name.strip_suffix(MANIFEST_SUFFIX).map(str::to_string)
}

pub fn logs_prefix(service: &str) -> String {
    format!("{ROOT}/{service}/logs")
}

pub fn log(service: &str, timeline: &str, name: &str) -> String {
    format!("{ROOT}/{service}/logs/{timeline}/{name}")
}

/// `(timeline, name)` of a log key.
pub fn parse_log_key(key: &str) -> Option<(String, String)> {
    let mut it = key.rsplit('/');
    let name = it.next()?;
    let timeline = it.next()?;
    Some((timeline.to_string(), name.to_string()))
}

pub fn stream_prefix(service: &str) -> String {
    format!("{ROOT}/{service}/stream")
}

pub fn tail_prefix(service: &str, timeline: &str, name: &str) -> String {
    format!("{ROOT}/{service}/stream/{timeline}/{name}")
}

/// A piece of the streamed tail of log file `name`: its bytes `start..end`. The range is in the
/// key so a listing tells which pieces cover what without reading them.
pub fn tail_piece(service: &str, timeline: &str, name: &str, start: u64, end: u64) -> String {
    format!("{ROOT}/{service}/stream/{timeline}/{name}/{start:016x}-{end:016x}")
}

/// `(timeline, name, start, end)` of a tail piece's key.
pub fn parse_tail_key(key: &str) -> Option<(String, String, u64, u64)> {
    let mut it = key.rsplit('/');
    let (range, name, timeline) = (it.next()?, it.next()?, it.next()?);
    let (a, b) = range.split_once('-')?;
    if a.len() != 16 || b.len() != 16 {
        return None;
    }
    let (start, end) = (
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    );
    (start < end).then(|| (timeline.to_string(), name.to_string(), start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let id = ChunkId::from_bytes([7u8; 32]);
        let k = chunk("svc", &id);
        assert!(k.starts_with("btar/v1/services/svc/chunks/07/0707"));
        assert_eq!(parse_chunk_key(&k), Some(id));
        let p = pack("svc", &id);
        assert!(p.starts_with("btar/v1/services/svc/packs/07/0707") && p.ends_with(".pack"));
        assert_eq!(parse_pack_key(&p), Some(id));
        assert_eq!(parse_pack_key(&pack_index("svc", &id)), Some(id));
        assert_eq!(parse_pack_key(&k), None);
        let m = superseded_marker("svc", &id, 1_700_000_000);
        assert_eq!(parse_superseded_key(&m), Some((id, 1_700_000_000)));
        // A marker is neither a pack nor an index, and a pack is no marker.
        assert_eq!(parse_pack_key(&m), None);
        assert_eq!(parse_superseded_key(&p), None);
        assert_eq!(
            parse_manifest_key(&manifest("svc", "b1")).as_deref(),
            Some("b1")
        );
        assert_eq!(
            parse_log_key(&log("svc", "00000001", "000000010000000000000003")),
            Some(("00000001".into(), "000000010000000000000003".into()))
        );
    }

    #[test]
    fn tail_keys_round_trip() {
        let k = tail_piece("svc", "00000001", "000000010000000000000003", 0, 0x2000);
        assert_eq!(
            parse_tail_key(&k),
            Some((
                "00000001".into(),
                "000000010000000000000003".into(),
                0,
                0x2000
            ))
        );
        assert!(k.starts_with(&tail_prefix("svc", "00000001", "000000010000000000000003")));
        assert_eq!(parse_tail_key(&log("svc", "00000001", "x")), None);
    }

    #[test]
    fn rejects_unsafe_names() {
        for bad in ["", "..", "a/b", ".hidden", "sp ace", &"x".repeat(200)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name("pg-main_1.x").is_ok());
    }
}
