//! An image resizer at the edge.
//!
//! `GET /img/{name}?w=&h=&fmt=` fetches `{origin}/{name}` (the origin on the
//! allow-list), resizes it to fit `w`×`h` (aspect ratio kept; one of them
//! is enough) and converts it to `fmt` (`png`, `jpeg` or `webp`; default:
//! the original's format). The result is cached tagged `img:{name}`, so
//! `verge cache purge --tag img:NAME` drops every size of one image, and
//! served with `Content-Type`, `Cache-Control` and a strong `ETag`;
//! `If-None-Match` with it answers 304.
//!
//! Dimensions are checked before any work: 1 to [`MAX_DIMENSION`] pixels,
//! else 400. A transform too big for the CPU budget ends in the host's
//! 503 `cpu-limit`, never a hang.

use img::{DynamicImage, ImageFormat, imageops::FilterType};
use sha2::{Digest, Sha256};
use std::io::Cursor;
use verge_sdk::cache::{self, Options};
use verge_sdk::{Request, Response, config, fetch};

/// Largest width or height served: 2048 px covers retina layouts while a
/// 2048² RGBA frame (16 MiB) still fits a 128 MiB guest with its source.
pub const MAX_DIMENSION: u32 = 2048;

/// Longest image name accepted.
const MAX_NAME_LEN: usize = 200;

/// How long a resized image stays fresh unless `cache-ttl` says otherwise.
const DEFAULT_CACHE_TTL: u32 = 86_400;

struct Params {
    name: String,
    width: Option<u32>,
    height: Option<u32>,
    format: Option<ImageFormat>,
}

fn parse(req: &Request) -> Result<Params, String> {
    let name = req
        .path()
        .strip_prefix("/img/")
        .ok_or("use /img/{name}?w=&h=&fmt=")?
        .to_owned();
    let name_ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
    if !name_ok {
        return Err(format!("bad image name {name:?}"));
    }
    let dimension = |param: &str| -> Result<Option<u32>, String> {
        match req.query_param(param) {
            None | Some("") => Ok(None),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_DIMENSION).contains(&n) => Ok(Some(n)),
                _ => Err(format!("{param} must be 1-{MAX_DIMENSION}, got {v:?}")),
            },
        }
    };
    let format = match req.query_param("fmt") {
        None | Some("") => None,
        Some("png") => Some(ImageFormat::Png),
        Some("jpeg" | "jpg") => Some(ImageFormat::Jpeg),
        Some("webp") => Some(ImageFormat::WebP),
        Some(other) => return Err(format!("fmt must be png, jpeg or webp, got {other:?}")),
    };
    Ok(Params {
        name,
        width: dimension("w")?,
        height: dimension("h")?,
        format,
    })
}

fn content_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "image/png",
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::WebP => "image/webp",
        _ => "application/octet-stream",
    }
}

/// Fetches, decodes, resizes and encodes; the body and its content type.
fn render(p: &Params) -> Result<(Vec<u8>, ImageFormat), Response> {
    let origin =
        config::get("origin").ok_or_else(|| Response::error(500, "no origin configured\n"))?;
    let url = format!("{}/{}", origin.trim_end_matches('/'), p.name);
    let original = fetch::get(url).send().map_err(|err| {
        verge_sdk::log::error(format!("fetching {}: {err}", p.name));
        Response::error(502, "the origin is unavailable\n")
    })?;
    if original.status() == 404 {
        return Err(Response::error(404, "no such image\n"));
    }
    if !original.is_success() {
        return Err(Response::error(
            502,
            format!("the origin answered {}\n", original.status()),
        ));
    }
    let source_format = img::guess_format(original.body())
        .map_err(|_| Response::error(502, "the original is not an image\n"))?;
    let image = img::load_from_memory_with_format(original.body(), source_format)
        .map_err(|err| Response::error(502, format!("cannot decode the original: {err}\n")))?;
    let resized = match (p.width, p.height) {
        (None, None) => image,
        (w, h) => {
            let w = w.unwrap_or(MAX_DIMENSION);
            let h = h.unwrap_or(MAX_DIMENSION);
            image.resize(w, h, FilterType::Triangle)
        }
    };
    let format = p.format.unwrap_or(source_format);
    let resized = match format {
        // JPEG has no alpha channel.
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(resized.to_rgb8()),
        _ => resized,
    };
    let mut out = Cursor::new(Vec::new());
    resized
        .write_to(&mut out, format)
        .map_err(|err| Response::error(500, format!("cannot encode: {err}\n")))?;
    Ok((out.into_inner(), format))
}

#[verge_sdk::handler]
fn handle(req: Request) -> Response {
    if req.method().as_str() != "GET" && req.method().as_str() != "HEAD" {
        return Response::error(405, "GET only\n");
    }
    let params = match parse(&req) {
        Ok(p) => p,
        Err(why) => return Response::error(400, format!("{why}\n")),
    };
    let key = format!(
        "img:{}:{}x{}:{}",
        params.name,
        params.width.unwrap_or(0),
        params.height.unwrap_or(0),
        params.format.map_or("orig", |f| content_type(f))
    );
    let ttl = config::get("cache-ttl")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CACHE_TTL);
    let options = Options::ttl(ttl).tag(format!("img:{}", params.name));
    let cached = cache::get_or_fill(&key, &options, || {
        let (body, format) = render(&params)?;
        let etag = format!("\"{}\"", &hex(&Sha256::digest(&body))[..32]);
        let headers = vec![
            ("content-type".to_owned(), content_type(format).to_owned()),
            ("etag".to_owned(), etag),
        ];
        Ok::<_, Response>((body, headers))
    });
    let cached = match cached {
        Ok(cached) => cached,
        Err(response) => return response,
    };
    let header = |name: &str| {
        cached
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let etag = header("etag");
    let source = match cached.source {
        cache::Source::Hit => "hit",
        cache::Source::Stale => "stale",
        cache::Source::Filled => "miss",
    };
    let base = |status: u16| {
        Response::new(status)
            .with_header("etag", etag.as_str())
            .with_header("cache-control", "public, max-age=86400")
            .with_header("x-cache", source)
    };
    let matches = req
        .header("if-none-match")
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return base(304);
    }
    base(200)
        .with_header("content-type", header("content-type"))
        .with_body(cached.body)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
