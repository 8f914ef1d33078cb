//! The binlog archive, one file at a time: `base.NNNNNN` lives under `logs/<base>/<name>`, so each
//! binlog base name is one family of [`NumberedFiles`] and one log directory.

use std::path::Path;

use btar_engine::log::NumberedFiles;
use btar_engine::{EngineError, LogSequence, watermarks};
use btar_format::verify::Problem;
use btar_format::{Location, LogPut};
use bytes::Bytes;
use futures::TryStreamExt;

use crate::backup::MysqlMeta;

/// The log directory of a binlog file: its base name.
pub fn family(name: &str) -> Result<String, EngineError> {
    NumberedFiles
        .position(name)
        .map(|p| p.family)
        .ok_or_else(|| {
            EngineError::Invalid(format!(
                "`{name}` is not a binlog file name btar archives (BASE.NNNNNN, e.g. binlog.000001)"
            ))
        })
}

/// Archives one binlog file; durable in the location when this returns. Pushing the same content
/// again succeeds; different content under the same name is refused.
pub async fn push(loc: &Location, path: &Path) -> Result<(String, String, LogPut), EngineError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| EngineError::Invalid(format!("`{}` names no file", path.display())))?
        .to_string();
    let fam = family(&name)?;
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| EngineError::Failed(format!("reading binlog {}: {e}", path.display())))?;
    let put = loc.put_log(&fam, &name, Bytes::from(data)).await?;
    Ok((fam, name, put))
}

/// Fetches one archived binlog into `dest` (temporary name, then rename); `false` when absent.
pub async fn fetch(loc: &Location, name: &str, dest: &Path) -> Result<bool, EngineError> {
    let fam = family(name)?;
    Ok(loc.fetch_log_to(&fam, name, dest).await?)
}

/// Holes in the binlog archive: for each family, the first missing file after the gap-free run.
/// With `only`, just the family of that backup's consistent point, and only holes after it.
pub async fn gaps(loc: &Location, only: Option<&str>) -> Result<Vec<Problem>, EngineError> {
    let from = match only {
        Some(b) => {
            let m = loc.read_manifest(b).await?;
            MysqlMeta::of(&m).and_then(|m| NumberedFiles.position(&m.binlog.file))
        }
        None => None,
    };
    let logs: Vec<(String, String)> = loc
        .list_logs()
        .map_ok(|o| (o.timeline, o.name))
        .try_collect()
        .await?;
    let mut out = vec![];
    for w in watermarks(logs, &NumberedFiles) {
        let Some(missing) = w.first_missing else {
            continue;
        };
        if let (Some(from), Some(pos)) = (&from, NumberedFiles.position(&missing))
            && (from.family != pos.family || pos.number <= from.number)
        {
            continue;
        }
        out.push(Problem {
            key: loc.log_key(&w.timeline, &missing),
            reason: format!(
                "binlog gap: {missing} is missing after {} (newest archived: {}); replay cannot pass it",
                w.watermark, w.newest
            ),
        });
    }
    Ok(out)
}
