//! The dashboard's job form (DESIGN.md §10, issue 29): create, edit and
//! clone a job. The common fields are inputs; everything else the API
//! takes is one JSON object merged on top, so no setting is out of reach.
//! The form becomes the API's own request body and goes through the same
//! operation; a refusal is shown at the field the API names. The next fire
//! times and the request a run sends are shown as the trigger is typed
//! (`job-form.js` posts the form to `/ui/job-preview`), or on "Preview"
//! without scripts.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::actions::{job_id, not_found};
use super::render::csrf_field;
use super::request::{self, Sending};
use super::session::{UiError, Viewer};
use crate::api::{Preview, PreviewRequest, preview_for};
use crate::domain::auth::Role;
use crate::domain::error::FieldError;
use crate::domain::job::{Job, JobInput};
use crate::domain::json::from_value;
use crate::domain::lifecycle::Refusal;
use crate::domain::target::{Target, is_sensitive_header, masked_url};
use crate::domain::trigger::TriggerInput;
use crate::ops::Via;
use crate::state::AppState;
use crate::store::StoreError;

/// Fire times the preview lists.
const PREVIEW_COUNT: i64 = 5;

/// What the form shows for a value it keeps without showing it, as the
/// API's views do (DESIGN §8): a sensitive header's value. A URL's
/// password shows as `***`. Either, sent back unchanged, keeps the
/// stored value.
const KEPT: &str = "(kept, not shown)";

/// The form as the browser sends it: text everywhere, read by
/// [`JobForm::document`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct JobForm {
    csrf: String,
    id: String,
    name: String,
    trigger_type: String,
    expr: String,
    timezone: String,
    every_s: String,
    run_at: String,
    url: String,
    method: String,
    body_kind: String,
    body: String,
    paused: Option<String>,
    more: String,
    /// `preview` re-shows the form with its preview; anything else saves.
    action: String,
    /// The job a new one is cloned from: its kept values fill `KEPT`.
    from: String,
}

/// Which input a refusal's field belongs to; the rest go to "More".
fn input_for(field: &str) -> &'static str {
    match field {
        "id" => "id",
        "name" => "name",
        "trigger" | "trigger.type" => "trigger_type",
        "trigger.expr" => "expr",
        "trigger.timezone" => "timezone",
        "trigger.every_s" => "every_s",
        "trigger.run_at" => "run_at",
        "target" | "target.url" => "url",
        "target.method" => "method",
        "target.body" => "body",
        _ => "more",
    }
}

impl JobForm {
    fn blank() -> Self {
        Self {
            trigger_type: "cron".into(),
            timezone: "UTC".into(),
            method: "POST".into(),
            body_kind: "none".into(),
            ..Self::default()
        }
    }

