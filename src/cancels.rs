//! A cancel's request to a callback run's receiver (DESIGN.md §11.7):
//! signed as the job's requests are, with `cronhook-event: cancel`, to
//! `target.cancel_url` or the job's URL.

use std::time::Duration;

use uuid::Uuid;

use crate::dispatch::client::{Delivery, WebhookClient};
use crate::store::DynStore;
use crate::store::callbacks::CancelReceipt;

/// Attempts at a cancel request: the run ends after its grace anyway.
const CANCEL_ATTEMPTS: u32 = 3;

/// Sends the signed cancel request to the job's receiver, a few times
/// until it answers 2xx. Its loss costs only time: the watchdog ends the
/// run `cancelled` when the grace passes.
pub async fn ask_receiver_to_stop(
    store: DynStore,
    webhooks: WebhookClient,
    run_id: Uuid,
    receipt: CancelReceipt,
) {
    let (Ok(tenant), Ok(job_id)) = (
        crate::domain::auth::Tenant::parse(&receipt.tenant),
        crate::domain::job::JobId::parse(&receipt.job_id),
    ) else {
        return;
    };
    let (job, secret) = match (
        store.get_job(&tenant, &job_id).await,
        store.get_secret(&tenant, &job_id).await,
    ) {
        (Ok(Some(job)), Ok(Some(secret))) => (job, secret),
        _ => {
            tracing::warn!(%run_id, job_id = %receipt.job_id, "cancel request not sent: the job is gone");
            return;
        }
    };
    let Some(target) = job.definition.target else {
        return;
    };
    let request = crate::domain::callback::cancel_request(&target, run_id, &receipt.job_id);
    let secrets =
        crate::domain::signing::secrets_at(secret.secret, secret.previous, chrono::Utc::now());
    let about = [
        ("cronhook-event", "cancel".to_string()),
        ("cronhook-job-id", receipt.job_id.clone()),
    ];
    for attempt in 1..=CANCEL_ATTEMPTS {
        let response = webhooks
            .send(&Delivery {
                webhook_id: run_id,
                attempt,
                target: &request,
                secrets: &secrets,
                about: &about,
            })
            .await;
        match response.status {
            Some(status) if crate::domain::success::SuccessRules::status_2xx(status) => {
                tracing::info!(%run_id, job_id = %receipt.job_id, status, "cancel request delivered");
                return;
            }
            status => {
                tracing::warn!(%run_id, job_id = %receipt.job_id, attempt, status, error = response.error.as_deref(), "cancel request failed");
            }
        }
        if attempt < CANCEL_ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
    }
}
