//! `btar`: one binary for every role (agent, replicator, control plane). This is the edge: errors become
//! context-rich reports and exit codes here.

mod cmd;
mod engines;
mod exit;
mod output;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{Format, Out};

#[derive(Debug, Parser)]
#[command(
    name = "btar",
    version,
    about = "Self-hosted backup to another region for PostgreSQL and MySQL/MariaDB"
)]
struct Cli {
    /// Config file (TOML): regions, services, storage settings. `-c KEY=VALUE` belongs to
    /// `service create|update` (a user_config entry, as in Aiven's CLI); `-c FILE` before the
    /// command is still read as this, for archive_command lines written by older btar, but unlisted.
    #[arg(
        long,
        short = 'C',
        short_alias = 'c',
        env = "BTAR_CONFIG",
        default_value = "btar.toml"
    )]
    config: PathBuf,
    /// Call this `btar server` (http://host:7480) instead of the local catalog: service, backup
    /// create|list, copy-jobs, report, fork and check. Other commands work locally and ignore it.
    #[arg(long, global = true, env = "BTAR_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The API token for --server, read from this file (else from BTAR_TOKEN).
    #[arg(long, global = true, env = "BTAR_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "text")]
    output: Format,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log lines on stderr as text (coloured only on a terminal) or as one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "BTAR_LOG_FORMAT"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The embedded default: a local PostgreSQL (or MariaDB: --engine mysql), two filesystem
    /// regions, the first backup and copy.
    Up(cmd::up::UpArgs),
    /// Take or list backups.
    #[command(subcommand)]
    Backup(cmd::backup::BackupCmd),
    /// Restore a service's backup into a new data directory, optionally to a point in time.
    Restore(cmd::restore::RestoreArgs),
    /// Archive one WAL file (for PostgreSQL's archive_command = 'btar wal-push %p').
    WalPush(cmd::wal::PushArgs),
    /// Follow the server's log as it is written and archive each complete file (MariaDB's binlog),
    /// in the foreground until SIGTERM; for a service manager.
    LogFollow(cmd::log_follow::FollowArgs),
    /// Stream the server's log as it is written into every location, the newest partial file
    /// durable within about a second (PostgreSQL, from a replication slot), in the foreground until
    /// SIGTERM; for a service manager.
    #[command(alias = "wal-stream")]
    LogStream(cmd::log_stream::StreamArgs),
    /// Fetch one WAL file (for restore_command = 'btar wal-fetch %f %p'). Exit 1: not archived.
    WalFetch(cmd::wal::FetchArgs),
    /// Fetch the log files after one into wal-fetch's spool (started by wal-fetch itself).
    #[command(hide = true)]
    WalPrefetch(cmd::wal::PrefetchArgs),
    /// Read every object of a location (or one backup) and report damage; non-zero exit if any.
    Verify(cmd::verify::VerifyArgs),
    /// Compliance check: a recent copy in each additional region, a primary backup within its plan's
    /// interval, no hole in any location's log archive. Non-zero exit (4) if any rule fails.
    Check(cmd::check::CheckArgs),
    /// Run the control plane: REST API, console, metrics, copy workers, log shipping, scheduler.
    Server(cmd::server::ServerArgs),
    /// Register, change, show, list or delete services (user_config.additional_backup_regions).
    #[command(subcommand)]
    Service(cmd::service::ServiceCmd),
    /// Copy jobs (AWS Backup's ListCopyJobs / DescribeCopyJob).
    #[command(subcommand, name = "copy-jobs")]
    CopyJobs(cmd::copy_jobs::CopyJobsCmd),
    /// Replication lag data points of SERVICE per additional backup region.
    Report(cmd::report::ReportArgs),
    /// One replication pass without a server: missed copies, due copy jobs, missing log files.
    Replicate(cmd::replicate::ReplicateArgs),
    /// What each location holds and costs over a period: stored bytes and objects (listed), GB-hours,
    /// bytes copied in; with [[price]] entries, money.
    Cost(cmd::cost::CostArgs),
    /// Restore drills: restore, validate, record, clean up (AWS restore testing).
    #[command(subcommand)]
    Drill(cmd::drill::DrillCmd),
    /// Notifications: the alerts that hold, or one evaluation without a server.
    #[command(subcommand)]
    Alerts(cmd::alerts::AlertsCmd),
    /// Apply retention to a service's (or every service's) locations now, the plan printed first;
    /// --dry-run prints the plan only (pgBackRest's expire).
    Expire(cmd::expire::ExpireArgs),
    /// Apply each plan's retention once (the server does it on its own schedule).
    #[command(subcommand)]
    Retention(cmd::retention::RetentionCmd),
    /// Create a new service from a backup in the primary or a secondary location.
    Fork(cmd::fork::ForkArgs),
    /// Catalog maintenance.
    #[command(subcommand)]
    Catalog(cmd::catalog::CatalogCmd),
    /// Print a new random region key (hex).
    Keygen,
    /// Print a shell completion script (e.g. `btar completions bash > /etc/bash_completion.d/btar`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `btar man > /usr/share/man/man1/btar.1`.
    Man,
    /// Print the REST API's OpenAPI document (what `btar server` serves at /v1/openapi.json), for
    /// client generators.
    Openapi,
}