    /// The form for a stored job: its common fields, and the rest of its
    /// definition as "More" (secrets stay in the store: never shown).
    fn of(job: &Job) -> Self {
        let Ok(Value::Object(mut doc)) = serde_json::to_value(job.to_input()) else {
            return Self::blank();
        };
        let take = |map: &mut Map<String, Value>, key: &str| match map.remove(key) {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        let mut form = Self::blank();
        form.id = take(&mut doc, "id");
        form.name = take(&mut doc, "name");
        form.paused = (doc.remove("paused") == Some(Value::Bool(true))).then(|| "on".into());
        doc.remove("next_run_at");
        match doc.remove("trigger") {
            // A kind the inputs do not cover (`any_of`): all of it in More.
            Some(Value::Object(trigger))
                if !matches!(
                    trigger.get("type").and_then(Value::as_str),
                    Some("cron" | "interval" | "date")
                ) =>
            {
                form.trigger_type = "other".into();
                doc.insert("trigger".into(), Value::Object(trigger));
            }
            Some(Value::Object(mut trigger)) => {
                form.trigger_type = take(&mut trigger, "type");
                form.expr = take(&mut trigger, "expr");
                form.timezone = take(&mut trigger, "timezone");
                form.every_s = take(&mut trigger, "every_s");
                form.run_at = take(&mut trigger, "run_at");
                trigger.remove("resolved_expr");
                if !trigger.is_empty() {
                    doc.insert("trigger".into(), Value::Object(trigger));
                }
            }
            _ => {}
        }
        match doc.remove("target") {
            Some(Value::Object(mut target)) => {
                target.remove("url");
                form.url = job
                    .definition
                    .target
                    .as_ref()
                    .map_or(String::new(), |t| masked_url(&t.url));
                if let Some(Value::Object(headers)) = target.get_mut("headers") {
                    for (name, value) in headers.iter_mut() {
                        if is_sensitive_header(name) {
                            *value = json!(KEPT);
                        }
                    }
                }
                form.method = take(&mut target, "method");
                (form.body_kind, form.body) = match target.remove("body") {
                    None | Some(Value::Null) => ("none".into(), String::new()),
                    Some(Value::String(text)) => ("text".into(), text),
                    Some(json) => (
                        "json".into(),
                        serde_json::to_string_pretty(&json).unwrap_or_default(),
                    ),
                };
                if !target.is_empty() {
                    doc.insert("target".into(), Value::Object(target));
                }
            }
            // A monitor-only job: no URL, its `monitor` in "More".
            _ => form.url.clear(),
        }
        if !doc.is_empty() {
            form.more = serde_json::to_string_pretty(&doc).unwrap_or_default();
        }
        form
    }

    /// The trigger as the API's request gives it.
    fn trigger(&self) -> Result<Value, FieldError> {
        self.trigger_with(&self.more_object()?)
    }

    /// The trigger, with the settings "More" gives it (`more`, read once).
    fn trigger_with(&self, more: &Map<String, Value>) -> Result<Value, FieldError> {
        let mut trigger = match self.trigger_type.as_str() {
            "cron" => {
                let mut t = json!({"type": "cron", "expr": self.expr.trim()});
                if !self.timezone.trim().is_empty() {
                    t["timezone"] = json!(self.timezone.trim());
                }
                t
            }
            "interval" => {
                let every = self.every_s.trim();
                let every: i64 = every.parse().map_err(|_| {
                    FieldError::new(
                        "trigger.every_s",
                        format!("must be a whole number of seconds, got {every:?}"),
                    )
                })?;
                json!({"type": "interval", "every_s": every})
            }
            "date" => json!({"type": "date", "run_at": self.run_at.trim()}),
            "other" => {
                return match more.get("trigger") {
                    Some(trigger @ Value::Object(_)) => Ok(trigger.clone()),
                    _ => Err(FieldError::new(
                        "more",
                        "give the trigger as \"trigger\": {\"type\": …} (an any_of, say)",
                    )),
                };
            }
            other => {
                return Err(FieldError::new(
                    "trigger.type",
                    format!("must be cron, interval or date, got {other:?}"),
                ));
            }
        };
        // Trigger settings the form has no input for (a jitter, an end, a
        // calendar) come from "More".
        if let Some(extra @ Value::Object(_)) = more.get("trigger") {
            json_patch::merge(&mut trigger, extra);
        }
        Ok(trigger)
    }

    fn more_object(&self) -> Result<Map<String, Value>, FieldError> {
        if self.more.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str::<Value>(&self.more) {
            Ok(Value::Object(more)) => Ok(more),
            Ok(_) => Err(FieldError::new("more", "must be a JSON object")),
            Err(e) => Err(FieldError::new("more", format!("is not JSON: {e}"))),
        }
    }

    /// The API's request body for this form: the fields, then "More"
    /// merged on top (RFC 7396).
    fn document(&self) -> Result<Value, FieldError> {
        let mut more = self.more_object()?;
        let trigger = self.trigger_with(&more)?;
        let mut doc = json!({"trigger": trigger, "paused": self.paused.is_some()});
        if !self.id.trim().is_empty() {
            doc["id"] = json!(self.id.trim());
        }
        if !self.name.trim().is_empty() {
            doc["name"] = json!(self.name.trim());
        }
        doc["target"] = if self.url.trim().is_empty() {
            Value::Null
        } else {
            let mut target = json!({"url": self.url.trim(), "method": self.method});
            match self.body_kind.as_str() {
                "json" => {
                    let body: Value = serde_json::from_str(&self.body)
                        .map_err(|e| FieldError::new("target.body", format!("is not JSON: {e}")))?;
                    target["body"] = body;
                }
                "text" => target["body"] = json!(self.body),
                _ => {}
            }
            target
        };
        more.remove("trigger");
        json_patch::merge(&mut doc, &Value::Object(more));
        Ok(doc)
    }

    /// The request, with the values the form kept unshown taken from
    /// `source` (the job edited or cloned).
    fn input(&self, source: Option<&Target>) -> Result<JobInput, FieldError> {
        let mut doc = self.document()?;
        restore(&mut doc, source)?;
        from_value::<JobInput>(&doc)
    }
}

/// Puts the stored values back where the form sent `KEPT` or a masked
/// password unchanged.
fn restore(doc: &mut Value, source: Option<&Target>) -> Result<(), FieldError> {
    let Some(target) = doc.get_mut("target").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    crate::domain::bundle::keep_stored(target, source, |name, value| {
        (value == KEPT).then(|| Ok(name.to_string()))
    })
}

/// What the form is for: a new job, or the job it edits.
enum Purpose {
    Create,
    Edit(String),
}

impl Purpose {
    fn action(&self) -> String {
        match self {
            Purpose::Create => "/ui/new-job".into(),
            Purpose::Edit(id) => format!("/ui/jobs/{id}/edit"),
        }
    }
}

/// The preview of a valid trigger and target, or why not.
struct Shown {
    /// The trigger's own field is still empty: nothing to say yet.
    untyped: bool,
    fire_times: Result<Preview, FieldError>,
    request: Option<Markup>,
}

async fn shown(app: &AppState, viewer: &Viewer, form: &JobForm) -> Shown {
    let trigger = form.trigger().and_then(|t| {
        from_value::<TriggerInput>(&t).map_err(|e| match e.field.as_str() {
            "" => FieldError::new("trigger", e.message),
            field => FieldError::new(format!("trigger.{field}"), e.message),
        })
    });
    let fire_times = match trigger {
        Err(e) => Err(e),
        Ok(trigger) => {
            let request = PreviewRequest {
                trigger: Some(trigger),
                after: None,
                count: Some(PREVIEW_COUNT),
                job_id: Some(form.id.trim().to_string()).filter(|id| !id.is_empty()),
            };
            match preview_for(app, &viewer.caller.tenant, request).await {
                Ok(preview) => Ok(preview),
                // Its detail names the field already.
                Err(e) => Err(FieldError::new("", e.problem().detail)),
            }
        }
    };
    let first = fire_times
        .as_ref()
        .ok()
        .and_then(|p| p.fire_times.first())
        .map(|t| t.at.clone());
    let request = form.input(None).ok().and_then(|input| {
        let spec = input.parse(app.parse_context(chrono::Utc::now())).ok()?;
        let target = spec.definition.target?;
        let sending = Sending {
            job_id: form.id.trim(),
            run_id: None,
            scheduled_for: first.as_deref(),
            attempt: None,
        };
        Some(request::shown(&target, &sending, Role::Write, KEPT))
    });
    let untyped = match form.trigger_type.as_str() {
        "cron" => form.expr.trim().is_empty(),
        "interval" => form.every_s.trim().is_empty(),
        "date" => form.run_at.trim().is_empty(),
        _ => false,
    };
    Shown {
        untyped,
        fire_times,
        request,
    }
}

fn preview_markup(shown: &Shown) -> Markup {
    html! {
        div #job-preview aria-live="polite" {
            h2 { "Next fire times" }
            @match &shown.fire_times {
                Err(_) if shown.untyped => p.hint { "Type a trigger to see when it fires." },
                Err(e) => p.error role="alert" { (e.to_string()) },
                Ok(preview) if preview.fire_times.is_empty() => p { "None: the trigger never fires again." },
                Ok(preview) => {
                    ol.fire-times {
                        @for t in &preview.fire_times {
                            li { code { (t.at) } " · " span.local { (t.local) } }
                        }
                    }
                    p.hint { "Local times in " (preview.timezone) "." }
                }
            }
            h2 { "The request a run sends" }
            @match &shown.request {
                Some(request) => (request),
                None => p.hint { "Shown once the form is valid." },
            }
        }
    }
}

