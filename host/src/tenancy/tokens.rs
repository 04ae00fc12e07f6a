//! API tokens: generated from the OS's CSPRNG, stored only as sha256,
//! compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a token (256 bits).
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// A fresh tenant token: `verge_<tenant>_<64 hex>`. The tenant name inside
/// lets the CLI know whom it acts for; the random part is the secret.
pub fn new_tenant_token(tenant: &str) -> Result<String, getrandom::Error> {
    Ok(format!("verge_{tenant}_{}", random_hex()?))
}

/// A fresh operator token: `verge_op_<64 hex>`.
pub fn new_operator_token() -> Result<String, getrandom::Error> {
    Ok(format!("verge_op_{}", random_hex()?))
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// sha256 of a token, hex: what is stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `presented` hashes to `stored_hash`, in constant time.
pub fn token_matches(presented: &str, stored_hash: &str) -> bool {
    let presented = token_hash(presented);
    presented.as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// The tenant a tenant token names, if it has the tenant-token shape.
pub fn tenant_of_token(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("verge_")?;
    let (tenant, random) = rest.rsplit_once('_')?;
    (tenant != "op" && random.len() == 2 * TOKEN_RANDOM_BYTES).then_some(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hash_match_and_name_their_tenant() -> Result<(), getrandom::Error> {
        let token = new_tenant_token("acme-1")?;
        assert_eq!(tenant_of_token(&token), Some("acme-1"));
        let stored = token_hash(&token);
        assert!(token_matches(&token, &stored));
        assert!(!token_matches("verge_acme-1_00", &stored));
        assert_ne!(new_tenant_token("a")?, new_tenant_token("a")?);
        assert_eq!(tenant_of_token(&new_operator_token()?), None);
        Ok(())
    }
}
