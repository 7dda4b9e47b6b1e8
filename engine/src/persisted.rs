//! Persisted queries: Apollo's automatic persisted queries (APQ) and
//! trusted documents (a manifest of the only operations that may run).
//!
//! A client names a document by the SHA-256 of its text, in hex, in the
//! request's `extensions`:
//!
//! ```json
//! {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ecf4…"}}}
//! ```
//!
//! (a POST body member, or the `extensions` URL parameter of a GET). A
//! document is found first in the configuration's **manifest** (an Apollo
//! persisted query manifest, checked when the configuration loads), then in
//! the **registry**: documents clients registered by sending the hash with
//! the full `query`, kept in the host's shared data so that every worker
//! sees them (Envoy: process-wide per `vm_id`; Kong: the
//! `nginx_wasm_main_shm_kv` zone).
//!
//! The registry is bounded by construction: a fixed number of keys
//! (`max_registered` slots, `gqa:pq:<slot>`, the slot taken from the hash),
//! each holding one document of at most `limits.max_query_bytes` and its
//! hash. A new registration replaces whatever its slot held
//! (direct-mapped), and a lookup checks the stored hash is the one asked
//! for. Envoy's shared data never evicts, so the key set must be fixed:
//! it is, whatever clients send. Worst case: `max_registered ×
//! (max_query_bytes + 32)` bytes of values, plus the keys.
//!
//! The engine sees the shared data only through [`SharedStore`], which the
//! adapter implements over the host's `proxy_get/set_shared_data`;
//! [`MemoryStore`] is an in-memory one for tests and native hosts.

use crate::limits::Limits;
use apollo_compiler::executable::OperationType;
use apollo_compiler::parser::Parser;
use apollo_compiler::validation::Valid;
use apollo_compiler::Schema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The default of `persisted_queries.max_registered`.
pub const DEFAULT_MAX_REGISTERED: usize = 1024;

/// The most slots `max_registered` may ask for (a key each, never freed
/// on Envoy).
pub const MAX_REGISTERED: usize = 65_536;

/// The prefix of the registry's shared-data keys: `gqa:pq:<slot>` (no
/// `/`: on Kong a `/` would name another shm zone).
pub const KEY_PREFIX: &str = "gqa:pq:";

/// The `format` of an Apollo persisted query manifest.
pub const MANIFEST_FORMAT: &str = "apollo-persisted-query-manifest";

/// The SHA-256 of a document's text (its UTF-8 bytes, as sent).
pub fn sha256(text: &str) -> Hash {
    Sha256::digest(text.as_bytes()).into()
}

/// A hash written as 64 hexadecimal digits (either case).
pub fn parse_hash(text: &str) -> Option<Hash> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (out, pair) in hash.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |b: u8| (b as char).to_digit(16);
        let (Some(&high), Some(&low)) = (pair.first(), pair.get(1)) else {
            return None;
        };
        let value = digit(high)?.checked_mul(16)?.checked_add(digit(low)?)?;
        *out = u8::try_from(value).ok()?;
    }
    Some(hash)
}

/// A hash as 64 lower-case hexadecimal digits.
pub fn hex(hash: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(64);
    for byte in hash {
        for nibble in [byte >> 4, byte & 15] {
            if let Some(&d) = DIGITS.get(usize::from(nibble)) {
                text.push(char::from(d));
            }
        }
    }
    text
}

// ---------------------------------------------------------------------------
// configuration

/// `persisted_queries`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPersistedQueries {
    automatic: Option<bool>,
    #[serde(default)]
    only_listed: bool,
    manifest: Option<RawManifest>,
    max_registered: Option<usize>,
}

/// An Apollo persisted query manifest (other members, such as an
/// operation's `clientName`, are ignored).
#[derive(Debug, Deserialize)]
struct RawManifest {
    format: String,
    version: u64,
    operations: Vec<RawOperation>,
}

