//! The reader: `saphyr-parser` events to a [`Value`], with PyYAML `safe_load` semantics.
//!
//! The event parser does the YAML syntax; this module does what PyYAML's composer and
//! `SafeConstructor` do on top of it: resolve plain scalars ([`super::resolve`]), apply explicit
//! standard tags, anchors and aliases, merge keys (`<<`), and reject what `safe_load` rejects
//! (unknown tags, unhashable keys, a second document, a plain `=` value, duplicate anchors,
//! characters PyYAML's reader refuses). It is deliberately stricter than PyYAML on duplicate
//! keys, which PyYAML silently collapses, and it bounds the work with [`Limits`]: input size,
//! nesting depth and node count, with every alias expansion counted.
//!
//! The document is built with an explicit stack, never recursion, so input depth cannot
//! overflow the call stack.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};

use super::binary;
use super::keys::KeyedMap;
use super::resolve::{self, Implicit};
use super::timestamp;
use super::value::{Mapping, Value};
use super::{Limits, YamlError};

/// The prefix `!!` stands for.
const CORE: &str = "tag:yaml.org,2002:";

/// The scalar text a document may hold once aliases are expanded, as a multiple of
/// [`Limits::max_bytes`]. Node counting alone would let `[*big, *big, ...]` with a long anchored
/// string exhaust memory.
const ALIAS_TEXT_FACTOR: usize = 4;

impl YamlError {
    /// An error at a parser position (1-based line, 0-based column).
    pub(crate) fn at(message: impl Into<String>, mark: Marker) -> YamlError {
        YamlError {
            message: message.into(),
            line: mark.line(),
            column: mark.col() + 1,
        }
    }

    /// An error with no position.
    pub(crate) fn whole(message: impl Into<String>) -> YamlError {
        YamlError {
            message: message.into(),
            line: 0,
            column: 0,
        }
    }
}

impl From<ScanError> for YamlError {
    fn from(e: ScanError) -> Self {
        let message = if e.info().contains("unknown anchor") {
            "found undefined alias (no anchor of that name before it)".to_owned()
        } else {
            e.info().to_owned()
        };
        YamlError::at(message, *e.marker())
    }
}

/// What a node costs: nodes (aliases expanded), scalar bytes, and collection height.
#[derive(Debug, Clone, Copy, Default)]
struct Size {
    nodes: usize,
    bytes: usize,
    /// 0 for a scalar, 1 + the tallest child for a collection.
    height: usize,
}

impl Size {
    fn add_child(&mut self, child: Size) {
        self.nodes = self.nodes.saturating_add(child.nodes);
        self.bytes = self.bytes.saturating_add(child.bytes);
        self.height = self.height.max(child.height + 1);
    }
}

/// What a sequence node becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SeqKind {
    /// `!!seq` (the default).
    Seq,
    /// `!!omap`: a [`Value::Map`], in order, duplicate keys rejected.
    Omap,
    /// `!!pairs`: a [`Value::Seq`] of one-entry [`Value::Map`]s.
    Pairs,
}

/// What a mapping node becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MapKind {
    /// `!!map` (the default).
    Map,
    /// `!!set`: a [`Value::Map`] whose values are all [`Value::Null`].
    Set,
}

/// The key side of a mapping entry whose value is still to come.
#[derive(Debug)]
enum PendingKey {
    /// An ordinary key.
    Key(Value, Marker),
    /// A merge key `<<`.
    Merge,
}

/// A collection being built.
#[derive(Debug)]
enum Body {
    Seq {
        kind: SeqKind,
        items: Vec<Value>,
    },
    Map {
        kind: MapKind,
        entries: KeyedMap,
        /// The line of each entry's key, by entry index.
        key_lines: Vec<usize>,
        pending: Option<PendingKey>,
        /// The values of `<<` keys, in order, with their positions.
        merges: Vec<(Value, Marker)>,
        /// An entry of `!!omap`/`!!pairs`: PyYAML does not flatten it, so `<<` and `=` keys
        /// have no constructor there.
        pairs_entry: bool,
    },
}

