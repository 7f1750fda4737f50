//! Config as code (DESIGN §11.9): a tenant's jobs as one bundle that
//! `GET /v1/export` writes and `POST /v1/apply` makes true. A bundle names
//! each job by id and holds it in the API's input form, defaults filled
//! in, so that exporting what was applied gives the same bytes again.
//! Secrets never leave: a sensitive header's value is exported as
//! `{"secret_ref": "<header>"}` and a URL's password as `***`, and either,
//! applied back, keeps the job's stored value.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::FieldError;
use super::job::{Job, JobId, JobInput};
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

/// A bundle as applied: its jobs' input documents, in the file's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    pub jobs: Vec<(JobId, Value)>,
}

impl Bundle {
    /// Reads a bundle: `apiVersion`, `kind`, `jobs` (each with an `id`,
    /// none twice). A refusal names the field: `jobs[2].id: …`.
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
        if let Some(unknown) = doc
            .keys()
            .find(|k| !["apiVersion", "kind", "jobs"].contains(&k.as_str()))
        {
            return Err(FieldError::new(
                unknown.as_str(),
                "unknown field; expected one of `apiVersion`, `kind`, `jobs`",
            ));
        }
        let jobs = match doc.get("jobs") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(jobs)) => jobs.clone(),
            Some(_) => return Err(FieldError::new("jobs", "must be an array of jobs")),
        };
        if jobs.len() > MAX_BUNDLE_JOBS {
            return Err(FieldError::new(
                "jobs",
                format!(
                    "holds {} jobs; a bundle holds at most {MAX_BUNDLE_JOBS}",
                    jobs.len()
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.into_iter().enumerate() {
            let field = format!("jobs[{i}].id");
            let id = match job.get("id") {
                Some(Value::String(id)) => {
                    JobId::parse(id).map_err(|m| FieldError::new(&field, m))?
                }
                Some(_) => return Err(FieldError::new(field, "must be a string")),
                None if job.is_object() => {
                    return Err(FieldError::new(
                        field,
                        "is required: a bundle names each job",
                    ));
                }
                None => {
                    return Err(FieldError::new(
                        format!("jobs[{i}]"),
                        "must be a job object",
                    ));
                }
            };
            if !seen.insert(id.clone()) {
                return Err(FieldError::new(
                    field,
                    format!("{:?} appears twice", id.as_str()),
                ));
            }
            out.push((id, job));
        }
        Ok(Self { jobs: out })
    }
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

/// The export of `jobs`: a bundle, in id order.
pub fn export(jobs: &[Job]) -> Value {
    let mut entries: Vec<(&str, Value)> =
        jobs.iter().map(|j| (j.id.as_str(), job_entry(j))).collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "jobs": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    })
}

/// Job `i` of a bundle as the API's input: its secret references and
/// masked password replaced by the stored job's values.
pub fn job_input(i: usize, entry: &Value, stored: Option<&Target>) -> Result<JobInput, FieldError> {
    let at = |e| field_at(e, i);
    let mut entry = entry.clone();
    if let Some(target) = entry.get_mut("target").and_then(Value::as_object_mut) {
        keep_stored(target, stored, secret_ref).map_err(at)?;
    }
    super::json::from_value::<JobInput>(&entry).map_err(at)
}

/// A refusal of bundle job `i`, its field named in the bundle:
/// `jobs[2].trigger.expr`.
pub fn field_at(e: FieldError, i: usize) -> FieldError {
    FieldError::new(format!("jobs[{i}].{}", e.field), e.message)
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
        let bundle = export(std::slice::from_ref(&stored));
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
        };
        let ids: Vec<&str> = pruned("team-a", &current, &bundle)
            .iter()
            .map(|j| j.id.as_str())
            .collect();
        assert_eq!(ids, ["gone"]);
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
