//! Who is calling: the operator, or one tenant. Bearer tokens, stored
//! hashed, compared in constant time.

use crate::tenancy::{Registry, tokens};
use http::HeaderMap;
use std::sync::Arc;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// Can do anything.
    Operator,
    /// Can act only on this tenant.
    Tenant(String),
}

/// Why a caller was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No or unknown token: 401.
    Unauthenticated,
    /// A valid token for someone else: 403.
    Forbidden,
}

impl Principal {
    /// Whether this caller may act on `tenant`.
    pub fn may_act_on(&self, tenant: &str) -> Result<(), AuthError> {
        match self {
            Self::Operator => Ok(()),
            Self::Tenant(own) if own == tenant => Ok(()),
            Self::Tenant(_) => Err(AuthError::Forbidden),
        }
    }

    /// Whether this caller is the operator.
    pub fn must_be_operator(&self) -> Result<(), AuthError> {
        match self {
            Self::Operator => Ok(()),
            Self::Tenant(_) => Err(AuthError::Forbidden),
        }
    }
}

/// Identifies the caller from the `Authorization: Bearer` header.
pub async fn authenticate(
    headers: &HeaderMap,
    operator_hash: &str,
    registry: &Arc<Registry>,
) -> Result<Principal, AuthError> {
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(AuthError::Unauthenticated)?;
    if tokens::token_matches(token, operator_hash) {
        return Ok(Principal::Operator);
    }
    let tenant = tokens::tenant_of_token(token).ok_or(AuthError::Unauthenticated)?;
    match registry.tenant(tenant.to_owned()).await {
        Ok(record) if tokens::token_matches(token, &record.token_sha256) => {
            Ok(Principal::Tenant(record.name))
        }
        _ => Err(AuthError::Unauthenticated),
    }
}