#[derive(Debug)]
struct Frame {
    body: Body,
    anchor: usize,
    start: Marker,
    size: Size,
}

/// A resolved scalar: a value, or the merge key.
enum Scalar {
    Value(Value),
    Merge,
}

/// Maps the parser's character positions to byte offsets, moving forward.
struct Offsets<'a> {
    text: &'a str,
    ascii: bool,
    chars: usize,
    bytes: usize,
}

impl<'a> Offsets<'a> {
    fn new(text: &'a str) -> Self {
        Offsets { text, ascii: text.is_ascii(), chars: 0, bytes: 0 }
    }

    /// The text from the character at `index` on.
    fn from_char(&mut self, index: usize) -> &'a str {
        if self.ascii {
            return self.text.get(index..).unwrap_or("");
        }
        if index < self.chars {
            self.chars = 0;
            self.bytes = 0;
        }
        let rest = self.text.get(self.bytes..).unwrap_or("");
        let skip = index - self.chars;
        let delta = rest.char_indices().nth(skip).map_or(rest.len(), |(b, _)| b);
        self.chars = index;
        self.bytes += delta;
        self.text.get(self.bytes..).unwrap_or("")
    }
}

/// The name of the anchor (`&name`) or alias (`*name`) a node starting at `rest` carries.
/// The node may start with a tag, which comes before the anchor.
fn anchor_name(rest: &str, sigil: char) -> Option<&str> {
    let mut s = rest;
    if s.starts_with('!') {
        let end = s.find(|c: char| c.is_whitespace()).unwrap_or(s.len());
        s = s[end..].trim_start();
    }
    let s = s.strip_prefix(sigil)?;
    let end = s
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '{' | '}'))
        .unwrap_or(s.len());
    Some(&s[..end])
}

/// PyYAML's anchor and alias names: ASCII letters, digits, `-` and `_`.
fn check_anchor_name(name: &str, what: &str, at: Marker) -> Result<(), YamlError> {
    if !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
        Ok(())
    } else {
        Err(YamlError::at(
            format!("{what} name {name:?}: PyYAML accepts only ASCII letters, digits, '-' and '_'"),
            at,
        ))
    }
}

/// What PyYAML's reader accepts (`Reader.NON_PRINTABLE` is its complement).
fn is_printable(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{85}' | '\u{a0}'..='\u{d7ff}'
        | '\u{e000}'..='\u{fffd}' | '\u{10000}'..='\u{10ffff}')
}

