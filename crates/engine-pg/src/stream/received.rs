//! WAL received from the server and not yet stored in every location: the segment being written
//! and at most [`KEEP`] complete ones before it. A location further behind skips ahead: the
//! segments it missed reach it through the archive (`archive_command`, then the replicator).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::wal;

/// Complete segments kept for a location that is behind, beside the one being written: memory is
/// at most `(KEEP + 1) × wal_segment_size`.
pub const KEEP: usize = 2;
/// Pieces of one segment stored in one location before the next piece covers the segment from its
/// start and the earlier ones are deleted: bounds the objects a slow writer leaves behind.
pub const CONSOLIDATE_AFTER: u32 = 16;

/// One location's progress.
#[derive(Debug, Default)]
pub struct Sink {
    pub primary: bool,
    /// The location holds the streamed WAL up to here.
    pub durable: u64,
    pub error: Option<String>,
    /// Pieces stored per segment (by its start), since the last consolidation.
    pub pieces: HashMap<u64, u32>,
}

/// The next piece a location should store: bytes `start..end` (LSNs) of one segment.
#[derive(Debug)]
pub struct Job {
    pub name: String,
    pub timeline: String,
    pub seg_start: u64,
    pub seg_size: u64,
    pub start: u64,
    pub end: u64,
    pub bytes: Vec<u8>,
    /// The piece starts at the segment's start and supersedes the location's earlier pieces of it.
    pub consolidates: bool,
    /// Segments this location skipped because it fell too far behind.
    pub skipped: Option<(u64, u64)>,
}

#[derive(Debug)]
pub struct Received {
    pub seg_size: u64,
    pub timeline: u32,
    /// (start LSN, bytes from that start), oldest first; the last is being written.
    segments: VecDeque<(u64, Vec<u8>)>,
    /// End of what was received.
    pub end: u64,
    /// The server's WAL end as last reported.
    pub server_end: u64,
    /// When each received message's end arrived, for how long a location has been waiting.
    arrivals: VecDeque<(u64, Instant)>,
    pub sinks: HashMap<String, Sink>,
}

impl Received {
    /// Starts at `start`, a segment boundary.
    pub fn new(seg_size: u64, timeline: u32, start: u64) -> Self {
        Self {
            seg_size,
            timeline,
            segments: VecDeque::from([(start, Vec::new())]),
            end: start,
            server_end: start,
            arrivals: VecDeque::new(),
            sinks: HashMap::new(),
        }
    }

    /// Appends WAL that starts at `start`, which must be where the received WAL ends.
    pub fn append(&mut self, start: u64, mut data: &[u8]) -> Result<(), String> {
        if start != self.end {
            return Err(format!(
                "the server sent WAL from {} while {} was expected",
                super::protocol::fmt_lsn(start),
                super::protocol::fmt_lsn(self.end)
            ));
        }
        while !data.is_empty() {
            let (seg_start, buf) = self.segments.back_mut().ok_or("no segment")?;
            let room = (*seg_start + self.seg_size - self.end) as usize;
            let take = room.min(data.len());
            if buf.capacity() == 0 {
                buf.reserve_exact(self.seg_size as usize);
            }
            buf.extend_from_slice(&data[..take]);
            self.end += take as u64;
            data = &data[take..];
            if take == room {
                let next = *seg_start + self.seg_size;
                self.segments.push_back((next, Vec::new()));
                while self.segments.len() > KEEP + 1 {
                    self.segments.pop_front();
                }
            }
        }
        self.arrivals.push_back((self.end, Instant::now()));
        let floor = self
            .sinks
            .values()
            .map(|s| s.durable)
            .min()
            .unwrap_or(self.end);
        while self.arrivals.front().is_some_and(|(e, _)| *e <= floor)
            || self.arrivals.len() > 65_536
        {
            self.arrivals.pop_front();
        }
        self.server_end = self.server_end.max(self.end);
        Ok(())
    }

