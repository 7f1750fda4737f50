//! `GET /v1/instances`: the cluster at a glance.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Root;
use super::error::ApiError;
use crate::domain::instant;
use crate::state::AppState;
use crate::store::Instance;

/// One running process of the service.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Instance)]
pub struct InstanceView {
    /// Its id, also the lease owner of the runs it delivers.
    #[schema(example = "cronhook-4242-1a2b3c4d")]
    pub id: String,
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (one a second), on the database clock.
    #[serde(with = "instant::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub heartbeat_at: DateTime<Utc>,
    #[schema(example = "0.1.0")]
    pub version: String,
    /// Runs it is delivering now (holds a lease on).
    pub leases: u64,
}

impl From<Instance> for InstanceView {
    fn from(i: Instance) -> Self {
        Self {
            id: i.id,
            started_at: i.started_at,
            heartbeat_at: i.heartbeat_at,
            version: i.version,
            leases: i.leases,
        }
    }
}

/// Every instance of the service sharing this database, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceList {
    pub items: Vec<InstanceView>,
}

/// The instances sharing this database: when each started, its last
/// heartbeat, its version and the deliveries it holds. One that stopped
/// beating more than `--instance-timeout-s` ago is dead; its deliveries
/// have been taken over.
#[utoipa::path(
    get, path = "/v1/instances", tag = "instances",
    responses((status = 200, description = "OK", body = InstanceList))
)]
pub async fn list_instances(
    Root(_): Root,
    State(app): State<AppState>,
) -> Result<Json<InstanceList>, ApiError> {
    let instances = app.store.list_instances().await?;
    Ok(Json(InstanceList {
        items: instances.into_iter().map(InstanceView::from).collect(),
    }))
}
