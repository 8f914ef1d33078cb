//! mariadb-backup's `--stream=xbstream` split back into the files it carries, as it is read: each
//! file goes into the backup as its own entry, its InnoDB pages at their own offsets, so the format
//! tracks change per page across backups as it does for PostgreSQL (stored as one stream, a page's
//! place in the stream shifts with every file before it).
//!
//! A chunk: magic `XBSTCK01`, flags (1 byte), type (`P` payload, `E` end of file; 1 byte), path
//! length (u32 LE), path, then for a payload: length (u64 LE), offset in the file (u64 LE), CRC-32
//! of the payload (u32 LE) and the payload. The redo log is copied while tablespaces are, so chunks
//! of a few files interleave; each file is fed to its own writer task through a bounded pipe.

use std::collections::HashMap;

use btar_engine::EngineError;
use btar_format::{BackupWriter, FileEntry};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;

const MAGIC: &[u8; 8] = b"XBSTCK01";
/// Unknown chunk types with this flag may be skipped.
const FLAG_IGNORABLE: u8 = 0x01;
/// mariadb-backup writes chunks of up to 10 MiB; anything far larger is a broken stream.
const MAX_PAYLOAD: u64 = 64 << 20;
const MAX_PATH: u32 = 4096;
/// Bytes buffered between the stream and each file's writer.
const PIPE: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    Payload {
        path: String,
        offset: u64,
        data: Vec<u8>,
    },
    Eof {
        path: String,
    },
}

fn broken(why: impl std::fmt::Display) -> EngineError {
    EngineError::Failed(format!("mariadb-backup's xbstream is malformed: {why}"))
}

async fn exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), EngineError> {
    r.read_exact(buf).await.map(|_| ()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            broken("it ends inside a chunk")
        } else {
            EngineError::Failed(format!("reading mariadb-backup's stream: {e}"))
        }
    })
}

/// The next chunk; `None` at the clean end of the stream. Unknown ignorable chunks are skipped.
pub async fn next_chunk<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Chunk>, EngineError> {
    loop {
        let mut head = [0u8; 14];
        // The first byte tells a clean end (nothing more) from a truncated chunk.
        match r.read(&mut head[..1]).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => {
                return Err(EngineError::Failed(format!(
                    "reading mariadb-backup's stream: {e}"
                )));
            }
        }
        exact(r, &mut head[1..]).await?;
        if &head[..8] != MAGIC {
            return Err(broken("a chunk does not start with XBSTCK01"));
        }
        let (flags, kind) = (head[8], head[9]);
        let path_len = u32::from_le_bytes([head[10], head[11], head[12], head[13]]);
        if path_len == 0 || path_len > MAX_PATH {
            return Err(broken(format!("path length {path_len}")));
        }
        let mut path = vec![0u8; path_len as usize];
        exact(r, &mut path).await?;
        let path = String::from_utf8(path).map_err(|_| broken("a path is not UTF-8"))?;
        match kind {
            b'E' => return Ok(Some(Chunk::Eof { path })),
            b'P' => {
                let mut fields = [0u8; 20];
                exact(r, &mut fields).await?;
                let le8 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                let (len, offset) = (le8(&fields[..8]), le8(&fields[8..16]));
                let crc = u32::from_le_bytes(fields[16..20].try_into().unwrap_or([0; 4]));
                if len > MAX_PAYLOAD {
                    return Err(broken(format!("{path}: a chunk of {len} bytes")));
                }
                let mut data = vec![0u8; len as usize];
                exact(r, &mut data).await?;
                if crc32fast::hash(&data) != crc {
                    return Err(broken(format!(
                        "{path}: checksum mismatch at offset {offset}"
                    )));
                }
                return Ok(Some(Chunk::Payload { path, offset, data }));
            }
            _ if flags & FLAG_IGNORABLE != 0 => {
                // No length of its own: an ignorable chunk of an unknown type carries none.
                continue;
            }
            other => {
                return Err(broken(format!(
                    "unknown chunk type {other:#04x} for {path}"
                )));
            }
        }
    }
}

/// A path the stream names must stay inside the backup (restores join it under a directory).
fn check_path(path: &str) -> Result<(), EngineError> {
    let bad = path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(broken(format!("path {path:?} escapes the backup")));
    }
    Ok(())
}

/// One file being written: the pipe to its writer task and how much of it has arrived.
struct Open {
    pipe: DuplexStream,
    next: u64,
    task: JoinHandle<Result<FileEntry, btar_format::FormatError>>,
}

