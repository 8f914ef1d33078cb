use std::process::ExitCode;

use anyhow::{Context, bail};
use btar_control::{ControlPlane, Roles};

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address of the REST API, console and /metrics (default: `[server] listen`).
    #[arg(long)]
    listen: Option<String>,
    /// Do not run copy workers or log shipping here.
    #[arg(long)]
    no_replicator: bool,
    /// Do not take part in scheduling (planned backups, missed copies, retention).
    #[arg(long)]
    no_scheduler: bool,
    /// Copy workers in this process.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

/// Reads the API token from its source (`env:VAR`, `file:/path`, `literal:TOKEN`).
pub fn resolve_token(source: &str) -> anyhow::Result<String> {
    let token = if let Some(var) = source.strip_prefix("env:") {
        std::env::var(var)
            .with_context(|| format!("API token: environment variable {var} is not set"))?
    } else if let Some(path) = source.strip_prefix("file:") {
        std::fs::read_to_string(path).with_context(|| format!("API token: cannot read {path}"))?
    } else if let Some(t) = source.strip_prefix("literal:") {
        t.to_string()
    } else {
        bail!("API token source must start with env:, file: or literal:")
    };
    let token = token.trim().to_string();
    if token.len() < 16 {
        bail!("API token is too short (at least 16 characters)");
    }
    Ok(token)
}

/// Binds the API's address, saying what to do when it is taken.
pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {listen} (another btar?); choose another address with --listen"
            )
        })
}

/// Serves the API on `listener` and runs `roles` until Ctrl-C or SIGTERM.
pub async fn serve(
    ctx: &Ctx,
    cp: ControlPlane,
    listener: tokio::net::TcpListener,
    roles: Roles,
    announce: impl FnOnce(&str, &str) -> String,
) -> anyhow::Result<ExitCode> {
    btar_control::api::raise_fd_limit();
    let (token, generated) = match &ctx.cfg.server.token {
        Some(src) => (resolve_token(src)?, false),
        None => (hex::encode(rand::random::<[u8; 24]>()), true),
    };
    let addr = format!("http://{}", listener.local_addr()?);
    // The source is shown (a file or variable name is no secret), never a literal token.
    let source = ctx.cfg.server.token.as_deref().unwrap_or_default();
    let shown = if generated {
        token.clone()
    } else if source.starts_with("literal:") {
        "(literal in the config)".to_string()
    } else {
        format!("<{source}>")
    };
    let shown = shown.as_str();
    ctx.out.emit(
        &serde_json::json!({ "api": format!("{addr}/v1"), "console": addr, "token_generated": generated, "roles": roles }),
        || announce(&addr, shown),
    )?;
    let api = tokio::spawn(btar_control::api::serve(cp.clone(), listener, token));
    cp.run(roles).await?;
    api.await??;
    Ok(ExitCode::SUCCESS)
}

impl ServerArgs {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        let listen = self.listen.unwrap_or_else(|| ctx.cfg.server.listen.clone());
        let listener = bind(&listen).await?;
        let cp = ctx.control().await?;
        let roles = Roles {
            replicator: !self.no_replicator,
            scheduler: !self.no_scheduler,
            workers: self.workers,
        };
        serve(ctx, cp, listener, roles, |addr, token| {
            format!(
                "btar server: API {addr}/v1, console {addr}/, metrics {addr}/metrics; token {token}"
            )
        })
        .await
    }
}
