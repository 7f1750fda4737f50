//! The dashboard's pages: jobs, one job, one run, failed runs. Each reads
//! through the store as the API does, for the viewer's tenant only.

use crate::domain::trigger::Zone;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;
use uuid::Uuid;

use super::render::{self, action, instant, run_badge, state_badge};
use super::request::{self, Sending};
use super::session::{UiError, Viewer};
use crate::api::extract::BaseUrl;
use crate::api::pagination::{encode_job_cursor, job_cursor, run_cursor, runs_page};
use crate::api::views::TargetView;
use crate::domain::job::search_text;
use crate::domain::job::{Job, JobId, JobState};
use crate::domain::run::{Attempt, Run, RunStatus};
use crate::domain::trigger::words::{coming_fire_times, in_words, offset_in_words};
use crate::ops::Via;
use crate::state::AppState;
use crate::store::{JobFilter, RunFilter};

const JOBS_PER_PAGE: u32 = 50;
const RUNS_PER_PAGE: u32 = 20;
const FIRE_TIMES_SHOWN: usize = 10;

#[derive(Debug, Default, Deserialize)]
pub struct JobsQuery {
    state: Option<String>,
    q: Option<String>,
    selector: Option<String>,
    cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CursorQuery {
    cursor: Option<String>,
}

pub(super) fn query<T: Default>(q: Result<Query<T>, QueryRejection>) -> Result<T, UiError> {
    q.map(|Query(q)| q)
        .map_err(|e| UiError::Page(StatusCode::BAD_REQUEST, format!("bad query: {e}")))
}

fn job_id(raw: &str) -> Result<JobId, UiError> {
    JobId::parse(raw).map_err(|_| no_job(raw))
}

fn no_job(raw: &str) -> UiError {
    UiError::Page(StatusCode::NOT_FOUND, format!("no job with id {raw:?}"))
}

fn no_run(raw: &str) -> UiError {
    UiError::Page(StatusCode::NOT_FOUND, format!("no run with id {raw:?}"))
}

/// Where a page's event stream starts: after the newest event before the
/// page reads anything, so that nothing written while it renders, or
/// before its stream opens, is missed. Read it first.
struct LiveFrom(Option<Uuid>);

impl LiveFrom {
    async fn now(app: &AppState, viewer: &Viewer) -> Result<Self, UiError> {
        Ok(Self(
            app.store.latest_event_id(&viewer.caller.tenant).await?,
        ))
    }

    /// The stream's query string, for one job's events or all.
    fn query(&self, job: Option<&JobId>) -> String {
        let after = self.0.map(|latest| format!("after={latest}"));
        let job = job.map(|job| format!("job_id={job}"));
        after.into_iter().chain(job).collect::<Vec<_>>().join("&")
    }
}

/// `/ui`: jobs in id order, filtered by state and text, 50 a page.
pub async fn jobs(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<JobsQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let q = query(q)?;
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            UiError::Page(
                StatusCode::BAD_REQUEST,
                format!("state: expected scheduled, paused or completed, got {s:?}"),
            )
        })?),
    };
    let search = search_text(q.q.as_deref())
        .map_err(|e| UiError::Page(StatusCode::BAD_REQUEST, e.to_string()))?;
    let selector = crate::domain::labels::selector_param(q.selector.as_deref())
        .map_err(|e| UiError::Page(StatusCode::BAD_REQUEST, e.to_string()))?;
    let after = job_cursor(q.cursor.as_deref())?;
    let live = LiveFrom::now(&app, &viewer).await?.query(None);
    let filter = JobFilter {
        state,
        search: search.clone(),
        selector: selector.clone(),
        after,
        ids: None,
        limit: JOBS_PER_PAGE,
    };
    let (jobs, more) = app
        .ops(&viewer.caller.tenant, Via::Dashboard)
        .jobs_page(filter)
        .await?;
    let alerting = open_alerts(&app, &viewer).await?;
    let next = more.then(|| jobs.last().map(|j| encode_job_cursor(&j.id)));
    let next_link = next.flatten().map(|cursor| {
        let mut link = url::Url::parse("http://x/ui").expect("a valid URL");
        {
            let mut pairs = link.query_pairs_mut();
            if let Some(state) = state {
                pairs.append_pair("state", state.as_str());
            }
            if let Some(search) = &search {
                pairs.append_pair("q", search);
            }
            if !selector.requirements().is_empty() {
                pairs.append_pair("selector", &selector.to_string());
            }
            pairs.append_pair("cursor", &cursor);
        }
        format!("/ui?{}", link.query().unwrap_or(""))
    });
    let now = Utc::now();
    let body = html! {
        h1 { "Jobs" }
        @if viewer.can_write() {
            p { a.button.primary href="/ui/new-job" { "New job" } }
        }
        form.filters method="get" action="/ui" role="search" {
            label for="state" { "State" }
            select #state name="state" {
                option value="" selected[state.is_none()] { "any" }
                @for s in [JobState::Scheduled, JobState::Paused, JobState::Completed] {
                    option value=(s.as_str()) selected[state == Some(s)] { (s.as_str()) }
                }
            }
            label for="q" { "Search" }
            input #q type="search" name="q" value=[search.as_deref()] placeholder="id or name";
            label for="selector" { "Labels" }
            input #selector type="search" name="selector" value=[q.selector.as_deref().filter(|s| !s.trim().is_empty())]
                placeholder="team=data,env!=dev";
            button type="submit" { "Filter" }
        }
        @if viewer.can_write() && !selector.requirements().is_empty() && !jobs.is_empty() {
            (super::bulk::buttons(&viewer, &selector.to_string()))
        }
        @if viewer.can_write() && !jobs.is_empty() {
            (super::bulk::selected_buttons(&viewer))
        }
        div #live {
            @if jobs.is_empty() {
                p.empty { "No jobs" @if state.is_some() || search.is_some() || !selector.requirements().is_empty() { " match" } "." }
            } @else {
                div.table-wrap {
                    table.jobs {
                        thead { tr {
                            @if viewer.can_write() { th scope="col" { span.visually-hidden { "Select" } } }
                            th scope="col" { "Job" } th scope="col" { "Trigger" } th scope="col" { "State" }
                            th scope="col" { "Next run" } th scope="col" { "Last run" }
                        } }
                        tbody {
                            @for job in &jobs { (job_row(job, &alerting, viewer.can_write())) }
                        }
                    }
                }
            }
            @if let Some(link) = &next_link {
                p.pager { a href=(link) rel="next" { "Next page →" } }
            }
            p.hint { "Shown at " (render::utc(now)) "." }
        }
    };
    Ok(viewer.page("Jobs", Some(&live), body))
}

