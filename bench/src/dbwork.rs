//! The database work a delivery costs (issue 23): WAL written (exact, from
//! the LSN), its records by kind (index entries, heap writes, row locks,
//! commits) from `pg_walinspect` where PostgreSQL has it, and row versions
//! written per table with the share of updates that were HOT (touched no
//! index), from the cumulative statistics. Backends publish those
//! statistics when they exit, so a reading is taken with no other backend
//! on the database.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::scenarios::wait_for;

/// The tables a delivery writes.
const TABLES: &[&str] = &["jobs", "runs", "attempts", "events", "tenant_runs_made"];

#[derive(Debug, Clone, Default)]
pub struct DbWork {
    lsn: String,
    wal_bytes: f64,
    /// Per table: rows inserted, updated, of those HOT, deleted.
    tables: BTreeMap<String, [f64; 4]>,
}

/// Waits until `pool`'s connection is the only client on its database,
/// so that every other client's statistics are published. Autovacuum's
/// workers, which a freshly seeded table calls in, are not waited for.
pub async fn alone(pool: &PgPool) -> anyhow::Result<()> {
    let first = wait_for(
        Duration::from_secs(10),
        "the other connections to close",
        || others_gone(pool),
    )
    .await;
    if first.is_ok() {
        return Ok(());
    }
    // A connection a closed pool left behind, idle (sqlx's `close` can
    // miss one returned while it closes): ended here, which publishes
    // its statistics as its own exit would.
    let ended: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend' AND state = 'idle'
           AND pg_terminate_backend(pid)",
    )
    .fetch_all(pool)
    .await?;
    if !ended.is_empty() {
        eprintln!(
            "cronhook-bench: ended {} idle connection(s) left on the database",
            ended.len()
        );
    }
    let waited = wait_for(
        Duration::from_secs(60),
        "the other connections to close",
        || others_gone(pool),
    )
    .await;
    if waited.is_err() {
        // Say who stayed, to find them.
        let others: Vec<(Option<String>, Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT application_name, state, left(query, 200) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
               AND backend_type = 'client backend'",
        )
        .fetch_all(pool)
        .await
        .unwrap_or_default();
        return waited.map_err(|e| e.context(format!("still connected: {others:?}")));
    }
    waited
}

/// Whether `pool`'s connection is the only client on its database.
async fn others_gone(pool: &PgPool) -> anyhow::Result<bool> {
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND backend_type = 'client backend'",
    )
    .fetch_one(pool)
    .await?;
    Ok(others == 0)
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
        let (lsn, wal_bytes): (String, f64) = sqlx::query_as(
            "SELECT pg_current_wal_lsn()::text, (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8",
        )
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
        Ok(Self {
            lsn,
            wal_bytes,
            tables,
        })
    }

    /// WAL records from `before` to `self` by kind (`Btree/INSERT_LEAF`:
    /// an index entry; `Heap/LOCK`: a row lock; `Transaction/COMMIT`),
    /// per delivery of `n`; and by kind and relation, with their bytes.
    /// Nulls without `pg_walinspect`.
    async fn wal_records(&self, pool: &PgPool, before: &DbWork, n: f64) -> (Value, Value) {
        let created = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            .execute(pool)
            .await;
        let rows: Result<Vec<(String, String, i64, i64)>, _> = sqlx::query_as(
            r"SELECT w.resource_manager || '/' || w.record_type,
                     COALESCE(c.relname::text, ''), count(*), sum(w.record_length)::int8
              FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) w
              LEFT JOIN pg_class c
                ON c.relfilenode = substring(w.block_ref from 'rel \d+/\d+/(\d+)')::oid
              GROUP BY 1, 2",
        )
        .bind(&before.lsn)
        .bind(&self.lsn)
        .fetch_all(pool)
        .await;
        let (Ok(_), Ok(rows)) = (created, rows) else {
            return (Value::Null, Value::Null);
        };
        let mut kinds: BTreeMap<String, f64> = BTreeMap::new();
        let mut by_relation = serde_json::Map::new();
        for (kind, relation, count, bytes) in rows {
            *kinds.entry(kind.clone()).or_default() += count as f64 / n;
            by_relation.insert(
                format!("{kind} {relation}").trim().to_string(),
                json!({"records": count as f64 / n, "bytes": bytes as f64 / n}),
            );
        }
        (json!(kinds), by_relation.into())
    }

    /// What was written from `before` to `self`, per delivery of `n`.
    pub async fn per_delivery(&self, pool: &PgPool, before: &DbWork, n: usize) -> Value {
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
        let (records, by_relation) = self.wal_records(pool, before, n).await;
        json!({
            "wal_bytes": (self.wal_bytes - before.wal_bytes) / n,
            "wal_records": records,
            "wal_records_by_relation": by_relation,
            "row_versions": versions,
            "tables": tables,
        })
    }
}
