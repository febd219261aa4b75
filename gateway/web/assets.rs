//! `/assets/{name}`: the stylesheet and scripts, compiled into the binary from `web/dist/`
//! (built from `web/src/` by `web/build.sh`; the Rust build never needs Node).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every asset: name, media type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../web/dist/app.css"),
    ),
    (
        "upload.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/dist/upload.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../web/dist/console.js"),
    ),
];

/// `GET /assets/{name}`
pub async fn get(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, media, bytes)) => (
            [
                (header::CONTENT_TYPE, *media),
                // Assets change only with the binary; an hour keeps a rollout visible soon.
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