/// The tenant's alerts not resolved (§11.5), for the jobs' badges.
async fn open_alerts(
    app: &AppState,
    viewer: &Viewer,
) -> Result<Vec<crate::store::alerts::AlertRecord>, UiError> {
    let filter = crate::store::alerts::AlertFilter {
        unresolved: true,
        limit: 500,
        ..Default::default()
    };
    Ok(app
        .store
        .list_alerts(&viewer.caller.tenant, &filter)
        .await?)
}

/// The job list filtered by a label selector (§11.9).
pub(super) fn jobs_selected_by(selector: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("selector", selector)
        .finish();
    format!("/ui?{query}")
}

/// A label, linked to the job list filtered by it (§11.9).
fn label_link(key: &str, value: &str) -> Markup {
    let pair = format!("{key}={value}");
    html! { a.label href=(jobs_selected_by(&pair)) title={ "jobs labelled " (pair) } { (pair) } }
}

fn job_row(job: &Job, alerting: &[crate::store::alerts::AlertRecord], selectable: bool) -> Markup {
    let tz = job.definition.trigger.timezone();
    let state = job.schedule.state();
    html! {
        tr data-job=(job.id.as_str()) {
            @if selectable {
                td.pick {
                    input type="checkbox" name="ids" value=(job.id.as_str()) form=(super::bulk::SELECTED_FORM)
                        aria-label={ "Select " (job.id.as_str()) };
                }
            }
            td {
                a href={ "/ui/jobs/" (job.id.as_str()) } { (job.id.as_str()) }
                @for a in alerting.iter().filter(|a| a.job_id == job.id.as_str()) {
                    " " a.badge.alert href="/ui/alerts" title=(a.detail) { "alert: " (a.condition.as_str()) }
                }
                @if let Some(name) = &job.definition.name { br; span.name { (name) } }
                @if !job.definition.labels.is_empty() {
                    br;
                    @for (key, value) in &job.definition.labels { (label_link(key, value)) " " }
                }
            }
            td { (in_words(&job.definition.trigger)) }
            td.state { (state_badge(state)) }
            td { @match job.schedule.next_run_at() {
                Some(t) => (instant(t, tz)),
                None => span.none { "—" },
            } }
            td { @match &job.last_run {
                Some(run) => a href={ "/ui/runs/" (run.id) } { (run_badge(run.status)) },
                None => span.none { "never" },
            } }
        }
    }
}

