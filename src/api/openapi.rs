//! The OpenAPI document: derived from the handlers and types, then
//! completed in one place with what every operation shares, so that the
//! document lists every status the extractors can answer, with an example
//! each, and the exact form of every path id.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

use super::error::PROBLEM_JSON;
use super::pagination::RUN_CURSOR_PATTERN;
use super::schema::{components, job_id_schema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cronhook",
        description = "A scheduling service: cron, interval and date jobs delivered as signed webhooks. \
Errors are `application/problem+json` whose `detail` names the field and the reason.",
        license(name = "MIT"),
    ),
    tags(
        (name = "jobs", description = "Jobs: a trigger and an HTTP target"),
        (name = "runs", description = "Run history, attempts, and running a job now"),
        (name = "triggers", description = "Fire times of a trigger, before a job uses it"),
        (name = "calendars", description = "Calendars: holidays, business days and time windows that triggers exclude or keep to; the agenda"),
        (name = "monitors", description = "Monitor-only jobs: ping URLs for work Cronhook does not start (a crontab line), no API token"),
        (name = "alerts", description = "Alerts: when a job's runs failed, were missed, started late, ran too long or too short"),
        (name = "flows", description = "Flow keys: limits shared by many jobs' runs (in flight at once, a rate)"),
        (name = "instances", description = "The processes of the service sharing one database"),
        (name = "events", description = "What happened: the event log, its live stream, and subscriptions that deliver events as webhooks"),
        (name = "audit", description = "Who changed what, when, from where and why; refused calls (write or root tokens)"),
        (name = "tokens", description = "API tokens (root only)"),
        (name = "tenants", description = "Quotas per tenant (root only)"),
        (name = "health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

/// Problems every operation of a kind can answer, by status: what causes
/// them, and an example body.
fn problem(status: u16, description: &str, detail: &str, field: Option<&str>) -> (String, Value) {
    let title = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut example =
        json!({"type": "about:blank", "title": title, "status": status, "detail": detail});
    if let Some(field) = field {
        example["field"] = json!(field);
    }
    (
        status.to_string(),
        json!({
            "description": description,
            "content": {PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "example": example
            }}
        }),
    )
}

fn body_problems() -> Vec<(String, Value)> {
    vec![
        problem(
            400,
            "The body is not JSON",
            "malformed JSON: EOF while parsing an object at line 1 column 12",
            None,
        ),
        problem(
            413,
            "The body is over 1 MiB",
            "request body is larger than 1048576 bytes",
            None,
        ),
        problem(
            415,
            "The body is not `application/json`",
            "expected a JSON body with content-type: application/json",
            None,
        ),
        problem(
            422,
            "A field is invalid; `detail` and `field` say which and why",
            "trigger.expr: expected 5 or 6 fields (6 with leading seconds), got 4",
            Some("trigger.expr"),
        ),
    ]
}

fn job_id_problems() -> Vec<(String, Value)> {
    vec![
        problem(
            404,
            "No such job",
            "no job with id \"nightly-report\"",
            None,
        ),
        problem(
            422,
            "The path's id is not a job id",
            "id: contains '/'; only A-Z a-z 0-9 . _ : - are allowed",
            Some("id"),
        ),
    ]
}

/// What any operation behind a token can answer.
fn auth_problems() -> Vec<(String, Value)> {
    vec![
        problem(
            401,
            "No valid token where one is needed (`WWW-Authenticate: Bearer`)",
            "unknown or revoked token",
            None,
        ),
        problem(
            403,
            "The token's role does not allow this, it names another tenant, or a cross-site request would change something",
            "this operation needs a write or root token; this one is read",
            None,
        ),
        problem(
            421,
            "While the API is open without a token, a `Host` other than its own address or a loopback name",
            "this API, open without a token, answers only to its own address and loopback names, not Host \"evil.example:8080\"; add the name with --allowed-hosts, or make a token",
            None,
        ),
    ]
}

/// What a request that would change something can also answer: a body
/// that is not JSON.
fn change_problems() -> Vec<(String, Value)> {
    vec![problem(
        415,
        "A body that is not `application/json`",
        "a request body must be JSON, with content-type: application/json",
        None,
    )]
}

/// Operations that act on one tenant's jobs and runs (and so take
/// `cronhook-tenant`).
fn is_tenant_scoped(path: &str) -> bool {
    ["/v1/jobs", "/v1/runs", "/v1/events", "/v1/subscriptions"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
}

fn query_problems() -> Vec<(String, Value)> {
    vec![
        problem(
            400,
            "The query string does not parse",
            "query string: Failed to deserialize query string: duplicate field `limit`",
            None,
        ),
        problem(
            422,
            "A parameter is invalid",
            "limit: must be an integer from 1 to 500, got \"0\"",
            Some("limit"),
        ),
    ]
}

/// The document as served at `/openapi.json` and printed by
/// `cronhook openapi`. It stays JSON: utoipa's own types cannot hold a
/// schema without a `type` (the "any JSON value" of a target's body).
pub fn complete(document: Document) -> Value {
    let mut doc = serde_json::to_value(&document).expect("the document serializes");

    // The schemas the derive cannot say exactly replace its own.
    let schemas = doc["components"]["schemas"]
        .as_object_mut()
        .expect("components");
    for (name, schema) in components() {
        schemas.insert(name.to_string(), schema);
    }
    schemas.remove("TriggerKind");
    // A target's body is any JSON value, and its method one of the five.
    let target = &mut schemas["JobTarget"]["properties"];
    target["body"] = json!({"description": "The body: any JSON value (a string is sent as text); absent when there is none."});
    target["method"] = json!({"$ref": "#/components/schemas/HttpMethod"});
    target["headers"] = json!({
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "The headers whose values are not secrets, by lower-case name."
    });

    let tenant = &mut schemas["TokenInput"]["properties"]["tenant"];
    let description = tenant["description"].clone();
    *tenant = job_id_schema();
    tenant["type"] = json!(["string", "null"]);
    tenant["description"] = description;
    let id = &mut schemas["JobRequest"]["properties"]["id"];
    let description = id["description"].clone();
    *id = job_id_schema();
    id["type"] = json!(["string", "null"]);
    id["description"] = description;

    doc["components"]["securitySchemes"] = json!({
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token, `chk_…` (`cronhook token create`, or `POST /v1/tokens`). A service on a loopback address with no token in its store needs none."
        }
    });

    let paths = doc["paths"].as_object_mut().expect("paths");
    for (path, item) in paths.iter_mut() {
        for method in ["get", "put", "post", "delete", "patch"] {
            let Some(operation) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            complete_operation(path, method, operation);
        }
    }
    doc
}

fn complete_operation(path: &str, method: &str, operation: &mut Map<String, Value>) {
    let mut shared = Vec::new();
    if path.starts_with("/v1/ping/") {
        // The key in the path is all a ping proves (§11.5).
        operation.insert("security".into(), json!([]));
        shared.extend(auth_problems().into_iter().filter(|(s, _)| s == "421"));
        // A body is optional, and a GET has none.
        if method == "get" {
            operation.remove("requestBody");
        } else if let Some(body) = operation.get_mut("requestBody") {
            body["required"] = json!(false);
        }
    } else if path.starts_with("/v1/") || path == "/metrics" {
        operation.insert("security".into(), json!([{"bearer": []}]));
        shared.extend(auth_problems());
        if method != "get" {
            shared.extend(change_problems());
        }
    }
    // A pause's body (its end and reason, §11.9) may be left out.
    let optional = path.starts_with("/v1/ping/") || path == "/v1/jobs/{id}/pause";
    if let Some(body) = operation.get_mut("requestBody") {
        if optional {
            body["required"] = json!(false);
            // Given, it is an object: `null` is no way to leave it out.
            if let Some(schema) = body.pointer_mut("/content/application~1json/schema")
                && let Some(one) = schema.pointer("/oneOf/0").cloned()
            {
                *schema = one;
            }
        } else {
            // Every body the API reads is required: none at all is a 400 or 415.
            body["required"] = json!(true);
        }
        if !path.starts_with("/v1/ping/") {
            shared.extend(body_problems());
        }
    }
    let parameters = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    let mut completed = Vec::new();
    for mut parameter in parameters {
        match (parameter["in"].as_str(), parameter["name"].as_str()) {
            (Some("path"), Some("id")) if path.starts_with("/v1/jobs/") => {
                parameter["schema"] = job_id_schema();
                shared.extend(job_id_problems());
            }
            (Some("path"), Some("tenant")) if path.starts_with("/v1/tenants/") => {
                parameter["schema"] = job_id_schema();
                shared.push(problem(
                    422,
                    "The path's tenant is not a tenant name",
                    "tenant: contains '/'; only A-Z a-z 0-9 . _ : - are allowed",
                    Some("tenant"),
                ));
            }
            (Some("path"), Some("key")) if path.starts_with("/v1/flows/") => {
                parameter["schema"] = json!({"type": "string", "minLength": 1,
                    "maxLength": crate::domain::flow::MAX_KEY_LEN, "pattern": "^[A-Za-z0-9._:-]+$"});
            }
            (Some("path"), Some("id")) if path.starts_with("/v1/calendars/") => {
                parameter["schema"] =
                    json!({"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"});
            }
            (Some("path"), Some("id")) if path.starts_with("/v1/backfills/") => {
                parameter["schema"] = json!({"type": "string", "format": "uuid"});
            }
            (Some("path"), Some("id")) if path.starts_with("/v1/alerts/") => {
                parameter["schema"] = json!({"type": "string", "format": "uuid"});
            }
            (Some("path"), Some("id")) if path.starts_with("/v1/runs/") => {
                parameter["schema"] = json!({"type": "string", "format": "uuid"});
            }
            (Some("path"), Some("id")) if path.starts_with("/v1/tokens/") => {
                parameter["schema"] = json!({"type": "string", "pattern": "^tok_[0-9a-f]{16}$"});
            }
            (Some("path"), Some("id")) if path.starts_with("/v1/subscriptions/") => {
                // `sub_…` as made by POST, or a name given to PUT.
                parameter["schema"] = job_id_schema();
                shared.push(problem(
                    404,
                    "No such subscription",
                    "no subscription with id \"sub_3f9a1c2b7d4e5f60\"",
                    None,
                ));
            }
            (Some("query"), name) => {
                match name {
                    // Cursors and ids: every text of their form is one.
                    Some("cursor") if path == "/v1/jobs" => {
                        parameter["schema"] = job_id_schema();
                    }
                    // An audit record's id.
                    Some("cursor") if path.starts_with("/v1/audit") => {
                        parameter["schema"] =
                            json!({"type": "string", "pattern": super::pagination::UUID_PATTERN});
                    }
                    Some("cursor") => {
                        parameter["schema"] =
                            json!({"type": "string", "pattern": RUN_CURSOR_PATTERN});
                    }
                    Some("job_id") => {
                        parameter["schema"] = job_id_schema();
                    }
                    Some("status" | "type") => {
                        parameter["schema"]["minItems"] = json!(1);
                    }
                    _ => {}
                }
                shared.extend(query_problems());
            }
            _ => {}
        }
        completed.push(parameter);
    }
    if is_tenant_scoped(path) {
        shared.push(problem(
            422,
            "`cronhook-tenant` is not a tenant name",
            "cronhook-tenant: contains '/'; only A-Z a-z 0-9 . _ : - are allowed",
            Some("cronhook-tenant"),
        ));
        completed.push(json!({
            "name": crate::access::TENANT_HEADER,
            "in": "header",
            "required": false,
            "description": "The tenant a root token acts on (default `default`); another token may name only its own.",
            "schema": job_id_schema(),
        }));
    }
    if !completed.is_empty() {
        operation.insert("parameters".into(), Value::Array(completed));
    }
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses");
    for (status, response) in shared {
        // What an operation says of a status itself comes first.
        responses.entry(status).or_insert(response);
    }
}
