//! `agentlab token create|list|revoke|scopes`: API tokens of the remote API. Managed on the
//! daemon's Unix socket only.

use agentlab_core::api_token::{ApiToken, NewApiToken, SCOPES, Scope, parse_ttl};

use crate::ctx::Ctx;
use crate::exit::Code;
use crate::output::{Table, dash, print_json, time};

/// Arguments of `agentlab token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub cmd: TokenCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCmd {
    /// Issue a token; it is printed once and only its hash is kept.
    #[command(visible_alias = "new")]
    Create {
        /// Name (unique among tokens not revoked), e.g. `ci`.
        #[arg(long)]
        name: String,
        /// A scope RESOURCE:VERB (`job:create`, `sandbox:*`, `*`); repeat for more. See
        /// `agentlab token scopes`.
        #[arg(long = "scope", required = true, value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Limit sandbox and job creation to this profile; repeat for more (default: any).
        #[arg(long = "profile", value_name = "PROFILE")]
        profiles: Vec<String>,
        /// Lifetime: 45s, 90m, 12h, 30d, 2w, or `never`.
        #[arg(long, default_value = "30d")]
        ttl: String,
    },
    /// List tokens (never their secrets).
    #[command(visible_alias = "ls")]
    List,
    /// Revoke a token by id or name, effective for the next request.
    #[command(visible_alias = "rm")]
    Revoke {
        /// The token's id or name.
        token: String,
    },
    /// Print every scope a token can hold.
    Scopes,
}

/// Runs `agentlab token …`.
pub async fn run(ctx: &Ctx, args: TokenArgs) -> anyhow::Result<Code> {
    let c = &ctx.client;
    match args.cmd {
        TokenCmd::Create {
            name,
            scopes,
            profiles,
            ttl,
        } => {
            let scopes = scopes
                .iter()
                .map(|s| Scope::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            let ttl = parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
            let req = NewApiToken {
                name,
                scopes,
                profiles,
                ttl_secs: ttl.map(|d| d.as_secs()),
            };
            let created = c.create_token(&req).await?;
            if ctx.json {
                print_json(&created)?;
            } else {
                let t = &created.record;
                println!(
                    "Token {} ({}) created; expires {}.",
                    t.name,
                    t.id,
                    t.expires_at
                        .as_ref()
                        .map_or_else(|| "never".to_owned(), time)
                );
                println!("\n    {}\n", created.token);
                println!(
                    "It is shown only this once. Give it to the client as AGENTLAB_TOKEN, with \
                     AGENTLAB_ENDPOINT=https://<this host>:<port>."
                );
            }
        }
        TokenCmd::List => {
            let list = c.list_tokens().await?;
            if ctx.json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("No tokens.");
            } else {
                print!("{}", table(&list, &chrono::Utc::now()));
            }
        }
        TokenCmd::Revoke { token } => {
            let t = c.revoke_token(&token).await?;
            if ctx.json {
                print_json(&t)?;
            } else {
                println!("Token {} ({}) revoked.", t.name, t.id);
            }
        }
        TokenCmd::Scopes => {
            if ctx.json {
                let map: serde_json::Map<String, serde_json::Value> = SCOPES
                    .iter()
                    .map(|(r, verbs)| ((*r).to_owned(), serde_json::json!(verbs)))
                    .collect();
                print_json(&map)?;
            } else {
                let mut t = Table::new(&["RESOURCE", "VERBS"]);
                for (r, verbs) in SCOPES {
                    t.row(vec![(*r).to_owned(), verbs.join(", ")]);
                }
                print!("{}", t.render());
                println!("Write RESOURCE:VERB, RESOURCE:* or * (everything).");
            }
        }
    }
    Ok(Code::Ok)
}

/// The token list as a table.
fn table(list: &[ApiToken], now: &agentlab_core::Timestamp) -> String {
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "SCOPES",
        "PROFILES",
        "EXPIRES",
        "LAST USED",
        "STATE",
    ]);
    for tok in list {
        let state = if tok.revoked_at.is_some() {
            "revoked"
        } else if tok.is_active(*now) {
            "active"
        } else {
            "expired"
        };
        t.row(vec![
            tok.id.clone(),
            tok.name.clone(),
            tok.scopes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            if tok.profiles.is_empty() {
                "any".to_owned()
            } else {
                tok.profiles.join(",")
            },
            tok.expires_at
                .as_ref()
                .map_or_else(|| "never".to_owned(), time),
            dash(tok.last_used_at.as_ref().map(time)),
            state.to_owned(),
        ]);
    }
    t.render()
}