/// Rejects the characters PyYAML's reader rejects ("special characters are not allowed").
fn check_printable(text: &str) -> Result<(), YamlError> {
    let fast = text.bytes().all(|b| (0x20..0x7f).contains(&b) || matches!(b, b'\t' | b'\n' | b'\r'));
    if fast {
        return Ok(());
    }
    let (mut line, mut column) = (1, 1);
    for c in text.chars() {
        if !is_printable(c) {
            return Err(YamlError {
                message: format!(
                    "special character U+{:04X} is not allowed (PyYAML rejects non-printable characters)",
                    u32::from(c)
                ),
                line,
                column,
            });
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(())
}

/// A short, readable form of a key for error messages.
pub(crate) fn describe(v: &Value) -> String {
    let s = match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::Timestamp(t) => t.clone(),
        Value::Binary(b) => format!("!!binary ({} bytes)", b.len()),
        Value::Seq(_) => "a sequence".to_owned(),
        Value::Map(_) => "a mapping".to_owned(),
    };
    if s.chars().count() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// The full name of a tag (`tag:yaml.org,2002:int`, `!local`, `!`).
fn tag_name(tag: &Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

/// The error PyYAML's `construct_undefined` raises.
fn undefined_tag(name: &str, at: Marker) -> YamlError {
    YamlError::at(
        format!(
            "could not determine a constructor for the tag {name:?} (safe_load reads only the standard YAML tags)"
        ),
        at,
    )
}

struct Builder<'a> {
    limits: &'a Limits,
    text_budget: usize,
    offsets: Offsets<'a>,
    stack: Vec<Frame>,
    /// Finished anchored nodes, by the parser's anchor id.
    anchors: HashMap<usize, (Value, Size)>,
    /// Anchor names seen, with where they were first defined.
    anchor_names: HashMap<String, Marker>,
    nodes: usize,
    bytes: usize,
    root: Option<Value>,
}

/// Parses `text` as a single YAML document; see the module documentation.
pub(crate) fn parse_document(text: &str, limits: &Limits) -> Result<Value, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError::whole(format!(
            "document is {} bytes, more than the limit of {} bytes",
            text.len(),
            limits.max_bytes
        )));
    }
    check_printable(text)?;
    let mut b = Builder {
        limits,
        text_budget: limits.max_bytes.saturating_mul(ALIAS_TEXT_FACTOR),
        offsets: Offsets::new(text),
        stack: Vec::new(),
        anchors: HashMap::new(),
        anchor_names: HashMap::new(),
        nodes: 0,
        bytes: 0,
        root: None,
    };
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next?;
        let at = span.start;
        match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentEnd => {}
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError::at(
                        "expected a single document in the stream, but found another document",
                        at,
                    ));
                }
            }
            Event::Alias(id) => b.alias(id, at)?,
            Event::Scalar(text, style, anchor, tag) => {
                b.scalar(&text, style, anchor, tag.as_deref(), at)?;
            }
            Event::SequenceStart(anchor, tag) => b.start_seq(anchor, tag.as_deref(), at)?,
            Event::MappingStart(anchor, tag) => b.start_map(anchor, tag.as_deref(), at)?,
            Event::SequenceEnd | Event::MappingEnd => b.end_collection(at)?,
        }
    }
    Ok(b.root.unwrap_or(Value::Null))
}