impl Command {
    /// Whether the command can call the REST API instead (`--server`).
    fn has_route(&self) -> bool {
        use cmd::backup::BackupCmd;
        matches!(
            self,
            Command::Service(_)
                | Command::CopyJobs(_)
                | Command::Report(_)
                | Command::Fork(_)
                | Command::Check(_)
                | Command::Backup(BackupCmd::Create { .. } | BackupCmd::List { .. })
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_tracing(verbose: u8, format: LogFormat) {
    let default = match verbose {
        // sqlx reports backup_stop's wait for archiving as a "slow statement"; that is expected.
        0 => "warn,sqlx=error",
        1 => "info,sqlx=error",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => logs.json().init(),
        // Colour codes only where a person reads them: captured stderr (a service manager, a
        // pipe, PostgreSQL's log for archive_command) gets plain text.
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

/// Whether this process serves PostgreSQL's restore_command, judged from the raw arguments so that it
/// holds even when they do not parse.
fn is_wal_fetch() -> bool {
    std::env::args().skip(1).any(|a| a == "wal-fetch")
}

/// Whether the raw arguments ask for `--output json`, for a command line that does not parse: its
/// usage error is then a JSON error object too.
fn wants_json() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.iter().enumerate().any(|(i, a)| {
        matches!(a.as_str(), "--output=json" | "-ojson")
            || (matches!(a.as_str(), "--output" | "-o")
                && args.get(i + 1).is_some_and(|v| v == "json"))
    })
}

/// PostgreSQL takes any restore_command exit code from 1 to 125 for "not in the archive" and ends
/// recovery there, promoting short of its target. `wal-fetch` exits 1 only for that; every failure
/// of its own — bad arguments, a missing or invalid config, an unknown service, a panic — exits
/// with this code, which stops recovery instead.
const WAL_FETCH_FAILED: u8 = cmd::wal::FETCH_FAILED;

/// glibc gives each thread that meets contention its own malloc arena (up to 8 per core) and keeps
/// freed memory in each: a restore's frames, allocated on one blocking thread and freed on another,
/// left peak RSS a quarter higher than the data in flight. Two arenas measured 60 → 46 MiB for a
/// restore and 66 → 52 MiB for a full backup of pgbench scale 30, at the same speed. Before any
/// thread starts; `MALLOC_ARENA_MAX` in the environment still wins.
#[allow(unsafe_code)]
fn fewer_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn main() -> ExitCode {
    fewer_arenas();
    let fetch = is_wal_fetch();
    if fetch {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::exit(WAL_FETCH_FAILED.into());
        }));
    }
    let failed = if fetch {
        WAL_FETCH_FAILED
    } else {
        exit::FAILED
    };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if e.exit_code() != 0 && wants_json() {
                exit::report_usage(&e.render().to_string());
            } else {
                let _ = e.print();
            }
            return match e.exit_code() {
                0 => ExitCode::SUCCESS,
                _ if fetch => ExitCode::from(WAL_FETCH_FAILED),
                _ => ExitCode::from(exit::USAGE),
            };
        }
    };
    init_tracing(cli.verbose, cli.log_format);
    let out = Out { format: cli.output };
    let json = out.json();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(failed);
        }
    };
    let result = rt.block_on(async move {
        let cancel = btar_region::CancellationToken::new();
        let c = cancel.clone();
        // SIGINT (Ctrl-C) or SIGTERM (service managers): finish cleanly, leaving nothing half-visible.
        tokio::spawn(async move {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                _ = term => {}
            }
            c.cancel();
        });
        match cli.command {
            Command::Keygen => {
                let key = btar_region::RegionKey::generate().to_hex();
                out.emit(&serde_json::json!({ "key": key }), || key.clone())?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Up(a) => a.run(engines::built_in(), out, cancel).await,
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                // Into a buffer first: clap_complete panics when its writer fails (a closed pipe).
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut cmd, "btar", &mut script);
                std::io::Write::write_all(&mut std::io::stdout(), &script)?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Man => {
                let cmd = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Openapi => {
                let doc = btar_control::api::openapi_document();
                println!("{}", serde_json::to_string_pretty(&doc)?);
                Ok(ExitCode::SUCCESS)
            }
            command => {
                let remote = match &cli.server {
                    Some(url) if command.has_route() => {
                        Some(remote::Remote::new(url, cli.token_file.as_deref())?)
                    }
                    _ => None,
                };
                // A remote command needs no config file on this host.
                let cfg = if remote.is_some() {
                    btar_control::Config::default()
                } else {
                    btar_control::Config::load(&cli.config)?
                };
                let ctx = cmd::Ctx {
                    cfg,
                    engines: engines::built_in(),
                    out,
                    cancel,
                    remote,
                };
                match command {
                    Command::Backup(c) => c.run(&ctx).await,
                    Command::Restore(a) => a.run(&ctx).await,
                    Command::WalPush(a) => a.run(&ctx).await,
                    Command::WalFetch(a) => a.run(&ctx).await,
                    Command::LogFollow(a) => a.run(&ctx).await,
                    Command::LogStream(a) => a.run(&ctx).await,
                    Command::WalPrefetch(a) => a.run(&ctx).await,
                    Command::Verify(a) => a.run(&ctx).await,
                    Command::Check(a) => a.run(&ctx).await,
                    Command::Expire(a) => a.run(&ctx).await,
                    Command::Alerts(a) => a.run(&ctx).await,
                    Command::Cost(a) => a.run(&ctx).await,
                    Command::Drill(a) => a.run(&ctx).await,
                    Command::Server(a) => a.run(&ctx).await,
                    Command::Service(c) => c.run(&ctx).await,
                    Command::CopyJobs(c) => c.run(&ctx).await,
                    Command::Report(a) => a.run(&ctx).await,
                    Command::Replicate(a) => a.run(&ctx).await,
                    Command::Fork(a) => a.run(&ctx).await,
                    Command::Retention(c) => c.run(&ctx).await,
                    Command::Catalog(c) => c.run(&ctx).await,
                    Command::Keygen
                    | Command::Up(_)
                    | Command::Completions { .. }
                    | Command::Man
                    | Command::Openapi => Ok(ExitCode::SUCCESS),
                }
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => exit::report(&e, json, failed),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks (unique short flags across global and command arguments…),
    /// which otherwise fire only as a panic in a debug build when the command is used.
    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
