//! Function answers shared across requests and across workers: what may be
//! kept, for how long, under which key, and how an entry is laid out in the
//! host's shared data (Envoy: process-wide per `vm_id`; Kong: the
//! `nginx_wasm_main_shm_kv` zone). The adapter only moves the bytes.
//!
//! * **Key.** A call's full identity: target, method, `:authority`, path,
//!   body and every header it sends but the request id and the deadline
//!   header, which differ per request and do not change the answer. A
//!   forwarded `authorization` is part of it, so answers never cross
//!   credentials.
//! * **Bound.** Envoy's shared data never evicts, so the cache is a fixed
//!   table: `max_bytes / max_entry_bytes` slots, a key's slot chosen by a
//!   hash. A new entry replaces whatever its slot held (direct-mapped: an
//!   expired entry, or a live one whose key hashed to the same slot), and an
//!   entry larger than `max_entry_bytes` is not kept. So the cache never
//!   holds more than `max_bytes` of values, and the host never more than
//!   its slot count of keys.
//! * **Lifetime.** The field's `@http(cache: {ttl_ms})`, else the upstream's
//!   `cache.ttl_ms`, else the answer's own `s-maxage` or `max-age` (less its
//!   `Age`). Answers that say `no-store`, `no-cache` or `private` are never
//!   kept, whatever the configuration says; nor, without a configured
//!   lifetime, is an answer to a call that carried `authorization` unless it
//!   says `public` or `s-maxage` (RFC 9111 §3.5). Failed calls and answers
//!   that are not data (HTTP errors, envelope failures, bodies over the
//!   limits) are never kept: the adapter stores an answer only once the
//!   engine accepted it.
//! * **Freshness.** An entry served later carries its `cache-control` with
//!   the time it spent in the cache added to its `Age`, so the reply's own
//!   `cache-control` counts down with it.

use crate::upstream::{UpstreamRequest, DEADLINE_HEADER, REQUEST_ID_HEADER};
use serde::Deserialize;

/// The answer cache's bounds (`answer_cache` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnswerCacheConfig {
    /// Bytes of values the cache may hold in all; 0 (the default) turns it
    /// off.
    pub max_bytes: usize,
    /// The largest entry kept (key, answer and bookkeeping).
    pub max_entry_bytes: usize,
}

/// Off unless configured: caching across requests is the operator's
/// choice (as with every peer), and on Kong it needs a shared-memory zone
/// (`nginx_wasm_main_shm_kv`) without which shared-data calls trap.
impl Default for AnswerCacheConfig {
    fn default() -> Self {
        AnswerCacheConfig {
            max_bytes: 0,
            max_entry_bytes: 64 * 1024,
        }
    }
}

impl AnswerCacheConfig {
    /// How many slots the cache has (0: off).
    pub fn slots(&self) -> u64 {
        if self.max_entry_bytes == 0 {
            return 0;
        }
        (self.max_bytes / self.max_entry_bytes) as u64
    }

    /// Whether answers are cached at all.
    pub fn is_on(&self) -> bool {
        self.slots() > 0
    }
}

/// The identity of a call across requests: the SHA-256 of everything that
/// makes the call (see the module's documentation). Two calls with the
/// same identity get the same answer from a function that behaves as HTTP
/// says. Only the digest is kept (in memory and in shared data), so no
/// credential a call carries is ever stored.
pub type CallIdentity = [u8; 32];

/// A call's [`CallIdentity`].
pub fn call_identity(request: &UpstreamRequest) -> CallIdentity {
    use sha2::{Digest, Sha256};
    // Each part with its length before it: no text can run into the next
    // part. Streamed into the hash: nothing is allocated.
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    part(request.target.as_bytes());
    part(request.method.as_bytes());
    part(request.authority.as_bytes());
    part(request.path.as_bytes());
    for (name, value) in request.headers.iter() {
        if name == REQUEST_ID_HEADER || name == DEADLINE_HEADER {
            continue;
        }
        part(name.as_bytes());
        part(value.as_bytes());
    }
    // No body and an empty one are different calls.
    if let Some(body) = &request.body {
        part(body);
    }
    hasher.update([u8::from(request.body.is_some())]);
    hasher.finalize().into()
}

/// Whether the call carries `authorization` (a credential: RFC 9111 §3.5).
pub fn is_authorized(request: &UpstreamRequest) -> bool {
    request
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
}