impl Builder<'_> {
    /// Counts `size` against the node and text limits.
    fn count(&mut self, size: Size, at: Marker) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(size.nodes);
        self.bytes = self.bytes.saturating_add(size.bytes);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError::at(
                format!(
                    "document has more than {} nodes (aliases expanded): refusing to build it",
                    self.limits.max_nodes
                ),
                at,
            ));
        }
        if self.bytes > self.text_budget {
            return Err(YamlError::at(
                format!(
                    "document holds more than {} bytes of scalar text once aliases are expanded: refusing to build it",
                    self.text_budget
                ),
                at,
            ));
        }
        Ok(())
    }

    /// Whether the next node is a mapping key that PyYAML flattens (merge and `=` keys).
    fn at_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame { body: Body::Map { pending: None, pairs_entry: false, .. }, .. })
        )
    }

    /// Records the anchor of a node starting at `at`, checking its name.
    fn check_anchor(&mut self, at: Marker) -> Result<(), YamlError> {
        let Some(name) = anchor_name(self.offsets.from_char(at.index()), '&') else {
            return Ok(());
        };
        check_anchor_name(name, "anchor", at)?;
        if let Some(first) = self.anchor_names.get(name) {
            return Err(YamlError::at(
                format!("found duplicate anchor {name:?}; first occurrence on line {}", first.line()),
                at,
            ));
        }
        self.anchor_names.insert(name.to_owned(), at);
        Ok(())
    }

    fn alias(&mut self, id: usize, at: Marker) -> Result<(), YamlError> {
        if let Some(name) = anchor_name(self.offsets.from_char(at.index()), '*') {
            check_anchor_name(name, "alias", at)?;
        }
        let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
            return Err(YamlError::at(
                "recursive alias: the alias is inside the node its anchor names, which this reader does not support",
                at,
            ));
        };
        if self.stack.len() + size.height > self.limits.max_depth {
            return Err(self.too_deep(at));
        }
        // Count before cloning, so that an alias bomb fails before it allocates.
        self.count(size, at)?;
        let value = self.anchors.get(&id).map(|(v, _)| v.clone()).unwrap_or(Value::Null);
        self.push(value, size, at)
    }

    fn too_deep(&self, at: Marker) -> YamlError {
        YamlError::at(
            format!(
                "document nests collections more than {} levels deep (aliases expanded)",
                self.limits.max_depth
            ),
            at,
        )
    }

    fn scalar(
        &mut self,
        text: &str,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<&Tag>,
        at: Marker,
    ) -> Result<(), YamlError> {
        let size = Size { nodes: 1, bytes: text.len(), height: 0 };
        self.count(size, at)?;
        if anchor != 0 {
            self.check_anchor(at)?;
        }
        let as_key = self.at_key();
        match resolve_scalar(text, style, tag, as_key, at)? {
            Scalar::Merge => {
                if anchor != 0 {
                    return Err(YamlError::at("an anchor on a merge key `<<` is not supported", at));
                }
                if let Some(Frame { body: Body::Map { pending, .. }, .. }) = self.stack.last_mut() {
                    *pending = Some(PendingKey::Merge);
                }
                Ok(())
            }
            Scalar::Value(v) => {
                if anchor != 0 {
                    self.anchors.insert(anchor, (v.clone(), size));
                }
                self.push(v, size, at)
            }
        }
    }

    fn open(&mut self, body: Body, anchor: usize, at: Marker) -> Result<(), YamlError> {
        if self.stack.len() + 1 > self.limits.max_depth {
            return Err(self.too_deep(at));
        }
        self.count(Size { nodes: 1, bytes: 0, height: 0 }, at)?;
        if anchor != 0 {
            self.check_anchor(at)?;
        }
        self.stack.push(Frame { body, anchor, start: at, size: Size { nodes: 1, bytes: 0, height: 1 } });
        Ok(())
    }

    fn start_seq(&mut self, anchor: usize, tag: Option<&Tag>, at: Marker) -> Result<(), YamlError> {
        let kind = match tag.map(tag_name).as_deref() {
            None | Some("!") => SeqKind::Seq,
            Some(name) => match name.strip_prefix(CORE) {
                Some("seq") => SeqKind::Seq,
                Some("omap") => SeqKind::Omap,
                Some("pairs") => SeqKind::Pairs,
                Some("map" | "set") => {
                    return Err(YamlError::at("expected a mapping node, but found sequence", at))
                }
                Some("str" | "int" | "float" | "bool" | "null" | "binary" | "timestamp") => {
                    return Err(YamlError::at("expected a scalar node, but found sequence", at))
                }
                _ => return Err(undefined_tag(name, at)),
            },
        };
        self.open(Body::Seq { kind, items: Vec::new() }, anchor, at)
    }

    fn start_map(&mut self, anchor: usize, tag: Option<&Tag>, at: Marker) -> Result<(), YamlError> {
        let kind = match tag.map(tag_name).as_deref() {
            None | Some("!") => MapKind::Map,
            Some(name) => match name.strip_prefix(CORE) {
                Some("map") => MapKind::Map,
                Some("set") => MapKind::Set,
                Some("seq" | "omap" | "pairs") => {
                    return Err(YamlError::at("expected a sequence node, but found mapping", at))
                }
                Some("str" | "int" | "float" | "bool" | "null" | "binary" | "timestamp") => {
                    return Err(YamlError::at("expected a scalar node, but found mapping", at))
                }
                _ => return Err(undefined_tag(name, at)),
            },
        };
        let pairs_entry = matches!(
            self.stack.last(),
            Some(Frame { body: Body::Seq { kind: SeqKind::Omap | SeqKind::Pairs, .. }, .. })
        );
        let body = Body::Map {
            kind,
            entries: KeyedMap::default(),
            key_lines: Vec::new(),
            pending: None,
            merges: Vec::new(),
            pairs_entry,
        };
        self.open(body, anchor, at)
    }

    fn end_collection(&mut self, at: Marker) -> Result<(), YamlError> {
        let Some(frame) = self.stack.pop() else {
            return Err(YamlError::at("unbalanced end of collection", at));
        };
        let Frame { body, anchor, start, size } = frame;
        let value = match body {
            Body::Seq { kind: SeqKind::Seq, items } => Value::Seq(items),
            Body::Seq { kind: SeqKind::Omap, items } => Value::Map(finish_omap(items, start)?),
            Body::Seq { kind: SeqKind::Pairs, items } => {
                for item in &items {
                    check_pair(item, "pairs", start)?;
                }
                Value::Seq(items)
            }
            Body::Map { kind, entries, merges, .. } => {
                let mut map = finish_map(entries, merges)?;
                if kind == MapKind::Set {
                    map.values_mut().for_each(|v| *v = Value::Null);
                }
                Value::Map(map)
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), size));
        }
        self.push(value, size, start)
    }

    /// Hands a finished node to its parent (or makes it the document).
    fn push(&mut self, value: Value, size: Size, at: Marker) -> Result<(), YamlError> {
        let Some(parent) = self.stack.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        parent.size.add_child(size);
        match &mut parent.body {
            Body::Seq { items, .. } => items.push(value),
            Body::Map { entries, key_lines, pending, merges, .. } => match pending.take() {
                None => {
                    if matches!(value, Value::Seq(_) | Value::Map(_)) {
                        return Err(YamlError::at(
                            "found unhashable key: a mapping key must be a scalar, not a collection",
                            at,
                        ));
                    }
                    *pending = Some(PendingKey::Key(value, at));
                }
                Some(PendingKey::Merge) => merges.push((value, at)),
                Some(PendingKey::Key(key, key_at)) => {
                    if let Some(i) = entries.find(&key) {
                        let first = key_lines.get(i).copied().unwrap_or(0);
                        return Err(YamlError::at(
                            format!(
                                "duplicate key {} in a mapping (first on line {first}); PyYAML would silently keep only the last value",
                                describe(&key)
                            ),
                            key_at,
                        ));
                    }
                    entries.insert_new(key, value);
                    key_lines.push(key_at.line());
                }
            },
        }
        Ok(())
    }
}

