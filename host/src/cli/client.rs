//! The admin-API client the CLI verbs share: base URL, bearer token, JSON.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Args;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How the CLI reaches the admin API.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The admin API's URL.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:9900",
        env = "VERGE_URL"
    )]
    pub url: String,
    /// A bearer token: the operator's, or a tenant's.
    #[arg(long, global = true, env = "VERGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The tenant to act on; defaults to the tenant a tenant token names.
    #[arg(long, global = true, env = "VERGE_TENANT")]
    pub tenant: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A connected admin-API client.
pub struct Api {
    base: String,
    token: Option<String>,
    tenant: Option<String>,
    /// Print JSON instead of tables.
    pub json: bool,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    /// A client for `args`.
    pub fn new(args: &ApiArgs) -> Self {
        let tenant = args.tenant.clone().or_else(|| {
            args.token
                .as_deref()
                .and_then(crate::tenancy::tokens::tenant_of_token)
                .map(str::to_owned)
        });
        Self {
            base: args.url.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            tenant,
            json: args.json,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The tenant to act on, or a clear error.
    pub fn tenant(&self) -> anyhow::Result<&str> {
        self.tenant
            .as_deref()
            .context("no tenant: pass --tenant (or VERGE_TENANT), or use a tenant token")
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

    /// Sends a request; returns the raw answer or fails with the API's reason.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Bytes> {
        let url = format!("{}{path}", self.base);
        let mut req = Request::builder().method(method.clone()).uri(&url);
        if let Some(token) = &self.token {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let res = self
            .client
            .request(req)
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = res.status();
        let bytes = res.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let reason = value["error"].as_str().map_or_else(
                || String::from_utf8_lossy(&bytes).into_owned(),
                str::to_owned,
            );
            bail!("{method} {path}: {} {reason}", status.as_u16());
        }
        Ok(bytes)
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
