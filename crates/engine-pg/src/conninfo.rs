//! Connection strings: libpq `key=value` pairs or `postgres://` URLs.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

use crate::error::PgError;

/// Parses a conninfo. Unknown keys are refused so typos do not silently connect elsewhere.
pub fn parse(conninfo: &str) -> Result<PgConnectOptions, PgError> {
    let s = conninfo.trim();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return PgConnectOptions::from_str(s)
            .map_err(|e| PgError::Conninfo(redact(&e.to_string())));
    }
    let mut opts = PgConnectOptions::new_without_pgpass().application_name("btar");
    for pair in split_pairs(s)? {
        let (k, v) = pair;
        opts = match k.as_str() {
            "host" | "hostaddr" => opts.host(&v),
            "port" => opts.port(
                v.parse()
                    .map_err(|_| PgError::Conninfo(format!("port `{v}` is not a number")))?,
            ),
            "user" => opts.username(&v),
            "password" => opts.password(&v),
            "dbname" => opts.database(&v),
            "sslmode" => opts.ssl_mode(
                v.parse()
                    .map_err(|_| PgError::Conninfo(format!("unknown sslmode `{v}`")))?,
            ),
            "application_name" => opts.application_name(&v),
            "connect_timeout" => opts,
            other => return Err(PgError::Conninfo(format!("unknown key `{other}`"))),
        };
    }
    Ok(opts)
}

/// Where the streamer's replication connection goes: the same server, user and password as the
/// conninfo. The replication client does not speak TLS, so an `sslmode` that demands it is refused
/// rather than silently ignored.
pub fn replication_target(
    conninfo: &str,
    application_name: &str,
) -> Result<crate::stream::protocol::Target, PgError> {
    use crate::stream::protocol::{Addr, Target};
    use sqlx::postgres::PgSslMode;
    let opts = parse(conninfo)?;
    if matches!(
        opts.get_ssl_mode(),
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    ) {
        return Err(PgError::Conninfo(
            "the streamer's replication connection does not speak TLS: give it a conninfo with a Unix socket (host=/run/postgresql) or a trusted network and sslmode=disable or prefer".into(),
        ));
    }
    // A host that is a directory names the server's socket directory, as in libpq.
    let socket_dir = opts.get_socket().cloned().or_else(|| {
        let host = opts.get_host();
        host.starts_with('/')
            .then(|| std::path::PathBuf::from(host))
    });
    let addr = match socket_dir {
        Some(dir) => Addr::Unix(dir.join(format!(".s.PGSQL.{}", opts.get_port()))),
        None => Addr::Tcp(opts.get_host().to_string(), opts.get_port()),
    };
    Ok(Target {
        addr,
        user: opts.get_username().to_string(),
        password: password(conninfo)?.or_else(|| std::env::var("PGPASSWORD").ok()),
        application_name: application_name.to_string(),
    })
}

/// The password a conninfo carries, if any.
fn password(conninfo: &str) -> Result<Option<String>, PgError> {
    let s = conninfo.trim();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let url = url::Url::parse(s).map_err(|e| PgError::Conninfo(e.to_string()))?;
        return Ok(url.password().map(|p| {
            percent_encoding::percent_decode_str(p)
                .decode_utf8_lossy()
                .into_owned()
        }));
    }
    Ok(split_pairs(s)?
        .into_iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v))
}

fn split_pairs(s: &str) -> Result<Vec<(String, String)>, PgError> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(PgError::Conninfo(format!("expected `=` after `{key}`")));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(PgError::Conninfo("unterminated quote".into())),
                    Some('\\') => val.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => val.push(c),
                }
            }
        } else {
            val = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect();
        }
        out.push((key, val));
    }
}

/// Removes `password=…` values (quoted ones with spaces too, every occurrence) and URL passwords
/// from text that may reach logs or error messages.
pub fn redact(text: &str) -> String {
    redact_urls(&redact_pairs(text))
}

/// `password = value` in libpq's key=value syntax: the value is a quoted string (`'…'`, with `\'`
/// or `''` inside) or a run of non-blank characters.
fn redact_pairs(text: &str) -> String {
    const KEY: &str = "password";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(KEY) {
        let starts_word = rest[..i]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '\'' || c == '"');
        let after = &rest[i + KEY.len()..];
        let eq = after.trim_start();
        if !starts_word || !eq.starts_with('=') {
            out.push_str(&rest[..i + KEY.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..i]);
        out.push_str("password=***");
        let value = eq[1..].trim_start();
        rest = match value.strip_prefix('\'') {
            Some(quoted) => {
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((j, c)) = chars.next() {
                    if c == '\\' {
                        chars.next();
                    } else if c == '\'' {
                        if quoted[j + 1..].starts_with('\'') {
                            chars.next();
                        } else {
                            end = j + 1;
                            break;
                        }
                    }
                }
                &quoted[end..]
            }
            None => &value[value.find(char::is_whitespace).unwrap_or(value.len())..],
        };
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host`: the password between the user's `:` and the `@`.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(char::is_whitespace) {
        match (word.find("://"), word.rfind('@')) {
            (Some(a), Some(b)) if b > a + 3 => match word[a + 3..b].find(':') {
                Some(c) => {
                    out.push_str(&word[..a + 3 + c + 1]);
                    out.push_str("***");
                    out.push_str(&word[b..]);
                }
                None => out.push_str(word),
            },
            _ => out.push_str(word),
        }
    }
    out
}

/// A printable description of where we connect, without secrets.
pub fn describe(conninfo: &str) -> String {
    redact(conninfo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_rejects_typos() {
        assert!(parse("host=127.0.0.1 port=5433 user=postgres dbname=x").is_ok());
        assert!(parse("host='/tmp/my dir' port = 5432").is_ok());
        assert!(parse("hots=x").unwrap_err().to_string().contains("hots"));
        assert!(parse("port=abc").is_err());
        assert!(parse("host").is_err());
    }

    #[test]
    fn replication_targets_keep_user_password_and_socket() {
        use crate::stream::protocol::Addr;
        let t =
            replication_target("host=/tmp/s port=5499 user=u password='p w'", "btar_x").unwrap();
        assert!(
            matches!(&t.addr, Addr::Unix(p) if p.ends_with(".s.PGSQL.5499")),
            "{:?}",
            t.addr
        );
        assert_eq!((t.user.as_str(), t.password.as_deref()), ("u", Some("p w")));
        let t = replication_target("postgres://u:p%40ss@127.0.0.1:5433/db", "x").unwrap();
        assert!(matches!(&t.addr, Addr::Tcp(h, 5433) if h == "127.0.0.1"));
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert!(replication_target("host=h sslmode=require", "x").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert!(!redact("host=x password=secret user=u").contains("secret"));
        assert!(!redact("postgres://u:secret@h/db").contains("secret"));
        for text in [
            "host=x password='se cr et' user=u",
            "host=x password = 'se cr et' user=u",
            "password='it''s se cr et' host=x",
            r"password='it\'s se cr et' host=x",
            "password=secret1 host=x password=secret2",
            "postgres://u:se@cret@h/db",
        ] {
            let r = redact(text);
            assert!(
                !r.contains("se cr et") && !r.contains("secret") && !r.contains("cret"),
                "{text} -> {r}"
            );
        }
        assert_eq!(
            redact("host=x password='a b' user=u"),
            "host=x password=*** user=u"
        );
        // Words that only contain the key stay as they are.
        assert_eq!(redact("mypassword=x"), "mypassword=x");
    }
}
