//! What btar asks of a running PostgreSQL server.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Row};

use crate::conninfo;
use crate::error::PgError;

/// One session with the server; a non-exclusive backup lives and dies with it.
#[derive(Debug)]
pub struct Server {
    conn: PgConnection,
    pub version_num: i32,
    pub role: String,
}

/// Facts returned by `pg_backup_stop`.
#[derive(Debug, Clone)]
pub struct BackupStop {
    pub lsn: String,
    pub label: String,
    pub tablespace_map: Option<String>,
}

pub(crate) fn query_err(query: &'static str) -> impl Fn(sqlx::Error) -> PgError {
    move |e| PgError::Query {
        query,
        message: e.to_string(),
    }
}

impl Server {
    pub async fn connect(conninfo_text: &str) -> Result<Self, PgError> {
        let opts: PgConnectOptions = conninfo::parse(conninfo_text)?;
        let mut conn = opts.connect().await.map_err(|e| PgError::Connect {
            target: conninfo::describe(conninfo_text),
            message: e.to_string(),
        })?;
        let row =
            sqlx::query("SELECT current_setting('server_version_num')::int, current_user::text")
                .fetch_one(&mut conn)
                .await
                .map_err(query_err("server_version_num"))?;
        let version_num: i32 = row.get(0);
        if version_num < 130000 {
            return Err(PgError::UnsupportedVersion(version_num / 10000));
        }
        Ok(Self {
            conn,
            version_num,
            role: row.get(1),
        })
    }

