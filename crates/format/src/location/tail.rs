//! The streamed tail of a log file not yet archived (DESIGN.md, "Roles": the streamer). While the
//! server is still writing a log file, the streamer stores what it has received as sealed pieces
//! `stream/<timeline>/<name>/<start>-<end>`, each a byte range of the file. Pieces are immutable and
//! may overlap (a restarted streamer sends a range again; a consolidated piece covers earlier ones),
//! so a crash anywhere leaves readable pieces, never a torn one. A reader takes the longest run that
//! is contiguous from byte 0. Once the complete file is archived under `logs/`, its tail is
//! superseded and deleted.

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use btar_region::RegionError;

use super::{Location, MAX_LOG};
use crate::error::FormatError;
use crate::layout;
use crate::seal::Kind;

/// Bytes before a piece's data: the length of the complete file (a WAL segment's size), so a
/// reader can hand the database a file of the size it expects.
const HEADER: usize = 8;

/// The `file_len` of the pieces of a file whose length is not known while it is written (a binlog
/// grows until the server rotates it); a reader takes the pieces' bytes as they are.
pub const OPEN_ENDED: u64 = u64::MAX;

/// One stored piece of a log file's tail, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailPiece {
    pub timeline: String,
    pub name: String,
    pub start: u64,
    pub end: u64,
    pub last_modified: DateTime<Utc>,
}

/// The readable prefix of a log file's tail.
#[derive(Debug, Clone)]
pub struct Tail {
    /// Bytes `0..bytes.len()` of the file.
    pub bytes: Vec<u8>,
    /// The complete file's length (bytes beyond `bytes` are not yet known).
    pub file_len: u64,
    /// When the newest piece used was stored: the tail holds what the server wrote before then.
    pub stored_at: DateTime<Utc>,
}

/// The pieces that make the longest run contiguous from byte 0, in order: at each point the one
/// reaching furthest. Empty when no piece starts at 0.
pub fn covering(pieces: &[TailPiece]) -> Vec<&TailPiece> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while let Some(best) = pieces
        .iter()
        .filter(|p| p.start <= pos && p.end > pos)
        .max_by_key(|p| p.end)
    {
        pos = best.end;
        out.push(best);
    }
    out
}

impl Location {
    fn tail_key(&self, timeline: &str, name: &str, start: u64, end: u64) -> String {
        layout::tail_piece(&self.service, timeline, name, start, end)
    }

    /// Stores bytes `start..start + data.len()` of log file `name` (whose complete length is
    /// `file_len`) as one piece, durably: acknowledged after the store confirmed it (fsynced on
    /// file regions).
    pub async fn put_tail_piece(
        &self,
        timeline: &str,
        name: &str,
        start: u64,
        data: &[u8],
        file_len: u64,
    ) -> Result<(), FormatError> {
        layout::validate_name(timeline)?;
        layout::validate_name(name)?;
        let end = start.saturating_add(data.len() as u64);
        if data.is_empty() || end > file_len || data.len() > MAX_LOG {
            return Err(FormatError::BadTailPiece {
                name: name.into(),
                start,
                end,
                file_len,
            });
        }
        let key = self.tail_key(timeline, name, start, end);
        let mut plain = Vec::with_capacity(HEADER + data.len());
        plain.extend_from_slice(&file_len.to_le_bytes());
        plain.extend_from_slice(data);
        let (sealer, level, k) = (self.sealer.clone(), self.level, key.clone());
        let sealed = tokio::task::spawn_blocking(move || {
            sealer.seal(Kind::Log, k.as_bytes(), &plain, level)
        })
        .await
        .map_err(|e| FormatError::Task(e.to_string()))?;
        self.region.put(&key, Bytes::from(sealed)).await?;
        self.confirm_written(&key).await
    }