/// The shared-data key of the slot that `identity` goes to.
pub fn slot_name(identity: &CallIdentity, slots: u64) -> String {
    // A digest is uniform: its first 8 bytes, scaled to a slot.
    let mut head = [0u8; 8];
    head.copy_from_slice(identity.get(..8).unwrap_or(&[0; 8]));
    let slot = (u128::from(u64::from_le_bytes(head)) * u128::from(slots.max(1))) >> 64;
    format!("graphql-aggregator:answer:{slot}")
}

/// How long an answer may be kept, in milliseconds; `None`: not at all.
/// `cache_control` is the answer's header as the adapter passes it (with
/// `private` for `Vary` and `age=N` for `Age`); `configured_ttl_ms` is the
/// field's or the upstream's `cache.ttl_ms`; `authorized`: the call carried
/// `authorization`.
pub fn lifetime_ms(
    cache_control: Option<&str>,
    configured_ttl_ms: Option<u64>,
    authorized: bool,
) -> Option<u64> {
    let mut max_age = None;
    let mut s_maxage = None;
    let mut age = 0u64;
    let mut public = false;
    for directive in cache_control.unwrap_or_default().split(',') {
        let directive = directive.trim();
        let (name, value) = match directive.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (directive, None),
        };
        let number = value.and_then(|v| v.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "no-cache" | "private" => return None,
            "public" => public = true,
            "max-age" => max_age = number.or(Some(0)),
            "s-maxage" => s_maxage = number.or(Some(0)),
            "age" => age = age.max(number.unwrap_or(u64::MAX)),
            _ => {}
        }
    }
    if let Some(ttl) = configured_ttl_ms {
        return (ttl > 0).then_some(ttl);
    }
    if authorized && !public && s_maxage.is_none() {
        return None;
    }
    let seconds = s_maxage.or(max_age)?.saturating_sub(age);
    (seconds > 0).then(|| seconds.saturating_mul(1000))
}

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored<'a> {
    /// The answer's HTTP status.
    pub status: u16,
    /// Its `cache-control`, as the adapter passed it.
    pub cache_control: Option<&'a str>,
    /// Its body.
    pub body: &'a [u8],
}

/// An entry found fresh for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'a> {
    /// The answer's HTTP status.
    pub status: u16,
    /// Its body, borrowed from the entry.
    pub body: &'a [u8],
    /// Its `cache-control` with the time it was kept added to its `Age`;
    /// `None` when it had none.
    pub cache_control: Option<String>,
}

const MAGIC: &[u8; 4] = b"GQA1";
const HEAD: usize = 4 + 8 + 8 + 2 + 4 + 4;

/// The bytes of an entry for the call `key`, kept from `now_ms` until
/// `expires_ms` (host wall-clock milliseconds); `None` when it would be
/// larger than `max_entry_bytes`.
pub fn encode(
    key: &CallIdentity,
    now_ms: u64,
    expires_ms: u64,
    stored: Stored<'_>,
    max_entry_bytes: usize,
) -> Option<Vec<u8>> {
    let cache_control = stored.cache_control.unwrap_or_default().as_bytes();
    let size = HEAD
        .checked_add(key.len())?
        .checked_add(cache_control.len())?
        .checked_add(stored.body.len())?;
    if size > max_entry_bytes {
        return None;
    }
    let mut entry = Vec::with_capacity(size);
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(&now_ms.to_le_bytes());
    entry.extend_from_slice(&expires_ms.to_le_bytes());
    entry.extend_from_slice(&stored.status.to_le_bytes());
    entry.extend_from_slice(&u32::try_from(key.len()).ok()?.to_le_bytes());
    let has_cache_control = stored.cache_control.is_some();
    let cc_len = u32::try_from(cache_control.len()).ok()?;
    // The high bit tells an absent header from an empty one.
    let cc_word = if has_cache_control {
        cc_len | 1 << 31
    } else {
        0
    };
    entry.extend_from_slice(&cc_word.to_le_bytes());
    entry.extend_from_slice(key.as_slice());
    entry.extend_from_slice(cache_control);
    entry.extend_from_slice(stored.body);
    Some(entry)
}

