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
//! Mapping construction (merge keys, `!!omap`, `!!pairs`) lives in [`super::construct`], the
//! checks on the raw text (characters, anchor names) in [`super::source`].
//!
//! The document is built with an explicit stack, never recursion, so input depth cannot
//! overflow the call stack.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};

use super::binary;
use super::construct::{check_pair, describe, finish_map, finish_omap};
use super::keys::KeyedMap;
use super::resolve::{self, Implicit};
use super::source::{anchor_name, check_anchor_name, check_printable, Offsets};
use super::timestamp;
use super::value::Value;
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
        YamlError { message: message.into(), line: mark.line(), column: mark.col() + 1 }
    }

    /// An error with no position.
    pub(crate) fn whole(message: impl Into<String>) -> YamlError {
        YamlError { message: message.into(), line: 0, column: 0 }
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
    Seq { kind: SeqKind, items: Vec<Value> },
    Map(Box<MapBody>),
}

/// A mapping being built.
#[derive(Debug)]
struct MapBody {
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
}

/// An open collection on the builder's stack.
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

/// The full name of a tag (`tag:yaml.org,2002:int`, `!local`, `!`).
fn tag_name(tag: &Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

/// The error PyYAML's `construct_undefined` raises.
fn undefined_tag(name: &str, at: Marker) -> YamlError {
    YamlError::at(
        format!("could not determine a constructor for the tag {name:?} (safe_load reads only the standard YAML tags)"),
        at,
    )
}

/// Turns events into the document, one event at a time, with the open collections on a stack.
struct Builder<'a> {
    limits: &'a Limits,
    /// Most scalar bytes the document may hold, aliases expanded.
    text_budget: usize,
    offsets: Offsets<'a>,
    stack: Vec<Frame>,
    /// Finished anchored nodes, by the parser's anchor id.
    anchors: HashMap<usize, (Value, Size)>,
    /// Anchor names seen, with where they were first defined.
    anchor_names: HashMap<String, Marker>,
    /// Nodes produced so far, alias expansions and anchor copies included.
    nodes: usize,
    /// Scalar bytes produced so far, alias expansions and anchor copies included.
    bytes: usize,
    /// The finished top-level node.
    root: Option<Value>,
}

/// Parses `text` as a single YAML document; see the module documentation.
pub(crate) fn parse_document(text: &str, limits: &Limits) -> Result<Value, YamlError> {
    // The documents PMF writers produce, without the event parser (`fast.rs`: the same value,
    // or `None` and the full reader below).
    if let Some(value) = super::fast::parse_simple(text, limits) {
        return Ok(value);
    }
    parse_full(text, limits)
}

/// [`parse_document`] without the fast path (also what `fast.rs` is tested against).
pub(super) fn parse_full(text: &str, limits: &Limits) -> Result<Value, YamlError> {
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
        match self.stack.last() {
            Some(Frame { body: Body::Map(m), .. }) => m.pending.is_none() && !m.pairs_entry,
            _ => false,
        }
    }

    /// Records the anchor of a node starting at `at`, checking its name.
    fn check_anchor(&mut self, at: Marker) -> Result<(), YamlError> {
        let Some(name) = anchor_name(self.offsets.at_char(at.index()), '&') else {
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
        if let Some(name) = anchor_name(self.offsets.at_char(at.index()), '*') {
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
            format!("document nests collections more than {} levels deep (aliases expanded)", self.limits.max_depth),
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
                if let Some(Frame { body: Body::Map(m), .. }) = self.stack.last_mut() {
                    m.pending = Some(PendingKey::Merge);
                }
                Ok(())
            }
            Scalar::Value(v) => {
                self.keep_anchor(anchor, &v, size, at)?;
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
                Some("map" | "set") => return Err(YamlError::at("expected a mapping node, but found sequence", at)),
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
        let body = Body::Map(Box::new(MapBody {
            kind,
            entries: KeyedMap::default(),
            key_lines: Vec::new(),
            pending: None,
            merges: Vec::new(),
            pairs_entry,
        }));
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
            Body::Map(m) => {
                let MapBody { kind, entries, merges, .. } = *m;
                let mut map = finish_map(entries, merges)?;
                if kind == MapKind::Set {
                    map.values_mut().for_each(|v| *v = Value::Null);
                }
                Value::Map(map)
            }
        };
        self.keep_anchor(anchor, &value, size, start)?;
        self.push(value, size, start)
    }

    /// Keeps a copy of an anchored node for its aliases. The copy is counted against the
    /// limits too: anchors nested inside anchors would otherwise hold many uncounted copies.
    fn keep_anchor(&mut self, anchor: usize, value: &Value, size: Size, at: Marker) -> Result<(), YamlError> {
        if anchor != 0 {
            self.count(size, at)?;
            self.anchors.insert(anchor, (value.clone(), size));
        }
        Ok(())
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
            Body::Map(m) => match m.pending.take() {
                None => {
                    if matches!(value, Value::Seq(_) | Value::Map(_)) {
                        return Err(YamlError::at(
                            "found unhashable key: a mapping key must be a scalar, not a collection",
                            at,
                        ));
                    }
                    m.pending = Some(PendingKey::Key(value, at));
                }
                Some(PendingKey::Merge) => m.merges.push((value, at)),
                Some(PendingKey::Key(key, key_at)) => {
                    if let Some(i) = m.entries.find(&key) {
                        let first = m.key_lines.get(i).copied().unwrap_or(0);
                        return Err(YamlError::at(
                            format!(
                                "duplicate key {} in a mapping (first on line {first}); PyYAML would silently keep only the last value",
                                describe(&key)
                            ),
                            key_at,
                        ));
                    }
                    m.entries.insert_new(key, value);
                    m.key_lines.push(key_at.line());
                }
            },
        }
        Ok(())
    }
}

