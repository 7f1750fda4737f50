//! Config as code (DESIGN §11.9): a tenant's jobs, with the calendars,
//! subscriptions and flow keys they use, as one bundle that
//! `GET /v1/export` writes and `POST /v1/apply` makes true. A bundle names
//! each job by id and holds it in the API's input form, defaults filled
//! in, so that exporting what was applied gives the same bytes again.
//! Secrets never leave: a sensitive header's value is exported as
//! `{"secret_ref": "<header>"}` and a URL's password as `***`, and either,
//! applied back, keeps the job's stored value.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use super::calendar::Calendar;
use super::error::FieldError;
use super::event::Interest;
use super::flow::{FlowKey, FlowLimits, FlowLimitsInput, parse_limits};
use super::job::{Job, JobId, JobInput};
use super::subscription::{SubscriptionFormat, SubscriptionInput};
use super::target::{Target, is_sensitive_header, masked_url};

pub const API_VERSION: &str = "cronhook/v1";
pub const KIND: &str = "Bundle";
/// The label that marks a job as kept by one owner's bundle: a prune
/// deletes only the owner's jobs the bundle no longer has.
pub const OWNER_LABEL: &str = "cronhook.io/owner";
/// The most jobs a bundle holds, as a bulk action.
pub const MAX_BUNDLE_JOBS: usize = 10_000;
/// Fire times shown before and after a changed trigger.
pub const PLAN_FIRE_TIMES: usize = 3;

/// The most calendars, subscriptions or flow keys a bundle holds, each.
pub const MAX_BUNDLE_OTHERS: usize = 1_000;
/// A bundle's sections, as its top-level fields name them.
const FIELDS: [&str; 6] = [
    "apiVersion",
    "kind",
    "jobs",
    "calendars",
    "subscriptions",
    "flows",
];

/// A bundle as applied: its jobs' input documents, in the file's order,
/// then the calendars, subscriptions and flow keys they use (§11.4, §9,
/// §11.1).
#[derive(Debug, Clone)]
pub struct Bundle {
    pub jobs: Vec<(JobId, Value)>,
    pub calendars: Vec<Calendar>,
    /// Each subscription's id and input document (its URL's password may
    /// read `***`, kept from the stored one).
    pub subscriptions: Vec<(JobId, Value)>,
    pub flows: Vec<(FlowKey, FlowLimits)>,
}

