//! Position and GTID restore targets, both given as `btar restore --target-lsn` (the engine receives
//! [`btar_engine::Target::Position`]):
//!
//! - `FILE:POS`, a binlog position (`binlog.000003:1234`, as `SHOW MASTER STATUS` or `SHOW BINLOG
//!   EVENTS` give it): replay stops before the event at `POS`, so every transaction committed before
//!   that position is restored and none at or after it. `POS` must be an event boundary of `FILE`.
//! - `D-S-N`, a MariaDB GTID (domain-server-sequence), or a comma-separated list of them with one per
//!   domain (`@@gtid_binlog_pos`): replay stops right after the transaction with that GTID, so the
//!   restore holds it and nothing later. A list is reached at the first point of the binlog where
//!   every listed GTID has been replayed; it must be a state the binlog passed through (no later
//!   transaction of a listed domain before that point). Domains not listed are replayed up to
//!   that point too.
//!
//! Both are turned into a binlog file and offset before the replay, which then runs with an integer
//! `mariadb-binlog --stop-position`: the restore is always a prefix of the binlog, a state the source
//! actually had.

use std::collections::BTreeMap;

use btar_engine::log::NumberedFiles;
use btar_engine::{EngineError, LogSequence};

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

/// GTIDs by domain: a GTID list, or a binlog state.
pub type GtidSet = BTreeMap<u32, Gtid>;

/// `a-b-c` (three decimal numbers) as a GTID.
fn parse_gtid(s: &str) -> Option<Gtid> {
    let mut parts = s.trim().split('-');
    let num = |p: Option<&str>| {
        p.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u64>().ok())
    };
    let domain = u32::try_from(num(parts.next())?).ok()?;
    let server = u32::try_from(num(parts.next())?).ok()?;
    let seq = num(parts.next())?;
    if parts.next().is_some() {
        return None;
    }
    Some(Gtid {
        domain,
        server,
        seq,
    })
}

/// A GTID list `D-S-N[,D-S-N…]` with one GTID per domain; `Ok(None)` when `s` does not look like
/// one at all, an error when it does but names a domain twice. An empty string is the empty list.
pub fn parse_gtid_list(s: &str) -> Result<Option<GtidSet>, EngineError> {
    let mut set = GtidSet::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let Some(g) = parse_gtid(part) else {
            return Ok(None);
        };
        if let Some(other) = set.insert(g.domain, g) {
            return Err(EngineError::Invalid(format!(
                "GTID list `{s}` names domain {} twice ({other} and {g}): give one GTID per domain",
                g.domain
            )));
        }
    }
    Ok(Some(set))
}

/// Writes a GTID list as MariaDB does.
pub fn show(set: &GtidSet) -> String {
    set.values()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A restore target inside the binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinlogTarget {
    /// Stop before the event at `position` of `file` (number `number` of its family).
    At {
        file: String,
        family: String,
        number: u64,
        position: u64,
    },
    /// Stop right after every one of these GTIDs.
    Gtids(GtidSet),
}

impl std::fmt::Display for BinlogTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BinlogTarget::At { file, position, .. } => {
                write!(f, "binlog position {file}:{position}")
            }
            BinlogTarget::Gtids(set) => write!(f, "GTID {}", show(set)),
        }
    }
}

/// Parses a `--target-lsn` for a MySQL/MariaDB service.
pub fn parse(s: &str) -> Result<BinlogTarget, EngineError> {
    let s = s.trim();
    let invalid = || {
        EngineError::Invalid(format!(
            "`{s}` is not a MariaDB restore target: give a binlog position FILE:POS (e.g. binlog.000003:1234, \
             from SHOW MASTER STATUS) or a GTID D-S-N (e.g. 0-1-42, or a list 0-1-42,1-2-7 from @@gtid_binlog_pos)"
        ))
    };
    if let Some((file, pos)) = s.rsplit_once(':') {
        let at = NumberedFiles.position(file).ok_or_else(invalid)?;
        if pos.is_empty() || !pos.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let position = pos.parse::<u64>().map_err(|_| invalid())?;
        return Ok(BinlogTarget::At {
            file: file.to_string(),
            family: at.family,
            number: at.number,
            position,
        });
    }
    match parse_gtid_list(s)? {
        Some(set) if !set.is_empty() => Ok(BinlogTarget::Gtids(set)),
        _ => Err(invalid()),
    }
}

/// The sequence number a binlog state (a backup's recorded GTID list) holds for `domain`; 0 when it
/// holds none, i.e. nothing of that domain was written before it.
pub fn seq_in(state: &GtidSet, domain: u32) -> u64 {
    state.get(&domain).map_or(0, |g| g.seq)
}

/// Whether a binlog state is at or before the GTID target in every listed domain: a backup with
/// that state can be rolled forward to the target.
pub fn precedes(state: &GtidSet, target: &GtidSet) -> bool {
    target.values().all(|t| seq_in(state, t.domain) <= t.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_parsed_or_refused_with_the_forms_accepted() {
        assert_eq!(
            parse("binlog.000003:1234").ok(),
            Some(BinlogTarget::At {
                file: "binlog.000003".into(),
                family: "binlog".into(),
                number: 3,
                position: 1234
            })
        );
        let Ok(BinlogTarget::Gtids(set)) = parse("0-1-42,1-2-7") else {
            panic!("GTID list not parsed");
        };
        assert_eq!(show(&set), "0-1-42,1-2-7");
        assert_eq!(
            parse("0-1-42").map(|t| t.to_string()).ok(),
            Some("GTID 0-1-42".into())
        );
        for bad in [
            "0/3000060",
            "binlog.000003",
            "binlog.000003:",
            "binlog.000003:-1",
            "binlog:12",
            "0-1",
            "0-1-x",
            "0-1-2-3",
            "",
            ",",
            "99999999999-1-2",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.contains("FILE:POS") && err.contains("D-S-N"),
                "{bad}: {err}"
            );
        }
        let err = parse("0-1-4,0-2-5").unwrap_err().to_string();
        assert!(err.contains("domain 0 twice"), "{err}");
    }

    #[test]
    fn a_state_precedes_a_target_domain_by_domain() {
        let set = |s: &str| parse_gtid_list(s).ok().flatten().unwrap_or_default();
        assert!(precedes(&set("0-1-10"), &set("0-1-42")));
        assert!(precedes(&set("0-1-42"), &set("0-1-42")));
        assert!(!precedes(&set("0-1-43"), &set("0-1-42")));
        assert!(precedes(&set(""), &set("0-1-1")));
        assert!(precedes(&set("1-1-99"), &set("0-1-1")));
        assert!(!precedes(&set("0-1-5,1-1-9"), &set("0-1-6,1-1-8")));
    }
}
