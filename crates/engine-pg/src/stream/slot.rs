//! The streamer's physical replication slot: what makes the server keep WAL the streamer has not
//! yet stored in the primary location, across a streamer that is down or killed. Checked and
//! created over an ordinary session; its growth is reported so an operator sees a slot that the
//! server keeps WAL for without bound (PostgreSQL's `max_slot_wal_keep_size` caps it).

use sqlx::Row;

use crate::error::PgError;
use crate::server::{Server, query_err};

/// The slot as the server holds it.
#[derive(Debug, Clone)]
pub struct Slot {
    pub restart_lsn: Option<u64>,
    pub created: bool,
    /// The server invalidated the slot (it exceeded `max_slot_wal_keep_size`) and it was made anew:
    /// WAL between the old and new positions reaches the locations only through the archive.
    pub recreated_after_loss: bool,
}

/// Refuses a server the streamer cannot stream from, naming the setting to change.
pub async fn check_server(s: &mut Server) -> Result<(), PgError> {
    let level = s.setting("wal_level").await?;
    if level == "minimal" {
        return Err(PgError::CannotStream(
            "wal_level is `minimal`: set wal_level = replica (and restart PostgreSQL)".into(),
        ));
    }
    let senders: i64 = s.setting("max_wal_senders").await?.parse().unwrap_or(0);
    if senders < 1 {
        return Err(PgError::CannotStream(
            "max_wal_senders is 0: set it to 2 or more (and restart PostgreSQL)".into(),
        ));
    }
    let row =
        sqlx::query("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(s.conn())
            .await
            .map_err(query_err("pg_roles"))?;
    if !row.get::<bool, _>(0) {
        let role = s.role.clone();
        return Err(PgError::CannotStream(format!(
            "role `{role}` may not stream WAL: ALTER ROLE {role} REPLICATION (and allow it a `replication` line in pg_hba.conf)"
        )));
    }
    Ok(())
}

/// Finds or creates the physical slot `name`; a slot the server invalidated is made anew.
pub async fn ensure(s: &mut Server, name: &str) -> Result<Slot, PgError> {
    let row = sqlx::query(
        "SELECT restart_lsn::text, slot_type, coalesce(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(name)
    .fetch_optional(s.conn())
    .await
    .map_err(query_err("pg_replication_slots"))?;
    let mut recreated_after_loss = false;
    if let Some(row) = row {
        let kind: String = row.get(1);
        if kind != "physical" {
            return Err(PgError::CannotStream(format!(
                "replication slot `{name}` exists and is a {kind} slot; drop it or give the streamer another name"
            )));
        }
        let status: String = row.get(2);
        let restart: Option<String> = row.get(0);
        if status != "lost" && restart.is_some() {
            return Ok(Slot {
                restart_lsn: restart.as_deref().and_then(crate::restore::parse_lsn),
                created: false,
                recreated_after_loss: false,
            });
        }
        sqlx::query("SELECT pg_drop_replication_slot($1)")
            .bind(name)
            .execute(s.conn())
            .await
            .map_err(query_err("pg_drop_replication_slot"))?;
        recreated_after_loss = status == "lost";
    }
    let row = sqlx::query("SELECT lsn::text FROM pg_create_physical_replication_slot($1, true)")
        .bind(name)
        .fetch_one(s.conn())
        .await
        .map_err(query_err("pg_create_physical_replication_slot"))?;
    let lsn: Option<String> = row.get(0);
    Ok(Slot {
        restart_lsn: lsn.as_deref().and_then(crate::restore::parse_lsn),
        created: true,
        recreated_after_loss,
    })
}

/// WAL the server keeps for the slot (bytes from its restart point to the server's current
/// position); `None` when the slot is gone.
pub async fn retained_bytes(s: &mut Server, name: &str) -> Result<Option<u64>, PgError> {
    let v: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT (pg_current_wal_lsn() - restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
    )
    .bind(name)
    .fetch_optional(s.conn())
    .await
    .map_err(query_err("slot retained bytes"))?;
    Ok(v.flatten().map(|b| b.max(0) as u64))
}
