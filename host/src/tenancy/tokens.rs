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

/// A fresh tenant generation: 16 hex digits.
pub fn new_generation() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
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

/// HMAC-SHA256 (RFC 2104): signs the demo's JWTs; tests use it to mint
/// tokens the auth example verifies.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    let key = if key.len() > block.len() {
        Sha256::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    block[..key.len()].copy_from_slice(&key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

#[cfg(test)]
mod tests {

    #[test]
    fn hmac_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let long_key = [0xaa_u8; 131];
        let mac = hmac_sha256(
            &long_key,
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

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