#[derive(Debug, Deserialize)]
struct RawOperation {
    id: String,
    body: String,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The checked `persisted_queries` settings and the manifest's documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistedQueries {
    /// Clients may register documents (APQ).
    pub automatic: bool,
    /// `automatic` was left out of the configuration (a host without
    /// shared memory to spare may turn the default off).
    pub automatic_by_default: bool,
    /// Only the manifest's documents run (trusted documents).
    pub only_listed: bool,
    /// The registry's slots (shared-data keys).
    pub max_registered: usize,
    /// The manifest's documents, by hash.
    manifest: HashMap<Hash, Box<str>>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        PersistedQueries {
            automatic: true,
            automatic_by_default: true,
            only_listed: false,
            max_registered: DEFAULT_MAX_REGISTERED,
            manifest: HashMap::new(),
        }
    }
}

impl PersistedQueries {
    /// Checks the settings, and parses and validates every document of the
    /// manifest against the (client-facing) schema and the document limits.
    /// The error names the setting or the operation at fault.
    pub fn load(
        raw: RawPersistedQueries,
        schema: &Valid<Schema>,
        limits: &Limits,
    ) -> Result<Self, String> {
        if raw.only_listed && raw.automatic == Some(true) {
            return Err(
                "`automatic: true` registers any document a client sends, which \
                 `only_listed: true` refuses: set `automatic: false` (or leave it out) \
                 with `only_listed`"
                    .into(),
            );
        }
        if raw.only_listed && raw.manifest.is_none() {
            return Err(
                "`only_listed: true` needs a `manifest`: without one no document \
                 could run"
                    .into(),
            );
        }
        let automatic = raw.automatic.unwrap_or(!raw.only_listed);
        let max_registered = raw.max_registered.unwrap_or(DEFAULT_MAX_REGISTERED);
        if max_registered == 0 && automatic {
            return Err(
                "`max_registered` is 0, which keeps no registration: set `automatic: false` \
                 to turn registrations off"
                    .into(),
            );
        }
        if max_registered > MAX_REGISTERED {
            return Err(format!(
                "`max_registered` must be at most {MAX_REGISTERED} (each slot is a \
                 shared-data key the host never frees)"
            ));
        }
        let mut manifest = HashMap::new();
        if let Some(raw_manifest) = raw.manifest {
            if raw_manifest.format != MANIFEST_FORMAT {
                return Err(format!(
                    "`manifest.format` is {:?}: expected {MANIFEST_FORMAT:?}",
                    raw_manifest.format
                ));
            }
            if raw_manifest.version != 1 {
                return Err(format!(
                    "`manifest.version` is {}: only version 1 is known",
                    raw_manifest.version
                ));
            }
            for (index, operation) in raw_manifest.operations.into_iter().enumerate() {
                let (hash, body) = check_operation(index, operation, schema, limits)?;
                manifest.insert(hash, body.into_boxed_str());
            }
        }
        Ok(PersistedQueries {
            automatic,
            automatic_by_default: raw.automatic.is_none(),
            only_listed: raw.only_listed,
            max_registered,
            manifest,
        })
    }

    /// The manifest's document with this hash.
    pub fn listed(&self, hash: &Hash) -> Option<&str> {
        self.manifest.get(hash).map(|body| &**body)
    }

    /// How many documents the manifest has.
    pub fn manifest_len(&self) -> usize {
        self.manifest.len()
    }
}

