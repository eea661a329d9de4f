//! The console's files: its one stylesheet, its one script and the site's icon, embedded in the
//! binary.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The icon browsers ask for at `/favicon.ico` (a 32×32 PNG in an ICO container).
pub const FAVICON: &[u8] = include_bytes!("../static/favicon.ico");

/// `GET /console/static/{file}`.
pub async fn static_file(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (
            include_str!("../static/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("../static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such file").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// `GET /favicon.ico`.
pub async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        FAVICON,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_icon_is_an_ico_holding_a_png() {
        assert_eq!(&FAVICON[..4], &[0, 0, 1, 0], "ICO header, type icon");
        assert_eq!(u16::from_le_bytes([FAVICON[4], FAVICON[5]]), 1, "one image");
        let offset = u32::from_le_bytes(FAVICON[18..22].try_into().unwrap()) as usize;
        assert_eq!(&FAVICON[offset..offset + 8], b"\x89PNG\r\n\x1a\n");
    }
}