    pub async fn setting(&mut self, name: &str) -> Result<String, PgError> {
        sqlx::query_scalar::<_, String>("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&mut self.conn)
            .await
            .map_err(query_err("current_setting"))
    }

    pub async fn system_identifier(&mut self) -> Result<String, PgError> {
        sqlx::query_scalar::<_, String>("SELECT system_identifier::text FROM pg_control_system()")
            .fetch_one(&mut self.conn)
            .await
            .map_err(query_err("pg_control_system"))
    }

    pub async fn wal_segment_size(&mut self) -> Result<u64, PgError> {
        sqlx::query_scalar::<_, i64>(
            "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'",
        )
        .fetch_one(&mut self.conn)
        .await
        .map(|v| v as u64)
        .map_err(query_err("wal_segment_size"))
    }

    /// Checks what a backup needs before anything is written: archiving on, and the privileges to
    /// read the settings and run the backup functions (superuser, or the grants the error names).
    pub async fn preflight(&mut self) -> Result<(), PgError> {
        let (start, stop) = if self.version_num >= 150000 {
            ("pg_backup_start(text, boolean)", "pg_backup_stop(boolean)")
        } else {
            (
                "pg_start_backup(text, boolean, boolean)",
                "pg_stop_backup(boolean, boolean)",
            )
        };
        let row = sqlx::query(
            "SELECT r.rolsuper, pg_has_role(current_user, 'pg_read_all_settings', 'USAGE'), \
                    has_function_privilege($1, 'EXECUTE'), has_function_privilege($2, 'EXECUTE'), \
                    has_function_privilege('pg_control_system()', 'EXECUTE') \
             FROM pg_roles r WHERE r.rolname = current_user",
        )
        .bind(start)
        .bind(stop)
        .fetch_one(&mut self.conn)
        .await
        .map_err(query_err("privilege check"))?;
        let superuser: bool = row.get(0);
        if !superuser {
            let mut missing = Vec::new();
            if !row.get::<bool, _>(1) {
                missing.push(format!("GRANT pg_read_all_settings TO {}", self.role));
            }
            for (i, f) in [(2, start), (3, stop), (4, "pg_control_system()")] {
                if !row.get::<bool, _>(i) {
                    missing.push(format!("GRANT EXECUTE ON FUNCTION {f} TO {}", self.role));
                }
            }
            if !missing.is_empty() {
                return Err(PgError::Privilege {
                    role: self.role.clone(),
                    missing: missing.join("; "),
                });
            }
        }
        let mode = self.setting("archive_mode").await?;
        if mode == "off" {
            return Err(PgError::ArchiveModeOff(mode));
        }
        Ok(())
    }

    fn privilege_or(&self, function: &str, e: sqlx::Error, query: &'static str) -> PgError {
        let text = e.to_string();
        if text.contains("permission denied") {
            PgError::Privilege {
                role: self.role.clone(),
                missing: format!("GRANT EXECUTE ON FUNCTION {function} TO {}", self.role),
            }
        } else {
            PgError::Query {
                query,
                message: text,
            }
        }
    }

    /// Starts a non-exclusive backup; returns (start LSN, WAL file of the start LSN, timeline).
    pub async fn backup_start(&mut self, label: &str) -> Result<(String, String, u32), PgError> {
        let (q, f): (&'static str, &str) = if self.version_num >= 150000 {
            ("SELECT pg_backup_start($1, true)::text", "pg_backup_start")
        } else {
            (
                "SELECT pg_start_backup($1, true, false)::text",
                "pg_start_backup",
            )
        };
        let lsn: String = match sqlx::query_scalar(q)
            .bind(label)
            .fetch_one(&mut self.conn)
            .await
        {
            Ok(v) => v,
            Err(e) => return Err(self.privilege_or(f, e, "backup start")),
        };
        let row = sqlx::query(
            "SELECT pg_walfile_name($1::pg_lsn), timeline_id::int FROM pg_control_checkpoint()",
        )
        .bind(&lsn)
        .fetch_one(&mut self.conn)
        .await
        .map_err(query_err("pg_walfile_name"))?;
        let tli: i32 = row.get(1);
        Ok((lsn, row.get(0), tli as u32))
    }

    /// Stops the backup, waiting until PostgreSQL has archived the WAL it needs.
    pub async fn backup_stop(&mut self) -> Result<BackupStop, PgError> {
        let (q, f): (&'static str, &str) = if self.version_num >= 150000 {
            (
                "SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(true)",
                "pg_backup_stop",
            )
        } else {
            (
                "SELECT lsn::text, labelfile, spcmapfile FROM pg_stop_backup(false, true)",
                "pg_stop_backup",
            )
        };
        let row = match sqlx::query(q).fetch_one(&mut self.conn).await {
            Ok(r) => r,
            Err(e) => return Err(self.privilege_or(f, e, "backup stop")),
        };
        let map: Option<String> = row.get(2);
        Ok(BackupStop {
            lsn: row.get(0),
            label: row.get(1),
            tablespace_map: map.filter(|m| !m.is_empty()),
        })
    }

    pub async fn walfile_name(&mut self, lsn: &str) -> Result<String, PgError> {
        sqlx::query_scalar("SELECT pg_walfile_name($1::pg_lsn)")
            .bind(lsn)
            .fetch_one(&mut self.conn)
            .await
            .map_err(query_err("pg_walfile_name"))
    }

    pub async fn is_in_recovery(&mut self) -> Result<bool, PgError> {
        sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut self.conn)
            .await
            .map_err(query_err("pg_is_in_recovery"))
    }

    /// Timeline, current LSN, and last replayed commit time of a promoted server.
    pub async fn reached_point(
        &mut self,
    ) -> Result<(u32, String, Option<chrono::DateTime<chrono::Utc>>), PgError> {
        let row = sqlx::query(
            "SELECT timeline_id::int, pg_current_wal_lsn()::text, pg_last_xact_replay_timestamp() FROM pg_control_checkpoint()",
        )
        .fetch_one(&mut self.conn)
        .await
        .map_err(query_err("reached point"))?;
        let tli: i32 = row.get(0);
        Ok((tli as u32, row.get(1), row.get(2)))
    }

    /// The first row of `sql` (a query usable as a subquery) as JSON text; `None` for no row.
    pub async fn first_row_json(&mut self, sql: &str) -> Result<Option<String>, PgError> {
        let wrapped = format!("SELECT row_to_json(q)::text FROM ({sql}) q LIMIT 1");
        sqlx::query_scalar(sqlx::AssertSqlSafe(wrapped))
            .fetch_optional(&mut self.conn)
            .await
            .map_err(query_err("validation query"))
    }

    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}
