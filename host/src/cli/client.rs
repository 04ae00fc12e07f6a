//! The admin-API client the CLI verbs share: base URL, bearer token, JSON.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where the admin API lives unless a flag, `VERGE_URL` or a profile
/// says otherwise.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9900";

/// How the CLI reaches the admin API. Flags and environment variables win
/// over the saved profile (`verge login`), which wins over the defaults.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The admin API's URL (`http://` is assumed when no scheme is given)
    /// [default: the profile's, else http://127.0.0.1:9900].
    #[arg(long, global = true, env = "VERGE_URL")]
    pub url: Option<String>,
    /// A bearer token: the operator's, or a tenant's [default: the
    /// profile's].
    #[arg(long, global = true, env = "VERGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The saved profile to use (`verge login --profile NAME`) [default:
    /// `default`, when saved].
    #[arg(long, global = true, env = "VERGE_PROFILE")]
    pub profile: Option<String>,
    /// The tenant to act on; defaults to the tenant a tenant token names.
    #[arg(long, global = true, env = "VERGE_TENANT")]
    pub tenant: Option<String>,
    /// Print JSON instead of tables, errors too (`{"error", "status"}` on
    /// stderr).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Where the token in use came from, for messages that say what to fix.
#[derive(Debug, Clone)]
enum TokenSource {
    /// `--token` or `VERGE_TOKEN`.
    Given,
    /// A saved profile.
    Profile(String),
    /// Nowhere.
    Missing,
}

/// A request the admin API refused or could not answer: its status (none
/// when it was never reached) and a message for people.
#[derive(Debug)]
pub struct ApiCallError {
    /// The HTTP status, if the API answered.
    pub status: Option<u16>,
    /// What went wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for ApiCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiCallError {}

/// A connected admin-API client.
pub struct Api {
    base: String,
    token: Option<String>,
    source: TokenSource,
    tenant: Option<String>,
    /// Print JSON instead of tables.
    pub json: bool,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// `url` with `http://` when it names no scheme, without a trailing `/`.
pub fn normalise_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// How often the CLI sends a request again when the API says it may (on
/// top of the server's own attempts): a write storm by other tenants
/// through other nodes must not fail a deploy.
pub const CLI_RETRIES: u32 = 3;

/// A failed call, and whether it may be sent again.
enum Refused {
    /// Nothing was written; the same request may go again.
    Retry(anyhow::Error),
    /// The answer stands.
    Final(anyhow::Error),
}

impl Api {
    /// A client for `args` (and the saved profile, when one applies).
    pub fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let profile = super::profile::load(args.profile.as_deref())?;
        let (token, source) = match (&args.token, &profile) {
            (Some(token), _) => (Some(token.clone()), TokenSource::Given),
            (None, Some((name, p))) => (Some(p.token.clone()), TokenSource::Profile(name.clone())),
            (None, None) => (None, TokenSource::Missing),
        };
        // What `cat token-file` gives has a newline: the token is the rest.
        let token = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        if let Some(t) = &token
            && (t.chars().any(char::is_whitespace) || !t.starts_with("verge_"))
        {
            bail!(
                "the token {} is malformed: Verge tokens look like verge_TENANT_… (from `verge tenants create`) or verge_op_… (the operator's, in DATA_DIR/admin-token on the daemon's machine)",
                source_name(&source)
            );
        }
        let url = args
            .url
            .clone()
            .or_else(|| profile.as_ref().map(|(_, p)| p.url.clone()))
            .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned());
        let tenant = args.tenant.clone().or_else(|| {
            token
                .as_deref()
                .and_then(crate::tenancy::tokens::tenant_of_token)
                .map(str::to_owned)
        });
        Ok(Self {
            base: normalise_url(&url),
            token,
            source,
            tenant,
            json: args.json,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// The tenant to act on, or a clear error.
    pub fn tenant(&self) -> anyhow::Result<&str> {
        self.tenant.as_deref().context(
            "no tenant: pass --tenant (or VERGE_TENANT), or use a tenant token (VERGE_TOKEN, --token or `verge login`)",
        )
    }

    /// Sends a request; returns the JSON answer or fails with the API's reason.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Value> {
        let bytes = self.call_raw(method, path, body).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Sends a request; returns the raw answer or fails with the API's
    /// reason. A refusal the API marks `retry` (another node changed the
    /// same records first; nothing was written) is sent again, up to
    /// [`CLI_RETRIES`] times.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Bytes> {
        // Bytes, so a retry shares the body instead of copying an upload.
        let body = Bytes::from(body.unwrap_or_default());
        let mut attempt = 0;
        loop {
            match self.call_once(method.clone(), path, body.clone()).await {
                Err(Refused::Retry(_)) if attempt < CLI_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                        .await;
                }
                Err(Refused::Retry(err) | Refused::Final(err)) => return Err(err),
                Ok(bytes) => return Ok(bytes),
            }
        }
    }