impl Bundle {
    /// Reads a bundle: `apiVersion`, `kind`, and `jobs`, `calendars`,
    /// `subscriptions`, `flows` (each entry with its `id`, or a flow's
    /// `key`, none twice). A refusal names the field: `jobs[2].id: …`.
    pub fn parse(doc: &Value) -> Result<Self, FieldError> {
        let Value::Object(doc) = doc else {
            return Err(FieldError::new("", "a bundle is an object"));
        };
        match doc.get("apiVersion") {
            Some(Value::String(v)) if v == API_VERSION => {}
            other => {
                return Err(FieldError::new(
                    "apiVersion",
                    format!("must be {API_VERSION:?}, got {}", shown(other)),
                ));
            }
        }
        match doc.get("kind") {
            Some(Value::String(k)) if k == KIND => {}
            other => {
                return Err(FieldError::new(
                    "kind",
                    format!("must be {KIND:?}, got {}", shown(other)),
                ));
            }
        }
        if let Some(unknown) = doc.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FieldError::new(
                unknown.as_str(),
                "unknown field; expected one of `apiVersion`, `kind`, `jobs`, `calendars`, \
                 `subscriptions`, `flows`",
            ));
        }
        let jobs = entries(doc, "jobs", "id", MAX_BUNDLE_JOBS, JobId::parse)?;
        let calendars = entries(
            doc,
            "calendars",
            "id",
            MAX_BUNDLE_OTHERS,
            super::calendar::parse_id,
        )?
        .into_iter()
        .enumerate()
        .map(|(i, (_, entry))| {
            let at = |e| entry_field(e, "calendars", i);
            let input: super::calendar::CalendarInput =
                super::json::from_value(&entry).map_err(at)?;
            input.parse(None).map_err(at)
        })
        .collect::<Result<_, _>>()?;
        let subscriptions = entries(doc, "subscriptions", "id", MAX_BUNDLE_OTHERS, JobId::parse)?
            .into_iter()
            .enumerate()
            .map(|(i, (id, mut entry))| {
                if let Value::Object(map) = &mut entry {
                    map.remove("id");
                }
                // Its shape now; its URL once the stored one is known.
                super::json::from_value::<SubscriptionInput>(&entry)
                    .map_err(|e| entry_field(e, "subscriptions", i))?;
                Ok((id, entry))
            })
            .collect::<Result<_, FieldError>>()?;
        let flows = entries(doc, "flows", "key", MAX_BUNDLE_OTHERS, FlowKey::parse)?
            .into_iter()
            .enumerate()
            .map(|(i, (key, mut entry))| {
                if let Value::Object(map) = &mut entry {
                    map.remove("key");
                }
                let at = |e| entry_field(e, "flows", i);
                let limits: FlowLimitsInput = super::json::from_value(&entry).map_err(at)?;
                Ok((
                    key,
                    parse_limits(limits.max_in_flight, limits.rate, "").map_err(at)?,
                ))
            })
            .collect::<Result<_, FieldError>>()?;
        Ok(Self {
            jobs,
            calendars,
            subscriptions,
            flows,
        })
    }

    /// The indexes of its calendars in an order to write them in: each
    /// after the bundle's calendars it includes, so that none names one
    /// not written yet. Those in a cycle come last, in the file's order,
    /// for the write to refuse the cycle.
    pub fn calendar_order(&self) -> Vec<usize> {
        let ids: Vec<&str> = self.calendars.iter().map(|c| c.id.as_str()).collect();
        let needs: Vec<Vec<&str>> = self
            .calendars
            .iter()
            .map(|c| c.includes().into_iter().collect())
            .collect();
        dependencies_first(&ids, &needs)
    }

    /// The order jobs are written in: a job after the jobs its `chain`
    /// names (§11.8), which must exist when it is saved; otherwise the
    /// file's order. A cycle's jobs come last, for the save to refuse.
    pub fn job_order(&self) -> Vec<usize> {
        let ids: Vec<&str> = self.jobs.iter().map(|(id, _)| id.as_str()).collect();
        let needs: Vec<Vec<&str>> = self
            .jobs
            .iter()
            .map(|(_, entry)| {
                // A chain's children and a gate's jobs (§11.8) exist
                // before the job that names them.
                let chain = ["on_success", "on_failure", "on_complete"]
                    .iter()
                    .filter_map(|end| entry.get("chain")?.get(end)?.as_array());
                let gates = ["requires", "requires_any"]
                    .iter()
                    .filter_map(|list| entry.get(list)?.as_array());
                chain
                    .chain(gates)
                    .flatten()
                    .filter_map(|named| named.get("job")?.as_str())
                    .collect()
            })
            .collect();
        dependencies_first(&ids, &needs)
    }
}

