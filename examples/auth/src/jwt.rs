//! HS256 JSON Web Tokens: signature first, then the time and identity
//! claims. Nothing else is accepted: no `alg: none`, no RS256 confusion.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// Longest token accepted: real tokens are a few hundred bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a token was refused; the text goes into `WWW-Authenticate`.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    Expired,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    NoSubject,
}

impl Rejection {
    pub fn describe(&self) -> &'static str {
        match self {
            Rejection::Malformed => "the token is malformed",
            Rejection::UnsupportedAlgorithm => "only HS256 tokens are accepted",
            Rejection::BadSignature => "the signature does not match",
            Rejection::Expired => "the token has expired",
            Rejection::NotYetValid => "the token is not valid yet",
            Rejection::WrongIssuer => "the token has the wrong issuer",
            Rejection::WrongAudience => "the token is not for this audience",
            Rejection::NoSubject => "the token has no subject",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// `aud` may be one string or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    exp: Option<u64>,
    nbf: Option<u64>,
}

/// What the verifier expects besides the signature.
pub struct Expect<'a> {
    pub secret: &'a [u8],
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub now: u64,
}

fn decode<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, Rejection> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejection::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Rejection::Malformed)
}

/// Verifies `token` and returns its subject.
pub fn verify(token: &str, expect: &Expect) -> Result<String, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let head: Header = decode(header)?;
    if head.alg != "HS256" {
        return Err(Rejection::UnsupportedAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Rejection::Malformed)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(expect.secret).map_err(|_| Rejection::BadSignature)?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    // Constant time: the comparison does not leak where bytes differ.
    mac.verify_slice(&signature)
        .map_err(|_| Rejection::BadSignature)?;
    let claims: Claims = decode(payload)?;
    match claims.exp {
        Some(exp) if exp + LEEWAY_SECONDS <= expect.now => return Err(Rejection::Expired),
        None => return Err(Rejection::Expired),
        _ => {}
    }
    if claims
        .nbf
        .is_some_and(|nbf| nbf > expect.now + LEEWAY_SECONDS)
    {
        return Err(Rejection::NotYetValid);
    }
    if let Some(issuer) = expect.issuer
        && claims.iss.as_deref() != Some(issuer)
    {
        return Err(Rejection::WrongIssuer);
    }
    if let Some(audience) = expect.audience {
        let ok = match &claims.aud {
            Some(Audience::One(aud)) => aud == audience,
            Some(Audience::Many(auds)) => auds.iter().any(|a| a == audience),
            None => false,
        };
        if !ok {
            return Err(Rejection::WrongAudience);
        }
    }
    claims
        .sub
        .filter(|s| !s.is_empty())
        .ok_or(Rejection::NoSubject)
}
