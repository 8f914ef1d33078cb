//! Passwords never leave through the API: the agent settings btar keeps for a fork hold the
//! database's conninfo, which may carry one. This is the control plane's one masking function; the
//! PostgreSQL engine redacts its own log lines separately (engine-pg `conninfo::redact`), since
//! control does not depend on an engine crate.

use serde_json::Value;

use super::UserConfig;

const MASK: &str = "********";

/// The config as a client may see it: every engine's `conninfo` masked.
pub(super) fn masked(mut config: UserConfig) -> UserConfig {
    for settings in config.agents.values_mut() {
        if let Some(conninfo) = settings.0.get_mut("conninfo")
            && let Some(text) = conninfo.as_str()
        {
            *conninfo = Value::String(mask_conninfo(text));
        }
    }
    config
}

/// Hides the password of a conninfo in either form: `postgres://user:…@host` or `password=…`
/// (also as a URL query parameter), a keyword value possibly quoted.
pub(crate) fn mask_conninfo(conninfo: &str) -> String {
    let mut out = conninfo.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| authority_start + i);
        // `rfind`: a password may itself contain `@`; the host cannot.
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = &out[authority_start..authority_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(authority_start + colon + 1..authority_start + at, MASK);
            }
        }
    }
    let mut searched = 0;
    while let Some(found) = out[searched..].to_ascii_lowercase().find("password=") {
        let start = searched + found + "password=".len();
        let rest = &out[start..];
        // A quoted value may hold spaces and `\'`; it ends at the first unescaped quote.
        let len = if let Some(quoted) = rest.strip_prefix('\'') {
            let mut escaped = false;
            let close = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(quoted.len(), |(i, _)| i + 1);
            1 + close
        } else {
            rest.find([' ', '\t', '\n', '&']).unwrap_or(rest.len())
        };
        out.replace_range(start..start + len, MASK);
        searched = start + MASK.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_conninfo("host=h password=secret user=u"),
            "host=h password=******** user=u"
        );
        assert_eq!(
            mask_conninfo("host=h password='se cr\\'et' user=u"),
            "host=h password=******** user=u"
        );
        assert_eq!(
            mask_conninfo("postgres://u:secret@h:5432/db?sslmode=require&password=x"),
            "postgres://u:********@h:5432/db?sslmode=require&password=********"
        );
        assert_eq!(
            mask_conninfo("host=127.0.0.1 port=5 user=postgres"),
            "host=127.0.0.1 port=5 user=postgres"
        );
    }

    #[test]
    fn every_engines_agent_conninfo_is_masked_and_nothing_else() {
        let stored = json!({
            "additional_backup_regions": ["b"],
            "service_to_fork_from": "password=not-a-conninfo",
            "btar_pg": {"conninfo": "postgres://u:pw@h/db", "pgdata": "/d"},
            "btar_mysql": {"conninfo": "host=h password=pw"},
        });
        let config = UserConfig::parse(stored).unwrap_or_default();
        let shown = masked(config).to_value();
        assert_eq!(shown["btar_pg"]["conninfo"], "postgres://u:********@h/db");
        assert_eq!(shown["btar_pg"]["pgdata"], "/d");
        assert_eq!(shown["btar_mysql"]["conninfo"], "host=h password=********");
        assert_eq!(shown["service_to_fork_from"], "password=not-a-conninfo");
        assert_eq!(shown["additional_backup_regions"], json!(["b"]));
    }
}