/// The entry's answer when it is for `key` and still fresh at `now_ms`
/// by the reader's own rules too: its configured lifetime, else the
/// answer's `cache-control` (another configuration sharing the host's
/// shared data may have stored it for longer).
pub fn decode<'a>(
    entry: &'a [u8],
    key: &CallIdentity,
    now_ms: u64,
    configured_ttl_ms: Option<u64>,
    authorized: bool,
) -> Option<Hit<'a>> {
    let mut reader = Reader(entry);
    if reader.take(4)? != MAGIC {
        return None;
    }
    let stored_ms = u64::from_le_bytes(reader.take(8)?.try_into().ok()?);
    let expires_ms = u64::from_le_bytes(reader.take(8)?.try_into().ok()?);
    let status = u16::from_le_bytes(reader.take(2)?.try_into().ok()?);
    let key_len = u32::from_le_bytes(reader.take(4)?.try_into().ok()?) as usize;
    let cc_word = u32::from_le_bytes(reader.take(4)?.try_into().ok()?);
    if now_ms >= expires_ms || reader.take(key_len)? != key.as_slice() {
        return None;
    }
    let cc_len = (cc_word & !(1 << 31)) as usize;
    let cache_control = std::str::from_utf8(reader.take(cc_len)?).ok()?;
    let has_cache_control = cc_word & 1 << 31 != 0;
    let lifetime = lifetime_ms(
        has_cache_control.then_some(cache_control),
        configured_ttl_ms,
        authorized,
    )?;
    if now_ms >= stored_ms.saturating_add(lifetime) {
        return None;
    }
    let kept_seconds = now_ms.saturating_sub(stored_ms) / 1000;
    let cache_control = has_cache_control.then(|| {
        let earlier_age = cache_control
            .split(',')
            .filter_map(|d| d.trim().strip_prefix("age="))
            .filter_map(|n| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        // The engine takes the largest `age`: the new one says it all.
        format!(
            "{cache_control}, age={}",
            earlier_age.saturating_add(kept_seconds)
        )
    });
    Some(Hit {
        status,
        body: reader.0,
        cache_control,
    })
}

/// Whether an entry (of any key) is still fresh at `now_ms`: replacing it
/// is an eviction.
pub fn is_live(entry: &[u8], now_ms: u64) -> bool {
    let mut reader = Reader(entry);
    let expires_ms = (|| {
        if reader.take(4)? != MAGIC {
            return None;
        }
        reader.take(8)?;
        Some(u64::from_le_bytes(reader.take(8)?.try_into().ok()?))
    })();
    expires_ms.is_some_and(|expires| now_ms < expires)
}

