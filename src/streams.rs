//! Event streams open at once, per token and per tenant (issue 22: 1,030
//! streams from one read token once locked out `/healthz`). A stream holds
//! a [`StreamSlot`] while it is open; past either cap the next one is
//! refused, and a client may try again once one of its streams closed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Holder {
    Token(String),
    Tenant(String),
}

type Open = Arc<Mutex<HashMap<Holder, usize>>>;

/// The caps (`--max-streams-per-token`, `--max-streams-per-tenant`) and
/// the streams open now.
pub struct StreamLimits {
    per_token: usize,
    per_tenant: usize,
    open: Open,
}

/// Why a stream may not open: which cap it would pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error(
        "this token has {0} event streams open, its most (--max-streams-per-token): close one first"
    )]
    Token(usize),
    #[error(
        "this tenant has {0} event streams open, its most (--max-streams-per-tenant): close one first"
    )]
    Tenant(usize),
}

/// One open stream's places; given back when dropped.
pub struct StreamSlot {
    holders: Vec<Holder>,
    open: Open,
}

fn lock(open: &Open) -> std::sync::MutexGuard<'_, HashMap<Holder, usize>> {
    open.lock().unwrap_or_else(|e| e.into_inner())
}

impl StreamLimits {
    pub fn new(per_token: u32, per_tenant: u32) -> Self {
        Self {
            per_token: per_token as usize,
            per_tenant: per_tenant as usize,
            open: Arc::default(),
        }
    }

    /// A place for a stream of `tenant`, opened with `token` (none while
    /// the API is open: the tenant's cap still holds).
    pub fn open(&self, token: Option<&str>, tenant: &str) -> Result<StreamSlot, Full> {
        let mut open = lock(&self.open);
        let tenant = Holder::Tenant(tenant.to_string());
        let token = token.map(|t| Holder::Token(t.to_string()));
        if let Some(token) = &token
            && open.get(token).copied().unwrap_or(0) >= self.per_token
        {
            return Err(Full::Token(self.per_token));
        }
        if open.get(&tenant).copied().unwrap_or(0) >= self.per_tenant {
            return Err(Full::Tenant(self.per_tenant));
        }
        let holders: Vec<Holder> = token.into_iter().chain([tenant]).collect();
        for holder in &holders {
            *open.entry(holder.clone()).or_insert(0) += 1;
        }
        Ok(StreamSlot {
            holders,
            open: self.open.clone(),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        for holder in &self.holders {
            if let Some(n) = open.get_mut(holder) {
                *n -= 1;
                if *n == 0 {
                    open.remove(holder);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_up_to_its_cap_and_again_once_one_closed() {
        let limits = StreamLimits::new(2, 10);
        let first = limits.open(Some("t1"), "a").unwrap();
        let _second = limits.open(Some("t1"), "a").unwrap();
        assert_eq!(limits.open(Some("t1"), "a").err(), Some(Full::Token(2)));
        // Another token of the tenant is not held back by it.
        let _other = limits.open(Some("t2"), "a").unwrap();
        drop(first);
        assert!(limits.open(Some("t1"), "a").is_ok());
    }

    #[test]
    fn a_tenant_opens_up_to_its_cap_whatever_its_tokens() {
        let limits = StreamLimits::new(5, 3);
        let slots: Vec<_> = ["t1", "t2", "t3"]
            .iter()
            .map(|t| limits.open(Some(t), "a").unwrap())
            .collect();
        assert_eq!(limits.open(Some("t4"), "a").err(), Some(Full::Tenant(3)));
        assert_eq!(limits.open(None, "a").err(), Some(Full::Tenant(3)));
        assert!(limits.open(Some("t4"), "b").is_ok(), "another tenant");
        drop(slots);
        assert!(lock(&limits.open).is_empty(), "every place given back");
    }
}
