//! Sealed object envelope, version 1.
//!
//! ```text
//! magic "BTAR" | version u8 = 1 | kind u8 | flags u8 | reserved u8 | nonce [24] | ciphertext+tag
//! ```
//! XChaCha20-Poly1305 under a key derived from the region key; random 192-bit nonces are safe to draw
//! independently on every writer. The associated data is the 8-byte header plus a *binding*: the chunk id
//! for chunks, the object key for everything else, so a swapped, renamed or altered object fails to open.
//! Payloads are zstd-compressed before sealing unless compression does not help.

use std::io::Read;

use btar_region::RegionKey;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const MAGIC: &[u8; 4] = b"BTAR";
pub const VERSION: u8 = 1;
const HEADER_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
pub const OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
const FLAG_ZSTD: u8 = 1;

/// What an object holds; part of the authenticated header so one kind cannot pass for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Chunk = 1,
    Manifest = 2,
    Log = 3,
    ServiceKey = 4,
    /// Format v2: consecutive blocks compressed and sealed together inside a pack.
    Frame = 5,
    /// Format v2: the index of a pack (its frames and the blocks in each).
    PackIndex = 6,
}

/// Why an envelope failed to open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("truncated object ({0} bytes)")]
    Truncated(usize),
    #[error("not a btar object (bad magic)")]
    BadMagic,
    #[error("envelope version {0} is newer than this btar understands")]
    Version(u8),
    #[error("expected a {expected:?} object, found kind {found}")]
    Kind { expected: Kind, found: u8 },
    #[error("authentication failed (wrong key, or the object was altered)")]
    Auth,
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("plaintext larger than the limit of {0} bytes")]
    TooLarge(usize),
}

/// The AEAD of one region, derived from its master key.
#[derive(Clone)]
pub struct Sealer {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    pub fn new(key: &RegionKey) -> Self {
        let derived = blake3::derive_key("btar v1 region object seal", key.as_bytes());
        Self {
            aead: XChaCha20Poly1305::new(&derived.into()),
        }
    }

    /// Compresses (zstd `level`, skipped when it does not shrink the data) and seals `plain`.
    pub fn seal(&self, kind: Kind, binding: &[u8], plain: &[u8], level: i32) -> Vec<u8> {
        let compressed = zstd::bulk::compress(plain, level)
            .ok()
            .filter(|c| c.len() < plain.len());
        match &compressed {
            Some(c) => self.seal_body(
                kind,
                binding,
                Body {
                    flags: FLAG_ZSTD,
                    bytes: c,
                },
            ),
            None => self.seal_body(
                kind,
                binding,
                Body {
                    flags: 0,
                    bytes: plain,
                },
            ),
        }
    }

