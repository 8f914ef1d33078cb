//! Log files moved between a local file and a location a frame at a time ([`crate::log_frames`]):
//! pushing, fetching, comparing and verifying a 1 GiB binlog holds a few frames in memory.

use std::io::Read;
use std::path::Path;

use btar_region::RegionError;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::FormatError;
use crate::layout;
use crate::location::{Location, LogPut};
use crate::log_frames::{self, FIRST_READ, FRAME, Frame, FrameError, ObjectReader, Unframer};
use crate::seal::OpenError;

/// What the sealing thread hands the upload: a part, or the end of the file. The upload ends only
/// at [`Part::End`]; a channel closed without it (the thread failed or panicked) aborts it, so a
/// cut-short file is never stored as a whole one.
enum Part {
    Bytes(Bytes),
    End,
}

impl Location {
    pub(crate) fn frame_damaged(&self, key: String, e: FrameError) -> FormatError {
        match e {
            FrameError::Open {
                error: OpenError::Auth,
                ..
            } => FormatError::WrongKeyOrTampered {
                region: self.region().name().into(),
                key,
            },
            other => FormatError::Damaged {
                region: self.region().name().into(),
                key,
                reason: other.to_string(),
            },
        }
    }

    /// [`Location::put_log`] for the file at `path`, which must not change while it is stored (a
    /// closed binlog): a file larger than one frame is read, compressed, sealed and uploaded a
    /// frame at a time, and compared with an archived namesake the same way. Durable (fsynced or
    /// confirmed by the store) when this returns.
    pub async fn put_log_file(
        &self,
        timeline: &str,
        name: &str,
        path: &Path,
    ) -> Result<LogPut, FormatError> {
        layout::validate_name(timeline)?;
        layout::validate_name(name)?;
        let io = |e| FormatError::io(path.display().to_string(), e);
        let size = tokio::fs::metadata(path).await.map_err(io)?.len();
        if size <= FRAME as u64 {
            let data = tokio::fs::read(path).await.map_err(io)?;
            return self.put_log(timeline, name, Bytes::from(data)).await;
        }
        let key = self.log_key(timeline, name);
        match self.log_matches_file(timeline, name, path).await? {
            Some(true) => return Ok(LogPut::AlreadyPresent),
            Some(false) => {
                return Err(FormatError::Damaged {
                    region: self.region().name().into(),
                    key,
                    reason:
                        "a different file with this name is already archived; refusing to overwrite"
                            .into(),
                });
            }
            None => {}
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Part>(2);
        let (me, k, p) = (self.clone(), key.clone(), path.to_path_buf());
        let sealing = tokio::task::spawn_blocking(move || me.seal_frames(&k, &p, size, &tx));
        let region = self.region().name().to_string();
        let parts = futures::stream::unfold((rx, false), move |(mut rx, ended)| {
            let region = region.clone();
            async move {
                if ended {
                    return None;
                }
                match rx.recv().await {
                    Some(Part::Bytes(b)) => Some((Ok(b), (rx, false))),
                    Some(Part::End) => None,
                    None => Some((
                        Err(RegionError::Store {
                            region,
                            op: "put_multipart",
                            key: String::new(),
                            message: "the local file could not be read to its end".into(),
                        }),
                        (rx, true),
                    )),
                }
            }
        })
        .boxed();
        let put = self.region().put_multipart(&key, parts).await;
        let sealed = sealing
            .await
            .map_err(|e| FormatError::Task(e.to_string()))?;
        // A local read error explains a failed upload better than the upload's own error.
        sealed?;
        put?;
        self.confirm_written(&key).await?;
        Ok(LogPut::Stored)
    }

    /// Reads `size` bytes of `path` a frame at a time and hands each sealed frame to the upload.
    fn seal_frames(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        tx: &tokio::sync::mpsc::Sender<Part>,
    ) -> Result<(), FormatError> {
        let io = |e| FormatError::io(path.display().to_string(), e);
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut buf = vec![0u8; FRAME];
        let (mut at, mut index) = (0u64, 0u64);
        loop {
            let n = (size - at).min(FRAME as u64) as usize;
            // A file that shrank fails here and the upload is aborted.
            file.read_exact(&mut buf[..n]).map_err(io)?;
            at += n as u64;
            let last = at == size;
            let (prefix, sealed) = log_frames::seal_frame_parts(
                self.sealer(),
                key,
                index,
                last,
                &buf[..n],
                self.compression_level(),
            );
            let mut parts = vec![];
            if index == 0 {
                parts.push(Bytes::copy_from_slice(&log_frames::header()));
            }
            parts.push(Bytes::copy_from_slice(&prefix));
            parts.push(Bytes::from(sealed));
            for part in parts {
                if tx.blocking_send(Part::Bytes(part)).is_err() {
                    // The upload stopped; it reports why.
                    return Ok(());
                }
            }
            index += 1;
            if last {
                let _ = tx.blocking_send(Part::End);
                return Ok(());
            }
        }
    }

    /// Reads an archived log file a piece at a time; `None` if it is not archived here.
    pub async fn read_log(
        &self,
        timeline: &str,
        name: &str,
    ) -> Result<Option<LogReader<'_>>, FormatError> {
        let Some(stored) = self.open_stored_log(timeline, name).await? else {
            return Ok(None);
        };
        let inner = match stored {
            Stored::Framed(frames) => Inner::Framed(frames),
            Stored::Whole(sealed) => {
                let (me, t, n) = (self.clone(), timeline.to_string(), name.to_string());
                let plain = tokio::task::spawn_blocking(move || me.open_log(&t, &n, &sealed))
                    .await
                    .map_err(|e| FormatError::Task(e.to_string()))??;
                Inner::Whole(Some(plain))
            }
        };
        Ok(Some(LogReader {
            loc: self,
            name: name.into(),
            inner,
        }))
    }

