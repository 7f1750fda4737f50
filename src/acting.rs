//! Who is acting in the request being served (DESIGN §11.9): set when a
//! request arrives and when its caller is known, read by the store as it
//! writes a change's audit record in the change's transaction. Outside a
//! request (the scheduler, the watchdog) the actor is the system.

use std::cell::RefCell;
use std::future::Future;

use crate::domain::audit::{Actor, Context};

tokio::task_local! {
    static ACTING: RefCell<Context>;
}

/// Runs `request` with `context` as who acts in it.
pub async fn within<F: Future>(context: Context, request: F) -> F::Output {
    ACTING.scope(RefCell::new(context), request).await
}

/// Names the caller of the request being served, and the tenant it acts
/// on; nothing outside a request.
pub fn identify(actor: Actor, tenant: &str) {
    let _ = ACTING.try_with(|acting| {
        let mut acting = acting.borrow_mut();
        acting.actor = actor;
        acting.tenant = Some(tenant.to_string());
    });
}

/// Who acts now: the request's caller, or the system outside a request.
pub fn current() -> Context {
    ACTING
        .try_with(|acting| acting.borrow().clone())
        .unwrap_or_else(|_| Context::system())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::auth::Role;

    #[tokio::test]
    async fn the_system_acts_outside_a_request() {
        assert_eq!(current(), Context::system());
        identify(Actor::Open, "default");
        assert_eq!(current(), Context::system());
    }

    #[tokio::test]
    async fn a_request_names_its_caller_once_known() {
        let arrived = Context {
            actor: Actor::Anonymous,
            request_id: Some("r-1".into()),
            ..Context::system()
        };
        let seen = within(arrived, async {
            let token = Actor::Token {
                token_id: "tok_1".into(),
                name: None,
                role: Role::Write,
            };
            identify(token.clone(), "acme");
            tokio::task::yield_now().await;
            (current(), token)
        })
        .await;
        assert_eq!(seen.0.actor, seen.1);
        assert_eq!(seen.0.tenant.as_deref(), Some("acme"));
        assert_eq!(seen.0.request_id.as_deref(), Some("r-1"));
    }
}
