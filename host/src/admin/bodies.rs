//! Admin request bodies: read under a cap and the body policy, spooled to
//! a file for uploads, or read and dropped for a refused upload.

use super::error::ApiError;
use crate::server::body::{GuardedBody, check_declared, read_all};
use crate::server::limits::BodyPolicy;
use crate::storage::spool::{SpoolWriter, Spooled};
use crate::tenancy::RegistryError;
use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;

/// Writes an upload of at most `cap` bytes to a file in `dir` as it
/// arrives (under `policy`), hashing it on the way.
pub(super) async fn spool_body(
    req: Request<Incoming>,
    cap: usize,
    policy: BodyPolicy,
    dir: &std::path::Path,
) -> Result<Spooled, ApiError> {
    use http_body_util::BodyExt as _;
    check_declared(req.headers(), cap).map_err(ApiError::Body)?;
    let storage = |err| ApiError::Registry(RegistryError::Storage(err));
    let mut writer = SpoolWriter::create(dir).await.map_err(storage)?;
    let mut body = GuardedBody::new(req.into_body(), cap, policy, None);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ApiError::Body)?;
        if let Some(data) = frame.data_ref() {
            writer.write(data).await.map_err(storage)?;
        }
    }
    writer.finish().await.map_err(storage)
}

/// Reads and drops a body of at most `cap` bytes under `policy`, holding
/// none of it; stops at the first error.
pub(super) async fn discard_body(req: Request<Incoming>, cap: usize, policy: BodyPolicy) {
    use http_body_util::BodyExt as _;
    let mut body = GuardedBody::new(req.into_body(), cap, policy, None);
    while let Some(Ok(_)) = body.frame().await {}
}

/// Reads a body of at most `cap` bytes under `policy`: a declared length
/// over the cap is refused before a byte is read (413), a body that stalls
/// or trickles gets 408.
pub(super) async fn read_body(
    req: Request<Incoming>,
    cap: usize,
    policy: BodyPolicy,
) -> Result<Bytes, ApiError> {
    let declared = check_declared(req.headers(), cap).map_err(ApiError::Body)?;
    let body = GuardedBody::new(req.into_body(), cap, policy, None);
    match read_all(body, declared).await {
        Ok((bytes, _)) => Ok(Bytes::from(bytes)),
        Err(err) => Err(ApiError::Body(err)),
    }
}
