//! The request head, checked before any routing: the URI and header caps,
//! the methods the server answers itself, `Transfer-Encoding`, and one
//! `Host` that is a valid authority (RFC 9112 §3.2, §6.1).

use super::body::check_declared;
use super::error::RequestError;
use super::{DataBody, full_body};
use crate::tenancy::HttpLimits;
use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use std::net::SocketAddr;

/// What the request head told us before routing.
pub(super) struct Head {
    /// Lower-case host without port.
    pub host: String,
    /// The absolute URI the guest sees.
    pub uri: String,
    /// Bytes of header names and values.
    pub header_bytes: usize,
}

/// Checks the URI and header caps against `limits` (the server's); returns
/// the host, the absolute URI and the header size (for the app's cap).
pub(super) fn check_head(
    req: &Request<Incoming>,
    limits: &HttpLimits,
    local: SocketAddr,
) -> Result<Head, RequestError> {
    let path_and_query = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    if path_and_query.len() > limits.max_uri_bytes {
        return Err(RequestError::UriTooLong);
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Err(RequestError::HeadersTooLarge);
    }
    // CONNECT tunnels and TRACE echoes (which would hand a guest's
    // reflected cookies to a script) are the server's to refuse, as
    // Workers and Fastly do.
    if req.method() == Method::CONNECT || req.method() == Method::TRACE {
        return Err(RequestError::MethodNotAllowed);
    }
    check_transfer_encoding(req.headers())?;
    let mut hosts = req.headers().get_all(HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return Err(RequestError::BadRequest("more than one Host header".into()));
    }
    let authority = match (req.uri().authority(), host_header) {
        (Some(authority), _) if authority.as_str().contains('@') => {
            return Err(RequestError::BadRequest(
                "user info in the request URI".into(),
            ));
        }
        (Some(authority), _) => authority.as_str().to_owned(),
        (None, Some(host)) => valid_host_header(host)?,
        // HTTP/1.0 may omit Host: it is served as the address it came
        // to (which no tenant holds without the operator's grant).
        (None, None) if req.version() == http::Version::HTTP_10 => local.to_string(),
        // RFC 9112 §3.2: a request without Host is answered 400.
        (None, None) => {
            return Err(RequestError::BadRequest("the request has no Host".into()));
        }
    };
    let host = strip_port(&authority).to_ascii_lowercase();
    let scheme = match req.extensions().get::<super::OverTls>() {
        Some(_) => "https",
        None => "http",
    };
    let uri = format!("{scheme}://{authority}{path_and_query}");
    Ok(Head {
        host,
        uri,
        header_bytes,
    })
}

/// Refuses a request whose `Content-Length` already says it is over `cap`,
/// before a byte of the body is read.
pub(super) fn check_declared_length(
    req: &Request<Incoming>,
    cap: usize,
) -> Result<Option<u64>, RequestError> {
    Ok(check_declared(req.headers(), cap)?)
}

/// `Transfer-Encoding` as RFC 9112 §6.1 allows it: `chunked` alone, once.
/// hyper reads `chunked, chunked` (or `chunked` on two lines) as one
/// chunked body and passes other codings through undecoded; a proxy in
/// front may read either differently (request smuggling), so both are 400.
fn check_transfer_encoding(headers: &http::HeaderMap) -> Result<(), RequestError> {
    let mut chunked = 0;
    for value in headers.get_all(http::header::TRANSFER_ENCODING) {
        let text = value.to_str().map_err(|_| bad_encoding())?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if !coding.eq_ignore_ascii_case("chunked") {
                return Err(bad_encoding());
            }
            chunked += 1;
        }
    }
    if chunked > 1 {
        return Err(bad_encoding());
    }
    Ok(())
}

fn bad_encoding() -> RequestError {
    RequestError::BadRequest("Transfer-Encoding other than one `chunked`".into())
}

/// A `Host` header that is a valid authority without user info (RFC 9112
/// §3.2: anything else is 400).
fn valid_host_header(value: &HeaderValue) -> Result<String, RequestError> {
    let bad = || RequestError::BadRequest("the Host header is not a valid authority".into());
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() || text.contains('@') {
        return Err(bad());
    }
    let authority: http::uri::Authority = text.parse().map_err(|_| bad())?;
    // `http` keeps a port it cannot read as a u16 (`:99999`, `:`) as
    // text: that is no port.
    let after_host = text.rfind(']').map_or(text, |end| &text[end..]);
    if after_host.contains(':') && authority.port_u16().is_none() {
        return Err(bad());
    }
    Ok(authority.as_str().to_owned())
}

/// The answer to `OPTIONS *`: the server's own, never a guest's.
pub(super) fn options_star() -> Response<DataBody> {
    let mut response = Response::new(full_body(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response.headers_mut().insert(
        http::header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    response
}

fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_ports_from_authorities() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }

    #[test]
    fn transfer_encoding_is_chunked_once_or_absent() {
        let check = |values: &[&str]| {
            let mut headers = http::HeaderMap::new();
            for v in values {
                headers.append(
                    http::header::TRANSFER_ENCODING,
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            check_transfer_encoding(&headers).is_ok()
        };
        assert!(check(&[]));
        assert!(check(&["chunked"]));
        assert!(check(&["Chunked"]));
        assert!(!check(&["chunked, chunked"]));
        assert!(!check(&["chunked", "chunked"]));
        assert!(!check(&["gzip, chunked"]));
        assert!(!check(&["identity"]));
    }

    #[test]
    fn host_headers_with_no_real_port_are_refused() {
        let check = |text: &str| valid_host_header(&HeaderValue::from_str(text).unwrap());
        assert_eq!(check("acme.test:8080").unwrap(), "acme.test:8080");
        assert_eq!(check("[::1]:80").unwrap(), "[::1]:80");
        assert_eq!(check("[::1]").unwrap(), "[::1]");
        for bad in ["ACME.TEST:99999", "acme.test:", "a@b", "", "acme.test:-1"] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