/// One labelled input, with its error when the API named it.
fn field(label: &str, name: &str, error: Option<&FieldError>, input: Markup) -> Markup {
    let message = error.filter(|e| input_for(&e.field) == name);
    html! {
        div.field.invalid[message.is_some()] {
            label for=(name) { (label) }
            (input)
            @if let Some(e) = message {
                p.error id={ (name) "-error" } role="alert" { (e.to_string()) }
            }
        }
    }
}

fn form_page(
    viewer: &Viewer,
    purpose: &Purpose,
    form: &JobForm,
    error: Option<&FieldError>,
    shown: &Shown,
) -> Response {
    let (title, save) = match purpose {
        Purpose::Create => ("New job".to_string(), "Create job"),
        Purpose::Edit(id) => (format!("Edit {id}"), "Save job"),
    };
    let kind = form.trigger_type.as_str();
    let editing = matches!(purpose, Purpose::Edit(_));
    let body = html! {
        h1 { (title) }
        @if let Some(e) = error.filter(|e| input_for(&e.field) == "more" && e.field != "more") {
            p.error role="alert" { (e.to_string()) }
        }
        div.form-with-preview {
        form.job-form #job-form method="post" action=(purpose.action()) {
            (csrf_field(viewer))
            @if !form.from.is_empty() {
                input type="hidden" name="from" value=(form.from);
            }
            fieldset {
                legend { "Job" }
                (field("Id", "id", error, html! {
                    input #id type="text" name="id" value=(form.id) readonly[editing]
                        placeholder="nightly-report (a UUIDv7 when empty)";
                }))
                (field("Name", "name", error, html! {
                    input #name type="text" name="name" value=(form.name);
                }))
                div.field {
                    label { input type="checkbox" name="paused" checked[form.paused.is_some()]; " Paused" }
                }
            }
            fieldset {
                legend { "Trigger" }
                (field("Type", "trigger_type", error, html! {
                    select #trigger_type name="trigger_type" {
                        option value="cron" selected[kind == "cron"] { "cron" }
                        option value="interval" selected[kind == "interval"] { "interval" }
                        option value="date" selected[kind == "date"] { "date (once)" }
                        option value="other" selected[kind == "other"] { "other, as \"trigger\" in More (any_of)" }
                    }
                }))
                (field("Cron expression (for cron)", "expr", error, html! {
                    input #expr type="text" name="expr" value=(form.expr) placeholder="30 2 * * *";
                }))
                (field("Time zone (for cron)", "timezone", error, html! {
                    input #timezone type="text" name="timezone" value=(form.timezone) placeholder="Europe/Berlin";
                }))
                (field("Every, in seconds (for interval)", "every_s", error, html! {
                    input #every_s type="text" inputmode="numeric" name="every_s" value=(form.every_s) placeholder="3600";
                }))
                (field("Run at, RFC 3339 (for date)", "run_at", error, html! {
                    input #run_at type="text" name="run_at" value=(form.run_at) placeholder="2030-01-01T09:00:00Z";
                }))
            }
            fieldset {
                legend { "Target" }
                (field("URL (empty: a monitor-only job, with monitor in More)", "url", error, html! {
                    input #url type="text" inputmode="url" name="url" value=(form.url) placeholder="https://example.com/hooks/report";
                }))
                (field("Method", "method", error, html! {
                    select #method name="method" {
                        @for m in ["POST", "GET", "PUT", "PATCH", "DELETE"] {
                            option value=(m) selected[form.method == m] { (m) }
                        }
                    }
                }))
                (field("Body", "body", error, html! {
                    select #body_kind name="body_kind" aria-label="Body kind" {
                        option value="none" selected[form.body_kind == "none"] { "none" }
                        option value="json" selected[form.body_kind == "json"] { "JSON" }
                        option value="text" selected[form.body_kind == "text"] { "text" }
                    }
                    textarea #body name="body" rows="4" { (form.body) }
                }))
            }
            (field("More, as in the API's request (retry, max_instances, headers under target, …)", "more", error, html! {
                textarea #more name="more" rows="8" spellcheck="false" { (form.more) }
            }))
            div.actions {
                button type="submit" name="action" value="preview" { "Preview" }
                button.primary type="submit" name="action" value="save" { (save) }
            }
        }
        (preview_markup(shown))
        }
        p { a href="/ui" { "← Back to the jobs" } }
        script src={ "/ui/assets/job-form.js?v=" (env!("CARGO_PKG_VERSION")) } defer {}
    };
    let mut response = viewer.page(&title, None, body);
    if error.is_some() {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

async fn writer(app: &AppState, headers: &HeaderMap) -> Result<Viewer, UiError> {
    Viewer::read(app, headers)
        .await?
        .able_to_write("changing jobs")
}

async fn stored(app: &AppState, viewer: &Viewer, raw: &str) -> Result<Job, UiError> {
    let id = job_id(raw)?;
    app.store
        .get_job(&viewer.caller.tenant, &id)
        .await?
        .ok_or_else(|| not_found(StoreError::NotFound, &id))
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    /// Clone this job: its form, without its id.
    from: Option<String>,
}

/// `/ui/new-job`: an empty form, or `?from=` a job to clone.
pub async fn new_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<NewQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers).await?;
    let query = super::pages::query(q)?;
    let form = match query.from {
        Some(raw) => {
            let job = stored(&app, &viewer, &raw).await?;
            JobForm {
                id: String::new(),
                from: job.id.to_string(),
                name: job
                    .definition
                    .name
                    .as_ref()
                    .map_or(String::new(), |n| format!("{n} (copy)")),
                ..JobForm::of(&job)
            }
        }
        None => JobForm::blank(),
    };
    let shown = shown(&app, &viewer, &form).await;
    Ok(form_page(&viewer, &Purpose::Create, &form, None, &shown))
}