    async fn call_once(&self, method: Method, path: &str, body: Bytes) -> Result<Bytes, Refused> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method.clone()).uri(&url);
        if let Some(token) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Full::new(body))
            .with_context(|| format!("{url} is not a usable URL"))
            .map_err(Refused::Final)?;
        let res = self.client.request(req).await.map_err(|err| {
            Refused::Final(
                ApiCallError {
                    status: None,
                    message: format!(
                        "cannot reach the admin API at {} ({err}); is `verge serve` running there? Set it with --url, VERGE_URL or `verge login`",
                        self.base
                    ),
                }
                .into(),
            )
        })?;
        let status = res.status();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|err| Refused::Final(err.into()))?
            .to_bytes();
        if !status.is_success() {
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let reason = value["error"].as_str().map_or_else(
                || String::from_utf8_lossy(&bytes).into_owned(),
                str::to_owned,
            );
            let message = match status.as_u16() {
                401 => format!("401 unauthorized: {}", self.unauthorized()),
                403 => format!("403 forbidden: {}", self.forbidden(&reason)),
                code => format!("{method} {path}: {code} {reason}"),
            };
            let err = ApiCallError {
                status: Some(status.as_u16()),
                message,
            }
            .into();
            return Err(match value["retry"].as_bool() {
                Some(true) => Refused::Retry(err),
                _ => Refused::Final(err),
            });
        }
        Ok(bytes)
    }

    fn unauthorized(&self) -> String {
        match self.source {
            TokenSource::Missing => format!(
                "the admin API at {} needs a token: set VERGE_TOKEN, pass --token, or run `verge login`. Tenant tokens come from `verge tenants create`; the operator token is in DATA_DIR/admin-token on the daemon's machine",
                self.base
            ),
            _ => format!(
                "the admin API at {} refused the token {}: it is not one this daemon issued (a deleted tenant, another daemon's data dir?). Tenant tokens come from `verge tenants create`; the operator token is in DATA_DIR/admin-token on the daemon's machine",
                self.base,
                source_name(&self.source)
            ),
        }
    }

    fn forbidden(&self, reason: &str) -> String {
        match self
            .token
            .as_deref()
            .and_then(crate::tenancy::tokens::tenant_of_token)
        {
            Some(tenant) => format!(
                "this needs the operator token (DATA_DIR/admin-token on the daemon's machine), or tenant {tenant}'s own apps: the token {} belongs to tenant {tenant} ({reason})",
                source_name(&self.source)
            ),
            None => format!(
                "the token {} may not do that: {reason}",
                source_name(&self.source)
            ),
        }
    }

    /// Prints `answer` as JSON with `--json`, else `text`.
    pub fn say(&self, answer: &Value, text: &str) {
        if self.json {
            self.print(answer, &[]);
        } else {
            println!("{text}");
        }
    }

    /// Prints `value` as JSON, or as a table of `columns` for people.
    pub fn print(&self, value: &Value, columns: &[&str]) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
            return;
        }
        let rows: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|r| r[i].len())
                    .chain([c.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |values: Vec<String>| {
            let padded: Vec<String> = values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:<w$}"))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(columns.iter().map(|c| c.to_uppercase()).collect());
        for row in cells {
            line(row);
        }
    }
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        Value::Object(map) if map.is_empty() => "-".into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Where the token came from, as the user would name it.
fn source_name(source: &TokenSource) -> String {
    match source {
        TokenSource::Given => "from VERGE_TOKEN or --token".into(),
        TokenSource::Profile(name) => format!("of profile {name}"),
        TokenSource::Missing => "(none given)".into(),
    }
}

#[cfg(test)]
mod retry_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server answering each connection with the next of `answers`
    /// (status, JSON body), counting the requests.
    async fn canned(answers: Vec<(u16, &'static str)>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counted = seen.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await;
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        (format!("http://{addr}"), seen)
    }

    fn api(url: String) -> Api {
        Api::new(&ApiArgs {
            url: Some(url),
            token: Some("verge_op_test".into()),
            profile: None,
            tenant: Some("t".into()),
            json: false,
        })
        .unwrap()
    }

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_refusal_marked_retry_is_sent_again_and_others_are_not() {
        let retry = r#"{"error":"another node changed the same records; retry","retry":true}"#;
        let (url, seen) = canned(vec![(409, retry), (409, retry), (200, r#"{"ok":1}"#)]).await;
        let answer = api(url).call(Method::PUT, "/v1/x", None).await.unwrap();
        assert_eq!(answer["ok"], 1);
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        // A plain 409 (a route another tenant owns) is the answer.
        let (url, seen) = canned(vec![(409, r#"{"error":"taken"}"#), (200, "{}")]).await;
        let err = api(url).call(Method::PUT, "/v1/x", None).await.unwrap_err();
        assert!(err.to_string().contains("taken"), "{err}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        // At most CLI_RETRIES more, then the refusal.
        let answers = vec![(409, retry); CLI_RETRIES as usize + 2];
        let (url, seen) = canned(answers).await;
        assert!(api(url).call(Method::PUT, "/v1/x", None).await.is_err());
        assert_eq!(seen.load(Ordering::SeqCst), CLI_RETRIES as usize + 1);
    }
}
