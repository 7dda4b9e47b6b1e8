//! A function's answer, parsed once into a flat, read-only document.
//!
//! Every value of the answer is a [`Node`] in one array, addressed by a
//! [`NodeId`]; strings and keys live in one text buffer, object members and
//! array items in two more arrays. Parsing makes a handful of allocations
//! whatever the answer's shape, and the result tree of a request refers to
//! answers by `(answer, node)` pairs: nothing is ever copied out of an
//! answer until the reply is written.
//!
//! Parsing goes through serde_json's parser (with its recursion limit); this
//! module only decides where the values are stored.

use apollo_compiler::response::JsonValue;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A value's index in its answer.
pub type NodeId = u32;

/// A range of an answer's text, members or items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        let start = self.start as usize;
        start..start.saturating_add(self.len as usize)
    }
}

/// One JSON value of an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A negative integer (or any integer that fits `i64`).
    Int(i64),
    /// A non-negative integer over `i64::MAX`.
    UInt(u64),
    /// A number with a fraction or an exponent.
    Float(f64),
    /// A string (its text).
    Str(Span),
    /// An array (its items).
    Array(Span),
    /// An object (its members).
    Object(Span),
}

/// A parsed answer.
#[derive(Debug, Clone)]
pub struct Answer {
    nodes: Vec<Node>,
    members: Vec<(Span, NodeId)>,
    items: Vec<NodeId>,
    text: String,
    root: NodeId,
    /// Objects of more than [`SMALL_OBJECT`] members, by node (in node
    /// order), with where their members' order by key starts in `sorted`.
    big_objects: Vec<(NodeId, u32)>,
    /// Member positions of big objects, sorted by key (stable).
    sorted: Vec<u32>,
    /// The size of the body it was parsed from.
    body_len: usize,
}

/// Objects up to this many members are searched by a scan; larger ones
/// through their members sorted by key, so that reading many fields of a
/// wide object stays linear.
const SMALL_OBJECT: usize = 16;

/// An answer that is not JSON (serde_json's message, which quotes no data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotJson(pub String);