/// `/ui/jobs/{id}/edit`: the job's form.
pub async fn edit_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, UiError> {
    let viewer = writer(&app, &headers).await?;
    let job = stored(&app, &viewer, &raw).await?;
    let id = job.id.clone();
    let form = JobForm::of(&job);
    let shown = shown(&app, &viewer, &form).await;
    let purpose = Purpose::Edit(id.as_str().to_string());
    Ok(form_page(&viewer, &purpose, &form, None, &shown))
}

/// A refusal that belongs at a field, or the page's error.
fn field_error(e: StoreError) -> Result<FieldError, StoreError> {
    match e {
        StoreError::Invalid(e) | StoreError::Refused(Refusal::Invalid(e)) => Ok(e),
        StoreError::Conflict(message) | StoreError::Refused(Refusal::Conflict(message)) => {
            Ok(FieldError::new("id", message))
        }
        other => Err(other),
    }
}

async fn submit(
    app: &AppState,
    headers: &HeaderMap,
    purpose: Purpose,
    mut form: JobForm,
) -> Result<Response, UiError> {
    let viewer = Viewer::write(app, headers, &form.csrf).await?;
    if let Purpose::Edit(id) = &purpose {
        form.id = id.clone();
    }
    // The job edited (gone meanwhile: a 404, not a new job) or cloned.
    let source = match &purpose {
        Purpose::Edit(id) => Some(stored(app, &viewer, id).await?),
        Purpose::Create if !form.from.trim().is_empty() => {
            Some(stored(app, &viewer, form.from.trim()).await?)
        }
        Purpose::Create => None,
    };
    let source_target = source.as_ref().and_then(|j| j.definition.target.as_ref());
    let saved: Result<(), FieldError> = match form.input(source_target) {
        Err(e) => Err(e),
        Ok(_) if form.action == "preview" => {
            let shown = shown(app, &viewer, &form).await;
            return Ok(form_page(&viewer, &purpose, &form, None, &shown));
        }
        Ok(input) => {
            let ops = app.ops(&viewer.caller.tenant, Via::Dashboard);
            let done = match &purpose {
                Purpose::Create => ops.create(input, app.new_job_secret()).await,
                Purpose::Edit(raw) => {
                    let id = job_id(raw)?;
                    ops.replace(&id, input, app.new_job_secret())
                        .await
                        .map(|(job, _)| job)
                }
            };
            match done {
                Ok(job) => return Ok(Redirect::to(&format!("/ui/jobs/{}", job.id)).into_response()),
                Err(e) => Err(field_error(e)?),
            }
        }
    };
    let error = saved.err();
    let shown = shown(app, &viewer, &form).await;
    Ok(form_page(&viewer, &purpose, &form, error.as_ref(), &shown))
}

