//! API keys: `vnr_` + 43 url-safe characters (32 random bytes). Only the SHA-256 of a key and
//! its first 12 characters are stored; a key is found by that public prefix and then matched
//! by comparing hashes in constant time, so response timing says nothing about the secret.

use std::collections::HashMap;
use std::sync::Mutex;

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

/// The live (unrevoked) key matching `secret`, if any, read from the database (so a
/// revocation holds on every node at once).
pub async fn authenticate(store: &Store, secret: &str) -> Result<Option<ApiKey>, StoreError> {
    authenticate_hashed(store, secret, &hash(secret)).await
}

/// [`authenticate`] with the secret's hash already made.
async fn authenticate_hashed(
    store: &Store,
    secret: &str,
    presented: &[u8],
) -> Result<Option<ApiKey>, StoreError> {
    if !secret.starts_with(KEY_PREFIX) || secret.len() < DISPLAY_PREFIX_LEN + 8 {
        return Ok(None);
    }
    let Some(prefix) = secret.get(..DISPLAY_PREFIX_LEN) else {
        return Ok(None);
    };
    let candidates = store.keys_with_prefix(prefix).await?;
    let mut found = None;
    for key in candidates {
        if bool::from(key.hash.as_slice().ct_eq(presented)) {
            found = Some(key);
        }
    }
    Ok(found.filter(|k| k.revoked_at.is_none()))
}

/// Keys that authenticated lately, by the SHA-256 of their secret, so a write request need
/// not read its key before it writes. A key from here is only as good as its confirmation:
/// every write request's quota count confirms its key live in the same transaction as the
/// request's first write (or in the count's own, for a request that wrote nothing — see
/// [`charge`](crate::store::charge)), and a request refused before its handler (rate limit,
/// scope) re-reads its key first. So `veneer keys revoke`, from any process or node, holds at
/// a cached key's next request. A read request takes its key from here only once the database
/// says, by the key's id, that it is still live: that read shares the request's one read
/// transaction ([`Store::reads_together`]), so a read sees a revocation as soon as its other
/// reads see the database (on a busy SQLite API thread, from a snapshot at most
/// [`SNAPSHOT_FRESH`](crate::store::sqlite::db::SNAPSHOT_FRESH) older than the request),
/// for a primary-key lookup of one column instead of the prefix's rows.
#[derive(Default)]
pub struct KeyCache {
    keys: Mutex<HashMap<Vec<u8>, ApiKey>>,
}

/// Entries kept at most; past it the cache starts again empty (a lab has a handful of keys).
const CACHED_KEYS: usize = 10_000;

/// A request's key and whether it came from [`KeyCache`] unconfirmed.
pub struct Presented {
    pub key: ApiKey,
    pub from_cache: bool,
    hash: Vec<u8>,
}

impl KeyCache {
    /// The live key matching `secret`: from the cache when `cached_ok` and known; known but not
    /// `cached_ok`, from the cache once the database confirms it live; otherwise read from the
    /// database (and remembered when live, forgotten when not).
    pub async fn authenticate(
        &self,
        store: &Store,
        secret: &str,
        cached_ok: bool,
    ) -> Result<Option<Presented>, StoreError> {
        let hash = hash(secret);
        let held = self.lock().get(&hash).cloned();
        if let Some(key) = held {
            let mut presented = Presented {
                key,
                from_cache: true,
                hash,
            };
            // A key's entry never changes while it is live (only revocation writes a key), so
            // a read request holding its key asks the database only whether it still is, in
            // the request's one read transaction.
            if !cached_ok {
                if !self.confirm(store, &presented).await? {
                    return Ok(None);
                }
                presented.from_cache = false;
            }
            return Ok(Some(presented));
        }
        let found = authenticate_hashed(store, secret, &hash).await?;
        let mut keys = self.lock();
        match &found {
            Some(key) => {
                if keys.len() >= CACHED_KEYS {
                    keys.clear();
                }
                keys.insert(hash.clone(), key.clone());
            }
            None => {
                keys.remove(&hash);
            }
        }
        Ok(found.map(|key| Presented {
            key,
            from_cache: false,
            hash,
        }))
    }

    /// Asks the database, by its id, whether a key that came from the cache is still live
    /// (forgetting it when not); a key just read from the database is.
    pub async fn confirm(&self, store: &Store, presented: &Presented) -> Result<bool, StoreError> {
        if !presented.from_cache {
            return Ok(true);
        }
        let live = store.key_live(&presented.key.id).await?;
        if !live {
            self.forget(presented);
        }
        Ok(live)
    }

    /// Drops a key found revoked.
    pub fn forget(&self, presented: &Presented) {
        self.lock().remove(&presented.hash);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, ApiKey>> {
        // A panic elsewhere while holding the lock leaves a map still worth reading.
        self.keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn has_scope(key: &ApiKey, scope: &str) -> bool {
    key.scopes.split(',').any(|s| s == scope)
}