impl fmt::Display for NotJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Answer {
    /// Parse a JSON body.
    pub fn parse(body: &[u8]) -> Result<Answer, NotJson> {
        // Sized for typical answers so that parsing rarely grows a vector.
        let guess = body.len() / 8 + 4;
        // The stacks of open containers are kept between parses: after the
        // first answers, parsing allocates only the answer's own arrays.
        let (members, items) = SCRATCH.with(|s| s.take());
        // An answer of an earlier request, emptied, when one was kept.
        let spare = SPARE_ANSWERS.with(|s| {
            let mut spares = s.take();
            let spare = spares.pop();
            s.set(spares);
            spare
        });
        let answer = match spare {
            Some(mut answer) => {
                answer.nodes.reserve(guess);
                answer.members.reserve(guess / 2);
                answer.text.reserve(body.len());
                answer
            }
            None => Answer {
                nodes: Vec::with_capacity(guess),
                members: Vec::with_capacity(guess / 2),
                // Not every answer has arrays.
                items: Vec::new(),
                // Unescaped text is never longer than the body.
                text: String::with_capacity(body.len()),
                root: 0,
                big_objects: Vec::new(),
                sorted: Vec::new(),
                body_len: 0,
            },
        };
        let mut builder = Builder {
            answer,
            members,
            items,
        };
        // Checked as UTF-8 once, in bulk: the parser then takes strings
        // as they are instead of checking each one.
        let root = match std::str::from_utf8(body) {
            Ok(text) => {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                NodeSeed(&mut builder)
                    .deserialize(&mut deserializer)
                    .and_then(|root| deserializer.end().map(|()| root))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(format!(
                "invalid UTF-8 at byte {} of the answer",
                e.valid_up_to()
            )),
        };
        let Builder {
            mut answer,
            mut members,
            mut items,
        } = builder;
        // A scratch that grew for a huge answer is not kept.
        if members.capacity() <= SCRATCH_KEPT && items.capacity() <= SCRATCH_KEPT {
            members.clear();
            items.clear();
            SCRATCH.with(|s| s.set((members, items)));
        }
        answer.root = root.map_err(NotJson)?;
        answer.body_len = body.len();
        Ok(answer)
    }

    /// Gives an answer's arrays back for a later parse on this thread (a
    /// few small ones are kept; the others are freed).
    pub fn recycle(mut self) {
        if self.held_bytes() > SPARE_KEPT_BYTES {
            return;
        }
        self.nodes.clear();
        self.members.clear();
        self.items.clear();
        self.text.clear();
        self.big_objects.clear();
        self.sorted.clear();
        SPARE_ANSWERS.with(|s| {
            let mut spares = s.take();
            if spares.len() < SPARE_ANSWERS_KEPT {
                spares.push(self);
            }
            s.set(spares);
        });
    }

    /// An answer holding just `{}` (the root object of an operation).
    pub fn empty_object() -> Answer {
        Answer {
            nodes: vec![Node::Object(Span::default())],
            members: Vec::new(),
            items: Vec::new(),
            text: String::new(),
            root: 0,
            big_objects: Vec::new(),
            sorted: Vec::new(),
            body_len: 0,
        }
    }

    /// The answer's top-level value.
    pub fn root(&self) -> NodeId {
        self.root
    }

    /// A node (`Null` for an id that is not in this answer).
    pub fn node(&self, id: NodeId) -> Node {
        self.nodes.get(id as usize).copied().unwrap_or(Node::Null)
    }

    /// A string node's or a key's text.
    pub fn text(&self, span: Span) -> &str {
        self.text.get(span.range()).unwrap_or_default()
    }

    /// The items of an array node (empty for anything else).
    pub fn items(&self, id: NodeId) -> &[NodeId] {
        match self.node(id) {
            Node::Array(span) => self.items.get(span.range()).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The members of an object node (empty for anything else).
    pub fn members(&self, id: NodeId) -> &[(Span, NodeId)] {
        match self.node(id) {
            Node::Object(span) => self.members.get(span.range()).unwrap_or_default(),
            _ => &[],
        }
    }

    /// Whether a node is `null` (or absent).
    pub fn is_null(&self, id: NodeId) -> bool {
        matches!(self.node(id), Node::Null)
    }

    /// Whether a node is an object.
    pub fn is_object(&self, id: NodeId) -> bool {
        matches!(self.node(id), Node::Object(_))
    }

    /// A member of an object node by key (the last one when repeated, as
    /// serde_json keeps).
    pub fn get(&self, object: NodeId, key: &str) -> Option<NodeId> {
        let members = self.members(object);
        if members.len() > SMALL_OBJECT {
            if let Some(found) = self.get_sorted(object, members, key) {
                return found;
            }
        }
        members
            .iter()
            .rev()
            .find(|(k, _)| self.text(*k) == key)
            .map(|(_, v)| *v)
    }

    /// [`Answer::get`] for a big object, through its members sorted by key;
    /// `None` when the object has no sorted order.
    fn get_sorted(
        &self,
        object: NodeId,
        members: &[(Span, NodeId)],
        key: &str,
    ) -> Option<Option<NodeId>> {
        let at = self
            .big_objects
            .binary_search_by_key(&object, |(node, _)| *node)
            .ok()?;
        let start = self.big_objects.get(at)?.1 as usize;
        let order = self.sorted.get(start..start.checked_add(members.len())?)?;
        let key_of = |position: &u32| {
            members
                .get(*position as usize)
                .map_or("", |(k, _)| self.text(*k))
        };
        // The last of the equal keys: the first position past them, minus one.
        let past = order.partition_point(|p| key_of(p) <= key);
        let found = past
            .checked_sub(1)
            .and_then(|i| order.get(i))
            .filter(|p| key_of(p) == key)
            .and_then(|p| members.get(*p as usize))
            .map(|(_, v)| *v);
        Some(found)
    }

    /// The value at a key path (`a.b.c`) below an object node.
    pub fn lookup(&self, object: NodeId, path: &[String]) -> Option<NodeId> {
        path.iter()
            .try_fold(object, |node, key| self.get(node, key))
    }

    /// The text a scalar node stands for in a URL, a header or a batch key
    /// (`1` and `"1"` alike); `None` for null, arrays and objects.
    pub fn scalar_text<'a>(&'a self, id: NodeId, buffer: &'a mut String) -> Option<&'a str> {
        use std::fmt::Write as _;
        buffer.clear();
        match self.node(id) {
            Node::Str(span) => return Some(self.text(span)),
            Node::Bool(b) => return Some(if b { "true" } else { "false" }),
            Node::Int(i) => write!(buffer, "{i}").ok()?,
            Node::UInt(u) => write!(buffer, "{u}").ok()?,
            Node::Float(f) => buffer.push_str(&serde_json::Number::from_f64(f)?.to_string()),
            Node::Null | Node::Array(_) | Node::Object(_) => return None,
        }
        Some(buffer.as_str())
    }

    /// Writes a node as JSON.
    pub fn write_json(&self, id: NodeId, out: &mut Vec<u8>) {
        match self.node(id) {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(true) => out.extend_from_slice(b"true"),
            Node::Bool(false) => out.extend_from_slice(b"false"),
            Node::Int(i) => write_int(out, i),
            Node::UInt(u) => {
                let _ = serde_json::to_writer(&mut *out, &u);
            }
            Node::Float(f) => write_float(out, f),
            Node::Str(span) => write_str(out, self.text(span)),
            Node::Array(_) => {
                out.push(b'[');
                for (i, item) in self.items(id).iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.write_json(*item, out);
                }
                out.push(b']');
            }
            Node::Object(_) => {
                out.push(b'{');
                for (i, (key, value)) in self.members(id).iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_str(out, self.text(*key));
                    out.push(b':');
                    self.write_json(*value, out);
                }
                out.push(b'}');
            }
        }
    }

    /// A node as a JSON value (for templates that embed it in a body).
    pub fn to_value(&self, id: NodeId) -> JsonValue {
        match self.node(id) {
            Node::Null => JsonValue::Null,
            Node::Bool(b) => JsonValue::Bool(b),
            Node::Int(i) => JsonValue::from(i),
            Node::UInt(u) => JsonValue::from(u),
            Node::Float(f) => {
                serde_json::Number::from_f64(f).map_or(JsonValue::Null, JsonValue::Number)
            }
            Node::Str(span) => JsonValue::String(self.text(span).into()),
            Node::Array(_) => {
                JsonValue::Array(self.items(id).iter().map(|i| self.to_value(*i)).collect())
            }
            Node::Object(_) => JsonValue::Object(
                self.members(id)
                    .iter()
                    .map(|(k, v)| (self.text(*k).into(), self.to_value(*v)))
                    .collect(),
            ),
        }
    }

    /// The size of the body it was parsed from.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// The memory this answer holds, in bytes (what the per-request budget
    /// of answers held counts).
    pub fn held_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.members.capacity() * std::mem::size_of::<(Span, NodeId)>()
            + self.items.capacity() * std::mem::size_of::<NodeId>()
            + self.text.capacity()
            + self.big_objects.capacity() * std::mem::size_of::<(NodeId, u32)>()
            + self.sorted.capacity() * std::mem::size_of::<u32>()
    }
}