/// Indexes of `ids` so that each comes after those of `needs[i]` among
/// them (Kahn's algorithm, in the given order where there is a choice:
/// linear in the entries and their needs); a cycle's entries last.
fn dependencies_first(ids: &[&str], needs: &[Vec<&str>]) -> Vec<usize> {
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut waiting_on = vec![0usize; ids.len()];
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
    for (i, wanted) in needs.iter().enumerate() {
        for need in wanted {
            if let Some(&j) = index.get(need) {
                waiting_on[i] += 1;
                needed_by[j].push(i);
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..ids.len()).filter(|&i| waiting_on[i] == 0).collect();
    let mut order = Vec::with_capacity(ids.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &k in &needed_by[i] {
            waiting_on[k] -= 1;
            if waiting_on[k] == 0 {
                ready.insert(k);
            }
        }
    }
    // A cycle's entries never became ready.
    order.extend((0..ids.len()).filter(|&i| waiting_on[i] > 0));
    order
}

/// The entries of section `name` (absent: none), each an object whose
/// `id_field` `parse` reads, none twice, at most `most`.
fn entries<I: Eq + std::hash::Hash + Clone, E: std::fmt::Display>(
    doc: &Map<String, Value>,
    name: &str,
    id_field: &str,
    most: usize,
    parse: impl Fn(&str) -> Result<I, E>,
) -> Result<Vec<(I, Value)>, FieldError> {
    let list = match doc.get(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(FieldError::new(name, "must be an array")),
    };
    if list.len() > most {
        return Err(FieldError::new(
            name,
            format!(
                "holds {} entries; a bundle holds at most {most}",
                list.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let field = format!("{name}[{i}].{id_field}");
        let id = match entry.get(id_field) {
            Some(Value::String(id)) => {
                parse(id).map_err(|m| FieldError::new(&field, m.to_string()))?
            }
            Some(_) => return Err(FieldError::new(field, "must be a string")),
            None if entry.is_object() => {
                return Err(FieldError::new(
                    field,
                    format!("is required: a bundle names each entry by its {id_field}"),
                ));
            }
            None => return Err(FieldError::new(format!("{name}[{i}]"), "must be an object")),
        };
        if !seen.insert(id.clone()) {
            return Err(FieldError::new(
                field,
                format!(
                    "{:?} appears twice",
                    entry[id_field].as_str().unwrap_or_default()
                ),
            ));
        }
        out.push((id, entry.clone()));
    }
    Ok(out)
}

/// A refusal of entry `i` of a bundle's `section`, its field named in the
/// bundle: `jobs[2].trigger.expr`, `calendars[0].rules`.
pub fn entry_field(e: FieldError, section: &str, i: usize) -> FieldError {
    FieldError::new(format!("{section}[{i}].{}", e.field), e.message)
}

fn shown(value: Option<&Value>) -> String {
    value.map_or("nothing".to_string(), Value::to_string)
}

/// A job in its input form without the answers-only fields, each
/// sensitive header's value as `secret(name)` says and a URL's password
/// as `***`: what a bundle and the audit trail hold of it.
pub fn redacted(job: &Job, secret: impl Fn(&str) -> Value) -> Value {
    let mut doc = serde_json::to_value(job.to_input()).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut doc {
        map.remove("next_run_at");
        map.remove("secret");
    }
    if let Some(target) = &job.definition.target {
        doc["target"]["url"] = json!(masked_url(&target.url));
        if let Some(Value::Object(headers)) = doc["target"].get_mut("headers") {
            for (name, value) in headers.iter_mut() {
                if is_sensitive_header(name) {
                    *value = secret(name);
                }
            }
        }
    }
    doc
}

/// A job as a bundle holds it: its secrets as references.
pub fn job_entry(job: &Job) -> Value {
    redacted(job, |name| json!({"secret_ref": name}))
}

/// A calendar as a bundle holds it: its input form.
pub fn calendar_entry(calendar: &Calendar) -> Value {
    serde_json::to_value(calendar.to_input()).unwrap_or(Value::Null)
}

/// A subscription as a bundle holds it: the form `PUT
/// /v1/subscriptions/{id}` takes, with its `id` and its URL's password
/// as `***`. Its signing secret stays where it is.
pub fn subscription_entry(
    id: &str,
    url: &Url,
    interest: &Interest,
    format: SubscriptionFormat,
) -> Value {
    let mut entry = json!({
        "id": id,
        "url": masked_url(url),
        "types": interest.types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "format": format.as_str(),
    });
    if let Some(job_id) = &interest.job_id {
        entry["job_id"] = json!(job_id);
    }
    entry
}

/// A flow key as a bundle holds it: its `key` and the limits `PUT
/// /v1/flows/{key}` takes. Whether it is paused is not configuration.
pub fn flow_entry(key: &str, limits: FlowLimits) -> Value {
    let mut entry = json!({"key": key});
    if let Some(n) = limits.max_in_flight {
        entry["max_in_flight"] = json!(n);
    }
    if let Some(rate) = limits.rate {
        entry["rate"] = json!(rate);
    }
    entry
}

/// The export of `jobs` and the other sections' entries: a bundle, each
/// section in id order; a section with nothing in it is left out, but
/// `jobs`.
pub fn export(
    jobs: &[Job],
    calendars: Vec<Value>,
    subscriptions: Vec<Value>,
    flows: Vec<Value>,
) -> Value {
    let mut entries: Vec<(&str, Value)> =
        jobs.iter().map(|j| (j.id.as_str(), job_entry(j))).collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let mut bundle = json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "jobs": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    });
    for (name, id_field, mut list) in [
        ("calendars", "id", calendars),
        ("subscriptions", "id", subscriptions),
        ("flows", "key", flows),
    ] {
        if !list.is_empty() {
            list.sort_by(|a, b| a[id_field].as_str().cmp(&b[id_field].as_str()));
            bundle[name] = Value::Array(list);
        }
    }
    bundle
}

/// Subscription `i` of a bundle as the API's input: a URL whose
/// password reads `***` takes the stored subscription's.
pub fn subscription_input(
    i: usize,
    entry: &Value,
    stored: Option<&Target>,
) -> Result<SubscriptionInput, FieldError> {
    let at = |e| entry_field(e, "subscriptions", i);
    let mut entry = entry.clone();
    if let Some(map) = entry.as_object_mut() {
        keep_stored(map, stored, |_, _| None).map_err(at)?;
    }
    super::json::from_value(&entry).map_err(at)
}

/// Job `i` of a bundle as the API's input: its secret references and
/// masked password replaced by the stored job's values.
pub fn job_input(i: usize, entry: &Value, stored: Option<&Target>) -> Result<JobInput, FieldError> {
    let at = |e| entry_field(e, "jobs", i);
    let mut entry = entry.clone();
    if let Some(target) = entry.get_mut("target").and_then(Value::as_object_mut) {
        keep_stored(target, stored, secret_ref).map_err(at)?;
    }
    super::json::from_value::<JobInput>(&entry).map_err(at)
}

/// Puts the stored values back where a target refers to them: a URL
/// whose password reads `***`, and the headers whose value `reference`
/// says is a reference (answering the header it names). The dashboard's
/// form refers to them its own way.
pub fn keep_stored(
    target: &mut Map<String, Value>,
    stored: Option<&Target>,
    reference: impl Fn(&str, &Value) -> Option<Result<String, FieldError>>,
) -> Result<(), FieldError> {
    if let (Some(stored), Some(Value::String(url))) = (stored, target.get("url"))
        && stored.url.password().is_some()
        && *url == masked_url(&stored.url)
    {
        target.insert("url".into(), json!(stored.url.to_string()));
    }
    let Some(Value::Object(headers)) = target.get_mut("headers") else {
        return Ok(());
    };
    for (name, value) in headers.iter_mut() {
        let Some(referenced) = reference(name, value).transpose()? else {
            continue;
        };
        let kept = stored.and_then(|t| {
            t.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&referenced))
                .map(|(_, v)| v.clone())
        });
        match kept {
            Some(kept) => *value = json!(kept),
            None => {
                return Err(FieldError::new(
                    format!("target.headers.{name}"),
                    format!("the job has no {referenced:?} header to keep; give the value"),
                ));
            }
        }
    }
    Ok(())
}

/// A bundle's reference to a stored header: `{"secret_ref": "<header>"}`,
/// naming the header itself, so no secret moves into another header that
/// views show.
fn secret_ref(name: &str, value: &Value) -> Option<Result<String, FieldError>> {
    let reference = value.get("secret_ref")?;
    Some(match reference.as_str() {
        Some(referenced) if referenced.eq_ignore_ascii_case(name) => Ok(referenced.to_string()),
        _ => Err(FieldError::new(
            format!("target.headers.{name}.secret_ref"),
            format!("must be {name:?}: a reference keeps this header's own stored value"),
        )),
    })
}

/// A prune by `owner` of bundle `doc`: refused when the bundle has no
/// `jobs` field, as one of calendars or subscriptions only would delete
/// every job of the owner. `jobs: []` says that none is kept.
pub fn check_prune(doc: &Value, owner: Option<&str>) -> Result<(), FieldError> {
    match (owner, doc.get("jobs")) {
        (Some(_), None | Some(Value::Null)) => Err(FieldError::new(
            "prune_owner",
            "the bundle has no `jobs` field, so a prune would delete every job of the owner; \
             give `jobs: []` to mean that",
        )),
        _ => Ok(()),
    }
}

/// The jobs a prune by `owner` deletes: those labelled as the owner's
/// that the bundle does not hold.
pub fn pruned<'a>(owner: &str, current: &'a [Job], bundle: &Bundle) -> Vec<&'a Job> {
    current
        .iter()
        .filter(|j| j.definition.labels.get(OWNER_LABEL).map(String::as_str) == Some(owner))
        .filter(|j| !bundle.jobs.iter().any(|(id, _)| *id == j.id))
        .collect()
}

