use std::process::ExitCode;

use btar_control::{ServiceCreate, ServiceView};
use serde_json::Value;

use super::Ctx;

#[derive(Debug, clap::Subcommand)]
pub enum ServiceCmd {
    /// Register a service (Aiven `avn service create`).
    Create {
        name: String,
        /// Engine: pg or mysql.
        #[arg(long = "type", default_value = "pg")]
        service_type: String,
        /// Home region.
        #[arg(long)]
        cloud: String,
        #[arg(long, default_value = "")]
        plan: String,
        /// user_config entries, `KEY=VALUE` with VALUE as JSON (e.g.
        /// additional_backup_regions='["aws-eu-central-1"]'), as Aiven's `avn service create -c`.
        #[arg(short = 'c', long = "user-config", alias = "config-value", value_name = "KEY=VALUE", value_parser = parse_kv)]
        values: Vec<(String, Value)>,
    },
    /// Change a service's plan or user_config entries (`-c additional_backup_regions='[]'` disables).
    Update {
        name: String,
        #[arg(long)]
        plan: Option<String>,
        /// user_config entries, `KEY=VALUE` with VALUE as JSON; `null` removes a key.
        #[arg(short = 'c', long = "user-config", alias = "config-value", value_name = "KEY=VALUE", value_parser = parse_kv)]
        values: Vec<(String, Value)>,
    },
    Get {
        name: String,
    },
    /// Create the home location of a service declared in the config, so its log archive (wal-push,
    /// log-follow) works before the first backup. Explicit and once: no other command creates one
    /// (a first backup does); where the catalog knows the location, a missing one is refused.
    Init {
        name: String,
    },
    List,
    /// Delete a service from the catalog; its backups stay in every location until their retention ends.
    Delete {
        name: String,
    },
}

/// `key=value` where value is JSON, or a bare string when it is not JSON (as Aiven's CLI takes it).
fn parse_kv(s: &str) -> Result<(String, Value), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| {
        let hint = if s.ends_with(".toml") {
            "; the config file is `btar --config FILE` (or -C FILE), before the command"
        } else {
            ""
        };
        format!("expected KEY=VALUE (a user_config entry), got `{s}`{hint}")
    })?;
    let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
    Ok((k.trim().to_string(), v))
}

fn text(v: &ServiceView) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

impl ServiceCmd {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let api = match &self {
            // Local only; it opens the control plane itself.
            ServiceCmd::Init { .. } => None,
            _ => Some(ctx.api().await?),
        };
        let api = || api.as_ref().ok_or_else(|| anyhow::anyhow!("no API"));
        match self {
            ServiceCmd::Create {
                name,
                service_type,
                cloud,
                plan,
                values,
            } => {
                let v = api()?
                    .create_service(ServiceCreate {
                        name,
                        service_type,
                        cloud,
                        plan,
                        user_config: Value::Object(values.into_iter().collect()),
                    })
                    .await?;
                ctx.out.emit(&v, || text(&v))?;
            }
            ServiceCmd::Update { name, plan, values } => {
                // Entries given replace theirs; the control plane keeps the others.
                let user_config =
                    (!values.is_empty()).then(|| Value::Object(values.into_iter().collect()));
                let v = api()?.update_service(&name, plan, user_config).await?;
                ctx.out.emit(&v, || text(&v))?;
            }
            ServiceCmd::Init { name } => {
                if ctx.remote.is_some() {
                    anyhow::bail!(
                        "`service init` creates the location with the region keys of the local config: run it where the config is, without --server"
                    );
                }
                let loc = ctx.control().await?.init_location(&name).await?;
                let region = loc.region().name().to_string();
                let v =
                    serde_json::json!({ "service": name, "region": region, "location": "ready" });
                ctx.out.emit(&v, || {
                    format!("the location of `{name}` in region `{region}` is ready: its log can be archived before the first backup")
                })?;
            }
            ServiceCmd::Get { name } => {
                let v = api()?.service(&name).await?;
                ctx.out.emit(&v, || text(&v))?;
            }
            ServiceCmd::List => {
                let all = api()?.list_services().await?;
                ctx.out.emit(&serde_json::json!({ "services": all }), || {
                    all.iter().map(text).collect::<Vec<_>>().join("\n")
                })?;
            }
            ServiceCmd::Delete { name } => {
                api()?.delete_service(&name).await?;
                ctx.out.emit(&serde_json::json!({ "deleted": name }), || {
                    format!("service {name} deleted; its backups stay until their retention ends")
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