    /// A stored log object as found: its frames as they are read, or (one envelope: every log
    /// file up to one frame, and all written before frames) its sealed bytes, which open only
    /// whole. `None` when absent.
    async fn open_stored_log(
        &self,
        timeline: &str,
        name: &str,
    ) -> Result<Option<Stored>, FormatError> {
        layout::validate_name(timeline)?;
        layout::validate_name(name)?;
        let key = self.log_key(timeline, name);
        let Some(mut obj) = ObjectReader::open(self.region(), &key).await? else {
            return Ok(None);
        };
        let head = obj.take(log_frames::header().len(), FIRST_READ).await?;
        if log_frames::is_framed(&head) {
            return Ok(Some(Stored::Framed(Box::new(Frames {
                obj,
                unframer: Some(Unframer::new(&key)),
                key,
            }))));
        }
        let rest = obj.take(obj.remaining() as usize, 0).await?;
        Ok(Some(Stored::Whole([&head[..], &rest[..]].concat())))
    }

    /// Whether the archived `name` has the content of the file at `path`; `None` if not archived.
    pub async fn log_matches_file(
        &self,
        timeline: &str,
        name: &str,
        path: &Path,
    ) -> Result<Option<bool>, FormatError> {
        let Some(mut r) = self.read_log(timeline, name).await? else {
            return Ok(None);
        };
        let io = |e| FormatError::io(path.display().to_string(), e);
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut buf = Vec::new();
        while let Some(piece) = r.next().await? {
            buf.resize(piece.len(), 0);
            match file.read_exact(&mut buf).await {
                Ok(_) if buf == piece => {}
                Ok(_) => return Ok(Some(false)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Some(false)),
                Err(e) => return Err(io(e)),
            }
        }
        let mut more = [0u8; 1];
        Ok(Some(file.read(&mut more).await.map_err(io)? == 0))
    }

    /// [`Location::fetch_log_to`] a piece at a time: the file is written under a temporary name
    /// as it arrives and renamed once complete and verified. `false` when the archive lacks it.
    pub async fn fetch_log_file_to(
        &self,
        timeline: &str,
        name: &str,
        dest: &Path,
    ) -> Result<bool, FormatError> {
        let Some(mut r) = self.read_log(timeline, name).await? else {
            return Ok(false);
        };
        let tmp = dest.with_extension("btar-tmp");
        let io = |e| FormatError::io(tmp.display().to_string(), e);
        let written: Result<(), FormatError> = async {
            let mut f = tokio::fs::File::create(&tmp).await.map_err(io)?;
            while let Some(piece) = r.next().await? {
                f.write_all(&piece).await.map_err(io)?;
            }
            f.flush().await.map_err(io)
        }
        .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        tokio::fs::rename(&tmp, dest)
            .await
            .map_err(|e| FormatError::io(dest.display().to_string(), e))?;
        Ok(true)
    }