/// What an apply does, or would do in a dry run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Plan {
    /// Ids of the jobs it creates.
    pub create: Vec<String>,
    /// The jobs it changes, with what changes.
    pub update: Vec<PlannedUpdate>,
    /// Ids of the jobs the prune deletes.
    pub delete: Vec<String>,
    /// Ids of the jobs already as the bundle says.
    pub unchanged: Vec<String>,
    /// True when nothing was written.
    pub dry_run: bool,
    /// What it does to the bundle's calendars (§11.4).
    pub calendars: SectionPlan,
    /// What it does to the bundle's subscriptions (§9).
    pub subscriptions: SectionPlan,
    /// What it does to the bundle's flow keys (§11.1).
    pub flows: SectionPlan,
}

/// What an apply does to one section besides jobs: it creates and
/// changes, and never deletes (a prune takes jobs only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SectionPlan {
    /// Ids (a flow's keys) of those it creates.
    pub create: Vec<String>,
    /// Those it changes, with what changes.
    pub update: Vec<PlannedChange>,
    /// Those already as the bundle says.
    pub unchanged: Vec<String>,
}

/// A calendar, subscription or flow key an apply changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedChange {
    pub id: String,
    /// RFC 6902 operations from it as it is to it as it will be, as the
    /// audit trail shows them.
    #[schema(value_type = Vec<Object>)]
    pub changes: Value,
}

