//! The console: a static web app (HTML, ES modules, CSS, the vendored uPlot chart library) embedded
//! in the binary. It holds no data and no secret: it asks for the API token (kept in the tab's
//! sessionStorage, sent only in the `Authorization` header) and calls the public API from the
//! browser. Everything it shows is inserted as text, never as HTML, so names from the catalog
//! cannot inject markup; the Content-Security-Policy allows no inline script or style at all.
//!
//! Assets are served under `/console/<version>/<file>`, `<version>` being a digest of every asset:
//! a new binary changes the address, so assets can be cached for good while `/` is revalidated.

use std::sync::LazyLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::PathArgs;

/// The page and its assets only talk to their own origin, run no inline code, and cannot be framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Asset {
    /// The name served under `/console/<version>/`.
    name: &'static str,
    body: &'static [u8],
}

impl Asset {
    fn content_type(&self) -> &'static str {
        match self.name.rsplit('.').next() {
            Some("js") => JS,
            Some("css") => CSS,
            _ => SVG,
        }
    }
}

/// `asset!("a.js")` serves `console/a.js` as `a.js`; `asset!("b.js", "dir/b.js")` serves
/// `console/dir/b.js` as `b.js`.
macro_rules! asset {
    ($name:literal) => {
        asset!($name, $name)
    };
    ($name:literal, $file:literal) => {
        Asset {
            name: $name,
            body: include_bytes!(concat!("console/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

const ASSETS: &[Asset] = &[
    asset!("app.js"),
    asset!("api.js"),
    asset!("dom.js"),
    asset!("format.js"),
    asset!("charts.js"),
    asset!("services.js"),
    asset!("service.js"),
    asset!("regions.js"),
    asset!("fork.js"),
    asset!("copy-jobs.js"),
    asset!("events.js"),
    asset!("drills.js"),
    asset!("style.css"),
    asset!("icon.svg"),
    // uPlot 1.6.32 from npm, unmodified (MIT; vendor/uplot/LICENSE).
    asset!("uPlot.esm.js", "vendor/uplot/uPlot.esm.js"),
    asset!("uPlot.min.css", "vendor/uplot/uPlot.min.css"),
];

/// Content types `/console/{version}/{file}` answers with (for the OpenAPI document).
pub const CONTENT_TYPES: &[&str] = &[JS, CSS, SVG];

/// FNV-1a over every asset: stable for one binary, different when any asset changes.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for a in ASSETS {
        for b in a.name.bytes().chain(a.body.iter().copied()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
});

static INDEX: LazyLock<String> = LazyLock::new(|| {
    include_str!("console/index.html").replace("{{ASSETS}}", &format!("/console/{}", *VERSION))
});

fn headers(
    content_type: &'static str,
    cache: &'static str,
) -> [(header::HeaderName, &'static str); 5] {
    [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ]
}

/// `/`: the page. Revalidated on every load, so a new binary's assets are picked up at once.
pub async fn page() -> Response {
    (
        headers("text/html; charset=utf-8", "no-cache"),
        INDEX.as_str(),
    )
        .into_response()
}

/// `/console/{version}/{file}`. Under the current version an asset never changes, so it may be
/// cached for a year; under another (a tab loaded before an upgrade) it is served but not cached.
pub async fn asset(PathArgs((version, file)): PathArgs<(String, String)>) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == file) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no console asset `{file}`"))
            .into_response();
    };
    let cache = if version == *VERSION {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (StatusCode::OK, headers(a.content_type(), cache), a.body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_current_assets_and_every_module_it_imports_is_served() {
        assert!(INDEX.contains(&format!("/console/{}/app.js", *VERSION)));
        assert!(!INDEX.contains("{{"));
        // Every relative import of every module names a served asset.
        for a in ASSETS.iter().filter(|a| a.content_type() == JS) {
            let text = std::str::from_utf8(a.body).unwrap_or_default();
            for spec in text.split("from './").skip(1) {
                let name = spec.split('\'').next().unwrap_or_default();
                assert!(
                    ASSETS.iter().any(|b| b.name == name),
                    "{} imports ./{name}, which is not served",
                    a.name
                );
            }
        }
    }

    #[test]
    fn nothing_inline_and_no_markup_from_strings() {
        let html = include_str!("console/index.html");
        assert!(
            !html.contains("<style") && !html.contains(" style="),
            "inline style"
        );
        for chunk in html.split("<script").skip(1) {
            assert!(chunk.contains("src="), "inline script: <script{chunk}");
        }
        for a in ASSETS
            .iter()
            .filter(|a| a.content_type() == JS && !a.name.starts_with("uPlot"))
        {
            let text = std::str::from_utf8(a.body).unwrap_or_default();
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(banned), "{} uses {banned}", a.name);
            }
        }
    }
}
