//! The database work a delivery costs (issue 23): WAL written (exact, from
//! the LSN) and row versions written per table, with the share of updates
//! that were HOT (touched no index), from PostgreSQL's cumulative
//! statistics. Backends publish those statistics when they exit, so a
//! reading is taken with no other backend on the database.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::scenarios::wait_for;

/// The tables a delivery writes.
const TABLES: &[&str] = &["jobs", "runs", "attempts", "events", "tenant_runs_made"];

#[derive(Debug, Clone, Default)]
pub struct DbWork {
    wal_bytes: f64,
    /// Per table: rows inserted, updated, of those HOT, deleted.
    tables: BTreeMap<String, [f64; 4]>,
}

/// Waits until `pool`'s connection is the only one on its database, so
/// that every other backend's statistics are published.
pub async fn alone(pool: &PgPool) -> anyhow::Result<()> {
    wait_for(
        Duration::from_secs(60),
        "the other connections to close",
        || async move {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .fetch_one(pool)
            .await?;
            Ok(others == 0)
        },
    )
    .await
}

impl DbWork {
    /// The counts now, as seen from `pool` (one connection).
    pub async fn read(pool: &PgPool) -> anyhow::Result<Self> {
        let mut conn = pool.acquire().await?;
        // This backend's own view is a snapshot taken at its first read in
        // a transaction; a fresh one sees what was published since.
        sqlx::query("SELECT pg_stat_clear_snapshot()")
            .execute(&mut *conn)
            .await?;
        let wal_bytes: f64 =
            sqlx::query_scalar("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8")
                .fetch_one(&mut *conn)
                .await?;
        let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del
             FROM pg_stat_user_tables WHERE relname = ANY($1)",
        )
        .bind(TABLES)
        .fetch_all(&mut *conn)
        .await?;
        let tables = rows
            .into_iter()
            .map(|(t, ins, upd, hot, del)| (t, [ins as f64, upd as f64, hot as f64, del as f64]))
            .collect();
        Ok(Self { wal_bytes, tables })
    }

    /// What was written from `before` to `self`, per delivery of `n`.
    pub fn per_delivery(&self, before: &DbWork, n: usize) -> Value {
        let n = n.max(1) as f64;
        let mut tables = serde_json::Map::new();
        let mut versions = 0.0;
        for (table, now) in &self.tables {
            let was = before.tables.get(table).copied().unwrap_or_default();
            let [ins, upd, hot, del] = std::array::from_fn(|i| (now[i] - was[i]) / n);
            versions += ins + upd + del;
            tables.insert(
                table.clone(),
                json!({"inserted": ins, "updated": upd, "hot_updated": hot, "deleted": del}),
            );
        }
        json!({
            "wal_bytes": (self.wal_bytes - before.wal_bytes) / n,
            "row_versions": versions,
            "tables": tables,
        })
    }
}
