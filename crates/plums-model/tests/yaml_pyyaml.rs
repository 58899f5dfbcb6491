//! The YAML layer of `plums_model` against PyYAML itself, in both directions.
//!
//! (a) PyYAML writes each corpus document (`yaml.safe_dump`, in several styles) and our
//!     [`parse_yaml`] must read the value PyYAML holds; (b) our [`to_yaml`] writes it and
//!     `yaml.safe_load` must read back the original. Values are compared as "tagged JSON"
//!     (see `pyyaml_roundtrip.py`), so a string `"1"` never equals an int `1`.
//!
//! The Python interpreter is `$PMF_PYTHON`, else the workspace's `.venv/bin/python`. Without a
//! Python that has PyYAML the test is skipped, unless `PMF_REQUIRE_REFERENCE=1`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use plums_model::{parse_yaml, to_yaml, Mapping, Value};
use serde_json::{json, Value as Json};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pyyaml_roundtrip.py");

/// The Python interpreter with PyYAML, or `None` (after reporting) when there is none.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("PMF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/python")));
    let ok = Command::new(&candidate)
        .arg(SCRIPT)
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "ok")
        .unwrap_or(false);
    if ok {
        return Some(candidate);
    }
    if std::env::var("PMF_REQUIRE_REFERENCE").as_deref() == Ok("1") {
        panic!(
            "PMF_REQUIRE_REFERENCE=1 but {} is not a Python with PyYAML: run the README's test command (scripts/test), which sets up .venv",
            candidate.display()
        );
    }
    eprintln!("skipped: no Python with PyYAML (run scripts/test); looked for {}", candidate.display());
    None
}

