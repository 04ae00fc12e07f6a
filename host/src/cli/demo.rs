//! `verge demo`: build the examples, deploy each on its own route in a fresh
//! embedded data dir, serve them, print the URLs to try.

use super::manifest::ManifestFile;
use super::serve::{Tuning, run_until_signal};
use crate::daemon::{self, PlatformConfig};
use crate::storage::records::{AppManifest, LimitOverrides};
use crate::tenancy::registry::VarKind;
use anyhow::Context as _;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Options of `verge demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address for the data plane.
    #[arg(long, default_value = "127.0.0.1:8080", env = "VERGE_LISTEN")]
    pub listen: SocketAddr,
    /// Address for the admin API.
    #[arg(long, default_value = "127.0.0.1:9900")]
    pub admin_listen: SocketAddr,
    /// The examples workspace.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))]
    pub examples: PathBuf,
    /// The demo's data dir; emptied at start.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/verge-demo"))]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub tuning: Tuning,
}

pub(super) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = args
        .tuning
        .daemon_config(args.listen, &super::settings::DaemonFile::default())?;
    let args = DemoArgs {
        examples: std::fs::canonicalize(&args.examples)
            .with_context(|| format!("finding the examples in {}", args.examples.display()))?,
        data_dir: clean(&args.data_dir),
        ..args
    };
    println!(
        "verge: building the examples in {} ...",
        args.examples.display()
    );
    let target_dir = args.examples.join("../target/guests");
    let examples = args.examples.clone();
    let mut artifacts = tokio::task::spawn_blocking(move || {
        crate::guest_build::build(&examples, Some(&target_dir))
    })
    .await??;
    artifacts.sort_by(|a, b| a.package.cmp(&b.package));
    if args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("emptying {}", args.data_dir.display()))?;
    }
    let platform = PlatformConfig {
        data_dir: args.data_dir.clone(),
        admin_listen: args.admin_listen,
        operator_token: None,
        caps: Default::default(),
        start_empty: false,
        secrets_key_file: None,
        previous_secrets_key_file: None,
        public_url: None,
        cluster: None,
    };
    let running = daemon::start_platform(&config, &platform).await?;
    // The image example's originals and the aggregate example's parts: a
    // small origin on loopback, reachable by tenant `demo` only through its
    // outbound grant for that one port.
    let origin = serve_samples(vec![
        args.examples.join("image/sample"),
        args.examples.join("aggregate/sample"),
    ])
    .await?;
    let registry = running
        .registry
        .clone()
        .context("the platform has a registry")?;
    registry
        .create_tenant(
            "demo".into(),
            LimitOverrides::default(),
            Vec::new(),
            vec![format!("127.0.0.1/32:{}", origin.port())],
        )
        .await?;
    let port = running.addr.port();
    // Examples that take an admin token (redirect's link API) get this one.
    let admin_token = crate::tenancy::tokens::new_operator_token()?.replace("verge_op_", "demo_");
    // The auth example verifies HS256 tokens with this key.
    let jwt_secret = crate::tenancy::tokens::new_operator_token()?.replace("verge_op_", "jwt_");
    println!(
        "verge: {} examples deployed for tenant `demo`:",
        artifacts.len()
    );
    for artifact in &artifacts {
        let name = artifact.package.clone();
        // The example's own verge.toml (kv stores, config); its route is
        // always NAME.localhost here.
        let manifest_path = args.examples.join(&name).join("verge.toml");
        let mut manifest = if manifest_path.exists() {
            ManifestFile::read(&manifest_path)?.into_manifest()
        } else {
            AppManifest::default()
        };
        manifest.routes = vec![format!("{name}.localhost")];
        let url = format!("http://{origin}");
        match name.as_str() {
            "image" => {
                manifest.allowed_hosts = vec![url.clone()];
                manifest.config.insert("origin".into(), url);
            }
            "aggregate" => {
                manifest.allowed_hosts = vec![url.clone()];
                for part in ["profile", "posts", "stats"] {
                    manifest
                        .config
                        .insert(format!("{part}-url"), format!("{url}/{part}.json"));
                }
            }
            _ => {}
        }
        registry
            .put_app("demo".into(), name.clone(), manifest)
            .await?;
        for (secret, value) in [("admin-token", &admin_token), ("jwt-secret", &jwt_secret)] {
            registry
                .set_var(
                    "demo".into(),
                    name.clone(),
                    VarKind::Secret,
                    secret.into(),
                    Some(value.clone()),
                )
                .await?;
        }
        let bytes = std::fs::read(&artifact.path)?;
        registry
            .upload("demo".into(), name.clone(), bytes, true)
            .await?;
        let path = match name.as_str() {
            "redirect" => "/docs",
            "image" => "/img/photo.png?w=160&fmt=webp",
            "aggregate" => "/users/ada",
            _ => "/",
        };
        println!("  {name:<10} curl -i http://{name}.localhost:{port}{path}");
    }
    println!(
        "  (or without *.localhost resolution: curl -i -H 'Host: NAME.localhost' http://{}/x)",
        running.addr
    );
    println!("verge: the examples' admin-token secret is {admin_token}, e.g.");
    println!(
        "  curl -i -X POST -H 'authorization: Bearer {admin_token}' -d '{{\"slug\":\"docs\",\"url\":\"https://example.com/docs\",\"permanent\":true}}' http://redirect.localhost:{port}/api/links"
    );
    println!("  curl -i http://redirect.localhost:{port}/docs");
    println!(
        "verge: the image example resizes originals, and the aggregate example merges three parts, from a demo origin on http://{origin} (examples/*/sample/); in production, set their origins and allowed_hosts"
    );
    println!("verge: a token the auth example accepts (sub demo-user, valid 24 h):");
    println!(
        "  curl -i -H 'authorization: Bearer {}' http://auth.localhost:{port}/",
        demo_jwt(&jwt_secret)
    );
    if let Some(admin) = running.admin_addr {
        println!(
            "verge: admin API on http://{admin}; operator token in {}",
            args.data_dir.join(daemon::OPERATOR_TOKEN_FILE).display()
        );
    }
    println!("verge: ready; stop with Ctrl-C");
    run_until_signal(running).await
}

/// Serves the files of `dirs` (by name, no subdirectories; the first dir
/// that has it) on a loopback port: the demo's stand-in for the examples'
/// origins.
async fn serve_samples(dirs: Vec<PathBuf>) -> anyhow::Result<SocketAddr> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the demo origin")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let dirs = dirs.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let name = req.uri().path().trim_start_matches('/').to_owned();
                        let found = (!name.contains('/') && !name.starts_with('.'))
                            .then(|| {
                                dirs.iter()
                                    .find_map(|dir| std::fs::read(dir.join(&name)).ok())
                            })
                            .flatten();
                        let response = match found {
                            Some(bytes) => {
                                let mut res = hyper::Response::new(Full::new(Bytes::from(bytes)));
                                let kind = match name.rsplit_once('.').map(|(_, ext)| ext) {
                                    Some("png") => "image/png",
                                    Some("json") => "application/json",
                                    _ => "application/octet-stream",
                                };
                                res.headers_mut().insert(
                                    http::header::CONTENT_TYPE,
                                    http::HeaderValue::from_static(kind),
                                );
                                res
                            }
                            None => {
                                let mut res = hyper::Response::new(Full::new(Bytes::from_static(
                                    b"not found\n",
                                )));
                                *res.status_mut() = http::StatusCode::NOT_FOUND;
                                res
                            }
                        };
                        async move { Ok::<_, std::convert::Infallible>(response) }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// An HS256 JWT for the auth example's demo config (its verge.toml's
/// issuer and audience), signed with `secret`.
fn demo_jwt(secret: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = crate::storage::records::now_secs();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "sub": "demo-user",
        "iss": "https://issuer.example",
        "aud": "verge-demo",
        "iat": now,
        "exp": now + 24 * 3600,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = crate::tenancy::tokens::hmac_sha256(
        secret.as_bytes(),
        format!("{header}.{claims}").as_bytes(),
    );
    format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// `a/b/../c` → `a/c` without touching the filesystem (the dir may not exist).
fn clean(path: &std::path::Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}
