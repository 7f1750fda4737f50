//! Config as code (DESIGN.md §11.9): `GET /v1/export` writes the tenant's
//! jobs as a bundle, in JSON or YAML; `POST /v1/apply` makes them what a
//! bundle says, with a plan first when asked (`dry_run`).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::Writer;
use super::error::{ApiError, Problem};
use super::extract::{ApiBytes, ApiQuery};
use crate::domain::bundle::{self, Bundle, Plan};
use crate::domain::error::FieldError;
use crate::domain::labels;
use crate::ops::Via;
use crate::state::AppState;

/// A bundle's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

impl Format {
    fn param(raw: Option<&str>) -> Result<Self, FieldError> {
        match raw {
            None | Some("json") => Ok(Format::Json),
            Some("yaml") => Ok(Format::Yaml),
            Some(other) => Err(FieldError::new(
                "format",
                format!("must be json or yaml, got {other:?}"),
            )),
        }
    }

    /// The format a request's `content-type` names, if it is a bundle's.
    fn of_body(headers: &HeaderMap) -> Option<Self> {
        let mime = headers
            .get(header::CONTENT_TYPE)?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" => Some(Format::Json),
            m if is_yaml(m) => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// Whether a media type is YAML's (RFC 9512's, and the common others).
pub fn is_yaml(mime: &str) -> bool {
    matches!(
        mime,
        "application/yaml" | "application/x-yaml" | "text/yaml"
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// Only the jobs this label selector picks (`team=data`).
    selector: Option<String>,
    /// `json` (default) or `yaml`.
    #[param(value_type = Option<String>, pattern = "^(json|yaml)$")]
    format: Option<String>,
}

/// Export the tenant's jobs as a bundle (`apiVersion: cronhook/v1`,
/// `kind: Bundle`), in id order, each in the form `POST /v1/apply` takes.
/// Without a selector it holds the calendars, subscriptions and flow keys
/// defined over the API too; with one, only the jobs it picks.
/// No secret is exported: a sensitive header's value is
/// `{"secret_ref": "<header>"}` and a URL's password `***`; applied back,
/// either keeps the job's value. Needs a write or root token.
#[utoipa::path(
    get, path = "/v1/export", tag = "jobs",
    params(ExportQuery),
    responses(
        (status = 200, description = "The bundle", content(
            (BundleBody = "application/json"),
            (BundleBody = "application/yaml"),
        )),
    )
)]
pub async fn export(
    Writer(caller): Writer,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = Format::param(query.format.as_deref())?;
    let selector = labels::selector_param(query.selector.as_deref())?;
    let bundle = app.ops(&caller.tenant, Via::Api).export(selector).await?;
    Ok(match format {
        Format::Json => (
            [(header::CONTENT_TYPE, "application/json")],
            format!("{:#}\n", bundle),
        )
            .into_response(),
        Format::Yaml => (
            [(header::CONTENT_TYPE, "application/yaml")],
            serde_norway::to_string(&bundle).unwrap_or_default(),
        )
            .into_response(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplyQuery {
    /// `true`: answer the plan and change nothing.
    #[param(value_type = Option<bool>)]
    dry_run: Option<String>,
    /// Delete this owner's jobs (label `cronhook.io/owner=<owner>`) that
    /// the bundle does not hold.
    prune_owner: Option<String>,
}

/// A bundle, as `GET /v1/export` writes it.
#[derive(Debug, ToSchema)]
#[schema(as = Bundle)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BundleBody {
    /// `cronhook/v1`.
    #[schema(
        rename = "apiVersion",
        pattern = "^cronhook/v1$",
        example = "cronhook/v1"
    )]
    api_version: String,
    /// `Bundle`.
    #[schema(pattern = "^Bundle$", example = "Bundle")]
    kind: String,
    /// Jobs in the form `PUT /v1/jobs/{id}` takes, each with its `id`;
    /// none when absent; at most 10,000.
    #[schema(value_type = Option<Vec<Object>>)]
    jobs: Option<Vec<Value>>,
    /// Calendars in the form `PUT /v1/calendars/{id}` takes, each with
    /// its `id`; at most 1,000. Written before the jobs.
    #[schema(value_type = Option<Vec<Object>>)]
    calendars: Option<Vec<Value>>,
    /// Subscriptions in the form `PUT /v1/subscriptions/{id}` takes, each
    /// with its `id`; at most 1,000. Their signing secrets are neither
    /// exported nor changed.
    #[schema(value_type = Option<Vec<Object>>)]
    subscriptions: Option<Vec<Value>>,
    /// Flow keys, each `{key, max_in_flight?, rate?}` as `PUT
    /// /v1/flows/{key}` takes them; at most 1,000.
    #[schema(value_type = Option<Vec<Object>>)]
    flows: Option<Vec<Value>>,
}

/// Make the tenant's jobs what a bundle says, all or nothing, one apply
/// at a time per tenant: each job in it is created or replaced (a `PUT`),
/// and with `prune_owner` the owner's jobs it lacks are deleted; its
/// calendars, flow keys and subscriptions are created or replaced too
/// (never deleted). The answer is the plan: jobs created, updated (with
/// RFC 6902 changes and the next fire times before and after), deleted,
/// unchanged, and the same for each other section. With
/// `dry_run=true` nothing is written. The same bundle applied twice
/// changes nothing the second time. JSON or YAML (`application/yaml`).
#[utoipa::path(
    post, path = "/v1/apply", tag = "jobs",
    params(ApplyQuery),
    request_body(content(
        (BundleBody = "application/json"),
        (BundleBody = "application/yaml"),
    )),
    responses(
        (status = 200, description = "Done, or what a dry run would do", body = Plan),
        (status = 409, description = "A job refuses its change (a monitor made a sender), or was created meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor YAML", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad bundle or job, named by its field (`jobs[2].trigger.expr`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn apply(
    Writer(caller): Writer,
    State(app): State<AppState>,
    ApiQuery(query): ApiQuery<ApplyQuery>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<Plan>, ApiError> {
    let dry_run = match query.dry_run.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(FieldError::new(
                "dry_run",
                format!("must be true or false, got {other:?}"),
            )
            .into());
        }
    };
    let prune_owner = query
        .prune_owner
        .as_deref()
        .map(|owner| {
            labels::check_value(owner).map_err(|m| {
                FieldError::new(
                    "prune_owner",
                    format!("{m} (it is the value of the label {})", bundle::OWNER_LABEL),
                )
            })?;
            Ok::<_, FieldError>(owner)
        })
        .transpose()?
        .filter(|owner| !owner.is_empty());
    let doc: Value = match Format::of_body(&headers) {
        Some(Format::Json) => serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("the bundle is not JSON: {e}")))?,
        Some(Format::Yaml) => {
            // A 422, not a 400: YAML holds what a bundle cannot (integers
            // past 64 bits, keys that are not text), and says where.
            let yaml: serde_norway::Value = serde_norway::from_slice(&body)
                .map_err(|e| FieldError::new("body", format!("is not a YAML bundle: {e}")))?;
            serde_json::to_value(yaml).map_err(|e| {
                FieldError::new("body", format!("holds a value a bundle cannot: {e}"))
            })?
        }
        None => {
            return Err(ApiError::UnsupportedMediaType(
                "expected a bundle as application/json or application/yaml".into(),
            ));
        }
    };
    super::extract::no_nul(&doc)?;
    let bundle = Bundle::parse(&doc)?;
    bundle::check_prune(&doc, prune_owner)?;
    let plan = app
        .ops(&caller.tenant, Via::Api)
        .apply(&bundle, prune_owner, dry_run)
        .await?;
    Ok(Json(plan))
}