    /// Every tail piece of the location (all log files), in key order.
    pub fn list_tail_pieces(
        &self,
    ) -> futures::stream::BoxStream<'_, Result<TailPiece, FormatError>> {
        self.list_pieces_under(layout::stream_prefix(&self.service))
    }

    /// Every tail piece of the location, grouped by log file `(timeline, name)`.
    pub async fn tails_by_file(
        &self,
    ) -> Result<BTreeMap<(String, String), Vec<TailPiece>>, FormatError> {
        let mut by_file: BTreeMap<(String, String), Vec<TailPiece>> = BTreeMap::new();
        let mut pieces = self.list_tail_pieces();
        while let Some(p) = pieces.try_next().await? {
            by_file
                .entry((p.timeline.clone(), p.name.clone()))
                .or_default()
                .push(p);
        }
        Ok(by_file)
    }

    /// The pieces of one log file's tail.
    pub async fn tail_pieces(
        &self,
        timeline: &str,
        name: &str,
    ) -> Result<Vec<TailPiece>, FormatError> {
        layout::validate_name(timeline)?;
        layout::validate_name(name)?;
        self.list_pieces_under(layout::tail_prefix(&self.service, timeline, name))
            .try_collect()
            .await
    }

    fn list_pieces_under(
        &self,
        prefix: String,
    ) -> futures::stream::BoxStream<'_, Result<TailPiece, FormatError>> {
        self.region
            .list(&prefix)
            .map(move |r| {
                let o = r?;
                let (timeline, name, start, end) =
                    layout::parse_tail_key(&o.key).ok_or_else(|| FormatError::Damaged {
                        region: self.region.name().into(),
                        key: o.key.clone(),
                        reason: "unexpected key under stream/".into(),
                    })?;
                Ok(TailPiece {
                    timeline,
                    name,
                    start,
                    end,
                    last_modified: o.last_modified,
                })
            })
            .boxed()
    }

    /// The readable prefix of log file `name`'s tail, or `None` when no piece starts at byte 0. A
    /// piece deleted between the listing and its read (consolidated by a running streamer) means
    /// a fresh listing; a damaged piece is an error, never skipped.
    pub async fn read_tail(&self, timeline: &str, name: &str) -> Result<Option<Tail>, FormatError> {
        let mut last_err = None;
        for _ in 0..3 {
            let pieces = self.tail_pieces(timeline, name).await?;
            match self.read_pieces(timeline, name, &covering(&pieces)).await {
                Ok(t) => return Ok(t),
                Err(e @ FormatError::Region(RegionError::NotFound { .. })) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| FormatError::Task("tail read retried".into())))
    }

    async fn read_pieces(
        &self,
        timeline: &str,
        name: &str,
        run: &[&TailPiece],
    ) -> Result<Option<Tail>, FormatError> {
        let Some(last) = run.last() else {
            return Ok(None);
        };
        // The keys name the length; a damaged one must not size an allocation.
        let mut bytes = Vec::with_capacity(last.end.min(MAX_LOG as u64) as usize);
        let mut file_len = None;
        let mut stored_at = run[0].last_modified;
        for p in run {
            let key = self.tail_key(timeline, name, p.start, p.end);
            let sealed = self.region.get(&key).await?;
            let (sealer, k) = (self.sealer.clone(), key.clone());
            let plain = tokio::task::spawn_blocking(move || {
                sealer.open(Kind::Log, k.as_bytes(), &sealed, MAX_LOG + HEADER)
            })
            .await
            .map_err(|e| FormatError::Task(e.to_string()))?
            .map_err(|e| self.damaged(key.clone(), e))?;
            let damaged = |reason: &str| FormatError::Damaged {
                region: self.region.name().into(),
                key: key.clone(),
                reason: reason.into(),
            };
            let (head, data) = plain
                .split_at_checked(HEADER)
                .ok_or_else(|| damaged("shorter than its header"))?;
            let len = u64::from_le_bytes(head.try_into().map_err(|_| damaged("bad header"))?);
            if data.len() as u64 != p.end - p.start || p.end > len {
                return Err(damaged("its length disagrees with its key"));
            }
            if *file_len.get_or_insert(len) != len {
                return Err(damaged("pieces of one file disagree on its length"));
            }
            // Overlapping bytes must be the same bytes of the server's log (pieces of two different
            // files under one name — a binlog name reused after RESET MASTER — are not one tail).
            let skip = (bytes.len() as u64 - p.start) as usize;
            if data[..skip] != bytes[p.start as usize..] {
                return Err(damaged("overlapping pieces disagree on their common bytes"));
            }
            bytes.extend_from_slice(&data[skip..]);
            stored_at = stored_at.max(p.last_modified);
        }
        Ok(Some(Tail {
            bytes,
            file_len: file_len.unwrap_or_default(),
            stored_at,
        }))
    }

    /// The first piece of the readable prefix of log file `name`'s tail (bytes from 0), given its
    /// pieces as listed, or `None`: enough to tell which file a tail is of without reading all of it.
    pub async fn read_tail_head(
        &self,
        timeline: &str,
        name: &str,
        pieces: &[TailPiece],
    ) -> Result<Option<Vec<u8>>, FormatError> {
        let run = covering(pieces);
        Ok(self
            .read_pieces(timeline, name, &run[..run.len().min(1)])
            .await?
            .map(|t| t.bytes))
    }

    /// Deletes the tail of every log file the location has archived complete (the streamer does
    /// it as it goes; retention catches what a stopped streamer left). Returns the pieces deleted.
    pub async fn sweep_superseded_tails(&self) -> Result<usize, FormatError> {
        let mut deleted = 0;
        for ((timeline, name), pieces) in self.tails_by_file().await? {
            if self
                .region
                .head(&self.log_key(&timeline, &name))
                .await?
                .is_some()
            {
                self.delete_tail_pieces(&pieces).await?;
                deleted += pieces.len();
            }
        }
        Ok(deleted)
    }

    /// Deletes these pieces (a tail superseded by its archived file, or consolidated into one
    /// piece). A piece already gone is fine. Those starting first go first: a reader that still
    /// lists a file's first piece listed before any of the file's pieces was deleted, so it never
    /// takes a tail with its middle missing for a shorter whole.
    pub async fn delete_tail_pieces(&self, pieces: &[TailPiece]) -> Result<(), FormatError> {
        let mut pieces: Vec<&TailPiece> = pieces.iter().collect();
        pieces.sort_by_key(|p| (p.start, p.end));
        for p in pieces {
            let key = self.tail_key(&p.timeline, &p.name, p.start, p.end);
            match self.region.delete(&key).await {
                Ok(()) | Err(RegionError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(start: u64, end: u64) -> TailPiece {
        TailPiece {
            timeline: "1".into(),
            name: "f".into(),
            start,
            end,
            last_modified: Utc::now(),
        }
    }

    #[test]
    fn covering_takes_the_furthest_reaching_run_from_zero() {
        let ps = [
            piece(0, 10),
            piece(10, 20),
            piece(0, 15),
            piece(25, 30),
            piece(15, 22),
        ];
        let run: Vec<_> = covering(&ps).iter().map(|p| (p.start, p.end)).collect();
        assert_eq!(run, vec![(0, 15), (15, 22)]);
        assert!(covering(&[piece(5, 10)]).is_empty());
        assert!(covering(&[]).is_empty());
    }
}
