//! Who is looking at the dashboard: a token login opens a server-side
//! session (DESIGN.md §8) whose random id an `HttpOnly`, `SameSite=Strict`
//! cookie holds (`Secure` behind HTTPS) and stands for the `Authorization`
//! header on `/ui` paths; the API token never reaches the browser again.
//! The session ends after 12 hours, or at sign-out, or with its token.
//! Its forms carry the CSRF token kept with it (before sign-in, and while
//! the API is open, a double-submit cookie's).

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use maud::{Markup, html};
use rand::Rng;
use serde::Deserialize;

use super::render;
use crate::access::Denied;
use crate::api::error::ApiError;
use crate::domain::auth::{self, Access, Caller, Role};
use crate::state::AppState;
use crate::store::NewSession;

const SESSION_COOKIE: &str = "cronhook_session";
const CSRF_COOKIE: &str = "cronhook_csrf";

/// A page's failure: sign in first, or a page that says what went wrong.
#[derive(Debug)]
pub enum UiError {
    SignIn,
    Page(StatusCode, String),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        if let ApiError::Unauthorized(_) = e {
            return UiError::SignIn;
        }
        if let ApiError::Internal(inner) = &e {
            tracing::error!(error = format!("{inner:#}"), "dashboard request failed");
        }
        let problem = e.problem();
        let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST);
        UiError::Page(status, problem.detail)
    }
}