/// A plain scalar without tag or anchor, resolved as the full reader resolves it (as a mapping
/// key when `as_key`): `None` when that is an error, or the merge key `<<`.
pub(super) fn plain_scalar(text: &str, as_key: bool) -> Option<Value> {
    match resolve_scalar(text, ScalarStyle::Plain, None, as_key, Marker::default()) {
        Ok(Scalar::Value(value)) => Some(value),
        _ => None,
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
        "seq" | "omap" | "pairs" => return Err(fail("expected a sequence node, but found scalar".to_owned())),
        "map" | "set" => return Err(fail("expected a mapping node, but found scalar".to_owned())),
        other => {
            let hint = match other {
                "value" => " (a plain `=` is only allowed as a mapping key: quote it)",
                "merge" => " (a plain `<<` is only allowed as a mapping key: quote it)",
                _ => "",
            };
            return Err(fail(format!("could not determine a constructor for the tag \"{CORE}{other}\"{hint}")));
        }
    };
    Ok(Scalar::Value(value))
}

#[cfg(test)]
mod tests {
    use super::super::{parse, parse_with_limits};
    use super::*;

    fn map(pairs: Vec<(Value, Value)>) -> Value {
        Value::Map(pairs.into_iter().collect())
    }

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    fn err(text: &str) -> YamlError {
        match parse(text) {
            Ok(v) => panic!("{text:?} should fail, got {v:?}"),
            Err(e) => e,
        }
    }

    fn one(text: &str) -> Value {
        let doc = format!("k: {text}\n");
        match parse(&doc) {
            Ok(Value::Map(m)) => m.get(&s("k")).cloned().unwrap_or(Value::Null),
            other => panic!("{doc:?}: {other:?}"),
        }
    }

    #[test]
    fn plain_scalars_resolve_like_pyyaml() {
        assert_eq!(one("yes"), Value::Bool(true));
        assert_eq!(one("NO"), Value::Bool(false));
        assert_eq!(one("nO"), s("nO"));
        assert_eq!(one("y"), s("y"));
        assert_eq!(one("1e10"), s("1e10"));
        assert_eq!(one("1.0e+10"), Value::Float(1e10));
        assert_eq!(one("1.0e10"), s("1.0e10"));
        assert_eq!(one("0x1F"), Value::Int(31));
        assert_eq!(one("0o17"), s("0o17"));
        assert_eq!(one("012"), Value::Int(10));
        assert_eq!(one("1_000"), Value::Int(1000));
        assert_eq!(one("1:20"), Value::Int(80));
        assert_eq!(one("+.inf"), Value::Float(f64::INFINITY));
        assert_eq!(one("~"), Value::Null);
        assert_eq!(one(""), Value::Null);
        assert_eq!(one("2001-12-14"), Value::Timestamp("2001-12-14".into()));
        assert_eq!(one("2001-12-14 21:59:43.10 -5"), Value::Timestamp("2001-12-14 21:59:43.10 -5".into()));
        // Quoted and block scalars are never resolved.
        assert_eq!(one("'yes'"), s("yes"));
        assert_eq!(one("\"12\""), s("12"));
        assert_eq!(one("|\n  12\n"), s("12\n"));
        assert_eq!(one(">-\n  true\n"), s("true"));
        // A long plain scalar folded over lines, as PyYAML writes it.
        assert_eq!(parse("k: aaa bbb\n  ccc\n").unwrap(), map(vec![(s("k"), s("aaa bbb ccc"))]));
        assert_eq!(parse("12").unwrap(), Value::Int(12));
    }

