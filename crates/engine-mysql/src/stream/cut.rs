//! Where a growing binlog file may be cut: after a whole transaction (or an event outside any), so
//! a streamed tail never ends inside an event or a transaction, and a replay of it applies whole
//! transactions only. Walks the file's events from where it last stopped, a header at a time (a
//! small commit statement's body too), so following a file costs what the server appends.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use btar_engine::EngineError;

use crate::replay::{FL_STANDALONE, GTID_BODY, GTID_EVENT, HEADER, MAGIC, QUERY_EVENT, XID_EVENT};

/// A QUERY_EVENT this large is a statement, not the `COMMIT` that ends a transaction of a
/// non-transactional engine: its body is not read.
const COMMIT_EVENT_MAX: u64 = 512;

/// How far one spooled binlog file has been walked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cutter {
    /// The next event's offset (0 before the magic is read).
    at: u64,
    /// The end of the last whole transaction or standalone event: where the file may be cut.
    safe: u64,
    /// Inside a transaction begun by a GTID event: whether it is one standalone statement.
    group: Option<bool>,
}

impl Cutter {
    /// Where the file may be cut, as walked so far.
    pub fn safe(&self) -> u64 {
        self.safe
    }

    /// Walks the events appended to `path` since the last call; a trailing event not yet complete
    /// is left for the next. Returns the new safe cut.
    pub fn advance(&mut self, path: &Path) -> Result<u64, EngineError> {
        let fail =
            |e: std::io::Error| EngineError::Failed(format!("reading {}: {e}", path.display()));
        let mut f = std::fs::File::open(path).map_err(fail)?;
        let len = f.metadata().map_err(fail)?.len();
        if len < self.at {
            // Not the file walked so far (received again from its start): the session starts over.
            return Err(EngineError::Unavailable(format!(
                "{} shrank from {} to {len} bytes while it was streamed",
                path.display(),
                self.at
            )));
        }
        if self.at == 0 {
            if len < MAGIC.len() as u64 {
                return Ok(self.safe);
            }
            let mut magic = [0u8; 4];
            f.read_exact(&mut magic).map_err(fail)?;
            if &magic != MAGIC {
                return Err(EngineError::Damaged(format!(
                    "{} is not a binlog file (no binlog magic)",
                    path.display()
                )));
            }
            self.at = MAGIC.len() as u64;
            self.safe = self.at;
        }
        let mut buf = std::io::BufReader::with_capacity(1 << 16, f);
        buf.seek(SeekFrom::Start(self.at)).map_err(fail)?;
        let mut h = [0u8; HEADER as usize];
        while self.at + HEADER <= len {
            buf.read_exact(&mut h).map_err(fail)?;
            let size = u32::from_le_bytes([h[9], h[10], h[11], h[12]]) as u64;
            if size < HEADER {
                return Err(EngineError::Damaged(format!(
                    "{}: event at {} claims {size} bytes, less than its header",
                    path.display(),
                    self.at
                )));
            }
            if self.at + size > len {
                break;
            }
            let mut body = vec![];
            let read_body = match h[4] {
                GTID_EVENT => size >= HEADER + GTID_BODY,
                QUERY_EVENT => self.group == Some(false) && size <= COMMIT_EVENT_MAX,
                _ => false,
            };
            if read_body {
                body.resize((size - HEADER) as usize, 0);
                buf.read_exact(&mut body).map_err(fail)?;
            } else {
                buf.seek_relative((size - HEADER) as i64).map_err(fail)?;
            }
            self.at += size;
            if self.ends_group(h[4], &body) {
                self.safe = self.at;
            }
        }
        Ok(self.safe)
    }

