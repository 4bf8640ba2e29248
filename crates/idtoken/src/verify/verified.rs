//! The verified-token cache: what a successful signature check proved,
//! kept for the token's exact text, so a caller that sends the same token
//! a thousand times (clients cache theirs for up to an hour) pays for one
//! public-key operation, not a thousand.
//!
//! - Found by a keyed hash of the whole token (foldhash, seeded per
//!   process) and confirmed by comparing the whole token: no collision
//!   can make one token pass for another.
//! - Only tokens whose signature verified are kept. A forged or malformed
//!   token never enters, so a flood of them evicts nothing; a flood of
//!   *valid* unique tokens meets S3-FIFO's admission (a new entry lands in
//!   a small probation queue and leaves first unless it is asked for
//!   again), so the tokens callers repeat stay.
//! - A hit is not a verdict: the caller re-checks the claims against the
//!   policy at the current time (`exp`, `iat`, `nbf` with skew) and that
//!   the signing key is still in the key set, with the same key material.
//! - Bounded by weight (the token's and its claims' bytes plus a fixed
//!   overhead), which bounds both memory and the number of entries.
//! - Reads take a shard's read lock, never a global one.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::jwks::PublicKey;
use crate::token::Claims;

/// Default bound on the cache's weight: about 8,000 typical Google ID
/// tokens (a token of ~1 KiB with its claims weighs ~2 KiB).
pub(crate) const DEFAULT_CAPACITY_BYTES: u64 = 16 * 1024 * 1024;

/// Bytes counted for an entry beyond its strings: the entry, its `Arc`s,
/// the claims' fixed part and the cache's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 256;

/// What a successful verification proved about one token.
pub(crate) struct Entry {
    pub claims: Claims,
    pub kid: Box<str>,
    /// The key that checked the signature: a hit counts only while the
    /// key set still lists this `kid` with this same key.
    pub key: Arc<PublicKey>,
}

#[derive(Clone)]
struct Weigh;

impl Weighter<Box<str>, Arc<Entry>> for Weigh {
    fn weight(&self, token: &Box<str>, entry: &Arc<Entry>) -> u64 {
        let c = &entry.claims;
        let strings = [&c.iss, &c.aud, &c.sub, &c.azp, &c.email, &c.hd]
            .iter()
            .map(|s| s.as_ref().map_or(0, String::len))
            .sum::<usize>();
        // The other claims, as their JSON length: an estimate, but one that
        // grows with whatever a token carries.
        let extra = c
            .extra
            .iter()
            .map(|(k, v)| k.len() + json_len(v))
            .sum::<usize>();
        let bytes = token.len() + entry.kid.len() + strings + extra;
        u64::try_from(bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(ENTRY_OVERHEAD)
    }
}

/// A cheap upper-bound-ish estimate of a JSON value's size in memory.
fn json_len(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::String(s) => s.len() + 24,
        Value::Array(a) => a.iter().map(json_len).sum::<usize>() + 24,
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + json_len(v)).sum::<usize>() + 48,
        _ => 16,
    }
}

/// The verified-token cache of one verifier.
pub(crate) struct Verified {
    cache: Cache<Box<str>, Arc<Entry>, Weigh>,
}

impl Verified {
    /// A cache bounded to `capacity_bytes` of weight; `None` for 0 (off).
    pub(crate) fn new(capacity_bytes: u64) -> Option<Self> {
        if capacity_bytes == 0 {
            return None;
        }
        // Sized for ~2 KiB entries; only the weight bound is enforced.
        let items = usize::try_from(capacity_bytes / 2048)
            .unwrap_or(usize::MAX)
            .max(16);
        Some(Self {
            cache: Cache::with_weighter(items, capacity_bytes, Weigh),
        })
    }

    pub(crate) fn get(&self, token: &str) -> Option<Arc<Entry>> {
        self.cache.get(token)
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        self.cache.insert(token.into(), Arc::new(entry));
    }

    pub(crate) fn remove(&self, token: &str) {
        self.cache.remove(token);
    }

    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.cache.weight()
    }
}