/// Checks one manifest operation: its id is the SHA-256 of its body in
/// lower-case hex, the body parses and validates, and names the operation
/// and type it says.
fn check_operation(
    index: usize,
    operation: RawOperation,
    schema: &Valid<Schema>,
    limits: &Limits,
) -> Result<(Hash, String), String> {
    let RawOperation {
        id,
        body,
        name,
        kind,
    } = operation;
    let what = match &name {
        Some(name) => format!("manifest operation {name} (operations[{index}])"),
        None => format!("manifest operation operations[{index}]"),
    };
    let lower_hex = id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let Some(hash) = parse_hash(&id).filter(|_| lower_hex) else {
        return Err(format!(
            "{what}: `id` {id:?} is not a SHA-256 hash in lower-case hex (64 digits)"
        ));
    };
    let actual = sha256(&body);
    if actual != hash {
        return Err(format!(
            "{what}: `id` is not the SHA-256 of its `body` ({}): the manifest and its \
             documents do not match",
            hex(&actual)
        ));
    }
    if body.len() > limits.max_query_bytes {
        return Err(format!(
            "{what}: its body has {} bytes, over limits.max_query_bytes ({}), so it could never run",
            body.len(),
            limits.max_query_bytes
        ));
    }
    let mut parser = Parser::new()
        .token_limit(limits.max_query_tokens)
        .recursion_limit(limits.parser_recursion_limit());
    let describe = |errors: &apollo_compiler::validation::DiagnosticList| {
        let first = errors
            .iter()
            .next()
            .map(|d| d.to_string())
            .unwrap_or_default();
        format!("{what}: its body does not parse or validate against the schema: {first}")
    };
    let ast = parser
        .parse_ast(&body, "manifest.graphql")
        .map_err(|e| describe(&e.errors))?;
    let document = ast
        .to_executable_validate(schema)
        .map_err(|e| describe(&e.errors))?;
    // One operation an entry, as Apollo's manifests are: with several, a
    // client could run an operation of the body that was never listed
    // (with `operationName`).
    let operations = document.operations.iter().count();
    if operations != 1 {
        return Err(format!(
            "{what}: its body has {operations} operations; a manifest entry holds exactly one \
             (with its fragments)"
        ));
    }
    let operation = match document.operations.get(name.as_deref()) {
        Ok(operation) => operation,
        Err(_) => {
            return Err(format!(
                "{what}: its body has no operation {}",
                name.as_deref()
                    .map_or("it could run without a name".to_string(), |n| format!(
                        "named {n}"
                    ))
            ))
        }
    };
    if let Some(kind) = kind {
        let actual = match operation.operation_type {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        };
        if kind != actual {
            return Err(format!(
                "{what}: `type` is {kind:?} but the operation is a {actual}"
            ));
        }
    }
    Ok((hash, body))
}

// ---------------------------------------------------------------------------
// the registry

/// The host's shared data, as a key-value store of bytes. Writes may fail
/// (a full Kong zone without eviction, a host error): a registration is a
/// cache, never needed for a reply.
pub trait SharedStore {
    /// The value of `key`, if it has one.
    fn get(&mut self, key: &str) -> Option<Vec<u8>>;
    /// Sets `key` to `value`; false if the host refused.
    fn set(&mut self, key: &str, value: &[u8]) -> bool;
}

/// A [`SharedStore`] in memory (tests, native hosts).
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    /// The values, by key.
    pub entries: HashMap<String, Vec<u8>>,
}

impl SharedStore for MemoryStore {
    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }

    fn set(&mut self, key: &str, value: &[u8]) -> bool {
        self.entries.insert(key.to_string(), value.to_vec());
        true
    }
}

/// The registry slot of a hash, out of `slots` (at least 1): the hash's
/// first eight bytes, modulo `slots`. (The hash is a client's choice only
/// together with its document, and a SHA-256 spreads evenly.)
pub fn slot(hash: &Hash, slots: usize) -> usize {
    let mut first = [0u8; 8];
    first.copy_from_slice(hash.get(..8).unwrap_or(&[0; 8]));
    let value = u64::from_be_bytes(first);
    let slots = u64::try_from(slots.max(1)).unwrap_or(u64::MAX);
    usize::try_from(value % slots).unwrap_or(0)
}

/// The shared-data key of a slot: `gqa:pq:<slot>`.
pub fn key(slot: usize) -> String {
    format!("{KEY_PREFIX}{slot}")
}

/// A slot's value: the 32 bytes of the hash, then the document's text.
pub fn encode(hash: &Hash, document: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(32 + document.len());
    value.extend_from_slice(hash);
    value.extend_from_slice(document.as_bytes());
    value
}