/// Runs the helper script in `mode` with a JSON request.
fn run(py: &PathBuf, mode: &str, request: &Json) -> Vec<Json> {
    let mut child = Command::new(py)
        .arg(SCRIPT)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let body = serde_json::to_vec(request).expect("encode request");
    child.stdin.take().expect("stdin").write_all(&body).expect("write request");
    let out = child.wait_with_output().expect("run python");
    assert!(out.status.success(), "pyyaml_roundtrip.py {mode} failed: {}", String::from_utf8_lossy(&out.stderr));
    match serde_json::from_slice(&out.stdout).expect("decode answer") {
        Json::Array(items) => items,
        other => panic!("unexpected answer {other}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A value as tagged JSON (the format of `pyyaml_roundtrip.py`).
fn tagged(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!({ "bool": b }),
        Value::Int(i) => json!({ "int": i.to_string() }),
        Value::Float(f) if f.is_nan() => json!({ "float": "nan" }),
        Value::Float(f) => json!({ "float": format!("{:016x}", f.to_bits()) }),
        Value::Str(s) => json!({ "str": s }),
        Value::Timestamp(t) => json!({ "timestamp": t }),
        Value::Binary(b) => json!({ "binary": hex(b) }),
        Value::Seq(items) => Json::Array(items.iter().map(tagged).collect()),
        Value::Map(m) => {
            json!({ "map": m.iter().map(|(k, v)| json!([tagged(k), tagged(v)])).collect::<Vec<_>>() })
        }
    }
}

fn contains_timestamp(v: &Value) -> bool {
    match v {
        Value::Timestamp(_) => true,
        Value::Seq(items) => items.iter().any(contains_timestamp),
        Value::Map(m) => m.iter().any(|(k, v)| contains_timestamp(k) || contains_timestamp(v)),
        _ => false,
    }
}

/// The tricky strings: each is used as a value, as a key, in a list and alone.
fn corpus_strings() -> Vec<String> {
    let mut v: Vec<String> = [
        "yes",
        "Yes",
        "YES",
        "No",
        "no",
        "NO",
        "nO",
        "on",
        "On",
        "ON",
        "OFF",
        "off",
        "y",
        "Y",
        "n",
        "N",
        "true",
        "True",
        "FALSE",
        "1e10",
        "1.5e3",
        "1E10",
        "1.0e10",
        "1.0e+10",
        "0o17",
        "0x1F",
        "0x1f",
        "012",
        "08",
        "0b101",
        "0b",
        "1:20",
        "190:20:30.15",
        "0:30",
        "1_000",
        "1_",
        "2020-01-01",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43.10 -5",
        "2001-1-1",
        "~",
        "null",
        "Null",
        "NULL",
        "None",
        ".inf",
        "-.Inf",
        "+.inf",
        ".NaN",
        ".nan",
        "-.nan",
        ".5",
        "-.5",
        "+.5",
        "1.",
        "3.14",
        "-0.0",
        "0",
        "-0",
        "+1",
        "=",
        "<<",
        "",
        " x",
        "x ",
        " ",
        "a: b",
        "a:b",
        "a #b",
        "a#b",
        "#x",
        "- x",
        "-x",
        "-",
        "--- x",
        "...",
        "? x",
        "?x",
        ": x",
        "[x]",
        "{x}",
        "x]",
        "a,b",
        "!x",
        "&x",
        "*x",
        "%x",
        "@x",
        "`x",
        "|",
        ">",
        "\"",
        "'",
        "\\",
        "'x'",
        "\"x\"",
        "x:",
        "é",
        "日本",
        "😀",
        "naïve café",
        "\u{85}",
        "\u{2028}",
        "\u{a0}",
        "\u{feff}x",
        "\u{7f}",
        "\u{1}",
        "\u{0}",
        "\u{1b}[0m",
        "a\nb",
        "a\n",
        "\n",
        "\nx",
        "a\n\nb",
        "  a\n  b  ",
        "a\tb",
        "\t",
        "\r\n",
        "tab\tend\t",
        "1234e678901234567890123456789012",
        "123e4567890123456789012345678901",
        "d41d8cd98f00b204e9800998ecf8427e",
        "1234567890123456789012345678901234567890",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
        "1.0",
        "0.1",
        "1e-07",
        "1e+300",
        "1.0e+300",
        "0.0001",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push(
        "The quick brown fox jumps over the lazy dog, again and again: then it rests # not a comment, ".repeat(2)
            + "and ends here.",
    );
    v.push("x".repeat(200));
    v.push("word ".repeat(40).trim_end().to_owned());
    v.push(format!("{} {}", "é".repeat(90), "日本".repeat(40)));
    v
}

/// Non-string scalars.
fn corpus_scalars() -> Vec<Value> {
    let mut v = vec![
        Value::Null,
        Value::Bool(true),
        Value::Bool(false),
        Value::Int(0),
        Value::Int(-1),
        Value::Int(1000),
        Value::Int(i64::MAX),
        Value::Int(i64::MIN),
    ];
    for f in [
        1.0,
        0.1,
        -0.0,
        0.0,
        1e-07,
        1.5e-07,
        1e300,
        1e16,
        1e15,
        1e-4,
        1e-5,
        5e-324,
        f64::MAX,
        f64::MIN_POSITIVE,
        123_456.789,
        -2.5,
        1e20,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ] {
        v.push(Value::Float(f));
    }
    for t in
        ["2001-12-14", "2001-12-14 21:59:43.100000-05:00", "2002-12-14 21:59:43", "2001-12-14 21:59:43.100000+00:00"]
    {
        v.push(Value::Timestamp(t.to_owned()));
    }
    v.push(Value::Binary(Vec::new()));
    v.push(Value::Binary(b"ABC".to_vec()));
    v.push(Value::Binary((0..=255).collect()));
    v
}

fn map(pairs: Vec<(Value, Value)>) -> Value {
    Value::Map(pairs.into_iter().collect::<Mapping>())
}

/// Each scalar alone, as a value, as a key, and nested in lists and mappings.
fn corpus_documents() -> Vec<Value> {
    let mut scalars: Vec<Value> = corpus_strings().into_iter().map(Value::Str).collect();
    scalars.extend(corpus_scalars());
    let mut docs = Vec::new();
    for x in scalars {
        docs.push(x.clone());
        docs.push(map(vec![(Value::from("value"), x.clone())]));
        docs.push(map(vec![(x.clone(), Value::from("key"))]));
        docs.push(map(vec![(
            Value::from("nested"),
            Value::Seq(vec![x.clone(), map(vec![(x.clone(), x.clone())]), Value::Seq(vec![x.clone()])]),
        )]));
    }
    docs
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Random floats (any bit pattern, NaN normalised) and random tricky strings.
fn random_documents() -> Vec<Value> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let floats: Vec<Value> = (0..2000)
        .map(|i| {
            let bits = rng.next();
            let f = if i % 2 == 0 {
                f64::from_bits(bits)
            } else {
                // Ordinary magnitudes too, not only huge and tiny ones.
                (bits >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi((i % 40) - 20)
            };
            Value::Float(if f.is_nan() { f64::NAN } else { f })
        })
        .collect();
    let alphabet: Vec<char> = "0123456789eE.:-+_ #'\"\\\n\t~<=!&*[]{},?|>%@`xyonaéé日😀\u{85}".chars().collect();
    let words = ["yes", "no", "on", "null", "1e10", "0x", "1:2", ".inf", "2001-12-14", "<<", "="];
    let strings: Vec<Value> = (0..600)
        .map(|_| {
            let n = (rng.next() % 9) as usize;
            let mut s = String::new();
            for _ in 0..n {
                if rng.next() % 6 == 0 {
                    s.push_str(words[(rng.next() % words.len() as u64) as usize]);
                } else {
                    s.push(alphabet[(rng.next() % alphabet.len() as u64) as usize]);
                }
            }
            Value::Str(s)
        })
        .collect();
    let mut keyed = Mapping::new();
    for s in &strings {
        keyed.insert(s.clone(), s.clone());
    }
    vec![Value::Seq(floats), Value::Seq(strings), Value::Map(keyed)]
}

#[test]
fn pyyaml_writes_we_read() {
    let Some(py) = python() else { return };
    let mut docs = corpus_documents();
    docs.extend(random_documents());
    let request = Json::Array(docs.iter().map(tagged).collect());
    let answers = run(&py, "dump", &request);
    assert_eq!(answers.len(), docs.len());
    let (mut checked, mut refused) = (0, 0);
    for (doc, answer) in docs.iter().zip(&answers) {
        let expected = &answer["expected"];
        if !contains_timestamp(doc) {
            assert_eq!(expected, &tagged(doc), "Python holds a different value than sent");
        }
        let texts = answer["texts"].as_array().expect("texts");
        let reads = answer["reads"].as_array().expect("reads");
        for (text, read) in texts.iter().zip(reads) {
            let text = text.as_str().expect("text");
            if text.contains(['\u{85}', '\u{2028}', '\u{2029}']) {
                // With allow_unicode, PyYAML writes these raw, and reads them as line breaks
                // (it reads "\u{85}" back as " "): we refuse such documents.
                let e = parse_yaml(text).expect_err(text);
                assert!(e.message.contains("line break for PyYAML"), "{e}");
                refused += 1;
                continue;
            }
            assert_eq!(read, expected, "PyYAML does not read back its own\n{text}");
            let ours = parse_yaml(text).unwrap_or_else(|e| panic!("cannot read PyYAML's\n{text}\n{e}"));
            assert_eq!(&tagged(&ours), expected, "PyYAML wrote\n{text}");
            checked += 1;
        }
    }
    assert!(checked >= 5 * 4 * 80, "only {checked} documents checked");
    assert!(refused < 50, "{refused} documents refused");
    eprintln!("read {checked} documents written by PyYAML ({refused} refused: raw NEL/LS/PS)");
}

#[test]
fn we_write_pyyaml_reads() {
    let Some(py) = python() else { return };
    let mut docs = corpus_documents();
    docs.extend(random_documents());
    let texts: Vec<String> = docs.iter().map(to_yaml).collect();
    let request =
        Json::Array(docs.iter().zip(&texts).map(|(d, t)| json!({ "yaml": t, "expected": tagged(d) })).collect());
    let answers = run(&py, "load", &request);
    assert_eq!(answers.len(), docs.len());
    for ((doc, text), answer) in docs.iter().zip(&texts).zip(&answers) {
        assert!(text.is_ascii(), "not ASCII:\n{text}");
        let expected = &answer["expected"];
        if !contains_timestamp(doc) {
            assert_eq!(expected, &tagged(doc));
        }
        assert_eq!(&answer["loaded"], expected, "we wrote\n{text}");
        // And we read our own text back too.
        assert_eq!(parse_yaml(text).as_ref(), Ok(doc), "we wrote\n{text}");
    }
}

#[test]
fn big_ints_from_pyyaml_are_errors() {
    let Some(py) = python() else { return };
    let request = json!([
        { "int": "9223372036854775808" },
        { "int": "-9223372036854775809" },
        { "map": [[{ "str": "n" }, { "int": "123456789012345678901234567890" }]] },
    ]);
    for answer in run(&py, "dump", &request) {
        for text in answer["texts"].as_array().expect("texts") {
            let text = text.as_str().expect("text");
            let e = parse_yaml(text).expect_err(text);
            assert!(e.message.contains("64-bit"), "{text}: {e}");
        }
    }
}

/// Tagged JSON with the pairs of every mapping sorted, to compare mappings as dicts do.
fn unordered(j: &Json) -> Json {
    match j {
        Json::Array(items) => Json::Array(items.iter().map(unordered).collect()),
        Json::Object(o) if o.contains_key("map") => {
            let mut pairs: Vec<Json> =
                o["map"].as_array().map(|ps| ps.iter().map(unordered).collect()).unwrap_or_default();
            pairs.sort_by_key(|p| p.to_string());
            json!({ "map": pairs })
        }
        other => other.clone(),
    }
}

/// Hand-written documents that both readers must read to the same value.
const SAME_VALUE: &[&str] = &[
    "base: &b {x: 1, y: 2}\nk:\n  <<: *b\n  y: 3\n",
    "a: &a {x: 1}\nb: &b {y: 2}\nk: {<<: [*a, *b], z: 3}\n",
    "a: &a {x: 1}\nb: &b {<<: *a, y: 2}\nc: {<<: *b}\n",
    "=: 1\n",
    "k: ! 12\n",
    "k: ! '12'\n",
    "k: !!str 12\n",
    "k: !!int '0o17'\n",
    "k: !!float '1e10'\n",
    "k: !!bool YeS\n",
    "k: !!null abc\n",
    "k: !!binary QUJD\n",
    "k: !!binary |\n  QU=JD\n",
    "k: !!timestamp 2001-1-1\n",
    "k: !!set {a: 1}\n",
    "k: !<tag:yaml.org,2002:str> 12\n",
    "k: |\n  line 1\n  line 2\n",
    "k: >\n  folded\n  text\n\n  para\n",
    "k: |-\n  x\n",
    "k: 'it''s'\n",
    "k: \"\\x41\\u00e9\\U0001F600\\N\\_\\L\\P\\/\\t\\e\"\n",
    "k: \"a\\\n  b\"\n",
    "k: plain\n  continued\n\n  para\n",
    "- a\n- b: 1\n  c: 2\n- - x\n",
    "? a\n: 1\n? b\n",
    "{a: [1, 2], b: {c: d}}\n",
    "# comment\na: 1 # trailing\n",
    "%YAML 1.1\n---\na: 1\n...\n",
    "",
    "---\n",
    "a:\n",
    "1:20: x\n12: y\n0x1F: z\n",
    "a: 2001-12-14 21:59:43.10 -5\nb: 2001-12-14t21:59:43.10-05:00\nc: 2001-12-14\n",
    "a: 1.0e+10\nb: 1e10\nc: .5\nd: +.5\ne: 190:20:30.15\nf: 1_000.5\ng: 1.0e10\nh: 1.5E-3\n",
    "a: -.inf\nb: .NaN\nc: .nAn\n",
    "a: 0b1_0\nb: -0_7\nc: 0o17\nd: 08\ne: +0\n",
    "k: &a 1\nl: *a\n",
    "k: [&a {x: 1}, *a]\n",
];

/// Documents that both readers must reject.
const BOTH_REJECT: &[&str] = &[
    "a: =\n",
    "a: <<\n",
    "- <<\n",
    "!!python/object:os.system {}\n",
    "k: !!python/none ''\n",
    "k: !local x\n",
    "--- a\n--- b\n",
    "[a]: 1\n",
    "{a: 1}: 1\n",
    "k: *undefined\n",
    "a: &x 1\nb: &x 2\n",
    "k: !!int abc\n",
    "k: !!binary Q\n",
    "k: !!binary QUJ\n",
    "k: 0b_\n",
    "k: 2001-02-30\n",
    "k: 0000-01-01\n",
    "k: 2001-12-14 25:00:00\n",
    "k: 2001-12-14 24:00:00\n",
    "k: 2001-12-14 21:59:43 -24\n",
    "k: [1\n",
    "k: \"\u{1}\"\n",
    "k: \u{7f}\n",
    "k: {<<: 1}\n",
    "k: {<<: [1]}\n",
    "k: !!omap [a]\n",
    "k: !!omap [{a: 1, b: 2}]\n",
    "k: &a.b 1\n",
];

/// Documents PyYAML accepts and we reject on purpose.
const WE_REJECT: &[&str] = &[
    "a: 1\na: 2\n",
    "1: a\n1.0: b\n",
    "true: a\n1: b\n",
    "k: 9223372036854775808\n",
    "a: &a {xx: 1}\nb: &b {xx: 2}\nk: {<<: [*a, *b]}\n",
];

#[test]
fn both_readers_agree_on_hand_written_documents() {
    let Some(py) = python() else { return };
    let all: Vec<&str> = SAME_VALUE.iter().chain(BOTH_REJECT).chain(WE_REJECT).copied().collect();
    let ours: Vec<_> = all.iter().map(|t| parse_yaml(t)).collect();
    // Our value goes along as "expected", for Python to normalise timestamps the way it holds them.
    let request = Json::Array(
        all.iter()
            .zip(&ours)
            .map(|(t, v)| json!({ "yaml": t, "expected": v.as_ref().map(tagged).unwrap_or(Json::Null) }))
            .collect(),
    );
    let answers = run(&py, "load", &request);
    for (i, ((text, ours), answer)) in all.iter().zip(&ours).zip(&answers).enumerate() {
        let theirs = &answer["loaded"];
        let python_failed = theirs.get("error").is_some();
        if i < SAME_VALUE.len() {
            assert!(ours.is_ok(), "{text:?}: {ours:?}");
            // Merged keys come in a different order in PyYAML 6.0 and 6.0.4; dicts compare
            // without order, so do the same here.
            assert_eq!(unordered(&answer["expected"]), unordered(theirs), "{text:?}");
        } else if i < SAME_VALUE.len() + BOTH_REJECT.len() {
            assert!(python_failed, "PyYAML accepts {text:?}: {theirs}");
            assert!(ours.is_err(), "we accept {text:?}: {ours:?}");
        } else {
            assert!(!python_failed, "PyYAML rejects {text:?}: {theirs}");
            assert!(ours.is_err(), "we accept {text:?}: {ours:?}");
        }
    }
}

/// Plain scalars made of the characters PyYAML's resolver looks at, as values and as keys:
/// both readers must give the same value, or both must fail (we may also refuse an integer
/// beyond 64 bits, which PyYAML reads).
#[test]
fn resolver_agrees_on_random_plain_scalars() {
    let Some(py) = python() else { return };
    let alphabet: Vec<char> = "0123456789.:_-+eExXobBinfaNtrTuys~<=".chars().collect();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut docs = Vec::new();
    for i in 0..4000 {
        let n = 1 + (rng.next() % 9) as usize;
        let s: String = (0..n).map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize]).collect();
        docs.push(if i % 2 == 0 { format!("k: {s}\n") } else { format!("{s}: k\n") });
    }
    // Timestamps, valid and not (month 13, 30 February, hour 24, offsets of a day ...).
    for i in 0..1500u64 {
        let mut r = |n: u64| rng.next() % n;
        let mut t = format!("{:04}-{:02}-{:02}", r(2101), r(14), r(33));
        if i % 4 != 0 {
            t.push_str(["T", "t", " ", "  "][r(4) as usize]);
            t.push_str(&format!("{}:{:02}:{:02}", r(26), r(62), r(62)));
            if r(2) == 0 {
                t.push_str(&format!(".{}", r(10_000_000)));
            }
            let zone = match r(4) {
                0 => String::new(),
                1 => "Z".to_owned(),
                2 => format!(" {}{}", ["-", "+"][r(2) as usize], r(26)),
                _ => format!("{}{:02}:{:02}", ["-", "+"][r(2) as usize], r(26), r(62)),
            };
            t.push_str(&zone);
        }
        docs.push(format!("k: {t}\n"));
    }
    for w in [
        "1.0e10",
        "1.0e+10",
        "0o17",
        "+.5",
        "-.5",
        "1:60",
        "1:59",
        "0:30",
        "0:30.5",
        "00:30",
        "2001-12-14",
        "2001-12-14 21:59:43.10 -5",
        "2001-12-14t21:59:43.10-05:00",
        "2001-1-1",
        "._5",
        "1__.__e+5",
        "0_",
        "0b_1",
        "-0_7",
        "190:20:30.15",
        "+0x_1F",
        ".NaN",
        "-.INF",
    ] {
        docs.push(format!("k: {w}\n"));
        docs.push(format!("{w}: k\n"));
    }
    let ours: Vec<_> = docs.iter().map(|t| parse_yaml(t)).collect();
    let request = Json::Array(
        docs.iter()
            .zip(&ours)
            .map(|(t, v)| json!({ "yaml": t, "expected": v.as_ref().map(tagged).unwrap_or(Json::Null) }))
            .collect(),
    );
    let answers = run(&py, "load", &request);
    let mut agreed = 0;
    for ((text, ours), answer) in docs.iter().zip(&ours).zip(&answers) {
        let theirs = &answer["loaded"];
        match ours {
            Ok(_) => {
                assert_eq!(&answer["expected"], theirs, "{text:?}");
                agreed += 1;
            }
            Err(e) if theirs.get("error").is_some() => {
                let _ = e;
                agreed += 1;
            }
            Err(e) => assert!(e.message.contains("64-bit"), "PyYAML reads {text:?} as {theirs}, we fail: {e}"),
        }
    }
    assert!(agreed > 5000, "{agreed}");
}