/// Resolves one scalar event the way PyYAML's composer and `SafeConstructor` do.
fn resolve_scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&Tag>,
    as_key: bool,
    at: Marker,
) -> Result<Scalar, YamlError> {
    let fail = |m: String| YamlError::at(m, at);
    let name = tag.map(tag_name);
    let implicit = match name.as_deref() {
        None => style == ScalarStyle::Plain,
        // The non-specific tag `!`: PyYAML resolves the text as if it were plain, whatever its style.
        Some("!") => true,
        Some(_) => false,
    };
    let core = if implicit {
        match resolve::implicit_tag(text) {
            Implicit::Null => "null",
            Implicit::Bool => "bool",
            Implicit::Int => "int",
            Implicit::Float => "float",
            Implicit::Timestamp => "timestamp",
            Implicit::Merge => "merge",
            Implicit::Value => "value",
            Implicit::Str => "str",
        }
    } else {
        match &name {
            None => "str",
            Some(n) => match n.strip_prefix(CORE) {
                Some(suffix) => suffix,
                None => return Err(undefined_tag(n, at)),
            },
        }
    };
    let value = match core {
        "str" => Value::Str(text.to_owned()),
        "null" => Value::Null,
        "bool" => Value::Bool(resolve::construct_bool(text).map_err(fail)?),
        "int" => Value::Int(resolve::construct_int(text).map_err(fail)?),
        "float" => Value::Float(resolve::construct_float(text).map_err(fail)?),
        "binary" => Value::Binary(binary::decode(text).map_err(fail)?),
        "timestamp" => {
            let parts = timestamp::scan(text)
                .ok_or_else(|| fail(format!("{text:?} is not a timestamp (YYYY-MM-DD[ hh:mm:ss[.f][ zone]])")))?;
            timestamp::check(&parts).map_err(|e| fail(format!("timestamp {text:?}: {e}")))?;
            Value::Timestamp(text.to_owned())
        }
        "merge" if as_key => return Ok(Scalar::Merge),
        // PyYAML's `flatten_mapping` turns a `=` key into a string; anywhere else it has no
        // constructor.
        "value" if as_key => Value::Str(text.to_owned()),
        "seq" | "omap" | "pairs" => {
            return Err(fail("expected a sequence node, but found scalar".to_owned()))
        }
        "map" | "set" => return Err(fail("expected a mapping node, but found scalar".to_owned())),
        other => {
            let hint = match other {
                "value" => " (a plain `=` is only allowed as a mapping key: quote it)",
                "merge" => " (a plain `<<` is only allowed as a mapping key: quote it)",
                _ => "",
            };
            return Err(fail(format!(
                "could not determine a constructor for the tag \"{CORE}{other}\"{hint}"
            )));
        }
    };
    Ok(Scalar::Value(value))
}

