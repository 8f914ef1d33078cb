use std::fmt;

use base64::Engine as _;

use crate::error::RegionError;

/// A region's 256-bit master key. Never printed: `Debug` is redacted so keys cannot leak into logs.
#[derive(Clone, PartialEq, Eq)]
pub struct RegionKey([u8; 32]);

impl RegionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn generate() -> Self {
        Self(rand::random())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the textual form used in configs and env vars: 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| "expected 64 hex digits or base64 of 32 bytes".to_string())?
        };
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|v: Vec<u8>| format!("key must be 32 bytes, got {}", v.len()))?;
        Ok(Self(arr))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for RegionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegionKey(<redacted>)")
    }
}

/// Where a region's key comes from, as written in the config: `env:VAR`, `file:/path`, or
/// `hex:…` / `base64:…` inline (inline keys are for tests and demos only).
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    Env(String),
    File(String),
    Inline(String),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env(v) => write!(f, "env:{v}"),
            KeySource::File(p) => write!(f, "file:{p}"),
            KeySource::Inline(_) => f.write_str("inline:<redacted>"),
        }
    }
}

impl KeySource {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some(("env", var)) if !var.is_empty() => Ok(KeySource::Env(var.to_string())),
            Some(("file", path)) if !path.is_empty() => Ok(KeySource::File(path.to_string())),
            Some(("hex" | "base64", value)) => Ok(KeySource::Inline(value.to_string())),
            _ => Err("key must be `env:VAR`, `file:/path`, `hex:…` or `base64:…`".to_string()),
        }
    }

    pub fn resolve(&self, region: &str) -> Result<RegionKey, RegionError> {
        let bad = |reason: String| RegionError::BadKey {
            region: region.to_string(),
            reason,
        };
        let text = match self {
            KeySource::Env(var) => std::env::var(var).map_err(|_| RegionError::MissingKey {
                region: region.to_string(),
                env_var: var.clone(),
            })?,
            KeySource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| bad(format!("cannot read key file {path}: {e}")))?,
            KeySource::Inline(value) => value.clone(),
        };
        RegionKey::parse(&text).map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_base64_and_rejects_short_keys() {
        let k = RegionKey::generate();
        assert_eq!(RegionKey::parse(&k.to_hex()).unwrap(), k);
        let b64 = base64::engine::general_purpose::STANDARD.encode(k.as_bytes());
        assert_eq!(RegionKey::parse(&b64).unwrap(), k);
        assert!(RegionKey::parse("abcd").is_err());
        assert!(RegionKey::parse(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let k = RegionKey::parse(&"ab".repeat(32)).unwrap();
        assert!(!format!("{k:?}").contains("abab"));
        let s = KeySource::parse(&format!("hex:{}", "ab".repeat(32))).unwrap();
        assert!(!format!("{s:?}").contains("abab"));
    }

    #[test]
    fn key_source_syntax() {
        assert_eq!(
            KeySource::parse("env:X").unwrap(),
            KeySource::Env("X".into())
        );
        assert_eq!(
            KeySource::parse("file:/k").unwrap(),
            KeySource::File("/k".into())
        );
        assert!(KeySource::parse("plain").is_err());
        assert!(KeySource::parse("env:").is_err());
    }
}
