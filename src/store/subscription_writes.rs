//! Subscriptions' write paths once for both databases (DESIGN.md §9,
//! §11.9): each change and its audit record in one transaction, whether
//! the API or an apply makes it.

use super::dialect::Dialect;
use super::writes::{SqlStore, audit_record};
use super::{NewSubscription, StoreError, StoreResult, Subscription, Tenant};
use crate::domain::{audit, quota};

// Private bounds as in writes.rs: only ever a `PgStore` or a `SqliteStore`.
#[allow(private_bounds)]
impl<D: Dialect> SqlStore<D> {
    /// Creates subscription `new.id`, or (unless `create`, which refuses
    /// one that exists) replaces it, as [`Self::write_subscription_in`]
    /// does, its row locked and read first.
    pub(super) async fn save_subscription_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        new: &NewSubscription,
        create: bool,
    ) -> StoreResult<(Subscription, bool, serde_json::Value)> {
        let before = self
            .db
            .lock_subscription(tx, &self.key, tenant, &new.id)
            .await?;
        if create && before.is_some() {
            return Err(StoreError::Conflict(format!(
                "subscription {} exists",
                new.id
            )));
        }
        self.write_subscription_in(tx, tenant, new, before).await
    }

    /// Writes subscription `new` over `before`, as locked in `tx` (none:
    /// it is created, held to the tenant's quota counted in `tx`); a
    /// replaced one keeps its secret. Answers it, whether it was created,
    /// and its audit record's changes.
    pub(super) async fn write_subscription_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        new: &NewSubscription,
        before: Option<Subscription>,
    ) -> StoreResult<(Subscription, bool, serde_json::Value)> {
        let saved = match &before {
            Some(_) => self
                .db
                .replace_subscription(tx, &self.key, tenant, new)
                .await?
                .ok_or(StoreError::NotFound)?,
            None => {
                // Read in `tx`, past the cache: an apply's own count too.
                let held = self
                    .db
                    .subscription_interests(Some(&mut *tx), tenant.as_str())
                    .await?
                    .len();
                quota::admit(
                    "subscriptions",
                    held as u64,
                    self.quotas_in(tx, tenant).await?.subscriptions,
                    "--max-subscriptions-per-tenant",
                )?;
                self.db
                    .insert_subscription(tx, &self.key, tenant, new)
                    .await?
            }
        };
        let action = match before {
            None => "subscription.created",
            Some(_) => "subscription.updated",
        };
        let changes = audit::for_subscription(before.as_ref().map(shown), Some(shown(&saved)));
        let record = audit_record(tenant.as_str(), action, &target(&new.id), changes.clone());
        self.db.insert_audit(tx, &[record]).await?;
        Ok((saved, before.is_none(), changes))
    }

    /// Deletes subscription `id` and its deliveries, with its audit record.
    pub(super) async fn delete_subscription_in(
        &self,
        tx: &mut D::Tx,
        tenant: &Tenant,
        id: &str,
    ) -> StoreResult<bool> {
        let Some(before) = self.db.lock_subscription(tx, &self.key, tenant, id).await? else {
            return Ok(false);
        };
        self.db.delete_subscription(tx, tenant, id).await?;
        let changes = audit::for_subscription(Some(shown(&before)), None);
        let record = audit_record(
            tenant.as_str(),
            "subscription.deleted",
            &target(id),
            changes,
        );
        self.db.insert_audit(tx, &[record]).await?;
        Ok(true)
    }
}

/// A subscription as the trail shows it, with the URL it hides.
fn shown(s: &Subscription) -> (&url::Url, serde_json::Value) {
    (
        &s.target.url,
        audit::subscription_document(&s.target.url, &s.interest, s.format),
    )
}

/// The target a subscription's records name.
fn target(id: &str) -> String {
    audit::target("subscription", id)
}