    #[test]
    fn out_of_range_ints_are_errors() {
        let e = err("k: 9223372036854775808\n");
        assert!(e.message.contains("64-bit"), "{e}");
        assert_eq!((e.line, e.column), (1, 4));
        assert_eq!(one("-9223372036854775808"), Value::Int(i64::MIN));
        assert_eq!(one("'9223372036854775808'"), s("9223372036854775808"));
    }

    #[test]
    fn explicit_tags() {
        assert_eq!(one("!!str 12"), s("12"));
        assert_eq!(one("!!str"), s(""));
        assert_eq!(one("!!int \"0o17\""), Value::Int(15));
        assert_eq!(one("!!float 1e10"), Value::Float(1e10));
        assert_eq!(one("!!float '1'"), Value::Float(1.0));
        assert_eq!(one("!!bool YeS"), Value::Bool(true));
        assert_eq!(one("!!null abc"), Value::Null);
        assert_eq!(one("!!binary QUJD"), Value::Binary(b"ABC".to_vec()));
        assert_eq!(one("!!binary |\n  QUJD\n  REVG\n"), Value::Binary(b"ABCDEF".to_vec()));
        assert_eq!(one("!!timestamp 2001-1-1"), Value::Timestamp("2001-1-1".into()));
        assert_eq!(one("!<tag:yaml.org,2002:str> 12"), s("12"));
        assert_eq!(one("!!seq [a]"), Value::Seq(vec![s("a")]));
        assert_eq!(one("!!map {a: 1}"), map(vec![(s("a"), Value::Int(1))]));
        // The non-specific tag resolves even quoted text, as PyYAML does.
        assert_eq!(one("! 12"), Value::Int(12));
        assert_eq!(one("! '12'"), Value::Int(12));
        assert_eq!(one("! [1]"), Value::Seq(vec![Value::Int(1)]));
        for bad in [
            "!!python/object:os.system {}",
            "!!python/none ''",
            "!foo x",
            "!!int abc",
            "!!int [1]",
            "!!seq x",
            "!!map [a]",
            "!!bool maybe",
            "!!binary Q",
            "!!timestamp yesterday",
            "!!timestamp 2001-02-30",
            "!!merge x",
            "!!value x",
            "!!str {a: 1}",
        ] {
            let e = err(&format!("k: {bad}\n"));
            assert_eq!(e.line, 1, "{bad}: {e}");
        }
    }

    #[test]
    fn sets_omaps_and_pairs() {
        assert_eq!(one("!!set {a, b}"), map(vec![(s("a"), Value::Null), (s("b"), Value::Null)]));
        assert_eq!(one("!!set {a: 1}"), map(vec![(s("a"), Value::Null)]));
        assert_eq!(one("!!omap [b: 1, a: 2]"), map(vec![(s("b"), Value::Int(1)), (s("a"), Value::Int(2))]));
        if let Value::Map(m) = one("!!omap [b: 1, a: 2]") {
            assert_eq!(m.keys().collect::<Vec<_>>(), [&s("b"), &s("a")]);
        }
        assert_eq!(
            one("!!pairs [a: 1, a: 2]"),
            Value::Seq(vec![map(vec![(s("a"), Value::Int(1))]), map(vec![(s("a"), Value::Int(2))])])
        );
        assert!(err("k: !!omap [a: 1, a: 2]\n").message.contains("duplicate key"));
        assert!(err("k: !!omap [{a: 1, b: 2}]\n").message.contains("single mapping item"));
        assert!(err("k: !!pairs [a]\n").message.contains("length 1"));
        assert!(err("k: !!omap {a: 1}\n").message.contains("sequence"));
        // PyYAML does not flatten omap entries: `<<` has no constructor there.
        assert!(err("a: &a {x: 1}\nk: !!omap [<<: *a]\n").message.contains("merge"));
    }

    #[test]
    fn value_and_merge_indicators() {
        assert_eq!(parse("=: 1").unwrap(), map(vec![(s("="), Value::Int(1))]));
        for bad in ["a: =", "a: <<", "- <<", "- =", "=", "<<"] {
            let e = err(bad);
            assert!(e.message.contains("constructor"), "{bad}: {e}");
        }
        assert_eq!(one("'='"), s("="));
        assert_eq!(one("\"<<\""), s("<<"));
    }