/// The document a slot's value holds for `wanted`: none when the slot
/// holds another hash (it was replaced), or a value that is not one of
/// ours (too large, not UTF-8).
pub fn decode<'v>(value: &'v [u8], wanted: &Hash, max_document_bytes: usize) -> Option<&'v str> {
    let (hash, document) = (value.get(..32)?, value.get(32..)?);
    if hash != wanted || document.len() > max_document_bytes {
        return None;
    }
    std::str::from_utf8(document).ok()
}

/// The registered document of `hash`, if its slot still holds it.
pub fn lookup(
    store: &mut dyn SharedStore,
    hash: &Hash,
    slots: usize,
    max_document_bytes: usize,
) -> Option<String> {
    if slots == 0 {
        return None;
    }
    let value = store.get(&key(slot(hash, slots)))?;
    decode(&value, hash, max_document_bytes).map(str::to_string)
}

/// Registers `document` under `hash` (its SHA-256, already checked),
/// replacing whatever its slot held. A document over `max_document_bytes`
/// is not kept. True when the host took it.
pub fn register(
    store: &mut dyn SharedStore,
    hash: &Hash,
    document: &str,
    slots: usize,
    max_document_bytes: usize,
) -> bool {
    if slots == 0 || document.len() > max_document_bytes {
        return false;
    }
    store.set(&key(slot(hash, slots)), &encode(hash, document))
}

// ---------------------------------------------------------------------------
// resolving a request's document

/// Why a request naming a persisted document is not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A hash alone, neither in the manifest nor registered: the client
    /// sends the hash again with the document (APQ).
    NotFound,
    /// A hash alone, not in the manifest, and registrations are off.
    NotSupported,
    /// The hash sent with a document is not the document's SHA-256.
    HashMismatch {
        /// The hash the client sent.
        sent: Hash,
        /// The document's SHA-256.
        actual: Hash,
    },
    /// Trusted documents only: a hash alone that the manifest does not
    /// list.
    NotInList(Hash),
    /// Trusted documents only: a document the manifest does not list.
    NotInSafelist,
}

impl Refusal {
    /// `extensions.code`: Apollo's codes, which Apollo Client's
    /// persisted-queries link and Apollo Router use.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::NotFound => "PERSISTED_QUERY_NOT_FOUND",
            Refusal::NotSupported => "PERSISTED_QUERY_NOT_SUPPORTED",
            Refusal::HashMismatch { .. } => "PERSISTED_QUERY_HASH_MISMATCH",
            Refusal::NotInList(_) => "PERSISTED_QUERY_NOT_IN_LIST",
            Refusal::NotInSafelist => "QUERY_NOT_IN_SAFELIST",
        }
    }

    /// The HTTP status under `application/graphql-response+json` (under
    /// `application/json`, 200 like every request error): 404 for a
    /// document the gateway does not know, 403 for one it will not run,
    /// 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::NotFound | Refusal::NotInList(_) => 404,
            Refusal::NotInSafelist => 403,
            Refusal::NotSupported | Refusal::HashMismatch { .. } => 400,
        }
    }
}

impl fmt::Display for Refusal {
    /// The error's message. APQ clients recognise `PersistedQueryNotFound`
    /// and `PersistedQueryNotSupported` by message as well as by code, so
    /// those two are exactly Apollo's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotFound => f.write_str("PersistedQueryNotFound"),
            Refusal::NotSupported => f.write_str("PersistedQueryNotSupported"),
            Refusal::HashMismatch { sent, actual } => write!(
                f,
                "provided sha does not match query: extensions.persistedQuery.sha256Hash is {}, \
                 but the SHA-256 of `query` is {}",
                hex(sent),
                hex(actual)
            ),
            Refusal::NotInList(hash) => write!(
                f,
                "persisted query {} is not in this gateway's list of trusted documents: only \
                 the operations of its manifest run here",
                hex(hash)
            ),
            Refusal::NotInSafelist => f.write_str(
                "this document is not one of this gateway's trusted documents: only the \
                 operations of its manifest run here (send one of them, by its hash or in full)",
            ),
        }
    }
}

