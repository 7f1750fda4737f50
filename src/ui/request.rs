//! The request a run sends, as the dispatcher writes it (DESIGN.md §6):
//! shown by the job form before a job is saved, and by a run's page for
//! the request that went. Its secrets are never shown.

use maud::{Markup, html};
use uuid::Uuid;

use crate::domain::auth::Role;
use crate::domain::target::{Target, is_sensitive_header, url_shown_to};

/// What is known of the run the request is for; the rest is said in words.
pub struct Sending<'a> {
    /// Empty while the form has none.
    pub job_id: &'a str,
    pub run_id: Option<Uuid>,
    pub scheduled_for: Option<&'a str>,
    /// Its attempts so far; the next one's number follows.
    pub attempt: Option<u32>,
}

/// The request's text: method and URL (as `role` is shown it), headers
/// (a sensitive one's value as `hidden`), then the body.
pub fn shown(target: &Target, sending: &Sending, role: Role, hidden: &str) -> Markup {
    let mut lines = vec![format!(
        "{} {}",
        target.method.as_str(),
        url_shown_to(&target.url, role)
    )];
    for (name, value) in &target.headers {
        let value = if is_sensitive_header(name) {
            hidden
        } else {
            value
        };
        lines.push(format!("{name}: {value}"));
    }
    if let Some(content_type) = target.content_type()
        && !target.headers.contains_key("content-type")
    {
        lines.push(format!("content-type: {content_type}"));
    }
    lines.push(format!(
        "user-agent: {}",
        crate::dispatch::client::USER_AGENT
    ));
    lines.push(match sending.run_id {
        Some(id) => format!("webhook-id: {id}"),
        None => "webhook-id: <the run's id, the same on every retry>".into(),
    });
    lines.push("webhook-timestamp: <Unix seconds when sent>".into());
    lines.push("webhook-signature: v1,<HMAC-SHA256 under the job's secret>".into());
    lines.push(format!(
        "cronhook-job-id: {}",
        if sending.job_id.is_empty() {
            "<its id>"
        } else {
            sending.job_id
        }
    ));
    lines.push(format!(
        "cronhook-scheduled-for: {}",
        sending.scheduled_for.unwrap_or("<the fire time>")
    ));
    lines.push(match sending.attempt {
        Some(n) if n > 1 => format!("cronhook-attempt: 1 … {n}"),
        _ => "cronhook-attempt: 1".into(),
    });
    if target.completion.is_some() {
        // A callback job's (§11.7); the token is the run's secret.
        lines.push(match sending.run_id {
            Some(id) => format!("cronhook-callback-url: <--public-url>/v1/runs/{id}/complete"),
            None => "cronhook-callback-url: <--public-url>/v1/runs/<its id>/complete".into(),
        });
        lines.push("cronhook-callback-token: crt_<this run's token>".into());
    }
    let body = String::from_utf8_lossy(&target.body_bytes()).into_owned();
    html! {
        pre.request { (lines.join("\n")) "\n\n" (body) }
        @if target.template && sending.run_id.is_none() {
            p.hint { "A template: its body and headers are rendered for each run." }
        }
    }
}