    #[test]
    fn merge_keys() {
        let doc = "base: &b {x: 1, y: 2}\nother: &o {z: 3}\nk:\n  y: 20\n  <<: [*b, *o]\n  w: 4\n";
        let v = parse(doc).unwrap();
        let k = v.as_map().and_then(|m| m.get(&s("k"))).and_then(Value::as_map).cloned().unwrap();
        // Merged keys first, in merge order; explicit keys win and keep the merged position.
        let keys: Vec<_> = k.keys().cloned().collect();
        assert_eq!(keys, vec![s("x"), s("y"), s("z"), s("w")]);
        assert_eq!(k.get(&s("y")), Some(&Value::Int(20)));
        assert_eq!(k.get(&s("x")), Some(&Value::Int(1)));
        // A single mapping, and a merged mapping that itself merges.
        let v = parse("a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b}\n").unwrap();
        let c = v.as_map().and_then(|m| m.get(&s("c"))).cloned().unwrap();
        assert_eq!(c, map(vec![(s("x"), Value::Int(1)), (s("y"), Value::Int(2))]));
        // Same key, same value from two merged mappings: fine. Different values: ambiguous.
        assert!(parse("a: &a {x: 1}\nb: &b {x: 1}\nc: {<<: [*a, *b]}\n").is_ok());
        let e = err("a: &a {xx: 1}\nb: &b {xx: 2}\nc: {<<: [*a, *b]}\n");
        assert!(e.message.contains("different values"), "{e}");
        assert!(parse("a: &a {xx: 1}\nb: &b {xx: 2}\nc: {<<: [*a, *b], xx: 3}\n").is_ok());
        assert!(err("a: &a [1]\nc: {<<: *a}\n").message.contains("expected a mapping for merging"));
        assert!(err("a: &a 1\nc: {<<: *a}\n").message.contains("list of mappings"));
        assert!(err("c: {<<: [1]}\n").message.contains("expected a mapping for merging"));
        assert!(err("c: {<<: x}\n").message.contains("for merging"));
        // A merge into a set.
        assert_eq!(one("!!set {<<: {a: 1}, b: 2}"), map(vec![(s("a"), Value::Null), (s("b"), Value::Null)]));
    }

