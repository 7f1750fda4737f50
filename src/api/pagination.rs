//! `?limit=` and `?cursor=`: the same rules for every list.
//!
//! A cursor is opaque to clients, who pass back `next_cursor` as given. It
//! is the last item's position in plain text, and every text of a cursor's
//! documented form is a position, so that whatever the OpenAPI document
//! allows, the service accepts.

use chrono::DateTime;
use uuid::Uuid;

use super::error::ApiError;
use crate::domain::auth::Tenant;
use crate::domain::error::FieldError;
use crate::domain::job::JobId;
use crate::domain::run::Run;
use crate::store::{RunCursor, RunFilter, Store, StoreResult};

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// An audit cursor: the last record's id.
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A runs cursor: `created_at` in microseconds since the epoch, then the
/// run id.
pub const RUN_CURSOR_PATTERN: &str =
    "^[0-9]{1,16}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

pub fn limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(FieldError::new(
                "limit",
                format!("must be an integer from 1 to {MAX_LIMIT}, got {text:?}"),
            )
            .into()),
        },
    }
}

fn not_a_cursor() -> ApiError {
    FieldError::new("cursor", "is not a cursor this service returned").into()
}

/// A jobs cursor is the last job's id.
pub fn job_cursor(raw: Option<&str>) -> Result<Option<JobId>, ApiError> {
    raw.map(|text| JobId::parse(text).map_err(|_| not_a_cursor()))
        .transpose()
}

pub fn encode_job_cursor(id: &JobId) -> String {
    id.to_string()
}

pub fn run_cursor(raw: Option<&str>) -> Result<Option<RunCursor>, ApiError> {
    let Some(text) = raw else { return Ok(None) };
    let (micros, id) = text.split_once('_').ok_or_else(not_a_cursor)?;
    if micros.is_empty() || micros.len() > 16 || !micros.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_cursor());
    }
    let created_at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(not_a_cursor)?;
    let id = Uuid::parse_str(id).map_err(|_| not_a_cursor())?;
    Ok(Some(RunCursor { created_at, id }))
}

pub fn encode_run_cursor(cursor: RunCursor) -> String {
    format!("{}_{}", cursor.created_at.timestamp_micros(), cursor.id)
}

/// One page of runs as `filter` says (its `limit` is the page size), and
/// the cursor of the next page when there is one.
pub async fn runs_page(
    store: &dyn Store,
    tenant: &Tenant,
    mut filter: RunFilter,
) -> StoreResult<(Vec<Run>, Option<String>)> {
    let limit = filter.limit as usize;
    filter.limit += 1;
    let mut runs = store.list_runs(tenant, &filter).await?;
    if runs.len() <= limit {
        return Ok((runs, None));
    }
    runs.truncate(limit);
    let next = runs.last().map(|r| {
        encode_run_cursor(RunCursor {
            created_at: r.created_at,
            id: r.id,
        })
    });
    Ok((runs, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "-1", "x"] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let id = JobId::parse("job:1").unwrap();
        assert_eq!(job_cursor(Some(&encode_job_cursor(&id))).unwrap(), Some(id));
        assert!(job_cursor(Some("a/b")).is_err());
        let run = RunCursor {
            created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(
            run_cursor(Some(&encode_run_cursor(run))).unwrap(),
            Some(run)
        );
        for bad in [
            "!!",
            "12",
            "_",
            "x_00000000-0000-0000-0000-000000000000",
            "12_zz",
        ] {
            assert!(run_cursor(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_run_cursor_the_pattern_allows_is_a_position() {
        // The largest the pattern allows, with a UUID in capitals.
        let max = "9999999999999999_ABCDEF01-2345-6789-ABCD-EF0123456789";
        assert!(run_cursor(Some(max)).unwrap().is_some());
    }
}