/// `/ui/jobs/{id}`: the trigger in words, the next fire times, the
/// settings, the runs and the actions.
pub async fn job(
    State(app): State<AppState>,
    headers: HeaderMap,
    BaseUrl(base): BaseUrl,
    Path(raw): Path<String>,
    q: Result<Query<CursorQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let id = job_id(&raw)?;
    let q = query(q)?;
    let tenant = &viewer.caller.tenant;
    let live = LiveFrom::now(&app, &viewer).await?.query(Some(&id));
    let job = app
        .store
        .get_job(tenant, &id)
        .await?
        .ok_or_else(|| no_job(&raw))?;
    let parents = app.store.chain_parents(tenant, &id).await?;
    let (runs, next) = runs_page(
        app.store.as_ref(),
        tenant,
        RunFilter {
            job_id: Some(id.clone()),
            cursor: run_cursor(q.cursor.as_deref())?,
            limit: RUNS_PER_PAGE,
            ..Default::default()
        },
    )
    .await?;
    // Lateness needs each run's first attempt; the error column its last.
    let details =
        futures_util::future::try_join_all(runs.iter().map(|r| app.store.get_run(tenant, r.id)))
            .await?;
    let (first_attempts, errors): (Vec<Option<Attempt>>, Vec<Option<String>>) = details
        .into_iter()
        .map(|d| {
            let attempts = d.map(|(_, attempts)| attempts).unwrap_or_default();
            let error = last_problem(&attempts);
            (attempts.into_iter().min_by_key(|a| a.number), error)
        })
        .unzip();

    let now = Utc::now();
    let trigger = &job.definition.trigger;
    let tz = trigger.timezone();
    let state = job.schedule.state();
    // Paused: where resuming now would start, by the rule resume uses.
    let first = job.schedule.next_run_at().or_else(|| {
        (state == JobState::Paused)
            .then(|| job.definition.resumed_schedule(now).next_run_at())
            .flatten()
    });
    let coming = first
        .map(|first| coming_fire_times(trigger, first, now, FIRE_TIMES_SHOWN))
        .unwrap_or_default();
    let target = job
        .definition
        .target
        .as_ref()
        .map(|t| TargetView::seen_by(t, viewer.role()));
    // A monitor's ping URL, for those who may write (§11.5).
    let ping_url = job
        .ping_key
        .as_ref()
        .filter(|_| viewer.can_write())
        .map(|key| crate::api::ping_url(&base, key));
    let d = &job.definition;
    let path = format!("/ui/jobs/{}", id.as_str());
    let body = html! {
        h1 { "Job " code { (id.as_str()) } }
        @if let Some(name) = &d.name { p.name { (name) } }
        div #live {
            p.summary { (state_badge(state)) " " strong.trigger { (in_words(trigger)) } }
            @if state == JobState::Paused && (job.pause.until.is_some() || job.pause.reason.is_some()) {
                p.pause-note {
                    @if let Some(until) = job.pause.until { "Resumes " (instant(until, tz)) ". " }
                    @if let Some(reason) = &job.pause.reason { "Reason: " (reason) }
                }
            }
            @if !d.labels.is_empty() {
                p.labels {
                    @for (key, value) in &d.labels { (label_link(key, value)) " " }
                }
            }
            @if viewer.can_write() {
                div.actions role="group" aria-label="Actions" {
                    @match state {
                        JobState::Scheduled => (action(&viewer, &format!("{path}/pause"), "Pause", "")),
                        JobState::Paused => (action(&viewer, &format!("{path}/resume"), "Resume", "")),
                        JobState::Completed => {},
                    }
                    @if target.is_some() {
                        (action(&viewer, &format!("{path}/run"), "Run now", "primary"))
                        (action(&viewer, &format!("{path}/rotate-secret"), "Rotate secret", ""))
                        a.button href={ (path) "/backfill" } { "Backfill…" }
                    }
                    a.button href={ (path) "/edit" } { "Edit" }
                    a.button href={ "/ui/new-job?from=" (id.as_str()) } { "Clone" }
                    a.button href={ (path) "/secret" } { "Show secret" }
                    a.button href={ "/ui/audit?target=job%2F" (id.as_str()) } { "Audit trail" }
                    a.button.danger href={ (path) "/delete" } { "Delete…" }
                }
            }
            @if let Some(monitor) = d.monitor {
                section.monitor {
                    h2 { "Pings" }
                    p { "Monitor-only: each fire time makes a run that awaits a ping; none within "
                        (monitor.grace_s) " s makes it missed and opens a " code { "ping_missing" } " alert." }
                    @if let Some(url) = &ping_url {
                        p { "Ping URL: " code.ping-url { (url) } }
                        p.hint { "In a crontab:" }
                        pre { code { "curl -fsS -m 10 " (url) "/start; your-command; curl -fsS -m 10 " (url) "/$?" } }
                    }
                }
            }
            section {
                h2 { "Next fire times" }
                @if coming.is_empty() {
                    p.empty { @if state == JobState::Completed { "None: the job is completed." } @else { "None." } }
                } @else {
                    @if state == JobState::Paused { p.hint { "Paused: these are the times it would fire if resumed now." } }
                    div.table-wrap { table.fire-times {
                        thead { tr { th scope="col" { "UTC" } th scope="col" { "Local (" (tz.name()) ")" } th scope="col" { "Daylight saving" } } }
                        tbody { @for f in &coming {
                            tr class=[f.offset_change.map(|_| "dst")] {
                                td { time datetime=(crate::domain::instant::format(&f.at)) { (render::utc(f.at)) } }
                                td { (render::local(f.at, tz)) }
                                td { @if let Some((from, to)) = f.offset_change {
                                    span.badge.dst { "DST change" } " " (offset_in_words(from)) " → " (offset_in_words(to))
                                } }
                            }
                        } }
                    } }
                }
            }
            section {
                @if !parents.is_empty() || !d.chain.is_empty() {
                    (chain_graph(&id, &parents, &d.chain))
                }
                h2 { "Runs" }
                @if runs.is_empty() {
                    p.empty { "No runs yet." }
                } @else {
                    div.table-wrap { table.runs {
                        thead { tr {
                            th scope="col" { "Run" } th scope="col" { "Status" } th scope="col" { "Cause" }
                            th scope="col" { "Scheduled for" } th scope="col" { "Lateness" } th scope="col" { "Attempts" }
                            th scope="col" { "Error" }
                        } }
                        tbody { @for ((run, first), error) in runs.iter().zip(&first_attempts).zip(&errors) {
                            tr data-run=(run.id) {
                                td { a href={ "/ui/runs/" (run.id) } { (short(run.id)) } }
                                td { (run_badge(run.status)) (run_why(run)) }
                                td { (run.cause.as_str()) }
                                td { (instant(run.scheduled_for, tz)) }
                                td { @match first { Some(a) => (render::delay(a.started_at - run.scheduled_for)), None => span.none { "—" } } }
                                td { (run.attempt_count) }
                                td.error { @if let Some(e) = error { (e) } }
                            }
                        } }
                    } }
                    @if let Some(cursor) = &next {
                        p.pager { a href={ (path) "?cursor=" (cursor) } rel="next" { "Older runs →" } }
                    }
                }
            }
            @if let Some(calendars) = super::agenda::job_section(id.as_str(), &d.trigger) {
                (calendars)
            }
            section {
                h2 { "Settings" }
                dl.settings {
                    @if let Some(target) = &target {
                    dt { "Target" } dd { code { (target.method) " " (target.url) } }
                    dt { "Timeout" } dd { (target.timeout_s) " s" }
                    dt { "Template" } dd { @if target.template { "yes: its {{ … }} expressions are rendered when each run is made" } @else { "no" } }
                    @if target.template { @if let Some(body) = &target.body {
                        dt { "Body" } dd { code { (body) } }
                    } }
                    @if !target.headers.is_empty() || !target.sensitive_headers.is_empty() {
                        dt { "Headers" } dd { ul.plain {
                            @for (name, value) in &target.headers { li { code { (name) ": " (value) } } }
                            @for name in &target.sensitive_headers { li { code { (name) ": ••••••" } } }
                        } }
                    }
                    } @else {
                        dt { "Target" } dd { "none: monitor-only" }
                    }
                    dt { "Misfire grace" } dd { @match d.misfire_grace_s { Some(s) => { (s) " s" }, None => "none: always run, however late" } }
                    dt { "Coalesce" } dd { (yes_no(d.coalesce)) }
                    dt { "Catch-up at most" } dd { (d.catchup_max) " runs" }
                    dt { "Max instances" } dd { (d.max_instances) }
                    dt { "Over max instances" } dd { (overlap_in_words(d.overlap)) }
                    @if let Some(flow) = &d.flow {
                        dt { "Flow key" } dd { a href="/ui/flows" { code { (flow.key.as_str()) } } " (priority " (flow.priority) @if let Some(w) = flow.max_wait_s { ", waits at most " (w) " s" } ")" }
                    }
                    @for (title, list) in [("Requires", &d.gates.all), ("Requires one of", &d.gates.any)] {
                        @if !list.is_empty() {
                            dt { (title) } dd { ul.plain { @for r in list.iter() {
                                li { a href={ "/ui/jobs/" (r.job.as_str()) } { (r.job.as_str()) }
                                     " succeeded within " (crate::domain::trigger::words::duration_in_words(r.within_s.into()))
                                     @if r.mode == crate::domain::gate::GateMode::Wait { "; else wait up to " (crate::domain::trigger::words::duration_in_words(r.wait_max_s.into())) } @else { "; else skip" } }
                            } } }
                        }
                    }
                    dt { "Pause on failure" } dd { (yes_no(d.pause_on_failure)) }
                    dt { "Run limit" } dd { (run_limit_in_words(d.max_runs, job.runs_counted, d.on_complete)) }
                    dt { "Retry" } dd { (d.retry.max_attempts) " attempts, backoff " (d.retry.backoff_initial_s) " s to " (d.retry.backoff_max_s) " s" }
                    @if let Some(c) = d.target.as_ref().and_then(|t| t.completion) {
                        dt { "Completion" } dd {
                            "by callback: fails after " (c.timeout_s) " s"
                            @if let Some(h) = c.heartbeat_s { ", or " (h) " s without a heartbeat" }
                            "; a cancel waits " (c.cancel_grace_s) " s"
                        }
                    }
                    dt { "Created" } dd { (render::utc(job.created_at)) }
                    dt { "Updated" } dd { (render::utc(job.updated_at)) }
                    @if !d.metadata.is_empty() {
                        dt { "Metadata" } dd { code { (serde_json::Value::Object(d.metadata.clone())) } }
                    }
                }
            }
        }
    };
    Ok(viewer.page(&format!("Job {}", id.as_str()), Some(&live), body))
}