    #[test]
    fn duplicate_and_unhashable_keys() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert!(e.message.contains("duplicate key \"a\""), "{e}");
        assert!(e.message.contains("first on line 1"), "{e}");
        assert_eq!((e.line, e.column), (3, 1));
        // Keys Python's dict would merge.
        for doc in [
            "1: a\n1.0: b\n",
            "true: a\n1: b\n",
            "0: a\n-0.0: b\nx: c\n",
            "off: a\nno: b\n",
            ".nan: a\n.NaN: b\n",
            "2001-12-14t21:59:43.10-05:00: a\n2001-12-15 02:59:43.1Z: b\n",
            "? a\n? a\n",
        ] {
            assert!(err(doc).message.contains("duplicate key"), "{doc}");
        }
        assert!(parse("1: a\n'1': b\n2001-12-14: c\n2001-12-14 00:00:00: d\n").is_ok());
        assert!(err("[a, b]: 1\n").message.contains("unhashable"));
        assert!(err("? {a: 1}\n: 1\n").message.contains("unhashable"));
        assert!(err("a: &x [1]\n*x : 1\n").message.contains("unhashable"));
        assert!(err("? !!set {a}\n: 1\n").message.contains("unhashable"));
    }

    #[test]
    fn anchors_and_aliases() {
        let v = parse("a: &x [1, {b: 2}]\nc: *x\n").unwrap();
        let m = v.as_map().cloned().unwrap();
        assert_eq!(m.get(&s("a")), m.get(&s("c")));
        assert_eq!(parse("- &k key\n- {*k : 1}\n").unwrap().type_name(), "list");
        let e = err("a: *nope\n");
        assert!(e.message.contains("undefined alias"), "{e}");
        assert_eq!(e.line, 1);
        assert!(err("a: &x [*x]\n").message.contains("recursive"));
        assert!(err("a: &x 1\nb: &x 2\n").message.contains("duplicate anchor \"x\""));
        assert!(err("a: &x.y 1\n").message.contains("anchor name"));
        assert!(err("a: !!str &x\u{e9} 1\n").message.contains("anchor name"));
        assert_eq!(one("!!str &x 1"), s("1"));
        assert_eq!(one("&x !!str 1"), s("1"));
    }

    #[test]
    fn documents() {
        assert_eq!(parse("").unwrap(), Value::Null);
        assert_eq!(parse("# only a comment\n\n").unwrap(), Value::Null);
        assert_eq!(parse("---\n").unwrap(), Value::Null);
        assert_eq!(parse("--- 1\n...\n").unwrap(), Value::Int(1));
        assert_eq!(parse("%YAML 1.1\n--- a\n").unwrap(), s("a"));
        let e = err("a: 1\n---\nb: 2\n");
        assert!(e.message.contains("single document"), "{e}");
        assert_eq!(e.line, 2);
        assert!(err("a: [1\n").line >= 1);
        let e = err("a: 1\nb: \u{1}\n");
        assert!(e.message.contains("special character U+0001"), "{e}");
        assert_eq!((e.line, e.column), (2, 4));
        assert!(err("a: \u{7f}").message.contains("U+007F"));
        assert_eq!(parse("a: \u{e9}x").unwrap(), map(vec![(s("a"), s("\u{e9}x"))]));
        assert_eq!(parse("a: \"\\N\\L\\P\"").unwrap(), map(vec![(s("a"), s("\u{85}\u{2028}\u{2029}"))]));
        for raw in ["a: x\u{85}y", "a: '\u{2028}'", "# \u{2029}\na: 1"] {
            assert!(err(raw).message.contains("line break for PyYAML"), "{raw:?}");
        }
    }

    #[test]
    fn limits_size_and_depth() {
        let small = Limits { max_bytes: 10, ..Limits::default() };
        let e = parse_with_limits("a: 12345678", &small).unwrap_err();
        assert!(e.message.contains("more than the limit of 10 bytes"), "{e}");
        assert!(parse_with_limits("a: 1234567", &small).is_ok());

        let shallow = Limits { max_depth: 3, ..Limits::default() };
        assert!(parse_with_limits("a: {b: [1]}", &shallow).is_ok());
        let e = parse_with_limits("a: {b: [[1]]}", &shallow).unwrap_err();
        assert!(e.message.contains("more than 3 levels"), "{e}");
        // Depth reached through an alias counts too.
        let e = parse_with_limits("x: &d [[1]]\ny: {z: *d}", &shallow).unwrap_err();
        assert!(e.message.contains("levels"), "{e}");
        assert!(parse_with_limits("x: &d [[1]]\ny: *d", &shallow).is_ok());
        let flat = Limits { max_depth: 0, ..Limits::default() };
        assert_eq!(parse_with_limits("7", &flat).unwrap(), Value::Int(7));
        assert!(parse_with_limits("[7]", &flat).is_err());

        // Very deep input fails cleanly with the default limits, without recursion.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_err());
        let deep_block: String = (0..300).map(|i| format!("{}- \n", " ".repeat(i * 2))).collect();
        assert!(parse(&deep_block).is_err());
    }

    #[test]
    fn limits_alias_bomb() {
        let mut doc = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let e = parse(&doc).unwrap_err();
        assert!(e.message.contains("more than 1000000 nodes"), "{e}");
        assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
        // A small node budget stops a small one.
        let few = Limits { max_nodes: 50, ..Limits::default() };
        let e = parse_with_limits("a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9]\nb: [*a, *a, *a, *a, *a]\n", &few).unwrap_err();
        assert!(e.message.contains("50 nodes"), "{e}");
        assert_eq!(e.line, 2);
        assert!(parse_with_limits("a: &a [1, 2]\nb: [*a, *a]\n", &few).is_ok());
        // The copies kept for aliases count too: nested anchors cannot hide memory.
        let nest = |anchors: bool| -> String {
            let mut doc: String = (0..6)
                .map(|i| {
                    let anchor = if anchors { format!("&a{i}") } else { String::new() };
                    format!("{}- {anchor}\n", "  ".repeat(i))
                })
                .collect();
            doc.push_str(&format!("{}- [1, 2, 3, 4, 5, 6, 7, 8, 9]\n", "  ".repeat(6)));
            doc
        };
        let limit = Limits { max_nodes: 40, ..Limits::default() };
        assert!(parse_with_limits(&nest(false), &limit).is_ok());
        let chain = nest(true);
        let e = parse_with_limits(&chain, &limit).unwrap_err();
        assert!(e.message.contains("40 nodes"), "{e}");
        // Long strings repeated by aliases are bounded by the text budget.
        let text = Limits { max_bytes: 200, ..Limits::default() };
        let doc = format!("a: &s {}\nb: [*s, *s, *s, *s, *s, *s, *s, *s]\n", "x".repeat(100));
        let e = parse_with_limits(&doc, &text).unwrap_err();
        assert!(e.message.contains("bytes of scalar text"), "{e}");
    }

    #[test]
    fn describe_keys() {
        assert_eq!(describe(&s("a")), "\"a\"");
        assert_eq!(describe(&Value::Int(3)), "3");
        assert!(describe(&s(&"x".repeat(200))).ends_with("..."));
    }
}
