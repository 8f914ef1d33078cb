use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::RegionError;
use crate::faults::FaultConfig;
use crate::key::{KeySource, RegionKey};
use crate::retry::RetryPolicy;

/// Region option that wraps the store in [`crate::faults::FaultyStore`]. For tests only: it makes a
/// healthy region fail on purpose.
pub const FAULTS_OPTION: &str = "btar_faults";

/// A region as declared in the config file (`[[region]]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Region name, e.g. `aws-eu-west-2`: lowercase letters, digits and dashes.
    pub name: String,
    /// Cloud provider (`aws`, `google`, `azure`, `local`, or any S3-compatible vendor name).
    pub provider: String,
    /// Object store URL: `s3://bucket/prefix`, `gs://…`, `az://container/prefix`, `file:///dir`, `memory://name`.
    pub url: String,
    /// Key source: `env:VAR`, `file:/path`, `hex:…`, `base64:…`. Overridden by `BTAR_REGION_<NAME>_KEY`.
    #[serde(default)]
    pub key: Option<String>,
    /// Options handed to the object store builder (`aws_endpoint`, `aws_allow_http`, …). Each can be
    /// overridden by `BTAR_REGION_<NAME>_OPT_<OPTION>` so secrets stay out of files.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub max_attempts: u32,
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let p = RetryPolicy::default();
        Self {
            max_attempts: p.max_attempts,
            initial_ms: p.initial.as_millis() as u64,
            max_ms: p.max.as_millis() as u64,
        }
    }
}

impl From<RetryConfig> for RetryPolicy {
    fn from(c: RetryConfig) -> Self {
        RetryPolicy {
            max_attempts: c.max_attempts.max(1),
            initial: Duration::from_millis(c.initial_ms),
            max: Duration::from_millis(c.max_ms.max(c.initial_ms)),
        }
    }
}

/// The provider family of a region; btar's same-provider rule compares these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Provider {
    Aws,
    Google,
    Azure,
    Local,
    /// An S3-compatible vendor (MinIO, Ceph, …), reached with `s3://` and a custom endpoint.
    S3Compatible(String),
}

impl Provider {
    pub fn parse(s: &str) -> Self {
        match s {
            "aws" => Provider::Aws,
            "google" | "gcp" => Provider::Google,
            "azure" => Provider::Azure,
            "local" => Provider::Local,
            other => Provider::S3Compatible(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Provider::Aws => "aws",
            Provider::Google => "google",
            Provider::Azure => "azure",
            Provider::Local => "local",
            Provider::S3Compatible(s) => s,
        }
    }

    fn allowed_schemes(&self) -> &'static [&'static str] {
        match self {
            Provider::Aws | Provider::S3Compatible(_) => &["s3", "s3a"],
            Provider::Google => &["gs"],
            Provider::Azure => &["az", "azure", "abfs", "abfss"],
            Provider::Local => &["file", "memory"],
        }
    }
}

pub fn validate_region_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid region name `{name}`: use 1-63 lowercase letters, digits and dashes"
        ))
    }
}

impl RegionConfig {
    /// Env var prefix for this region's overrides: `BTAR_REGION_EU_WEST_2_`.
    pub fn env_prefix(&self) -> String {
        let up: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("BTAR_REGION_{up}_")
    }

    pub fn provider(&self) -> Provider {
        Provider::parse(&self.provider)
    }

    fn invalid(&self, reason: impl Into<String>) -> RegionError {
        RegionError::InvalidConfig {
            region: self.name.clone(),
            reason: reason.into(),
        }
    }