/// Reads an entry front to back, never past its end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn request(headers: &[(&str, &str)]) -> UpstreamRequest {
        UpstreamRequest {
            target: "openfaas".into(),
            upstream: "openfaas".into(),
            method: "GET".into(),
            path: "/user-profile?id=1".into(),
            authority: "gateway:8080".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
                .into(),
            body: None,
            timeout_ms: 1000,
            deadline_header: None,
        }
    }

    #[test]
    fn the_key_ignores_the_request_id_but_not_the_credentials() {
        let a = call_identity(&request(&[
            ("x-request-id", "a"),
            ("authorization", "Bearer 1"),
        ]));
        let b = call_identity(&request(&[
            ("x-request-id", "b"),
            ("authorization", "Bearer 1"),
        ]));
        let c = call_identity(&request(&[
            ("x-request-id", "a"),
            ("authorization", "Bearer 2"),
        ]));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut other_path = request(&[]);
        other_path.path = "/user-profile?id=2".into();
        assert_ne!(call_identity(&request(&[])), call_identity(&other_path));
        let mut with_body = request(&[]);
        with_body.body = Some(b"{}".to_vec());
        assert_ne!(call_identity(&request(&[])), call_identity(&with_body));
        // Text cannot run from one part into the next.
        let mut shifted = request(&[]);
        shifted.authority = Arc::from("gateway:8080/user-profile?id=1");
        shifted.path = String::new();
        assert_ne!(call_identity(&request(&[])), call_identity(&shifted));
    }

    #[test]
    fn lifetimes_follow_the_answer_unless_configured() {
        assert_eq!(lifetime_ms(Some("max-age=60"), None, false), Some(60_000));
        assert_eq!(
            lifetime_ms(Some("max-age=60, s-maxage=10"), None, false),
            Some(10_000)
        );
        assert_eq!(
            lifetime_ms(Some("max-age=60, age=50"), None, false),
            Some(10_000)
        );
        assert_eq!(lifetime_ms(Some("max-age=60, age=60"), None, false), None);
        assert_eq!(lifetime_ms(None, None, false), None);
        assert_eq!(lifetime_ms(Some("public"), None, false), None);
        assert_eq!(lifetime_ms(Some("max-age=0"), None, false), None);
        // A configured lifetime replaces the answer's.
        assert_eq!(lifetime_ms(None, Some(30_000), false), Some(30_000));
        assert_eq!(
            lifetime_ms(Some("max-age=5"), Some(30_000), true),
            Some(30_000)
        );
        // ... but never overrides an answer that must not be kept.
        for refusal in [
            "no-store",
            "no-cache",
            "private, max-age=60",
            "max-age=60, No-Store",
        ] {
            assert_eq!(
                lifetime_ms(Some(refusal), Some(30_000), false),
                None,
                "{refusal}"
            );
        }
        // With credentials, only what says a shared cache may keep it.
        assert_eq!(lifetime_ms(Some("max-age=60"), None, true), None);
        assert_eq!(
            lifetime_ms(Some("public, max-age=60"), None, true),
            Some(60_000)
        );
        assert_eq!(lifetime_ms(Some("s-maxage=60"), None, true), Some(60_000));
    }

    #[test]
    fn an_entry_serves_its_key_until_it_expires() {
        let key = call_identity(&request(&[]));
        let stored = Stored {
            status: 200,
            cache_control: Some("max-age=60, age=5"),
            body: br#"{"id":"1"}"#,
        };
        let entry = encode(&key, 1_000, 61_000, stored, 1024).unwrap_or_default();
        let fresh = |now, ttl, authorized| decode(&entry, &key, now, ttl, authorized);
        let hit = fresh(31_000, None, false).unwrap_or_else(|| panic!("a fresh entry"));
        assert_eq!(hit.status, 200);
        assert_eq!(hit.body, br#"{"id":"1"}"#);
        // 30 s in the cache on top of the 5 s it had.
        assert_eq!(
            hit.cache_control.as_deref(),
            Some("max-age=60, age=5, age=35")
        );
        // 60 s less the 5 s it had when it was stored.
        assert!(fresh(55_999, None, false).is_some());
        assert_eq!(fresh(56_000, None, false), None, "stale");
        assert_eq!(fresh(61_000, Some(86_400_000), false), None, "expired");
        // A reader whose configuration keeps answers 10 s finds older ones
        // stale, whoever stored them; one with credentials follows RFC 9111
        // §3.5 on its own.
        assert!(fresh(10_999, Some(10_000), false).is_some());
        assert_eq!(fresh(11_000, Some(10_000), false), None);
        assert_eq!(fresh(2_000, None, true), None);
        assert!(is_live(&entry, 60_999));
        assert!(!is_live(&entry, 61_000));
        assert!(!is_live(b"GQA1", 0));
        let other = call_identity(&request(&[("authorization", "x")]));
        assert_eq!(
            decode(&entry, &other, 2_000, None, false),
            None,
            "another key in the same slot"
        );
        let half = &entry[..entry.len() / 2];
        assert_eq!(decode(half, &key, 2_000, None, false), None);
        assert_eq!(decode(b"", &key, 2_000, None, false), None);
        let bare = Stored {
            cache_control: None,
            ..stored
        };
        let entry = encode(&key, 1_000, 61_000, bare, 1024).unwrap_or_default();
        // Kept for a configured lifetime: only a reader with one serves it.
        assert_eq!(decode(&entry, &key, 2_000, None, false), None);
        assert_eq!(
            decode(&entry, &key, 2_000, Some(30_000), false).map(|h| h.cache_control),
            Some(None)
        );
    }

    #[test]
    fn entries_over_the_bound_are_not_kept() {
        let key = call_identity(&request(&[]));
        let body = vec![b'x'; 1000];
        let stored = Stored {
            status: 200,
            cache_control: None,
            body: &body,
        };
        assert!(encode(&key, 0, 1, stored, 1000).is_none());
        let fits = HEAD + key.len() + body.len();
        assert_eq!(
            encode(&key, 0, 1, stored, fits).map(|e| e.len()),
            Some(fits)
        );
    }

    #[test]
    fn slots_are_fixed_by_the_bounds() {
        let config = AnswerCacheConfig {
            max_bytes: 1024 * 1024,
            max_entry_bytes: 16 * 1024,
        };
        assert_eq!(config.slots(), 64);
        let off = AnswerCacheConfig {
            max_bytes: 0,
            ..config
        };
        assert!(!off.is_on());
        let names: std::collections::HashSet<String> = (0..10_000)
            .map(|i| {
                let mut request = request(&[]);
                request.path = format!("/user-profile?id={i}");
                slot_name(&call_identity(&request), config.slots())
            })
            .collect();
        assert_eq!(names.len(), 64, "every key lands in one of the 64 slots");
    }
}