/// `max_runs` and what follows it, for the settings list (§11.3).
fn run_limit_in_words(
    max_runs: Option<u32>,
    counted: u32,
    on_complete: crate::domain::run_limit::OnComplete,
) -> String {
    use crate::domain::run_limit::{self, OnComplete};
    let Some(most) = max_runs else {
        return "none".to_string();
    };
    let left = run_limit::remaining(max_runs, counted).unwrap_or(0);
    let then = match on_complete {
        OnComplete::Keep => "then completed",
        OnComplete::Delete => "then deleted",
    };
    format!("{most} runs, {left} left; {then}")
}

/// What went wrong with a run's newest attempt, in words; none when nothing
/// did (or it has no attempt yet).
fn last_problem(attempts: &[Attempt]) -> Option<String> {
    attempts
        .iter()
        .max_by_key(|a| a.number)
        .and_then(Attempt::problem)
}

/// A run's wait or reason beside its status, in the runs table.
fn run_why(run: &Run) -> Markup {
    html! {
        @if let Some(why) = run.wait_reason.as_deref().or(run.reason.as_deref()) {
            " " span.why { "(" (why) ")" }
        }
    }
}

fn waiting_in_words(why: &str) -> String {
    match why {
        "overlap" => "for a run of this job to end (overlap policy)".to_string(),
        "backfill" => "for the backfill's run before it to end".to_string(),
        other => match (
            other.strip_prefix("flow:"),
            crate::domain::gate::waits_for(other),
        ) {
            (Some(key), _) => format!("for its flow key {key} to allow it (in flight, rate)"),
            (_, Some(job)) => format!("for job {job} to succeed (its gate)"),
            _ => other.to_string(),
        },
    }
}