    /// Takes one event of kind `kind` (with its body when read); whether a cut may follow it.
    fn ends_group(&mut self, kind: u8, body: &[u8]) -> bool {
        match (kind, self.group) {
            (GTID_EVENT, _) => {
                let standalone = body
                    .get(GTID_BODY as usize - 1)
                    .is_some_and(|f| f & FL_STANDALONE != 0);
                self.group = Some(standalone);
                false
            }
            (_, None) => true,
            (XID_EVENT, Some(false)) => {
                self.group = None;
                true
            }
            (QUERY_EVENT, Some(true)) => {
                self.group = None;
                true
            }
            (QUERY_EVENT, Some(false)) if ends_transaction(body) => {
                self.group = None;
                true
            }
            _ => false,
        }
    }
}

/// Whether a QUERY_EVENT's body is the `COMMIT` (or `ROLLBACK`) that ends a transaction: after
/// the post-header (thread id 4, time 4, database name length 1, error code 2, status length 2),
/// the status variables and the NUL-ended database name, the statement is exactly that, up to the
/// end of the body or a 4-byte checksum before it.
fn ends_transaction(body: &[u8]) -> bool {
    let (Some(&db_len), Some(status)) = (body.get(8), body.get(11..13)) else {
        return false;
    };
    let status = u16::from_le_bytes([status[0], status[1]]) as usize;
    let start = 13 + status + db_len as usize + 1;
    let Some(text) = body.get(start..) else {
        return false;
    };
    let unchecked = text.len().checked_sub(4).map(|n| &text[..n]);
    [b"COMMIT".as_slice(), b"ROLLBACK".as_slice()]
        .iter()
        .any(|q| text == *q || unchecked == Some(*q))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u8, body: &[u8]) -> Vec<u8> {
        let size = HEADER as u32 + body.len() as u32;
        let mut e = vec![];
        e.extend_from_slice(&100u32.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(body);
        e
    }

    fn gtid(flags: u8) -> Vec<u8> {
        let mut b = vec![0u8; GTID_BODY as usize + 4];
        b[GTID_BODY as usize - 1] = flags;
        event(GTID_EVENT, &b)
    }

    fn query(text: &str) -> Vec<u8> {
        let mut b = vec![0u8; 13];
        b[8] = 2; // the length of "db"
        b.extend_from_slice(b"db\0");
        b.extend_from_slice(text.as_bytes());
        b.extend_from_slice(&[1, 2, 3, 4]);
        event(QUERY_EVENT, &b)
    }

    /// Appends `parts` to the file one at a time, the cut after each.
    fn cuts(parts: &[Vec<u8>]) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("binlog.000001");
        let mut data = MAGIC.to_vec();
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Cutter::default();
        parts
            .iter()
            .map(|p| {
                data.extend_from_slice(p);
                std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
                c.advance(&path).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    #[test]
    fn a_cut_follows_whole_transactions_only() {
        let parts = vec![
            event(15, &[0; 40]), // format description: outside any transaction
            gtid(0),
            event(30, &[0; 20]), // rows
            event(XID_EVENT, &[0; 12]),
            gtid(FL_STANDALONE),
            query("CREATE TABLE t (i int)"),
            gtid(0),
            query("INSERT INTO m VALUES (1)"),
            query("INSERT INTO m VALUES (2) -- COMMIT"),
            query("COMMIT"),
        ];
        // The end of each part.
        let ends: Vec<u64> = parts
            .iter()
            .scan(4u64, |at, p| {
                *at += p.len() as u64;
                Some(*at)
            })
            .collect();
        let e = |i: usize| ends[i];
        assert_eq!(
            cuts(&parts),
            vec![e(0), e(0), e(0), e(3), e(3), e(5), e(5), e(5), e(5), e(9)]
        );
    }

    #[test]
    fn a_torn_event_waits_and_a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("binlog.000001");
        let fde = event(15, &[0; 40]);
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&fde[..30]);
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Cutter::default();
        assert_eq!(c.advance(&path).ok(), Some(4));
        data.extend_from_slice(&fde[30..]);
        std::fs::write(&path, &data).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.advance(&path).ok(), Some(63));
        std::fs::write(&path, b"not a binlog").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            Cutter::default().advance(&path),
            Err(EngineError::Damaged(_))
        ));
    }
}
