//! What a browser must not be able to do (DESIGN.md §8): reach the open
//! local API under another name (DNS rebinding: 421), change anything
//! from another origin (CSRF: 403), or send a body that is not JSON
//! (a form or `text/plain` post needs no CORS preflight: 415). The
//! dashboard's forms under `/ui` are the exception to the last: each
//! carries a CSRF token that `ui/session.rs` checks.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::access::{AllowedHosts, normalise};
use crate::state::AppState;

/// A `Host` header's name and port (none when it gives none).
fn split_host(value: &str) -> (&str, Option<&str>) {
    if let Some(rest) = value.strip_prefix('[') {
        // [v6]:port
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (value, None),
        };
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (value, None),
    }
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Why a state-changing request looks cross-site, if it does: an `Origin`
/// other than the API's own (`Host`), or `Sec-Fetch-Site: cross-site`.
fn cross_site(headers: &HeaderMap) -> Option<String> {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Some("Sec-Fetch-Site: cross-site".into());
    }
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .zip(host)
        .is_some_and(|(origin, host)| {
            let (name, port) = split_host(host);
            let origin_port = origin.port_or_known_default();
            origin.host_str().map(normalise) == Some(normalise(name))
                && match port {
                    Some(port) => port.parse::<u16>().ok() == origin_port,
                    None => origin.port().is_none(),
                }
        });
    (!same).then(|| {
        format!(
            "Origin {} is not this API's own",
            String::from_utf8_lossy(origin.as_bytes())
        )
    })
}

/// Whether a request carries a body that is not JSON.
/// `POST /v1/calendars/{id}/import` takes an iCalendar file (§11.4): a
/// content type no form can send, so a browser asks first across sites.
fn is_calendar_import(request: &Request) -> bool {
    let path = request.uri().path();
    super::extract::is_icalendar(request.headers())
        && path.starts_with("/v1/calendars/")
        && path.ends_with("/import")
}

/// `POST /v1/apply` takes a YAML bundle too (§11.9): a content type no
/// form can send, so a browser asks first across sites.
fn is_yaml_apply(request: &Request) -> bool {
    request.uri().path() == "/v1/apply"
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| super::bundles::is_yaml(&m.trim().to_ascii_lowercase()))
}

fn non_json_body(headers: &HeaderMap) -> bool {
    match headers.get(header::CONTENT_TYPE) {
        Some(value) => {
            let mime = value
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            !(mime == "application/json" || mime.ends_with("+json"))
        }
        None => {
            headers.contains_key(header::TRANSFER_ENCODING)
                || headers
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|n| n.trim() != "0")
        }
    }
}

fn is_ping(path: &str) -> bool {
    path.starts_with("/v1/ping/")
}

fn is_dashboard(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The guard, before every route but the health checks.
pub async fn guard(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    let checked = match app.auth.required().await {
        Ok(tokens_required) => check(&app.allowed_hosts, tokens_required, &request),
        Err(e) => Err(e.into()),
    };
    match checked {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn check(
    allowed_hosts: &AllowedHosts,
    tokens_required: bool,
    request: &Request,
) -> Result<(), ApiError> {
    let headers = request.headers();
    // With tokens on, a page cannot call the API without one: any Host is
    // served (a proxy's name, say).
    if !tokens_required {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().host())
            .unwrap_or("");
        let (name, _) = split_host(host);
        if !allowed_hosts.allows(name) {
            return Err(ApiError::Misdirected(format!(
                "this API, open without a token, answers only to its own address and loopback names, not Host {host:?}; add the name with --allowed-hosts, or make a token"
            )));
        }
    }
    // A ping (§11.5) may carry any body (a log's tail); its unguessable
    // key, not a cookie, is what it proves, so no other site can forge it.
    if is_state_changing(request.method()) && !is_ping(request.uri().path()) {
        if let Some(why) = cross_site(headers) {
            return Err(ApiError::Forbidden(format!(
                "a cross-site request may not change anything ({why})"
            )));
        }
        // The dashboard's forms are form-encoded; each carries a CSRF token.
        if non_json_body(headers)
            && !is_dashboard(request.uri().path())
            && !is_calendar_import(request)
            && !is_yaml_apply(request)
        {
            let expected = if request.uri().path() == "/v1/apply" {
                "a bundle must be JSON or YAML, with content-type: application/json or application/yaml"
            } else {
                "a request body must be JSON, with content-type: application/json"
            };
            return Err(ApiError::UnsupportedMediaType(expected.into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn allowed_hosts_are_loopback_names_the_listen_host_and_the_extra_ones() {
        let allowed = AllowedHosts::new("0.0.0.0", &["Cron.Example.com".into()]);
        for host in [
            "localhost",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "[::1]",
            "app.localhost",
            "cron.example.com.",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in ["evil.example", "10.0.0.1", "", "localhost.evil.example"] {
            assert!(!allowed.allows(host), "{host}");
        }
        assert!(AllowedHosts::new("10.0.0.1", &[]).allows("10.0.0.1"));
        assert_eq!(split_host("[::1]:8080"), ("::1", Some("8080")));
        assert_eq!(split_host("example.com:80"), ("example.com", Some("80")));
        assert_eq!(split_host("example.com"), ("example.com", None));
    }

    #[test]
    fn cross_site_is_another_origin_or_what_the_browser_says() {
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            cross_site(&headers(&[host])),
            None,
            "no Origin: not a browser's form"
        );
        assert_eq!(
            cross_site(&headers(&[host, ("origin", "http://127.0.0.1:8080")])),
            None
        );
        assert!(cross_site(&headers(&[host, ("origin", "http://evil.example")])).is_some());
        assert!(cross_site(&headers(&[host, ("origin", "http://127.0.0.1:9090")])).is_some());
        assert!(cross_site(&headers(&[host, ("origin", "null")])).is_some());
        assert!(cross_site(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_some());
        assert_eq!(
            cross_site(&headers(&[host, ("sec-fetch-site", "same-origin")])),
            None
        );
        assert_eq!(
            cross_site(&headers(&[
                ("host", "cron.example.com"),
                ("origin", "https://cron.example.com")
            ])),
            None
        );
    }

    #[test]
    fn bodies_must_be_json() {
        assert!(!non_json_body(&headers(&[])));
        assert!(!non_json_body(&headers(&[("content-length", "0")])));
        assert!(!non_json_body(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!non_json_body(&headers(&[(
            "content-type",
            "application/merge-patch+json"
        )])));
        assert!(non_json_body(&headers(&[("content-type", "text/plain")])));
        assert!(non_json_body(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
        assert!(non_json_body(&headers(&[("content-length", "12")])));
    }
}