/// Creates the job the form describes, then shows it.
pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<JobForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form?;
    submit(&app, &headers, Purpose::Create, form).await
}

/// Replaces the job with what the form describes, then shows it.
pub async fn save(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    form: Result<Form<JobForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form?;
    let id = job_id(&raw)?;
    submit(&app, &headers, Purpose::Edit(id.as_str().to_string()), form).await
}

/// The preview part of the page for the form as typed so far
/// (`job-form.js`).
pub async fn preview(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<JobForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form?;
    let viewer = Viewer::write(&app, &headers, &form.csrf).await?;
    let shown = shown(&app, &viewer, &form).await;
    Ok(preview_markup(&shown).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::job::ParseContext;

    fn form(pairs: &[(&str, &str)]) -> JobForm {
        let mut form = JobForm::blank();
        for (key, value) in pairs {
            let value = value.to_string();
            match *key {
                "id" => form.id = value,
                "trigger_type" => form.trigger_type = value,
                "expr" => form.expr = value,
                "timezone" => form.timezone = value,
                "every_s" => form.every_s = value,
                "url" => form.url = value,
                "body_kind" => form.body_kind = value,
                "body" => form.body = value,
                "more" => form.more = value,
                other => panic!("{other}"),
            }
        }
        form
    }

    #[test]
    fn the_form_becomes_the_api_s_request_with_more_merged_on_top() {
        let f = form(&[
            ("id", "report"),
            ("expr", "30 2 * * *"),
            ("timezone", "Europe/Berlin"),
            ("url", "https://example.com/hook"),
            ("body_kind", "json"),
            ("body", r#"{"report": "daily"}"#),
            (
                "more",
                r#"{"max_instances": 2, "trigger": {"jitter_s": 5}, "target": {"timeout_s": 60}}"#,
            ),
        ]);
        assert_eq!(
            f.document().unwrap(),
            json!({
                "id": "report", "paused": false,
                "trigger": {"type": "cron", "expr": "30 2 * * *", "timezone": "Europe/Berlin", "jitter_s": 5},
                "target": {"url": "https://example.com/hook", "method": "POST", "body": {"report": "daily"}, "timeout_s": 60},
                "max_instances": 2,
            })
        );
        let text = form(&[
            ("url", "https://x.test/"),
            ("body_kind", "text"),
            ("body", "42"),
            ("expr", "* * * * *"),
        ]);
        assert_eq!(text.document().unwrap()["target"]["body"], "42");
    }

    #[test]
    fn bad_fields_name_their_input() {
        let e = form(&[("trigger_type", "interval"), ("every_s", "often")])
            .document()
            .unwrap_err();
        assert_eq!(input_for(&e.field), "every_s");
        let e = form(&[
            ("url", "https://x.test/"),
            ("body_kind", "json"),
            ("body", "{"),
        ])
        .document()
        .unwrap_err();
        assert_eq!(input_for(&e.field), "body");
        let e = form(&[("more", "[1]")]).document().unwrap_err();
        assert_eq!((e.field.as_str(), input_for(&e.field)), ("more", "more"));
        assert_eq!(input_for("trigger.expr"), "expr");
        assert_eq!(input_for("retry.max_attempts"), "more");
    }

    #[test]
    fn a_stored_job_reads_back_into_the_same_request() {
        let input: JobInput = serde_json::from_value(json!({
            "id": "j", "name": "Nightly",
            "trigger": {"type": "cron", "expr": "0 9 * * mon-fri", "timezone": "Europe/Berlin", "jitter_s": 30},
            "target": {"url": "https://example.com/h", "method": "PUT", "body": "plain", "headers": {"x-team": "data"}},
            "max_instances": 3
        }))
        .unwrap();
        let ctx = ParseContext {
            now: crate::domain::instant::parse("2026-12-01T00:00:00Z").unwrap(),
            network_policy: Default::default(),
            binding: None,
        };
        let spec = input.parse(ctx.clone()).unwrap();
        let job = Job {
            id: crate::domain::job::JobId::parse("j").unwrap(),
            definition: spec.definition.clone(),
            schedule: crate::domain::job::Schedule::Paused,
            runs_counted: 0,
            created_at: ctx.now,
            updated_at: ctx.now,
            last_run: None,
            ping_key: None,
            pause: Default::default(),
        };
        let form = JobForm::of(&job);
        assert_eq!(
            (
                form.expr.as_str(),
                form.body_kind.as_str(),
                form.body.as_str(),
                form.paused.is_some()
            ),
            ("0 9 * * mon-fri", "text", "plain", true)
        );
        let again = form
            .input(job.definition.target.as_ref())
            .unwrap()
            .parse(ctx)
            .unwrap();
        assert_eq!(again.definition, spec.definition);
    }

    #[test]
    fn secrets_are_kept_unshown_and_put_back_on_save() {
        let input: JobInput = serde_json::from_value(json!({
            "id": "j", "trigger": {"type": "interval", "every_s": 60},
            "target": {"url": "https://user:hunter2@example.com/h",
                       "headers": {"authorization": "Bearer s3cret", "x-team": "data"}}
        }))
        .unwrap();
        let ctx = ParseContext {
            now: crate::domain::instant::parse("2026-12-01T00:00:00Z").unwrap(),
            network_policy: Default::default(),
            binding: None,
        };
        let definition = input.parse(ctx).unwrap().definition;
        let job = Job {
            id: crate::domain::job::JobId::parse("j").unwrap(),
            definition,
            schedule: crate::domain::job::Schedule::Paused,
            runs_counted: 0,
            created_at: ctx_now(),
            updated_at: ctx_now(),
            last_run: None,
            ping_key: None,
            pause: Default::default(),
        };
        let form = JobForm::of(&job);
        let shown = format!("{} {}", form.url, form.more);
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(
            form.more.contains(KEPT) && form.more.contains("\"data\""),
            "{}",
            form.more
        );
        let stored = job.definition.target.as_ref();
        let back = form.input(stored).unwrap();
        let target = back.target.unwrap();
        assert_eq!(
            target.url.as_deref(),
            Some("https://user:hunter2@example.com/h")
        );
        assert_eq!(target.headers.unwrap()["authorization"], "Bearer s3cret");
        // Nothing to keep (a new job): the field says so.
        let e = form.input(None).unwrap_err();
        assert_eq!(e.field, "target.headers.authorization");
    }

    fn ctx_now() -> chrono::DateTime<chrono::Utc> {
        crate::domain::instant::parse("2026-12-01T00:00:00Z").unwrap()
    }
}