/// A job an apply changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedUpdate {
    pub id: String,
    /// RFC 6902 operations from the job as it is to the job as it will be
    /// (secrets read `***`).
    #[schema(value_type = Vec<Object>)]
    pub changes: Value,
    /// Its next fire times now, and once changed.
    #[schema(value_type = Vec<String>)]
    pub next_before: Vec<String>,
    #[schema(value_type = Vec<String>)]
    pub next_after: Vec<String>,
}

/// The next [`PLAN_FIRE_TIMES`] fire times of a job in `schedule` with
/// `trigger`: none while paused or completed.
pub fn next_fire_times(
    trigger: &super::trigger::Trigger,
    schedule: super::job::Schedule,
) -> Vec<String> {
    let Some(first) = schedule.next_run_at() else {
        return Vec::new();
    };
    std::iter::once(first)
        .chain(trigger.fire_times_after(first))
        .take(PLAN_FIRE_TIMES)
        .map(|t| super::instant::format(&t))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    use crate::domain::flow::Rate;
    use crate::domain::instant;
    use crate::domain::job::{ParseContext, PauseNote};
    use crate::domain::network_policy::NetworkPolicy;

    fn now() -> DateTime<Utc> {
        instant::parse("2026-12-04T10:00:00Z").unwrap()
    }

    fn job(v: Value) -> Job {
        let input: JobInput = serde_json::from_value(v).unwrap();
        let spec = input
            .parse(ParseContext {
                now: now(),
                network_policy: NetworkPolicy::default(),
                binding: None,
            })
            .unwrap();
        Job {
            id: spec.id.clone().unwrap(),
            schedule: spec.initial_schedule(now()),
            definition: spec.definition,
            runs_counted: 0,
            created_at: now(),
            updated_at: now(),
            last_run: None,
            ping_key: None,
            pause: PauseNote::default(),
        }
    }

    fn secretive(id: &str, labels: Value) -> Value {
        json!({
            "id": id,
            "trigger": {"type": "cron", "expr": "0 3 * * *", "timezone": "Europe/Berlin"},
            "target": {"url": "https://user:hunter2@example.com/hook",
                       "headers": {"authorization": "Bearer planted", "x-team": "data"}},
            "labels": labels,
        })
    }

    #[test]
    fn an_export_holds_no_secret_and_applies_back_to_the_same_job() {
        let stored = job(secretive("nightly", json!({})));
        let bundle = export(std::slice::from_ref(&stored), vec![], vec![], vec![]);
        let text = bundle.to_string();
        assert!(
            !text.contains("planted") && !text.contains("hunter2"),
            "{text}"
        );
        assert_eq!(bundle["apiVersion"], API_VERSION);
        let entry = &bundle["jobs"][0];
        assert_eq!(
            entry["target"]["headers"]["authorization"],
            json!({"secret_ref": "authorization"})
        );
        assert_eq!(entry["target"]["url"], "https://user:***@example.com/hook");
        assert!(entry.get("next_run_at").is_none() && entry.get("secret").is_none());
        // Applied back, the references take the stored values.
        let parsed = Bundle::parse(&bundle).unwrap();
        let input = job_input(0, &parsed.jobs[0].1, stored.definition.target.as_ref()).unwrap();
        let again = input
            .parse(ParseContext {
                now: now(),
                network_policy: NetworkPolicy::default(),
                binding: None,
            })
            .unwrap();
        assert_eq!(again.definition, stored.definition);
    }

    #[test]
    fn a_reference_to_nothing_stored_is_refused_at_its_field() {
        let entry = json!({"id": "new", "trigger": {"type": "interval", "every_s": 60},
                           "target": {"url": "https://example.com",
                                      "headers": {"authorization": {"secret_ref": "authorization"}}}});
        let moved = json!({"id": "new", "trigger": {"type": "interval", "every_s": 60},
                           "target": {"url": "https://example.com",
                                      "headers": {"x-debug": {"secret_ref": "authorization"}}}});
        let e = job_input(0, &moved, None).unwrap_err();
        assert_eq!(e.field, "jobs[0].target.headers.x-debug.secret_ref");
        let e = job_input(4, &entry, None).unwrap_err();
        assert_eq!(e.field, "jobs[4].target.headers.authorization");
        assert!(
            e.message.contains("no \"authorization\" header to keep"),
            "{e}"
        );
        let bad = json!({"id": "new", "trigger": {"type": "interval", "every_s": "soon"},
                         "target": {"url": "https://example.com"}});
        let e = job_input(1, &bad, None).unwrap_err();
        assert!(e.field.starts_with("jobs[1].trigger"), "{e}");
    }

    #[test]
    fn a_bundle_names_its_bad_part() {
        let field = |v: Value| Bundle::parse(&v).unwrap_err().field;
        let head = json!({"apiVersion": API_VERSION, "kind": KIND});
        assert_eq!(field(json!({"kind": KIND})), "apiVersion");
        assert_eq!(
            field(json!({"apiVersion": API_VERSION, "kind": "List"})),
            "kind"
        );
        let with = |jobs: Value| {
            let mut v = head.clone();
            v["jobs"] = jobs;
            v
        };
        assert_eq!(field(with(json!({}))), "jobs");
        assert_eq!(field(with(json!([{"trigger": {}}]))), "jobs[0].id");
        assert_eq!(field(with(json!([{"id": "a"}, {"id": "a"}]))), "jobs[1].id");
        assert_eq!(field(with(json!([{"id": "a b"}]))), "jobs[0].id");
        assert_eq!(field(with(json!([3]))), "jobs[0]");
        let mut extra = head.clone();
        extra["calendar"] = json!([]);
        assert_eq!(field(extra), "calendar");
        assert_eq!(Bundle::parse(&head).unwrap().jobs, Vec::new());
    }

    #[test]
    fn a_prune_takes_only_the_owner_s_jobs_the_bundle_lacks() {
        let current = [
            job(secretive("kept", json!({OWNER_LABEL: "team-a"}))),
            job(secretive("gone", json!({OWNER_LABEL: "team-a"}))),
            job(secretive("other", json!({OWNER_LABEL: "team-b"}))),
            job(secretive("loose", json!({}))),
        ];
        let bundle = Bundle {
            jobs: vec![(JobId::parse("kept").unwrap(), json!({}))],
            calendars: Vec::new(),
            subscriptions: Vec::new(),
            flows: Vec::new(),
        };
        let ids: Vec<&str> = pruned("team-a", &current, &bundle)
            .iter()
            .map(|j| j.id.as_str())
            .collect();
        assert_eq!(ids, ["gone"]);
    }

    fn with(section: &str, entries: Value) -> Value {
        let mut v = json!({"apiVersion": API_VERSION, "kind": KIND});
        v[section] = entries;
        v
    }

    #[test]
    fn the_other_sections_name_their_bad_part() {
        let field = |v: Value| Bundle::parse(&v).unwrap_err().field;
        let day = json!({"date": "2026-12-24"});
        assert_eq!(
            field(with(
                "calendars",
                json!([{"id": "a", "rules": [day]}, {"rules": []}])
            )),
            "calendars[1].id"
        );
        assert_eq!(
            field(with("calendars", json!([{"id": "a"}, {"id": "a"}]))),
            "calendars[1].id"
        );
        assert_eq!(
            field(with(
                "calendars",
                json!([{"id": "a", "rules": [{"date": "24.12."}]}])
            )),
            "calendars[0].rules[0].date"
        );
        assert_eq!(
            field(with(
                "calendars",
                json!([{"id": "a", "timezone": "Mars/Base"}])
            )),
            "calendars[0].timezone"
        );
        assert_eq!(
            field(with("subscriptions", json!([{"id": "ops", "url": 3}]))),
            "subscriptions[0].url"
        );
        assert_eq!(
            field(with(
                "subscriptions",
                json!([{"id": "ops", "types": ["run.nope"]}])
            )),
            "subscriptions[0].types[0]"
        );
        assert_eq!(
            field(with("subscriptions", json!([{"id": "o p"}]))),
            "subscriptions[0].id"
        );
        assert_eq!(
            field(with("flows", json!([{"max_in_flight": 2}]))),
            "flows[0].key"
        );
        assert_eq!(
            field(with("flows", json!([{"key": "api", "max_in_flight": 0}]))),
            "flows[0].max_in_flight"
        );
        assert_eq!(
            field(with("flows", json!([{"key": "api", "burst": 2}]))),
            "flows[0].burst"
        );
        assert_eq!(field(with("flows", json!({}))), "flows");
        let parsed = Bundle::parse(&with(
            "flows",
            json!([{"key": "vendor-api", "rate": {"limit": 10, "period_s": 60}}]),
        ))
        .unwrap();
        assert_eq!(parsed.flows[0].0.as_str(), "vendor-api");
        assert_eq!(
            parsed.flows[0].1.rate,
            Some(Rate {
                limit: 10,
                period_s: 60
            })
        );
    }

    #[test]
    fn a_prune_needs_the_bundle_to_name_its_jobs() {
        let head = json!({"apiVersion": API_VERSION, "kind": KIND, "calendars": []});
        assert_eq!(
            check_prune(&head, Some("team-a")).unwrap_err().field,
            "prune_owner"
        );
        assert!(check_prune(&head, None).is_ok());
        let mut none_kept = head.clone();
        none_kept["jobs"] = json!([]);
        assert!(check_prune(&none_kept, Some("team-a")).is_ok());
    }

    #[test]
    fn calendars_are_written_after_those_they_include() {
        let parsed = Bundle::parse(&with(
            "calendars",
            json!([
                {"id": "closed", "rules": [{"calendar": "holidays"}]},
                {"id": "plain", "rules": []},
                {"id": "holidays", "rules": [{"calendar": "stored-elsewhere"}]},
                {"id": "x", "rules": [{"calendar": "y"}]},
                {"id": "y", "rules": [{"calendar": "x"}]},
            ]),
        ))
        .unwrap();
        // `closed` after `holidays`; the x/y cycle last, for the store to
        // refuse; a calendar not in the bundle is the store's to check.
        assert_eq!(parsed.calendar_order(), [1, 2, 0, 3, 4]);
    }

    #[test]
    fn jobs_are_written_after_the_jobs_their_chains_name() {
        let job = |id: &str, chain: Value| {
            json!({"id": id, "trigger": {"type": "interval", "every_s": 60},
                   "target": {"url": "https://example.com"}, "chain": chain})
        };
        let parsed = Bundle::parse(&with(
            "jobs",
            json!([
                job("extract", json!({"on_success": [{"job": "load"}]})),
                job(
                    "load",
                    json!({"on_complete": [{"job": "report"}, {"job": "elsewhere"}]})
                ),
                job("report", json!({})),
                job("p", json!({"on_failure": [{"job": "q"}]})),
                job("q", json!({"on_failure": [{"job": "p"}]})),
            ]),
        ))
        .unwrap();
        assert_eq!(parsed.job_order(), [2, 1, 0, 3, 4]);
        // And after the jobs their gates name.
        let gated = |id: &str, list: &str, job: &str| {
            json!({"id": id, "trigger": {"type": "interval", "every_s": 60},
                   "target": {"url": "https://example.com"}, list: [{"job": job}]})
        };
        let parsed = Bundle::parse(&with(
            "jobs",
            json!([
                gated("report", "requires", "load"),
                gated("load", "requires_any", "extract"),
                job("extract", json!({})),
            ]),
        ))
        .unwrap();
        assert_eq!(parsed.job_order(), [2, 1, 0]);
    }

    #[test]
    fn the_other_sections_export_in_id_order_and_hold_no_secret() {
        let url =
            Url::parse("https://hooks:hunter2@chat.example.com/services/T0/B0/planted").unwrap();
        let interest = Interest {
            types: vec![crate::domain::event::EventType::RunFailed],
            job_id: Some("report".into()),
        };
        let subscription = subscription_entry("ops", &url, &interest, SubscriptionFormat::Slack);
        let limits = parse_limits(Some(2), None, "").unwrap();
        let bundle = export(
            &[],
            Vec::new(),
            vec![subscription],
            vec![
                flow_entry("zeta", limits),
                flow_entry("alpha", FlowLimits::default()),
            ],
        );
        assert!(!bundle.to_string().contains("hunter2"), "{bundle}");
        assert!(bundle.get("calendars").is_none(), "{bundle}");
        assert_eq!(
            bundle["subscriptions"][0],
            json!({"id": "ops", "url": "https://hooks:***@chat.example.com/services/T0/B0/planted",
                   "types": ["run.failed"], "job_id": "report", "format": "slack"})
        );
        assert_eq!(
            bundle["flows"],
            json!([{"key": "alpha"}, {"key": "zeta", "max_in_flight": 2}])
        );
        // Applied back, the masked password is the stored one's.
        let parsed = Bundle::parse(&bundle).unwrap();
        let stored = super::super::target::TargetInput {
            url: Some(url.to_string()),
            ..Default::default()
        }
        .parse(&NetworkPolicy::default(), "target")
        .unwrap();
        let input = subscription_input(0, &parsed.subscriptions[0].1, Some(&stored)).unwrap();
        assert_eq!(input.url.as_deref(), Some(url.as_str()));
        // Nothing stored to keep: the masked text goes as given, and the
        // URL's own checks refuse it where they will.
        let input = subscription_input(0, &parsed.subscriptions[0].1, None).unwrap();
        assert!(input.url.unwrap().contains("***"));
    }

    #[test]
    fn fire_times_follow_the_schedule() {
        let j = job(secretive("nightly", json!({})));
        let times = next_fire_times(&j.definition.trigger, j.schedule);
        assert_eq!(
            times,
            [
                "2026-12-05T02:00:00Z",
                "2026-12-06T02:00:00Z",
                "2026-12-07T02:00:00Z"
            ]
        );
        assert!(
            next_fire_times(&j.definition.trigger, crate::domain::job::Schedule::Paused).is_empty()
        );
    }
}