    /// Reads and authenticates an archived log file to its end, keeping none of it: its
    /// plaintext size, or `None` if it is not archived here.
    pub async fn check_log(&self, timeline: &str, name: &str) -> Result<Option<u64>, FormatError> {
        let Some(mut r) = self.read_log(timeline, name).await? else {
            return Ok(None);
        };
        let mut n = 0u64;
        while let Some(piece) = r.next().await? {
            n += piece.len() as u64;
        }
        Ok(Some(n))
    }
}

impl Location {
    /// Whether `name` holds the same content here and in `other` (compared a piece at a time,
    /// whatever form each is stored in); `None` when either lacks it.
    pub async fn same_log_as(
        &self,
        other: &Location,
        timeline: &str,
        name: &str,
    ) -> Result<Option<bool>, FormatError> {
        let (Some(mut a), Some(mut b)) = (
            self.read_log(timeline, name).await?,
            other.read_log(timeline, name).await?,
        ) else {
            return Ok(None);
        };
        let (mut pa, mut pb): (Vec<u8>, Vec<u8>) = (vec![], vec![]);
        let (mut ia, mut ib) = (0usize, 0usize);
        loop {
            if ia == pa.len() {
                pa = a.next().await?.unwrap_or_default();
                ia = 0;
            }
            if ib == pb.len() {
                pb = b.next().await?.unwrap_or_default();
                ib = 0;
            }
            let (ra, rb) = (&pa[ia..], &pb[ib..]);
            if ra.is_empty() || rb.is_empty() {
                // A reader yields an empty piece only at its end: equal iff both ended.
                return Ok(Some(ra.is_empty() && rb.is_empty()));
            }
            let n = ra.len().min(rb.len());
            if ra[..n] != rb[..n] {
                return Ok(Some(false));
            }
            ia += n;
            ib += n;
        }
    }

    /// Stores `name` of `src` here, re-sealed for this location frame by frame as it is read
    /// (one envelope is re-sealed whole), without looking at what is here: the caller found it
    /// absent. The sealed bytes written, or `None` when `src` lacks the file. Damage in the source
    /// is [`FormatError::Damaged`] or [`FormatError::WrongKeyOrTampered`] naming the source's
    /// object; the upload is then aborted and nothing becomes visible.
    pub async fn put_log_resealed_from(
        &self,
        src: &Location,
        timeline: &str,
        name: &str,
    ) -> Result<Option<u64>, FormatError> {
        let key = self.log_key(timeline, name);
        let frames = match src.open_stored_log(timeline, name).await? {
            None => return Ok(None),
            Some(Stored::Whole(sealed)) => {
                let (me, s, t, n) = (
                    self.clone(),
                    src.clone(),
                    timeline.to_string(),
                    name.to_string(),
                );
                let resealed =
                    tokio::task::spawn_blocking(move || me.reseal_log_from(&s, &t, &n, &sealed))
                        .await
                        .map_err(|e| FormatError::Task(e.to_string()))??;
                let len = resealed.len() as u64;
                self.region().put(&key, Bytes::from(resealed)).await?;
                self.confirm_written(&key).await?;
                return Ok(Some(len));
            }
            Some(Stored::Framed(frames)) => frames,
        };
        // Why reading the source stopped the upload, if it did.
        let failure = std::sync::Arc::new(std::sync::Mutex::new(None::<FormatError>));
        let state = (
            frames,
            src.clone(),
            self.clone(),
            key.clone(),
            failure.clone(),
            true,
        );
        let parts = futures::stream::try_unfold(
            state,
            |(mut frames, src, dst, key, failure, first)| async move {
                let next = frames
                    .next(&src)
                    .await
                    .map(|f| f.map(|f| log_frames::reseal_frame_parts(dst.sealer(), &key, &f)));
                match next {
                    Ok(None) => Ok(None),
                    Ok(Some((prefix, sealed))) => {
                        let mut parts = vec![];
                        if first {
                            parts.push(Ok(Bytes::copy_from_slice(&log_frames::header())));
                        }
                        parts.push(Ok(Bytes::copy_from_slice(&prefix)));
                        parts.push(Ok(Bytes::from(sealed)));
                        Ok(Some((
                            futures::stream::iter(parts),
                            (frames, src, dst, key, failure, false),
                        )))
                    }
                    Err(e) => {
                        let region = src.region().name().to_string();
                        let key = frames.key;
                        if let Ok(mut f) = failure.lock() {
                            *f = Some(e);
                        }
                        Err(RegionError::Store {
                            region,
                            op: "get",
                            key,
                            message: "the source log file cannot be read".into(),
                        })
                    }
                }
            },
        )
        .try_flatten()
        .boxed();
        let put = self.region().put_multipart(&key, parts).await;
        if let Some(e) = failure.lock().ok().and_then(|mut f| f.take()) {
            return Err(e);
        }
        let n = put?;
        self.confirm_written(&key).await?;
        Ok(Some(n))
    }
}