fn overlap_in_words(overlap: crate::domain::overlap::Overlap) -> String {
    use crate::domain::overlap::Overlap;
    match overlap {
        Overlap::Skip => "skip the run".to_string(),
        Overlap::BufferOne => "one run waits; more are skipped".to_string(),
        Overlap::BufferAll { buffer_max } => {
            format!("runs wait, up to {buffer_max}; more are skipped")
        }
        Overlap::Replace => "the oldest run in flight is cancelled; the new run goes".to_string(),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A run id as the pages show it: its last 8 hex digits, random in a
/// UUIDv7 (its first 8 are a timestamp, the same for runs of one minute).
pub(super) fn short(id: Uuid) -> String {
    let text = id.simple().to_string();
    text[text.len() - 8..].to_string()
}

/// `/ui/jobs/{id}/secret`: the signing secret, for writers only.
pub async fn secret(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers)
        .await?
        .able_to_write("a job's secret")?;
    let id = job_id(&raw)?;
    let secret = app
        .store
        .get_secret(&viewer.caller.tenant, &id)
        .await?
        .ok_or_else(|| no_job(&raw))?;
    let now = Utc::now();
    let body = html! {
        h1 { "Secret of " code { (id.as_str()) } }
        p { "Receivers verify each webhook's " code { "webhook-signature" } " with it (Standard Webhooks)." }
        p { code #secret { (secret.secret) } }
        @if let Some((previous, expires_at)) = secret.previous.filter(|(_, e)| *e > now) {
            p { "The previous secret signs too until " (render::utc(expires_at)) ": " code { (previous) } }
        }
        p { a href={ "/ui/jobs/" (id.as_str()) } { "← Back to the job" } }
    };
    let mut response = viewer.page("Secret", None, body);
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `/ui/jobs/{id}/delete`: asks before deleting.
pub async fn confirm_delete(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let id = job_id(&raw)?;
    if !app.store.job_exists(&viewer.caller.tenant, &id).await? {
        return Err(no_job(&raw));
    }
    let path = format!("/ui/jobs/{}", id.as_str());
    let body = html! {
        h1 { "Delete job " code { (id.as_str()) } "?" }
        p { "The job and all its runs are deleted. This cannot be undone." }
        div.actions {
            (action(&viewer, &format!("{path}/delete"), "Delete the job", "danger"))
            a.button href=(path) { "Cancel" }
        }
    };
    Ok(viewer.page("Delete job", None, body))
}

/// `/ui/runs/{id}`: a run's attempts; redrive when it failed.
pub async fn run(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let id = Uuid::parse_str(&raw).map_err(|_| no_run(&raw))?;
    let tenant = &viewer.caller.tenant;
    let live_from = LiveFrom::now(&app, &viewer).await?;
    let (run, attempts) = app
        .store
        .get_run(tenant, id)
        .await?
        .ok_or_else(|| no_run(&raw))?;
    let live = live_from.query(Some(&run.job_id));
    let job = app.store.get_job(tenant, &run.job_id).await?;
    let gates = job
        .as_ref()
        .map(|job| job.definition.gates.clone())
        .unwrap_or_default();
    let tz = job
        .as_ref()
        .map_or(Zone::UTC, |job| job.definition.trigger.timezone());
    // A template job's run sends what was rendered when it was made; any
    // other, its job's target as it is now.
    let request = match app.store.run_request(tenant, run.id).await? {
        Some(rendered) => Some(rendered),
        None => job.and_then(|job| job.definition.target).map(Ok),
    };
    let scheduled_for = crate::domain::instant::format(&run.scheduled_for);
    let sending = Sending {
        job_id: run.job_id.as_str(),
        run_id: Some(run.id),
        scheduled_for: Some(&scheduled_for),
        attempt: Some(run.attempt_count),
    };
    let body = html! {
        h1 { "Run " code { (short(run.id)) } }
        div #live {
            (run_summary(&viewer, &run, tz))
            @if let Some(on) = run.wait_reason.as_deref().and_then(crate::domain::gate::waits_for) {
                (gate_view(&run, on, &gates, tz))
            }
            @if let Some(request) = &request {
                section {
                    h2 { "The request" }
                    @match request {
                        Ok(target) => (request::shown(target, &sending, viewer.role(), "***")),
                        Err(why) => p.error { "Not sent: " (why) },
                    }
                }
            }
            section {
                h2 { "Attempts" }
                @if attempts.is_empty() {
                    p.empty { "No attempt yet." }
                } @else {
                    div.table-wrap { table.attempts {
                        thead { tr {
                            th scope="col" { "#" } th scope="col" { "Started" } th scope="col" { "Status" }
                            th scope="col" { "Duration" } th scope="col" { "Error" } th scope="col" { "Response" }
                        } }
                        tbody { @for a in &attempts {
                            tr {
                                td { (a.number) }
                                td { (instant(a.started_at, tz)) }
                                td { @match a.status_code { Some(code) => code { (code) }, None => span.none { "no answer" } } }
                                td { (a.duration_ms) " ms" }
                                td { @match a.problem() { Some(e) => span.error { (e) }, None => span.none { "—" } } }
                                td {
                                    @match &a.response_excerpt { Some(r) => pre.excerpt { (r) }, None => span.none { "—" } }
                                    @if a.body_truncated { span.none { "its first 64 kB" } }
                                }
                            }
                        } }
                    } }
                }
            }
        }
    };
    Ok(viewer.page(&format!("Run {}", short(run.id)), Some(&live), body))
}

fn run_summary(viewer: &Viewer, run: &Run, tz: Zone) -> Markup {
    html! {
        p.summary { (run_badge(run.status)) " of job "
            a href={ "/ui/jobs/" (run.job_id.as_str()) } { (run.job_id.as_str()) } }
        @if run.status == RunStatus::Failed && viewer.can_write() {
            div.actions { (action(viewer, &format!("/ui/runs/{}/retry", run.id), "Redrive (send again)", "primary")) }
        }
        @if run.status.in_flight() && run.status != RunStatus::Cancelling && viewer.can_write() {
            div.actions { (action(viewer, &format!("/ui/runs/{}/cancel", run.id), "Cancel this run", "danger")) }
        }
        dl.settings {
            dt { "Run id" } dd { code { (run.id) } }
            dt { "Cause" } dd { (run.cause.as_str()) }
            @if let Some(parent) = run.parent_run_id {
                dt { "After run" } dd { a href={ "/ui/runs/" (parent) } { code { (short(parent)) } } }
            }
            dt { "Scheduled for" } dd { (instant(run.scheduled_for, tz)) }
            @if run.occurrences > 1 { dt { "Occurrences" } dd { (run.occurrences) " (coalesced)" } }
            @if let Some(why) = &run.wait_reason { dt { "Waiting" } dd { (waiting_in_words(why)) } }
            @if let Some(why) = &run.reason { dt { "Reason" } dd { code { (why) } } }
            @if let Some(next) = run.next_attempt_at { dt { "Next attempt" } dd { (instant(next, tz)) } }
            @if let Some(done) = run.finished_at { dt { "Finished" } dd { (instant(done, tz)) } }
        }
        @if let Some(long) = &run.long { (long_run(run, long, tz)) }
    }
}

/// A job's chain (§11.8) as a small graph: the jobs whose runs' ends
/// start it on the left, it in the middle, those its ends start on the
/// right; each edge says which end, and its delay.
fn chain_graph(
    id: &JobId,
    parents: &[(JobId, crate::domain::chain::End, u32)],
    chain: &crate::domain::chain::Chain,
) -> Markup {
    use crate::domain::chain::End;
    const ROW: usize = 32;
    const BOX_W: usize = 170;
    const GAP: usize = 110;
    let label = |on: End, delay: u32| match delay {
        0 => format!("on {}", on.as_str()),
        d => format!("on {} +{d} s", on.as_str()),
    };
    let left: Vec<(&str, String)> = parents
        .iter()
        .map(|(p, on, d)| (p.as_str(), label(*on, *d)))
        .collect();
    let right: Vec<(&str, String)> = chain
        .edges
        .iter()
        .map(|e| (e.child.as_str(), label(e.on, e.delay_s)))
        .collect();
    let rows = left.len().max(right.len()).max(1);
    let height = rows * ROW + 8;
    let mid_y = height / 2;
    let (x_left, x_mid, x_right) = (0, BOX_W + GAP, 2 * (BOX_W + GAP));
    let width = x_right + BOX_W;
    let y_of = |i: usize, n: usize| (height - n * ROW) / 2 + i * ROW + ROW / 2;
    let text = |s: &str| -> String {
        if s.chars().count() > 22 {
            format!("{}…", s.chars().take(21).collect::<String>())
        } else {
            s.to_string()
        }
    };
    html! {
        section.chain {
            h2 { "Chain" }
            svg.chain-graph viewBox={ "0 0 " (width) " " (height) } role="img"
                aria-label={ "Jobs before and after " (id.as_str()) } {
                // Each side's boxes, an edge from each to the job in the
                // middle: `x` where the side's boxes stand.
                @for (side, x) in [(&left, x_left), (&right, x_right)] {
                    @for (i, (job, edge)) in side.iter().enumerate() {
                        @let y = y_of(i, side.len());
                        @let (from, to) = if x < x_mid { (x + BOX_W, x_mid) } else { (x_mid + BOX_W, x) };
                        line x1=(from) y1=(if x < x_mid { y } else { mid_y }) x2=(to) y2=(if x < x_mid { mid_y } else { y }) {}
                        text.edge x=(from + GAP / 2) y=((y + mid_y) / 2 - 4) text-anchor="middle" { (edge) }
                        a href={ "/ui/jobs/" (job) } {
                            rect x=(x) y=(y - 11) width=(BOX_W) height="22" rx="4" {}
                            text x=(x + 8) y=(y + 5) { (text(job)) }
                        }
                    }
                }
                rect.this x=(x_mid) y=(mid_y - 11) width=(BOX_W) height="22" rx="4" {}
                text x=(x_mid + 8) y=(mid_y + 5) { (text(id.as_str())) }
            }
        }
    }
}

/// The gate that holds a run (§11.8): each job it requires, how recent a
/// success must be, and until when the run waits for it.
fn gate_view(run: &Run, on: &str, gates: &crate::domain::gate::Gates, tz: Zone) -> Markup {
    use crate::domain::gate::GateMode;
    let lists = [
        ("All of these must have succeeded", &gates.all),
        ("One of these must have succeeded", &gates.any),
    ];
    html! {
        section.gate {
            h2 { "Held by its gate" }
            p { "Waiting for job " a href={ "/ui/jobs/" (on) } { (on) } " to succeed." }
            @for (title, list) in &lists {
                @if !list.is_empty() {
                    div.table-wrap { table.gate {
                        caption { (title) }
                        thead { tr { th { "Job" } th { "Succeeded within" } th { "If not" } th { "Waits until" } } }
                        tbody { @for r in list.iter() {
                            tr class=[(r.job.as_str() == on).then_some("waited")] {
                                td { a href={ "/ui/jobs/" (r.job.as_str()) } { (r.job.as_str()) } }
                                td { (crate::domain::trigger::words::duration_in_words(r.within_s.into())) }
                                td { (r.mode.as_str()) }
                                td { @if r.mode == GateMode::Wait {
                                    (instant(r.deadline(run.scheduled_for), tz))
                                } @else { "—" } }
                            }
                        } }
                    } }
                }
            }
        }
    }
}

/// A callback run's progress as its receiver reports it (§11.7).
fn long_run(run: &Run, long: &crate::domain::run::LongRun, tz: Zone) -> Markup {
    let completed = long.completed.as_ref();
    html! {
        section.long-run {
            h2 { "Work reported by the receiver" }
            @if let Some(progress) = long.progress {
                p { progress max="100" value=(progress) { (progress) " %" } " " (format!("{progress:.0}")) " %" }
            }
            dl.settings {
                @if let Some(at) = long.accepted_at { dt { "Accepted" } dd { (instant(at, tz)) } }
                @if let Some(at) = long.last_heartbeat_at { dt { "Last heartbeat" } dd { (instant(at, tz)) } }
                @if let Some(message) = &long.message { dt { "Says" } dd { (message) } }
                @if run.status.in_flight() {
                    @if let Some(at) = long.heartbeat_due_at { dt { "Next heartbeat due" } dd { (instant(at, tz)) } }
                    @if let Some(at) = long.deadline_at {
                        dt { @if long.cancel_requested_at.is_some() { "Cancelled by" } @else { "Times out" } }
                        dd { (instant(at, tz)) }
                    }
                }
                @if let Some(at) = long.cancel_requested_at { dt { "Cancel asked" } dd { (instant(at, tz)) } }
                @if let Some(ms) = long.duration_ms(run.finished_at) { dt { "Ran for" } dd { (ms / 1000) " s" } }
                @if let Some(c) = completed {
                    dt { "Reported" } dd { code { (c.status.run_status().as_str()) } }
                    @if let Some(e) = &c.error { dt { "Error" } dd.error { (e) } }
                    @if let Some(o) = &c.output { dt { "Output" } dd { pre.excerpt { (o) } } }
                }
            }
        }
    }
}

/// `/ui/failed`: failed runs across jobs, newest first, with redrive.
pub async fn failed(
    State(app): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<CursorQuery>, QueryRejection>,
) -> Result<Response, UiError> {
    let viewer = Viewer::read(&app, &headers).await?;
    let q = query(q)?;
    let live = LiveFrom::now(&app, &viewer).await?.query(None);
    let (runs, next) = runs_page(
        app.store.as_ref(),
        &viewer.caller.tenant,
        RunFilter {
            statuses: vec![RunStatus::Failed],
            cursor: run_cursor(q.cursor.as_deref())?,
            limit: JOBS_PER_PAGE,
            ..Default::default()
        },
    )
    .await?;
    let tenant = &viewer.caller.tenant;
    let errors: Vec<Option<String>> =
        futures_util::future::try_join_all(runs.iter().map(|r| app.store.get_run(tenant, r.id)))
            .await?
            .into_iter()
            .map(|d| d.and_then(|(_, attempts)| last_problem(&attempts)))
            .collect();
    let body = html! {
        h1 { "Failed runs" }
        div #live {
            @if runs.is_empty() {
                p.empty { "No failed runs." }
            } @else {
                div.table-wrap { table.runs {
                    thead { tr {
                        th scope="col" { "Run" } th scope="col" { "Job" } th scope="col" { "Scheduled for" }
                        th scope="col" { "Attempts" } th scope="col" { "Finished" } th scope="col" { "Error" }
                        @if viewer.can_write() { th scope="col" { "Action" } }
                    } }
                    tbody { @for (run, error) in runs.iter().zip(&errors) {
                        tr data-run=(run.id) {
                            td { a href={ "/ui/runs/" (run.id) } { (short(run.id)) } " " (run_badge(run.status)) }
                            td { a href={ "/ui/jobs/" (run.job_id.as_str()) } { (run.job_id.as_str()) } }
                            td { (render::utc(run.scheduled_for)) }
                            td { (run.attempt_count) }
                            td { @match run.finished_at { Some(t) => (render::utc(t)), None => "—" } }
                            td.error { @if let Some(e) = error { (e) } }
                            @if viewer.can_write() {
                                td { (action(&viewer, &format!("/ui/runs/{}/retry", run.id), "Redrive", "")) }
                            }
                        }
                    } }
                } }
            }
            @if let Some(cursor) = &next {
                p.pager { a href={ "/ui/failed?cursor=" (cursor) } rel="next" { "Older →" } }
            }
        }
    };
    Ok(viewer.page("Failed runs", Some(&live), body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_made_within_a_minute_have_different_short_ids() {
        let a = uuid::Uuid::parse_str("01a23fb5-4df9-733e-a30d-bf0411250d56").unwrap();
        let b = uuid::Uuid::parse_str("01a23fb5-50cc-747b-b7c9-0eaa7b369dd1").unwrap();
        assert_eq!(super::short(a), "11250d56");
        assert_ne!(super::short(a), super::short(b));
    }
}
