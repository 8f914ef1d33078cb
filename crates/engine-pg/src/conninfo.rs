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

/// Removes `password=…` / URL passwords from text that may reach logs or error messages.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(char::is_whitespace) {
        if word.trim_start().starts_with("password=") {
            out.push_str("password=*** ");
        } else if let (Some(a), Some(b)) = (word.find("://"), word.find('@')) {
            match word[a + 3..b].find(':') {
                Some(c) => {
                    out.push_str(&word[..a + 3 + c + 1]);
                    out.push_str("***");
                    out.push_str(&word[b..]);
                }
                None => out.push_str(word),
            }
        } else {
            out.push_str(word);
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
    fn redacts_passwords() {
        assert!(!redact("host=x password=secret user=u").contains("secret"));
        assert!(!redact("postgres://u:secret@h/db").contains("secret"));
    }
}