/// A log object as stored.
enum Stored {
    Framed(Box<Frames>),
    Whole(Vec<u8>),
}

/// The frames of a stored framed log object, authenticated one by one as they are read.
struct Frames {
    obj: ObjectReader,
    /// `None` only while a frame is being opened off the async threads.
    unframer: Option<Unframer>,
    key: String,
}

impl Frames {
    /// The next frame (authenticated, body as stored); `None` after the last. A framed object cut
    /// short, or with bytes after its last frame, is an error, not a short file.
    async fn next(&mut self, loc: &Location) -> Result<Option<Frame>, FormatError> {
        self.next_map(loc, Ok).await
    }

    /// [`Frames::next`], with `map` applied on the same blocking thread that opened the frame
    /// (its plaintext is decoded where it was decrypted: one hand-over per frame, not two).
    async fn next_map<T: Send + 'static>(
        &mut self,
        loc: &Location,
        map: fn(Frame) -> Result<T, FrameError>,
    ) -> Result<Option<T>, FormatError> {
        let damaged = |e| loc.frame_damaged(self.key.clone(), e);
        let Some(u) = self.unframer.as_ref() else {
            return Ok(None);
        };
        if u.done() {
            return u
                .at_end(self.obj.remaining())
                .map(|()| None)
                .map_err(damaged);
        }
        let prefix = self.obj.take(4, 0).await?;
        let (len, last) = match u.needs(&prefix) {
            Ok(Some((total, last))) => (total - prefix.len(), last),
            Ok(None) => return Err(damaged(FrameError::Truncated(u.next_index()))),
            Err(e) => return Err(damaged(e)),
        };
        // The frame, and the next one's length with it: one request per frame.
        let body = self.obj.take(len, if last { 0 } else { 4 }).await?;
        if body.len() < len {
            return Err(damaged(FrameError::Truncated(u.next_index())));
        }
        let bytes = [prefix, body];
        let Some(mut u) = self.unframer.take() else {
            return Ok(None);
        };
        let sealer = loc.sealer().clone();
        // Decrypting a frame is CPU work: off the async threads.
        let (u, frame) = tokio::task::spawn_blocking(move || {
            let f = u.take_split(&sealer, &bytes[0], &bytes[1]).and_then(map);
            (u, f)
        })
        .await
        .map_err(|e| FormatError::Task(e.to_string()))?;
        self.unframer = Some(u);
        frame.map(Some).map_err(damaged)
    }
}

/// An archived log file being read front to back ([`Location::read_log`]).
pub struct LogReader<'a> {
    loc: &'a Location,
    name: String,
    inner: Inner,
}

enum Inner {
    Framed(Box<Frames>),
    /// One envelope: the whole plaintext, until taken.
    Whole(Option<Vec<u8>>),
}

impl std::fmt::Debug for LogReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogReader({})", self.name)
    }
}

impl LogReader<'_> {
    /// The next piece of plaintext, authenticated; `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, FormatError> {
        let frames = match &mut self.inner {
            Inner::Whole(w) => return Ok(w.take()),
            Inner::Framed(f) => f,
        };
        frames.next_map(self.loc, |f| Unframer::decode(&f)).await
    }
}
