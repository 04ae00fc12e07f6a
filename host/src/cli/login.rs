//! `verge login`: checks a token against the admin API and saves it, with
//! the URL, as a profile (mode 0600).

use super::client::{Api, ApiArgs, normalise_url};
use super::profile::{self, DEFAULT_PROFILE, Profile, ProfileFile};
use anyhow::Context as _;
use clap::Args;
use http::Method;
use std::io::{IsTerminal as _, Read as _};

/// Options of `verge login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The admin API's URL (`http://` is assumed without a scheme).
    #[arg(long)]
    pub url: String,
    /// The profile to save as.
    #[arg(long, default_value = DEFAULT_PROFILE)]
    pub profile: String,
}

pub(super) async fn run(args: LoginArgs, json: bool) -> anyhow::Result<()> {
    let token = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("token (input hidden): ").context("reading the token")?
    } else {
        let mut text = String::new();
        std::io::stdin()
            .take(4096)
            .read_to_string(&mut text)
            .context("reading the token from stdin")?;
        text
    };
    let url = normalise_url(&args.url);
    let api = Api::new(&ApiArgs {
        url: Some(url.clone()),
        token: Some(token.clone()),
        profile: None,
        tenant: None,
        json,
    })?;
    // Ask something every valid token may ask: a tenant its own record,
    // the operator the tenant list.
    let who = match api.tenant() {
        Ok(tenant) => {
            let tenant = tenant.to_owned();
            api.call(Method::GET, &format!("/v1/tenants/{tenant}"), None)
                .await?;
            format!("tenant {tenant}")
        }
        Err(_) => {
            api.call(Method::GET, "/v1/tenants", None).await?;
            "the operator".to_owned()
        }
    };
    let path = profile::path().context("no config directory: set HOME or VERGE_CONFIG_DIR")?;
    let mut file = ProfileFile::read(&path)?;
    file.profiles.insert(
        args.profile.clone(),
        Profile {
            url: url.clone(),
            token: token.trim().to_owned(),
        },
    );
    file.write(&path)?;
    let text = format!(
        "logged in to {url} as {who}; saved as profile {} in {} (mode 0600)",
        args.profile,
        path.display()
    );
    api.say(
        &serde_json::json!({ "url": url, "profile": args.profile, "as": who, "file": path }),
        &text,
    );
    Ok(())
}
