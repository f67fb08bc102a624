//! API keys: `vnr_` + 43 url-safe characters (32 random bytes). Only the SHA-256 of a key and
//! its first 12 characters are stored; a key is found by that public prefix and then matched
//! by comparing hashes in constant time, so response timing says nothing about the secret.

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ApiKey, NewApiKey, Store, StoreError};

pub const KEY_PREFIX: &str = "vnr_";
const DISPLAY_PREFIX_LEN: usize = 12;

/// Every scope a key can hold; a new key gets all of them unless told otherwise.
pub const SCOPES: [&str; 7] = [
    "variants:read",
    "variants:write",
    "humanizations:read",
    "humanizations:write",
    "jobs:read",
    "jobs:cancel",
    "credits:read",
];

/// Every scope, as a key with all of them holds them.
pub fn all_scopes() -> Vec<String> {
    SCOPES.iter().map(|s| s.to_string()).collect()
}

/// A freshly made key: the secret is shown once and never stored.
pub struct NewKey {
    pub secret: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

pub fn generate() -> NewKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    NewKey {
        prefix: secret[..DISPLAY_PREFIX_LEN].to_string(),
        hash: hash(&secret),
        secret,
    }
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Parses and checks a comma-separated scope list.
pub fn parse_scopes(list: &str) -> Result<Vec<String>, String> {
    let mut scopes = Vec::new();
    for scope in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&scope) {
            return Err(format!(
                "unknown scope {scope:?}; known: {}",
                SCOPES.join(", ")
            ));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    if scopes.is_empty() {
        return Err("no scope given".into());
    }
    Ok(scopes)
}

impl NewKey {
    /// The row to store for this key: never the secret.
    pub fn stored(&self, scopes: &[String]) -> NewApiKey {
        NewApiKey {
            prefix: self.prefix.clone(),
            hash: self.hash.clone(),
            scopes: scopes.join(","),
        }
    }
}

/// Creates a key for the organization and returns its secret.
pub async fn create(
    store: &Store,
    org_id: &str,
    scopes: &[String],
) -> Result<(ApiKey, String), StoreError> {
    let key = generate();
    let row = store.insert_key(org_id, key.stored(scopes)).await?;
    Ok((row, key.secret))
}

/// The live (unrevoked) key matching `secret`, if any. Read from the database on every
/// request, so a revocation holds on every node at once.
pub async fn authenticate(store: &Store, secret: &str) -> Result<Option<ApiKey>, StoreError> {
    if !secret.starts_with(KEY_PREFIX) || secret.len() < DISPLAY_PREFIX_LEN + 8 {
        return Ok(None);
    }
    let Some(prefix) = secret.get(..DISPLAY_PREFIX_LEN) else {
        return Ok(None);
    };
    let presented = hash(secret);
    let candidates = store.keys_with_prefix(prefix).await?;
    let mut found = None;
    for key in candidates {
        if bool::from(key.hash.as_slice().ct_eq(presented.as_slice())) {
            found = Some(key);
        }
    }
    Ok(found.filter(|k| k.revoked_at.is_none()))
}

pub fn has_scope(key: &ApiKey, scope: &str) -> bool {
    key.scopes.split(',').any(|s| s == scope)
}