/// Writes a string as a JSON string (quoted and escaped).
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Writes an integer.
pub fn write_int(out: &mut Vec<u8>, value: i64) {
    let _ = serde_json::to_writer(&mut *out, &value);
}

/// Writes a float the way serde_json does (`5.0`, `1e300`).
pub fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &value);
    } else {
        out.extend_from_slice(b"null");
    }
}

/// The most entries a kept scratch stack may have room for.
const SCRATCH_KEPT: usize = 4096;

type Scratch = (Vec<(Span, NodeId)>, Vec<NodeId>);

/// How many emptied answers a thread keeps for later parses.
const SPARE_ANSWERS_KEPT: usize = 8;

/// The largest answer (in bytes held) whose arrays are kept.
const SPARE_KEPT_BYTES: usize = 64 * 1024;

thread_local! {
    /// Emptied answers, kept for later parses.
    static SPARE_ANSWERS: std::cell::Cell<Vec<Answer>> = const { std::cell::Cell::new(Vec::new()) };
    /// The stacks of open containers, kept between parses.
    static SCRATCH: std::cell::Cell<Scratch> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

/// The parse state: the answer so far, and a stack of the members and items
/// of the containers still open (each container moves its own part of the
/// stack into the answer when it closes, so they end up contiguous).
struct Builder {
    answer: Answer,
    members: Vec<(Span, NodeId)>,
    items: Vec<NodeId>,
}

impl Builder {
    fn push(&mut self, node: Node) -> Result<NodeId, String> {
        let id = u32::try_from(self.answer.nodes.len()).map_err(|_| "answer too large")?;
        self.answer.nodes.push(node);
        Ok(id)
    }

    /// Records the key order of a big object's members.
    fn sort_members(&mut self, object: NodeId, start: u32, len: u32) -> Result<(), String> {
        let answer = &mut self.answer;
        let at = u32::try_from(answer.sorted.len()).map_err(|_| "answer too large")?;
        let members = answer
            .members
            .get(start as usize..(start as usize).saturating_add(len as usize))
            .unwrap_or_default();
        let text = &answer.text;
        let key = |position: &u32| {
            members
                .get(*position as usize)
                .and_then(|(k, _)| text.get(k.range()))
                .unwrap_or_default()
        };
        let mut order: Vec<u32> = (0..len).collect();
        order.sort_by(|a, b| key(a).cmp(key(b)));
        answer.sorted.extend(order);
        answer.big_objects.push((object, at));
        Ok(())
    }

    fn push_text(&mut self, text: &str) -> Result<Span, String> {
        let start = u32::try_from(self.answer.text.len()).map_err(|_| "answer too large")?;
        let len = u32::try_from(text.len()).map_err(|_| "answer too large")?;
        self.answer.text.push_str(text);
        Ok(Span { start, len })
    }
}

struct NodeSeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = NodeId;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<NodeId, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = NodeId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<NodeId, E> {
        self.0.push(Node::Null).map_err(E::custom)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<NodeId, E> {
        self.0.push(Node::Bool(v)).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<NodeId, E> {
        self.0.push(Node::Int(v)).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeId, E> {
        let node = i64::try_from(v).map_or(Node::UInt(v), Node::Int);
        self.0.push(node).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<NodeId, E> {
        self.0.push(Node::Float(v)).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeId, E> {
        let span = self.0.push_text(v).map_err(E::custom)?;
        self.0.push(Node::Str(span)).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeId, A::Error> {
        let builder = self.0;
        let mark = builder.items.len();
        while let Some(item) = seq.next_element_seed(NodeSeed(builder))? {
            builder.items.push(item);
        }
        let start = u32::try_from(builder.answer.items.len()).map_err(de::Error::custom)?;
        let len =
            u32::try_from(builder.items.len().saturating_sub(mark)).map_err(de::Error::custom)?;
        builder.answer.items.extend(builder.items.drain(mark..));
        builder
            .push(Node::Array(Span { start, len }))
            .map_err(de::Error::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeId, A::Error> {
        let builder = self.0;
        let mark = builder.members.len();
        while let Some(key) = map.next_key_seed(KeySeed(builder))? {
            let value = map.next_value_seed(NodeSeed(builder))?;
            builder.members.push((key, value));
        }
        let start = u32::try_from(builder.answer.members.len()).map_err(de::Error::custom)?;
        let len =
            u32::try_from(builder.members.len().saturating_sub(mark)).map_err(de::Error::custom)?;
        builder.answer.members.extend(builder.members.drain(mark..));
        let id = builder
            .push(Node::Object(Span { start, len }))
            .map_err(de::Error::custom)?;
        if len as usize > SMALL_OBJECT {
            builder
                .sort_members(id, start, len)
                .map_err(de::Error::custom)?;
        }
        Ok(id)
    }
}

struct KeySeed<'b>(&'b mut Builder);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Span;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Span, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Span;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Span, E> {
        self.0.push_text(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(json: &str) -> String {
        let answer = Answer::parse(json.as_bytes()).unwrap();
        let mut out = Vec::new();
        answer.write_json(answer.root(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn parses_and_writes_every_kind_of_value() {
        assert_eq!(
            round_trip(r#" {"a": [1, -2, 3.5, "x\"y", true, null, {}], "b": {"c": []}} "#),
            r#"{"a":[1,-2,3.5,"x\"y",true,null,{}],"b":{"c":[]}}"#
        );
        assert_eq!(round_trip("18446744073709551615"), "18446744073709551615");
    }

    #[test]
    fn nested_containers_keep_their_own_members() {
        let answer = Answer::parse(br#"{"a": {"x": 1, "y": [2, 3]}, "b": 4}"#).unwrap();
        let root = answer.root();
        let a = answer.get(root, "a").unwrap();
        assert_eq!(answer.node(answer.get(a, "x").unwrap()), Node::Int(1));
        let y = answer.get(a, "y").unwrap();
        assert_eq!(answer.items(y).len(), 2);
        assert_eq!(answer.node(answer.get(root, "b").unwrap()), Node::Int(4));
        assert_eq!(
            answer.lookup(root, &["a".into(), "x".into()]),
            answer.get(a, "x")
        );
    }

    #[test]
    fn wide_objects_are_searched_by_key() {
        let mut json = String::from("{");
        for i in 0..100 {
            json.push_str(&format!("\"k{i}\": {i}, "));
        }
        json.push_str("\"k7\": \"last\", \"inner\": {\"a\": 1}}");
        let answer = Answer::parse(json.as_bytes()).unwrap();
        let root = answer.root();
        assert_eq!(answer.node(answer.get(root, "k42").unwrap()), Node::Int(42));
        assert_eq!(answer.node(answer.get(root, "k99").unwrap()), Node::Int(99));
        let last = answer.get(root, "k7").unwrap();
        assert!(
            matches!(answer.node(last), Node::Str(_)),
            "the last repeated key wins"
        );
        assert_eq!(answer.get(root, "k100"), None);
        assert_eq!(answer.get(root, "a"), None);
        let inner = answer.get(root, "inner").unwrap();
        assert_eq!(answer.node(answer.get(inner, "a").unwrap()), Node::Int(1));
    }

    #[test]
    fn refuses_what_is_not_one_json_value() {
        assert!(Answer::parse(b"<html>").is_err());
        let latin1 = Answer::parse(b"{\"name\": \"Ren\xe9\"}").unwrap_err();
        assert_eq!(latin1.0, "invalid UTF-8 at byte 13 of the answer");
        assert!(Answer::parse(b"{} {}").is_err());
        assert!(
            Answer::parse(&vec![b'['; 10_000]).is_err(),
            "recursion limit"
        );
    }

    #[test]
    fn scalars_have_a_text_form() {
        let answer = Answer::parse(br#"[7, "7", true, null, 1.5]"#).unwrap();
        let items = answer.items(answer.root()).to_vec();
        let mut buffer = String::new();
        let texts: Vec<Option<String>> = items
            .iter()
            .map(|i| answer.scalar_text(*i, &mut buffer).map(str::to_string))
            .collect();
        assert_eq!(
            texts,
            [
                Some("7".into()),
                Some("7".into()),
                Some("true".into()),
                None,
                Some("1.5".into())
            ]
        );
    }
}