/// Where a request's document came from (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Sent in full, without a hash.
    Sent,
    /// Sent in full with its hash (an APQ registration when
    /// [`Resolved::register`] is set).
    SentWithHash,
    /// A hash alone, found in the manifest.
    Manifest,
    /// A hash alone, found in the registry.
    Registry,
}

/// A request's document, once found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'q> {
    /// The document's text.
    pub query: std::borrow::Cow<'q, str>,
    /// Where it came from.
    pub source: Source,
    /// Register it under this hash once the request has passed every check.
    pub register: Option<Hash>,
}

/// What persisted queries did for one request (for metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Where the document came from (`None`: the request was refused
    /// before, or is not GraphQL).
    pub source: Option<Source>,
    /// The document was registered (APQ).
    pub registered: bool,
    /// The request was refused for this.
    pub refusal: Option<Refusal>,
}

impl Report {
    /// The document was found by its hash (manifest or registry).
    pub fn hit(&self) -> bool {
        matches!(self.source, Some(Source::Manifest | Source::Registry))
    }

    /// A hash alone that was not found (the client will register it).
    pub fn miss(&self) -> bool {
        matches!(self.refusal, Some(Refusal::NotFound))
    }

    /// Refused by the trusted-documents list.
    pub fn untrusted(&self) -> bool {
        matches!(
            self.refusal,
            Some(Refusal::NotInList(_) | Refusal::NotInSafelist)
        )
    }
}