impl From<crate::access::Denied> for UiError {
    fn from(e: crate::access::Denied) -> Self {
        ApiError::from(e).into()
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<FormRejection> for UiError {
    fn from(e: FormRejection) -> Self {
        UiError::Page(
            StatusCode::BAD_REQUEST,
            format!("the form is incomplete: {e}"),
        )
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::SignIn => Redirect::to("/ui/login").into_response(),
            UiError::Page(status, detail) => {
                let title = status.canonical_reason().unwrap_or("Error");
                let body = html! {
                    h1 { (status.as_u16()) " " (title) }
                    p.problem role="alert" { (detail) }
                    p { a href="/ui" { "Back to the jobs" } }
                };
                (status, render::bare_page(title, body)).into_response()
            }
        }
    }
}

/// On `/ui` only: a session cookie stands for `Authorization: Bearer`,
/// so the API's own checks (and its event stream) serve the dashboard.
/// The API never reads the cookie: a page elsewhere cannot spend it. Only
/// a session id is taken from it, never a token.
pub async fn bearer_from_cookie(mut request: Request, next: Next) -> Response {
    let headers = request.headers_mut();
    if !headers.contains_key(header::AUTHORIZATION)
        && let Some(id) = cookie_value(headers, SESSION_COOKIE).filter(|id| auth::is_session(id))
        && let Ok(value) = HeaderValue::from_str(&format!("Bearer {id}"))
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    next.run(request).await
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// A cookie of the dashboard's: never read by scripts, never sent from
/// another site, only under `/ui`, and over HTTPS only when the request
/// came so (through a proxy that says `X-Forwarded-Proto: https`) or
/// `--cookie-secure` says so.
fn ui_cookie(name: &'static str, value: String, https: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(https)
        .path("/ui")
        .build()
}

/// Whether the dashboard's cookies are `Secure`: always with
/// `--cookie-secure`, else when the request came over HTTPS.
fn secure_cookies(app: &AppState, headers: &HeaderMap) -> bool {
    app.cookie_secure || behind_https(headers)
}

/// Whether the browser's request reached a proxy over HTTPS.
fn behind_https(headers: &HeaderMap) -> bool {
    let said = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    said("x-forwarded-proto").is_some_and(|p| p.split(',').next().map(str::trim) == Some("https"))
        || said("forwarded").is_some_and(|f| f.contains("proto=https"))
}

fn set_cookie(response: &mut Response, cookie: &Cookie<'_>) {
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The person looking: their tenant and role, and the CSRF token their
/// forms carry.
pub struct Viewer {
    pub caller: Caller,
    /// Signed in with a token, so a sign-out button shows.
    pub signed_in: bool,
    pub csrf: String,
    /// The CSRF cookie is new: the page sets it.
    new_csrf: bool,
    https: bool,
}

impl Viewer {
    /// Anyone who may read: 303 to the login page without a valid session
    /// (or token).
    pub async fn read(app: &AppState, headers: &HeaderMap) -> Result<Self, UiError> {
        let caller = app.auth.authorize(headers, Access::Read).await?;
        let (csrf, new_csrf) = match app.auth.session(headers).await? {
            Some(session) => (session.csrf, false),
            None => match cookie_value(headers, CSRF_COOKIE) {
                Some(token) => (token, false),
                None => (new_csrf_token(), true),
            },
        };
        Ok(Self {
            caller,
            signed_in: headers.contains_key(header::AUTHORIZATION),
            csrf,
            new_csrf,
            https: secure_cookies(app, headers),
        })
    }

    /// Someone who may change things, whose form came from our own page:
    /// it carries the session's CSRF token.
    pub async fn write(
        app: &AppState,
        headers: &HeaderMap,
        form_csrf: &str,
    ) -> Result<Self, UiError> {
        let viewer = Self::read(app, headers).await?;
        same_csrf(!viewer.new_csrf, &viewer.csrf, form_csrf)?;
        viewer.able_to_write("this")
    }

    /// The viewer, if they may change things; else a 403 saying that
    /// `what` needs a write or root token.
    pub fn able_to_write(self, what: &str) -> Result<Self, UiError> {
        if self.can_write() {
            return Ok(self);
        }
        Err(UiError::Page(
            StatusCode::FORBIDDEN,
            format!(
                "{what} needs a write or root token; you signed in with a {} token",
                self.role()
            ),
        ))
    }

    pub fn can_write(&self) -> bool {
        auth::allows(self.caller.role, &self.caller.scopes, Access::Write)
    }

    /// A whole page; `live` is the event stream's query that refreshes it.
    pub fn page(&self, title: &str, live: Option<&str>, body: Markup) -> Response {
        let mut response = render::page(self, title, live, body).into_response();
        if self.new_csrf {
            let cookie = ui_cookie(CSRF_COOKIE, self.csrf.clone(), self.https);
            set_cookie(&mut response, &cookie);
        }
        response
    }

    pub fn role(&self) -> Role {
        self.caller.role
    }
}

fn new_csrf_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Before sign-in, the form's token must equal the cookie's: another site
/// can make a browser post a form, but cannot read or set our cookie to
/// match it.
fn check_csrf(headers: &HeaderMap, form_csrf: &str) -> Result<(), UiError> {
    match cookie_value(headers, CSRF_COOKIE) {
        Some(cookie) => same_csrf(true, &cookie, form_csrf),
        None => same_csrf(false, "", form_csrf),
    }
}

/// The form's CSRF token is `expected` (when there is one to expect).
fn same_csrf(known: bool, expected: &str, form_csrf: &str) -> Result<(), UiError> {
    let (a, b) = (expected.as_bytes(), form_csrf.as_bytes());
    // Constant time: the comparison does not tell how much matched.
    let same =
        known && a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(UiError::Page(
            StatusCode::FORBIDDEN,
            "this form's CSRF token does not match this browser's: reload the page and try again"
                .into(),
        ))
    }
}

/// A form with nothing but its CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    csrf: String,
    token: String,
}

/// The login form; with tokens off, a note that none is needed.
pub async fn login_page(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    let required = app.auth.required().await?;
    Ok(login_form(&app, &headers, required, None))
}

fn login_form(
    app: &AppState,
    headers: &HeaderMap,
    required: bool,
    problem: Option<&str>,
) -> Response {
    let (csrf, new_csrf) = match cookie_value(headers, CSRF_COOKIE) {
        Some(token) => (token, false),
        None => (new_csrf_token(), true),
    };
    let body = html! {
        h1 { "Sign in" }
        @if !required {
            p { "This service is open on loopback: no token is needed. "
                a href="/ui" { "Go to the jobs" } "." }
        }
        @if let Some(problem) = problem {
            p.problem role="alert" { (problem) }
        }
        form.login method="post" action="/ui/login" {
            input type="hidden" name="csrf" value=(csrf);
            label for="token" { "API token" }
            input #token type="password" name="token" autocomplete="off" required placeholder="chk_…";
            button type="submit" { "Sign in" }
        }
        p.hint { "Make a token with " code { "cronhook token create --role read" } "; a read token shows no actions." }
    };
    let status = if problem.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let mut response = (status, render::bare_page("Sign in", body)).into_response();
    if new_csrf {
        set_cookie(
            &mut response,
            &ui_cookie(CSRF_COOKIE, csrf, secure_cookies(app, headers)),
        );
    }
    response
}

/// Checks the token as the API would, then opens a session for it: the
/// cookie holds the session's id, never the token.
pub async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form?;
    check_csrf(&headers, &form.csrf)?;
    let token = form.token.trim();
    let mut presented = HeaderMap::new();
    let caller = match HeaderValue::from_str(&format!("Bearer {token}")) {
        Ok(value) => {
            presented.insert(header::AUTHORIZATION, value);
            app.auth.caller(&presented).await
        }
        Err(_) => Err(Denied::Unauthorized("unknown or revoked token".into())),
    };
    match caller {
        Ok(caller) => {
            let Some(token_id) = caller.token.clone() else {
                return Err(UiError::SignIn);
            };
            let (id, hash) = auth::generate_session();
            let lifetime = auth::SESSION_LIFETIME;
            app.store
                .create_session(&NewSession {
                    hash,
                    token_id,
                    csrf: new_csrf_token(),
                    expires_at: chrono::Utc::now()
                        + chrono::TimeDelta::from_std(lifetime).unwrap_or_default(),
                })
                .await?;
            tracing::info!(tenant = %caller.tenant, role = %caller.role, "dashboard sign-in");
            let mut response = Redirect::to("/ui").into_response();
            let mut cookie = ui_cookie(SESSION_COOKIE, id, secure_cookies(&app, &headers));
            cookie.set_max_age(cookie::time::Duration::seconds(lifetime.as_secs() as i64));
            set_cookie(&mut response, &cookie);
            Ok(response)
        }
        Err(Denied::Unauthorized(why)) => {
            let required = app.auth.required().await?;
            Ok(login_form(&app, &headers, required, Some(&why)))
        }
        Err(other) => Err(other.into()),
    }
}

/// Ends the session: its row is deleted (the id no longer opens anything,
/// wherever it was copied), and the cookie forgotten.
pub async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, UiError> {
    let Form(form) = form?;
    match app.auth.session(&headers).await? {
        Some(session) => same_csrf(true, &session.csrf, &form.csrf)?,
        None => check_csrf(&headers, &form.csrf)?,
    }
    if let Some(id) = cookie_value(&headers, SESSION_COOKIE) {
        let hash = auth::token_hash(&id);
        app.store.delete_session(&hash).await?;
        app.auth.session_ended(&hash);
        tracing::info!("dashboard sign-out");
    }
    let mut response = Redirect::to("/ui/login").into_response();
    let mut gone = ui_cookie(
        SESSION_COOKIE,
        String::new(),
        secure_cookies(&app, &headers),
    );
    gone.make_removal();
    set_cookie(&mut response, &gone);
    Ok(response)
}