    /// Seals a body exactly as another envelope held it (compressed or not), so a copy re-encrypts
    /// for another region without compressing again.
    pub fn seal_body(&self, kind: Kind, binding: &[u8], body: Body<'_>) -> Vec<u8> {
        let header = [
            MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, kind as u8, body.flags, 0,
        ];
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let aad = [&header[..], binding].concat();
        // Encryption with a valid key and nonce size cannot fail; the aead API returns Result for
        // other algorithms with length limits we cannot reach (chunks are far below 256 GiB).
        let ct = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce_bytes),
                Payload {
                    msg: body.bytes,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(OVERHEAD + body.bytes.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens an envelope sealed by [`Sealer::seal`], refusing plaintexts above `limit` bytes.
    pub fn open(
        &self,
        kind: Kind,
        binding: &[u8],
        sealed: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, OpenError> {
        let (flags, body) = self.open_body(kind, binding, sealed)?;
        decode(
            Body {
                flags,
                bytes: &body,
            },
            limit,
        )
    }

    /// Authenticates and decrypts an envelope, leaving its body as stored: `(flags, body)`.
    pub fn open_body(
        &self,
        kind: Kind,
        binding: &[u8],
        sealed: &[u8],
    ) -> Result<(u8, Vec<u8>), OpenError> {
        if sealed.len() < OVERHEAD {
            return Err(OpenError::Truncated(sealed.len()));
        }
        let (header, rest) = sealed.split_at(HEADER_LEN);
        if &header[..4] != MAGIC {
            return Err(OpenError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(OpenError::Version(header[4]));
        }
        if header[5] != kind as u8 {
            return Err(OpenError::Kind {
                expected: kind,
                found: header[5],
            });
        }
        let (nonce, ct) = rest.split_at(NONCE_LEN);
        let aad = [header, binding].concat();
        let body = self
            .aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| OpenError::Auth)?;
        Ok((header[6], body))
    }
}

/// An envelope's body: its flags (compressed or not) and the bytes as sealed.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    pub flags: u8,
    pub bytes: &'a [u8],
}

/// The plaintext of a body, refusing more than `limit` bytes.
pub fn decode(body: Body<'_>, limit: usize) -> Result<Vec<u8>, OpenError> {
    if body.flags & FLAG_ZSTD == 0 {
        if body.bytes.len() > limit {
            return Err(OpenError::TooLarge(limit));
        }
        return Ok(body.bytes.to_vec());
    }
    // Bounded decode: a hostile frame cannot make us allocate more than `limit`.
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(body.bytes)
        .map_err(|e| OpenError::Decompress(e.to_string()))?
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| OpenError::Decompress(e.to_string()))?;
    if out.len() > limit {
        return Err(OpenError::TooLarge(limit));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sealer() -> Sealer {
        Sealer::new(&RegionKey::from_bytes([9u8; 32]))
    }

    #[test]
    fn wrong_key_kind_binding_are_refused() {
        let s = sealer();
        let sealed = s.seal(Kind::Chunk, b"id", b"hello hello hello hello", 3);
        assert_eq!(
            s.open(Kind::Chunk, b"id", &sealed, 1 << 20).unwrap(),
            b"hello hello hello hello"
        );
        let other = Sealer::new(&RegionKey::from_bytes([1u8; 32]));
        assert_eq!(
            other.open(Kind::Chunk, b"id", &sealed, 1 << 20),
            Err(OpenError::Auth)
        );
        assert_eq!(
            s.open(Kind::Chunk, b"other", &sealed, 1 << 20),
            Err(OpenError::Auth)
        );
        assert!(matches!(
            s.open(Kind::Log, b"id", &sealed, 1 << 20),
            Err(OpenError::Kind { .. })
        ));
        assert_eq!(
            s.open(Kind::Chunk, b"id", &sealed[..10], 1 << 20),
            Err(OpenError::Truncated(10))
        );
    }

    #[test]
    fn decompression_is_bounded() {
        let s = sealer();
        let sealed = s.seal(Kind::Log, b"k", &vec![0u8; 1 << 20], 3);
        assert_eq!(
            s.open(Kind::Log, b"k", &sealed, 1000),
            Err(OpenError::TooLarge(1000))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn any_bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..20_000), level in 1i32..6) {
            let s = sealer();
            let sealed = s.seal(Kind::Chunk, b"bind", &data, level);
            prop_assert_eq!(s.open(Kind::Chunk, b"bind", &sealed, 1 << 20).unwrap(), data);
        }

        #[test]
        fn any_single_byte_change_is_detected(
            data in proptest::collection::vec(any::<u8>(), 0..4_000),
            pos in any::<proptest::sample::Index>(),
            delta in 1u8..=255,
        ) {
            let s = sealer();
            let mut sealed = s.seal(Kind::Chunk, b"bind", &data, 3);
            let i = pos.index(sealed.len());
            sealed[i] ^= delta;
            prop_assert!(s.open(Kind::Chunk, b"bind", &sealed, 1 << 20).is_err());
        }

        #[test]
        fn any_truncation_is_detected(data in proptest::collection::vec(any::<u8>(), 0..4_000), cut in any::<proptest::sample::Index>()) {
            let s = sealer();
            let sealed = s.seal(Kind::Chunk, b"bind", &data, 3);
            let n = cut.index(sealed.len());
            prop_assert!(s.open(Kind::Chunk, b"bind", &sealed[..n], 1 << 20).is_err());
        }
    }
}