/// Reads the whole stream into `writer`, one entry per file (in the order the files end). A file
/// whose chunks do not arrive in order, a file never ended and a stream cut short are errors: the
/// caller commits no manifest.
pub async fn split<R: AsyncRead + Unpin>(
    mut stream: R,
    writer: &BackupWriter,
) -> Result<Vec<FileEntry>, EngineError> {
    let mut open: HashMap<String, Open> = HashMap::new();
    let mut done = Vec::new();
    let result = async {
        while let Some(chunk) = next_chunk(&mut stream).await? {
            match chunk {
                Chunk::Payload { path, offset, data } => {
                    if !open.contains_key(&path) {
                        check_path(&path)?;
                        let (pipe, rx) = tokio::io::duplex(PIPE);
                        let (w, p) = (writer.clone(), path.clone());
                        let task = tokio::spawn(async move { w.write_file(&p, 0o640, rx).await });
                        open.insert(
                            path.clone(),
                            Open {
                                pipe,
                                next: 0,
                                task,
                            },
                        );
                    }
                    let Some(f) = open.get_mut(&path) else {
                        continue;
                    };
                    if offset != f.next {
                        return Err(broken(format!(
                            "{path}: a chunk at offset {offset} where {} was expected",
                            f.next
                        )));
                    }
                    if f.pipe.write_all(&data).await.is_err() {
                        // The writer task stopped: its error is the one to report.
                        let f = open.remove(&path).ok_or_else(|| broken(&path))?;
                        drop(f.pipe);
                        return Err(joined(&path, f.task).await.err().unwrap_or_else(|| {
                            broken(format!("{path}: its writer stopped early"))
                        }));
                    }
                    f.next += data.len() as u64;
                }
                Chunk::Eof { path } => {
                    // An empty file has no payload chunk: it is opened and ended here.
                    let f = match open.remove(&path) {
                        Some(f) => f,
                        None => {
                            check_path(&path)?;
                            let entry = writer.write_file(&path, 0o640, tokio::io::empty()).await?;
                            done.push(entry);
                            continue;
                        }
                    };
                    let Open { mut pipe, task, .. } = f;
                    let _ = pipe.shutdown().await;
                    drop(pipe);
                    done.push(joined(&path, task).await?);
                }
            }
        }
        if let Some(path) = open.keys().next() {
            return Err(broken(format!(
                "{path} never ends (the stream was cut short)"
            )));
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        for (_, f) in open.drain() {
            f.task.abort();
        }
        return Err(e);
    }
    Ok(done)
}

async fn joined(
    path: &str,
    task: JoinHandle<Result<FileEntry, btar_format::FormatError>>,
) -> Result<FileEntry, EngineError> {
    task.await
        .map_err(|e| EngineError::Failed(format!("writing {path}: {e}")))?
        .map_err(EngineError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(path: &str, offset: u64, data: &[u8]) -> Vec<u8> {
        let mut c = MAGIC.to_vec();
        c.extend([0, b'P']);
        c.extend((path.len() as u32).to_le_bytes());
        c.extend(path.as_bytes());
        c.extend((data.len() as u64).to_le_bytes());
        c.extend(offset.to_le_bytes());
        c.extend(crc32fast::hash(data).to_le_bytes());
        c.extend(data);
        c
    }

    fn eof(path: &str) -> Vec<u8> {
        let mut c = MAGIC.to_vec();
        c.extend([0, b'E']);
        c.extend((path.len() as u32).to_le_bytes());
        c.extend(path.as_bytes());
        c
    }

    async fn chunks(bytes: &[u8]) -> Result<Vec<Chunk>, EngineError> {
        let mut r = bytes;
        let mut out = Vec::new();
        while let Some(c) = next_chunk(&mut r).await? {
            out.push(c);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn reads_payload_and_end_chunks_and_skips_ignorable_ones() {
        let mut s = payload("ibdata1", 0, b"page");
        let mut skip = MAGIC.to_vec();
        skip.extend([FLAG_IGNORABLE, b'X', 1, 0, 0, 0, b'x']);
        s.extend(skip);
        s.extend(eof("ibdata1"));
        let got = chunks(&s).await.unwrap();
        assert_eq!(
            got,
            vec![
                Chunk::Payload {
                    path: "ibdata1".into(),
                    offset: 0,
                    data: b"page".to_vec()
                },
                Chunk::Eof {
                    path: "ibdata1".into()
                }
            ]
        );
    }

    #[tokio::test]
    async fn a_damaged_or_cut_stream_is_an_error_naming_what() {
        let good = payload("db/t.ibd", 16384, &[7u8; 100]);
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let err = chunks(&flipped).await.unwrap_err().to_string();
        assert!(err.contains("checksum mismatch at offset 16384"), "{err}");
        let err = chunks(&good[..good.len() - 10])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("ends inside a chunk"), "{err}");
        let mut bad = good.clone();
        bad[0] = b'Y';
        assert!(
            chunks(&bad)
                .await
                .unwrap_err()
                .to_string()
                .contains("XBSTCK01")
        );
        let mut unknown = MAGIC.to_vec();
        unknown.extend([0, b'Z', 1, 0, 0, 0, b'x']);
        let err = chunks(&unknown).await.unwrap_err().to_string();
        assert!(err.contains("unknown chunk type"), "{err}");
    }
}