/// Checks one entry of `!!omap`/`!!pairs`: a mapping with exactly one item.
fn check_pair(item: &Value, what: &str, at: Marker) -> Result<(), YamlError> {
    match item {
        Value::Map(m) if m.len() == 1 => Ok(()),
        Value::Map(m) => Err(YamlError::at(
            format!("while constructing {what}: expected a single mapping item, but found {} items", m.len()),
            at,
        )),
        other => Err(YamlError::at(
            format!("while constructing {what}: expected a mapping of length 1, but found {}", other.type_name()),
            at,
        )),
    }
}

/// `!!omap` as an ordered [`Mapping`]; a repeated key is an error, as in any mapping.
fn finish_omap(items: Vec<Value>, at: Marker) -> Result<Mapping, YamlError> {
    let mut out = KeyedMap::default();
    for item in items {
        check_pair(&item, "an ordered map", at)?;
        if let Value::Map(m) = item {
            for (k, v) in m {
                if out.find(&k).is_some() {
                    return Err(YamlError::at(
                        format!("duplicate key {} in an ordered map (!!omap)", describe(&k)),
                        at,
                    ));
                }
                out.insert_new(k, v);
            }
        }
    }
    Ok(out.into_mapping())
}

/// Applies the merge keys of a mapping as PyYAML's `flatten_mapping` does: merged entries first,
/// in order, then the mapping's own entries, which win.
///
/// When two merged mappings give the same key different values and the mapping does not set
/// that key itself, the result is an error: PyYAML 6.0.4 keeps the first or the last depending
/// on string interning (earlier versions kept the first), so no answer would be reliable.
fn finish_map(explicit: KeyedMap, merges: Vec<(Value, Marker)>) -> Result<Mapping, YamlError> {
    if merges.is_empty() {
        return Ok(explicit.into_mapping());
    }
    let mut out = KeyedMap::default();
    for (merged, at) in merges {
        let sources = match merged {
            Value::Map(m) => vec![m],
            Value::Seq(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::Map(m) => Ok(m),
                    other => Err(YamlError::at(
                        format!("expected a mapping for merging, but found {}", other.type_name()),
                        at,
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => {
                return Err(YamlError::at(
                    format!(
                        "expected a mapping or list of mappings for merging, but found {}",
                        other.type_name()
                    ),
                    at,
                ))
            }
        };
        for source in sources {
            for (k, v) in source {
                match out.find(&k) {
                    Some(i) => {
                        let same = out.value_at(i) == Some(&v);
                        if !same && explicit.find(&k).is_none() {
                            return Err(YamlError::at(
                                format!(
                                    "merge key `<<`: the merged mappings give key {} different values; PyYAML versions disagree on which wins, so set it explicitly in this mapping",
                                    describe(&k)
                                ),
                                at,
                            ));
                        }
                    }
                    None => {
                        out.insert_new(k, v);
                    }
                }
            }
        }
    }
    for (k, v) in explicit.into_mapping() {
        match out.find(&k) {
            Some(i) => out.set_value(i, v),
            None => {
                out.insert_new(k, v);
            }
        }
    }
    Ok(out.into_mapping())
}
