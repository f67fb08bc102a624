//! The browser app: files from `web/`, embedded in the binary so a lab without network gets
//! the whole app from `veneer serve`. Every screen URL answers the one HTML page (the app
//! routes in the browser, so reload and the back button work); files under `/assets/` are
//! revalidated by ETag. The app is a client of the public API like any other: nothing here
//! knows a key or a job.

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use super::HttpResponse;
use super::problem::ApiError;

/// No inline script or style, nothing from another origin: script, style, fetches and images
/// come from this server only (the plot draws on a canvas), and no page may frame the app.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self' blob:; font-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The app's screens; each is a URL of its own (`/jobs/{id}` too).
const SCREENS: [&str; 5] = ["signin", "organization", "variants", "humanize", "jobs"];

pub fn is_screen(segment: &str) -> bool {
    SCREENS.contains(&segment)
}

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $file:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static INDEX: Asset = asset!("index.html", "index.html", "text/html; charset=utf-8");

static ASSETS: &[Asset] = &[
    asset!("app.css", "app.css", CSS),
    asset!("favicon.svg", "favicon.svg", "image/svg+xml"),
    asset!("main.js", "main.js", JS),
    asset!("api.js", "api.js", JS),
    asset!("dom.js", "dom.js", JS),
    asset!("kabat.js", "kabat.js", JS),
    asset!("alignment.js", "alignment.js", JS),
    asset!("exports.js", "exports.js", JS),
    asset!("screens.js", "screens.js", JS),
    asset!("job.js", "job.js", JS),
    asset!("uPlot.iife.min.js", "vendor/uplot/uPlot.iife.min.js", JS),
    asset!("uPlot.min.css", "vendor/uplot/uPlot.min.css", CSS),
];

/// Each file's strong ETag (a prefix of its SHA-256), computed once.
fn etag(asset: &Asset) -> &'static str {
    static TAGS: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| {
                let digest = Sha256::digest(a.bytes);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                (a.name, format!("\"{hex}\""))
            })
            .collect()
    });
    tags.iter()
        .find(|(name, _)| *name == asset.name)
        .map_or("\"\"", |(_, tag)| tag.as_str())
}

/// The HTML page for every screen.
pub fn page(headers: &HeaderMap) -> HttpResponse {
    serve(&INDEX, headers)
}

/// A file under `/assets/`; an unknown name is the API's usual 404.
pub fn asset(name: &str, headers: &HeaderMap) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| serve(a, headers))
        .ok_or(ApiError::NotFound)
}

fn serve(asset: &Asset, headers: &HeaderMap) -> HttpResponse {
    let tag = etag(asset);
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(asset.bytes)));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(ETAG, v);
    }
    // Revalidate every time: a new binary's files are seen at once, an unchanged one costs a 304.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_page_names_is_served() {
        let html = std::str::from_utf8(INDEX.bytes).expect("index.html is UTF-8");
        for part in html.split("/assets/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| !matches!(c, '"' | '\'' | '?'))
                .collect();
            assert!(
                ASSETS.iter().any(|a| a.name == name),
                "index.html names /assets/{name}, which is not served"
            );
        }
    }

    #[test]
    fn a_matching_etag_is_answered_304_without_a_body() {
        let first = page(&HeaderMap::new());
        let tag = first.headers().get(ETAG).cloned().expect("an ETag");
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, tag);
        assert_eq!(page(&headers).status(), StatusCode::NOT_MODIFIED);
    }
}
