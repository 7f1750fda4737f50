//! The CLI's HTTP client: the service's answers as JSON, its refusals
//! (`application/problem+json`) as errors that say the status and why.

use anyhow::{Context, bail};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use super::Remote;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    reason: Option<String>,
}

impl Client {
    pub fn new(remote: &Remote) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = remote.url.trim_end_matches('/').to_string();
        url::Url::parse(&base).with_context(|| format!("CRONHOOK_URL {base:?} is not a URL"))?;
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(120))
                .build()?,
            base,
            token: remote.token.clone().filter(|t| !t.is_empty()),
            reason: remote.reason.clone(),
        })
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(reason) = &self.reason {
            request = request.header("cronhook-reason", reason);
        }
        request
    }

    async fn answer(&self, request: RequestBuilder, what: &str) -> anyhow::Result<Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("{what}: no answer from {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|p| p["detail"].as_str().map(str::to_string))
            .unwrap_or(text);
        bail!("{what}: {status}: {detail}")
    }

    /// GET `path` as JSON.
    pub async fn json(&self, path: &str) -> anyhow::Result<Value> {
        let what = format!("GET {path}");
        let response = self.answer(self.request(Method::GET, path), &what).await?;
        Ok(response.json().await?)
    }

    /// GET `path` as text.
    pub async fn text(&self, path: &str) -> anyhow::Result<String> {
        let what = format!("GET {path}");
        let response = self.answer(self.request(Method::GET, path), &what).await?;
        Ok(response.text().await?)
    }

    /// `method` on `path` with a JSON body (or none); the answer's JSON, or
    /// null for an empty one.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let what = format!("{method} {path}");
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = self.answer(request, &what).await?;
        let text = response.text().await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `method` on `path` with a body of `content_type`; the answer's JSON.
    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> anyhow::Result<Value> {
        let what = format!("{method} {path}");
        let request = self
            .request(method, path)
            .header("content-type", content_type)
            .body(body);
        let response = self.answer(request, &what).await?;
        Ok(response.json().await?)
    }
}