/// Finds a request's document from its `query` and its persisted-query
/// hash, under these settings; `store` is the registry (`None`: nothing is
/// registered). `query` and `hash` are never both absent (the request
/// parser refuses that).
pub fn resolve<'q>(
    settings: &'q PersistedQueries,
    query: Option<std::borrow::Cow<'q, str>>,
    hash: Option<Hash>,
    store: Option<&mut dyn SharedStore>,
    max_document_bytes: usize,
) -> Result<Resolved<'q>, Refusal> {
    use std::borrow::Cow;
    match (query, hash) {
        (Some(query), None) => {
            if settings.only_listed && settings.listed(&sha256(&query)).is_none() {
                return Err(Refusal::NotInSafelist);
            }
            Ok(Resolved {
                query,
                source: Source::Sent,
                register: None,
            })
        }
        (Some(query), Some(sent)) => {
            let actual = sha256(&query);
            if actual != sent {
                return Err(Refusal::HashMismatch { sent, actual });
            }
            let listed = settings.listed(&sent).is_some();
            if settings.only_listed && !listed {
                return Err(Refusal::NotInSafelist);
            }
            Ok(Resolved {
                query,
                source: Source::SentWithHash,
                register: (settings.automatic && !listed).then_some(sent),
            })
        }
        (None, Some(hash)) => {
            if let Some(body) = settings.listed(&hash) {
                return Ok(Resolved {
                    query: Cow::Borrowed(body),
                    source: Source::Manifest,
                    register: None,
                });
            }
            if settings.only_listed {
                return Err(Refusal::NotInList(hash));
            }
            if !settings.automatic {
                return Err(Refusal::NotSupported);
            }
            let found = store.and_then(|store| {
                lookup(store, &hash, settings.max_registered, max_document_bytes)
            });
            match found {
                Some(document) => Ok(Resolved {
                    query: Cow::Owned(document),
                    source: Source::Registry,
                    register: None,
                }),
                None => Err(Refusal::NotFound),
            }
        }
        // Not a request the parser lets through; answered as not found.
        (None, None) => Err(Refusal::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    const SDL: &str = "type Query { a: Int b: Int } type Mutation { m: Int }";

    fn schema() -> Valid<Schema> {
        Schema::parse_and_validate(SDL, "s.graphql").unwrap()
    }

    fn load(raw: serde_json::Value) -> Result<PersistedQueries, String> {
        let raw: RawPersistedQueries = serde_json::from_value(raw).map_err(|e| e.to_string())?;
        PersistedQueries::load(raw, &schema(), &Limits::default())
    }

    fn manifest(operations: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"format": MANIFEST_FORMAT, "version": 1, "operations": operations})
    }

    fn operation(body: &str, name: &str) -> serde_json::Value {
        serde_json::json!({"id": hex(&sha256(body)), "body": body, "name": name, "type": "query"})
    }

    #[test]
    fn a_manifest_entry_holds_one_operation() {
        let body = "query Listed { a } query Other { a }";
        let manifest = serde_json::json!({
            "format": MANIFEST_FORMAT, "version": 1,
            "operations": [{"id": hex(&sha256(body)), "body": body, "name": "Listed", "type": "query"}],
        });
        let error =
            load(serde_json::json!({"only_listed": true, "manifest": manifest})).unwrap_err();
        assert!(error.contains("2 operations"), "{error}");
    }

    #[test]
    fn hashes_and_hex() {
        // sha256("") and sha256("{__typename}") (Apollo Router's own test value).
        assert_eq!(
            hex(&sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256("{__typename}")),
            "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"
        );
        let hash = sha256("{ a }");
        assert_eq!(parse_hash(&hex(&hash)), Some(hash));
        assert_eq!(parse_hash(&hex(&hash).to_uppercase()), Some(hash));
        assert_eq!(parse_hash("abc"), None);
        assert_eq!(parse_hash(&"g".repeat(64)), None);
        assert_eq!(parse_hash(&"é".repeat(32)), None);
    }

    #[test]
    fn loads_defaults_and_a_manifest() {
        let settings = load(serde_json::json!({})).unwrap();
        assert_eq!(settings, PersistedQueries::default());
        assert!(settings.automatic && !settings.only_listed);
        assert_eq!(settings.max_registered, 1024);

        let settings = load(serde_json::json!({
            "only_listed": true,
            "manifest": manifest(serde_json::json!([operation("query Q { a }", "Q")])),
        }))
        .unwrap();
        assert!(
            settings.only_listed && !settings.automatic,
            "automatic defaults to off"
        );
        assert_eq!(
            settings.listed(&sha256("query Q { a }")),
            Some("query Q { a }")
        );
        assert_eq!(settings.manifest_len(), 1);
    }

    #[test]
    fn refuses_bad_settings() {
        let listed = manifest(serde_json::json!([operation("query Q { a }", "Q")]));
        let e = load(serde_json::json!({"only_listed": true})).unwrap_err();
        assert!(e.contains("needs a `manifest`"), "{e}");
        let e =
            load(serde_json::json!({"only_listed": true, "automatic": true, "manifest": listed}))
                .unwrap_err();
        assert!(e.contains("`automatic: false`"), "{e}");
        let e = load(serde_json::json!({"max_registered": 0})).unwrap_err();
        assert!(e.contains("max_registered"), "{e}");
        assert!(load(serde_json::json!({"max_registered": 0, "automatic": false})).is_ok());
        let e = load(serde_json::json!({"max_registered": 1_000_000})).unwrap_err();
        assert!(e.contains("at most 65536"), "{e}");
        let e = load(serde_json::json!({"automatc": true})).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn refuses_a_bad_manifest_naming_the_operation() {
        let bad = |operations: serde_json::Value| {
            load(serde_json::json!({"manifest": manifest(operations)})).unwrap_err()
        };
        let mut wrong_id = operation("query Q { a }", "Q");
        wrong_id["id"] = hex(&sha256("query Q { b }")).into();
        let e = bad(serde_json::json!([wrong_id]));
        assert!(
            e.contains("operation Q") && e.contains("not the SHA-256"),
            "{e}"
        );

        let mut upper = operation("query Q { a }", "Q");
        upper["id"] = hex(&sha256("query Q { a }")).to_uppercase().into();
        let e = bad(serde_json::json!([upper]));
        assert!(e.contains("lower-case hex"), "{e}");

        let e = bad(serde_json::json!([
            operation("query Q { a }", "Q"),
            operation("query R { nope }", "R")
        ]));
        assert!(
            e.contains("operation R (operations[1])") && e.contains("nope"),
            "{e}"
        );

        let e = bad(serde_json::json!([operation("query Q { a }", "Other")]));
        assert!(e.contains("no operation named Other"), "{e}");

        let mut mutation = operation("mutation M { m }", "M");
        mutation["type"] = "query".into();
        let e = bad(serde_json::json!([mutation]));
        assert!(e.contains("is a mutation"), "{e}");

        let e =
            load(serde_json::json!({"manifest": {"format": "x", "version": 1, "operations": []}}))
                .unwrap_err();
        assert!(e.contains("manifest.format"), "{e}");
        let e = load(serde_json::json!({"manifest": {"format": MANIFEST_FORMAT, "version": 2, "operations": []}}))
            .unwrap_err();
        assert!(e.contains("manifest.version"), "{e}");
    }

    #[test]
    fn slots_are_fixed_and_replaced() {
        let mut store = MemoryStore::default();
        let (a, b) = ("{ a }", "{ b }");
        let (ha, hb) = (sha256(a), sha256(b));
        // One slot: every registration replaces the last one.
        assert!(register(&mut store, &ha, a, 1, 100));
        assert_eq!(lookup(&mut store, &ha, 1, 100).as_deref(), Some(a));
        assert!(register(&mut store, &hb, b, 1, 100));
        assert_eq!(
            lookup(&mut store, &ha, 1, 100),
            None,
            "replaced: the stored hash differs"
        );
        assert_eq!(lookup(&mut store, &hb, 1, 100).as_deref(), Some(b));
        assert_eq!(store.entries.keys().collect::<Vec<_>>(), ["gqa:pq:0"]);
        // Many registrations never make more keys than slots.
        for i in 0..200 {
            let doc = format!("{{ a{i}: a }}");
            register(&mut store, &sha256(&doc), &doc, 8, 100);
        }
        assert!(store.entries.len() <= 8);
        assert!(store.entries.keys().all(|k| k.starts_with(KEY_PREFIX)));
        assert!(slot(&ha, 8) < 8);
        assert_eq!(slot(&ha, 8), slot(&ha, 8));
    }

    #[test]
    fn values_are_bounded() {
        let mut store = MemoryStore::default();
        let doc = "{ a b }";
        let hash = sha256(doc);
        assert!(
            !register(&mut store, &hash, doc, 4, doc.len() - 1),
            "over the bound"
        );
        assert!(store.entries.is_empty());
        assert!(register(&mut store, &hash, doc, 4, doc.len()));
        let value = store.entries.values().next().unwrap();
        assert_eq!(value.len(), 32 + doc.len());
        // A value over the reader's bound, or not ours, is not a document.
        assert_eq!(lookup(&mut store, &hash, 4, doc.len() - 1), None);
        assert_eq!(decode(b"short", &hash, 100), None);
        let mut bad = encode(&hash, doc);
        bad.push(0xff);
        assert_eq!(decode(&bad, &hash, 100), None);
    }

    fn settings(automatic: bool, only_listed: bool) -> PersistedQueries {
        let mut manifest = HashMap::new();
        manifest.insert(sha256("query L { a }"), "query L { a }".into());
        PersistedQueries {
            automatic,
            automatic_by_default: false,
            only_listed,
            max_registered: 16,
            manifest,
        }
    }

    fn run<'q>(
        settings: &'q PersistedQueries,
        store: &mut MemoryStore,
        query: Option<&'q str>,
        hash: Option<Hash>,
    ) -> Result<Resolved<'q>, Refusal> {
        resolve(settings, query.map(Cow::Borrowed), hash, Some(store), 1000)
    }

    #[test]
    fn resolves_the_apq_round_trip() {
        let settings = settings(true, false);
        let mut store = MemoryStore::default();
        let doc = "{ b }";
        let hash = sha256(doc);
        assert_eq!(
            run(&settings, &mut store, None, Some(hash)),
            Err(Refusal::NotFound)
        );
        let sent = run(&settings, &mut store, Some(doc), Some(hash)).unwrap();
        assert_eq!(
            (sent.source, sent.register),
            (Source::SentWithHash, Some(hash))
        );
        // The caller registers once the request passed its checks.
        register(&mut store, &hash, doc, 16, 1000);
        let found = run(&settings, &mut store, None, Some(hash)).unwrap();
        assert_eq!(
            (found.query.as_ref(), found.source),
            (doc, Source::Registry)
        );
        // A listed document is served from the manifest, never registered.
        let listed = sha256("query L { a }");
        let found = run(&settings, &mut store, None, Some(listed)).unwrap();
        assert_eq!(
            (found.query.as_ref(), found.source),
            ("query L { a }", Source::Manifest)
        );
        let sent = run(&settings, &mut store, Some("query L { a }"), Some(listed)).unwrap();
        assert_eq!(sent.register, None);
        // No store: nothing is found.
        assert_eq!(
            resolve(&settings, None, Some(hash), None, 1000),
            Err(Refusal::NotFound)
        );
    }

    #[test]
    fn refuses_a_hash_that_is_not_the_documents() {
        let settings = settings(true, false);
        let mut store = MemoryStore::default();
        let wrong = sha256("{ a }");
        let refusal = run(&settings, &mut store, Some("{ b }"), Some(wrong)).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::HashMismatch {
                sent: wrong,
                actual: sha256("{ b }")
            }
        );
        assert_eq!(refusal.code(), "PERSISTED_QUERY_HASH_MISMATCH");
        assert!(refusal.to_string().contains(&hex(&sha256("{ b }"))));
    }

    #[test]
    fn without_registrations_unknown_hashes_are_not_supported() {
        let settings = settings(false, false);
        let mut store = MemoryStore::default();
        let hash = sha256("{ b }");
        register(&mut store, &hash, "{ b }", 16, 1000);
        assert_eq!(
            run(&settings, &mut store, None, Some(hash)),
            Err(Refusal::NotSupported),
            "the registry is not read"
        );
        let sent = run(&settings, &mut store, Some("{ b }"), Some(hash)).unwrap();
        assert_eq!(sent.register, None);
        let listed = run(&settings, &mut store, None, Some(sha256("query L { a }"))).unwrap();
        assert_eq!(listed.source, Source::Manifest);
        assert_eq!(
            Refusal::NotSupported.to_string(),
            "PersistedQueryNotSupported"
        );
        assert_eq!(Refusal::NotFound.to_string(), "PersistedQueryNotFound");
    }

    #[test]
    fn trusted_documents_only() {
        let settings = settings(false, true);
        let mut store = MemoryStore::default();
        let unlisted = sha256("{ b }");
        register(&mut store, &unlisted, "{ b }", 16, 1000);
        assert_eq!(
            run(&settings, &mut store, None, Some(unlisted)),
            Err(Refusal::NotInList(unlisted))
        );
        assert_eq!(
            run(&settings, &mut store, Some("{ b }"), None),
            Err(Refusal::NotInSafelist)
        );
        assert_eq!(
            run(&settings, &mut store, Some("{ b }"), Some(unlisted)),
            Err(Refusal::NotInSafelist)
        );
        let listed = "query L { a }";
        assert_eq!(
            run(&settings, &mut store, Some(listed), None)
                .unwrap()
                .query,
            listed
        );
        assert_eq!(
            run(&settings, &mut store, Some(listed), Some(sha256(listed)))
                .unwrap()
                .register,
            None
        );
        assert_eq!(
            run(&settings, &mut store, None, Some(sha256(listed)))
                .unwrap()
                .source,
            Source::Manifest
        );
        assert_eq!(
            Refusal::NotInList(unlisted).code(),
            "PERSISTED_QUERY_NOT_IN_LIST"
        );
        assert_eq!(Refusal::NotInSafelist.status(), 403);
    }
}