    /// Checks everything that can be checked without touching the store.
    pub fn validate(&self) -> Result<url::Url, RegionError> {
        validate_region_name(&self.name).map_err(|r| self.invalid(r))?;
        if self.provider.is_empty() {
            return Err(self.invalid("provider is empty"));
        }
        let url = url::Url::parse(&self.url)
            .map_err(|e| self.invalid(format!("malformed url `{}`: {e}", self.url)))?;
        let provider = self.provider();
        if !provider.allowed_schemes().contains(&url.scheme()) {
            return Err(self.invalid(format!(
                "url scheme `{}://` does not match provider `{}` (expected one of {:?})",
                url.scheme(),
                provider.as_str(),
                provider.allowed_schemes()
            )));
        }
        if url.scheme() == "file" && url.path().len() <= 1 {
            return Err(self.invalid("file:// url needs a directory path"));
        }
        // Filesystem and memory stores take no builder options: an ignored option (a misplaced
        // endpoint, a typo meant for another region) would silently change nothing.
        if matches!(url.scheme(), "file" | "memory") {
            let opts = self.effective_options();
            if !opts.is_empty() {
                return Err(self.invalid(format!(
                    "{}:// regions take no options (got: {})",
                    url.scheme(),
                    opts.keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        if matches!(url.scheme(), "s3" | "s3a" | "gs" | "az" | "azure") && url.host_str().is_none()
        {
            return Err(self.invalid("url needs a bucket or container name"));
        }
        if let Some(k) = &self.key {
            KeySource::parse(k).map_err(|r| self.invalid(r))?;
        }
        self.faults()?;
        Ok(url)
    }

    /// The region key: `BTAR_REGION_<NAME>_KEY` wins over the config's `key`.
    pub fn resolve_key(&self) -> Result<Option<RegionKey>, RegionError> {
        let env_var = format!("{}KEY", self.env_prefix());
        if let Ok(v) = std::env::var(&env_var) {
            return RegionKey::parse(&v)
                .map(Some)
                .map_err(|reason| RegionError::BadKey {
                    region: self.name.clone(),
                    reason: format!("{env_var}: {reason}"),
                });
        }
        match &self.key {
            None => Ok(None),
            Some(k) => {
                let src = KeySource::parse(k).map_err(|r| self.invalid(r))?;
                src.resolve(&self.name).map(Some)
            }
        }
    }

    /// Store options with env overrides applied (btar's own options, such as [`FAULTS_OPTION`], left out).
    pub fn effective_options(&self) -> BTreeMap<String, String> {
        let mut opts = self.options_with_env();
        opts.remove(FAULTS_OPTION);
        opts
    }

    fn options_with_env(&self) -> BTreeMap<String, String> {
        let mut opts = self.options.clone();
        let prefix = format!("{}OPT_", self.env_prefix());
        for (k, v) in std::env::vars() {
            if let Some(opt) = k.strip_prefix(&prefix) {
                opts.insert(opt.to_ascii_lowercase(), v);
            }
        }
        opts
    }

    /// The faults to inject (test-only option [`FAULTS_OPTION`], or `BTAR_REGION_<NAME>_OPT_BTAR_FAULTS`).
    pub fn faults(&self) -> Result<Option<FaultConfig>, RegionError> {
        self.options_with_env()
            .get(FAULTS_OPTION)
            .map(|spec| spec.parse().map_err(|r: String| self.invalid(r)))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, provider: &str, url: &str) -> RegionConfig {
        RegionConfig {
            name: name.into(),
            provider: provider.into(),
            url: url.into(),
            key: None,
            options: Default::default(),
            retry: Default::default(),
        }
    }

    #[test]
    fn validates_names_urls_and_providers() {
        assert!(
            cfg("aws-eu-west-2", "aws", "s3://bucket/p")
                .validate()
                .is_ok()
        );
        assert!(cfg("local-a", "local", "file:///tmp/x").validate().is_ok());
        let e = cfg("Bad_Name", "aws", "s3://b")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid region name"), "{e}");
        let e = cfg("a", "aws", "gs://b")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match provider"), "{e}");
        let e = cfg("a", "aws", "not a url")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed url"), "{e}");
        let e = cfg("a", "local", "file:///")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("directory"), "{e}");
    }

    #[test]
    fn fault_option_is_btars_own() {
        let mut c = cfg("r-faults", "aws", "s3://b/p");
        c.options
            .insert(FAULTS_OPTION.into(), "rate=0.5,seed=3".into());
        c.options.insert("aws_allow_http".into(), "true".into());
        assert!(!c.effective_options().contains_key(FAULTS_OPTION));
        assert_eq!(c.faults().unwrap().unwrap().rate, 0.5);
        c.options.insert(FAULTS_OPTION.into(), "rate=5".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("rate") && e.contains("`r-faults`"), "{e}");
        // btar's own option is not a store option: a filesystem region takes it.
        let mut f = cfg("local-f", "local", "file:///tmp/x");
        f.options.insert(FAULTS_OPTION.into(), "rate=0.1".into());
        assert!(f.validate().is_ok());
    }

    #[test]
    fn options_on_filesystem_regions_are_refused() {
        let mut c = cfg("local-a", "local", "file:///tmp/x");
        c.options
            .insert("aws_endpoint".into(), "http://127.0.0.1:9000".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("take no options") && e.contains("aws_endpoint"),
            "{e}"
        );
        let mut m = cfg("mem-a", "local", "memory://m");
        m.options.insert("x".into(), "y".into());
        assert!(m.validate().is_err());
    }

    #[test]
    fn missing_env_key_names_the_variable() {
        let mut c = cfg("r1", "local", "file:///tmp/x");
        c.key = Some("env:BTAR_TEST_SURELY_UNSET_KEY".into());
        let e = c.resolve_key().unwrap_err().to_string();
        assert!(
            e.contains("BTAR_TEST_SURELY_UNSET_KEY") && e.contains("`r1`"),
            "{e}"
        );
    }
}