    /// Start of the oldest segment kept.
    pub fn oldest(&self) -> u64 {
        self.segments.front().map(|(s, _)| *s).unwrap_or(self.end)
    }

    /// Since when the oldest WAL a location holding up to `durable` lacks has been received.
    pub fn waiting_since(&self, durable: u64) -> Option<Instant> {
        if durable >= self.end {
            return None;
        }
        self.arrivals
            .iter()
            .find(|(e, _)| *e > durable)
            .map(|(_, t)| *t)
    }

    pub fn segment_name(&self, seg_start: u64) -> String {
        wal::segment_name(
            &format!("{:08X}", self.timeline),
            seg_start / self.seg_size,
            self.seg_size,
        )
    }

    /// The piece the location `region` should store next, if it lacks any received WAL.
    pub fn job_for(&mut self, region: &str) -> Option<Job> {
        let oldest = self.oldest();
        let (seg_size, end) = (self.seg_size, self.end);
        let sink = self.sinks.get_mut(region)?;
        if sink.durable >= end {
            return None;
        }
        let mut skipped = None;
        if sink.durable < oldest {
            skipped = Some((sink.durable, oldest));
            sink.durable = oldest;
        }
        let from = sink.durable;
        let seg_start = from - from % seg_size;
        let consolidates = sink.pieces.get(&seg_start).copied().unwrap_or(0) >= CONSOLIDATE_AFTER;
        let (_, buf) = self.segments.iter().find(|(s, _)| *s == seg_start)?;
        let avail = seg_start + buf.len() as u64;
        if avail <= from {
            return None;
        }
        let start = if consolidates { seg_start } else { from };
        let bytes = buf[(start - seg_start) as usize..].to_vec();
        Some(Job {
            name: self.segment_name(seg_start),
            timeline: format!("{:08X}", self.timeline),
            seg_start,
            seg_size,
            start,
            end: avail,
            bytes,
            consolidates,
            skipped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = 1 << 20;

    #[test]
    fn wal_across_segments_is_split_and_old_segments_dropped() {
        let mut r = Received::new(SEG, 1, 5 * SEG);
        r.sinks.insert(
            "a".into(),
            Sink {
                durable: 5 * SEG,
                ..Sink::default()
            },
        );
        r.append(5 * SEG, &vec![1u8; (SEG + 10) as usize]).unwrap();
        // The first job is the whole first segment, the next the start of the second.
        let j = r.job_for("a").unwrap();
        assert_eq!(
            (j.start, j.end, j.bytes.len()),
            (5 * SEG, 6 * SEG, SEG as usize)
        );
        assert_eq!(j.name, "000000010000000000000005");
        r.sinks.get_mut("a").unwrap().durable = j.end;
        let j = r.job_for("a").unwrap();
        assert_eq!((j.start, j.end), (6 * SEG, 6 * SEG + 10));
        assert!(r.append(5 * SEG, b"x").is_err(), "not contiguous");
        // Far behind: skips to the oldest kept segment.
        r.append(6 * SEG + 10, &vec![2u8; (3 * SEG) as usize])
            .unwrap();
        let j = r.job_for("a").unwrap();
        assert_eq!(j.skipped, Some((6 * SEG, 7 * SEG)));
        assert_eq!(j.start, 7 * SEG);
    }

    #[test]
    fn many_pieces_consolidate_from_the_segment_start() {
        let mut r = Received::new(SEG, 1, 0);
        r.sinks.insert("a".into(), Sink::default());
        r.append(0, &[7u8; 100]).unwrap();
        let s = r.sinks.get_mut("a").unwrap();
        s.durable = 60;
        s.pieces.insert(0, CONSOLIDATE_AFTER);
        let j = r.job_for("a").unwrap();
        assert!(j.consolidates);
        assert_eq!((j.start, j.end), (0, 100));
    }
}
