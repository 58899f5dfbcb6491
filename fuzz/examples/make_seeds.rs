//! Write the seed corpora of the fuzz targets, from models saved by the library:
//! `seeds/metadata_parse/*` (metadata.yaml and build_parameters.yaml texts, and a few YAML
//! documents with anchors, merge keys and tags) and `seeds/validate_tree/*` (whole model trees
//! in the format of src/lib.rs, also used by save_tree).
//!
//! `cargo run --release --example make_seeds` from the fuzz folder.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use plums_model::{Checkpoint, Mapping, Model, Producer, Reference, SaveOptions, Value, Version};
use plums_model_fuzz::{op, record};

fn encode(root: &Path) -> Vec<u8> {
    let mut out = fs::read(root.join("metadata.yaml")).unwrap();
    let mut entries: Vec<_> = walk(root);
    entries.sort();
    for rel in entries {
        let path = root.join(&rel);
        let bytes = rel.as_os_str().as_bytes();
        if rel == Path::new("metadata.yaml") || rel == Path::new(".pmf.lock") {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            record(&mut out, op::LINK, bytes, Some(fs::read_link(&path).unwrap().as_os_str().as_bytes()));
        } else if meta.is_dir() {
            record(&mut out, op::DIR, bytes, None);
        } else {
            let content = fs::read(&path).unwrap();
            assert!(!content.contains(&0) && !content.contains(&1), "seed contents must not hold bytes 0 or 1");
            record(&mut out, op::FILE, bytes, Some(&content));
        }
    }
    out
}

fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let yaml_dir = here.join("seeds/metadata_parse");
    let tree_dir = here.join("seeds/validate_tree");
    fs::create_dir_all(&yaml_dir).unwrap();
    fs::create_dir_all(&tree_dir).unwrap();
    let tmp = std::env::temp_dir().join(format!("plums-seeds-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let src = tmp.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("config.py"), b"config = 1\n").unwrap();
    fs::write(src.join("1.h5"), b"one").unwrap();
    fs::write(src.join("2.h5"), b"two").unwrap();
    fs::write(src.join("yes.h5"), b"yes weights").unwrap();
    fs::write(src.join("w.h5"), b"init").unwrap();

    let new = |name: Option<&str>| {
        let producer =
            Producer::new("fuzz_producer", Version::pep440("1.0.0").unwrap(), src.join("config.py")).unwrap();
        let mut model = Model::new("fuzz-model", producer);
        model.name = name.map(str::to_owned);
        model
    };
    let mut seeds: Vec<(&str, Model)> = Vec::new();

    seeds.push(("minimal", new(None)));

    let mut m = new(Some("yes"));
    let mut params = Mapping::new();
    params.insert("lr".into(), Value::Float(0.1));
    params.insert("1e10".into(), "0x1f".into());
    params.insert(Value::Int(3), Value::Seq(vec![Value::Null, Value::Bool(true), "~".into(), "2020-01-01".into()]));
    m.build_parameters = Value::Map(params);
    m.register_training_start(0).unwrap();
    m.register_epoch(Some(2)).unwrap();
    m.add_checkpoint(Checkpoint::new(1, Some(src.join("1.h5")), Some(1), None).unwrap()).unwrap();
    m.add_checkpoint(Checkpoint::new("1", Some(src.join("2.h5")), Some(2), None).unwrap()).unwrap();
    m.add_checkpoint(Checkpoint::new(Reference::from("no"), Some(src.join("yes.h5")), Some(2), None).unwrap()).unwrap();
    seeds.push(("running", m.clone()));

    let mut f = m.clone();
    f.register_training_end(true).unwrap();
    f.register_initialisation(src.join("w.h5"), None, Some("imagenet")).unwrap();
    seeds.push(("file_init", f));

    let init_root = tmp.join("init");
    m.save(&init_root, &SaveOptions::new()).unwrap();
    let mut p = new(Some("child"));
    p.register_initialisation(&init_root, Some(Reference::from("1")), None).unwrap();
    p.register_training_start(3).unwrap();
    p.register_training_end(false).unwrap();
    seeds.push(("pmf_init", p));

    for (name, mut model) in seeds {
        let root = tmp.join("models").join(name);
        model.save(&root, &SaveOptions::new()).unwrap();
        if name == "running" {
            fs::write(root.join(std::ffi::OsStr::from_bytes(b"extra-\xff")), b"extra").unwrap();
            std::os::unix::fs::symlink("config.py", root.join("link-to-config")).unwrap();
        }
        fs::write(yaml_dir.join(format!("{name}-metadata.yaml")), fs::read(root.join("metadata.yaml")).unwrap())
            .unwrap();
        fs::write(
            yaml_dir.join(format!("{name}-build_parameters.yaml")),
            fs::read(root.join("data/build_parameters.yaml")).unwrap(),
        )
        .unwrap();
        fs::write(tree_dir.join(name), encode(&root)).unwrap();
    }

    // Hostile trees: links out of the root, a FIFO, a folder link.
    let base = fs::read(tree_dir.join("running")).unwrap();
    let mut hostile = base.clone();
    record(&mut hostile, op::LINK, b"data/checkpoints/1.h5", Some(b"../../../outside/secret"));
    record(&mut hostile, op::LINK, b"config.py", Some(b"@OUT/fifo"));
    fs::write(tree_dir.join("links_out"), hostile).unwrap();
    let mut hostile = base.clone();
    record(&mut hostile, op::REMOVE, b"data", None);
    record(&mut hostile, op::LINK, b"data", Some(b"@OUT/dir"));
    fs::write(tree_dir.join("data_link_out"), hostile).unwrap();
    let mut hostile = base;
    record(&mut hostile, op::FIFO, b"data/checkpoints/2.h5", None);
    record(&mut hostile, op::LINK, b"loop", Some(b"loop"));
    record(&mut hostile, op::HUGE, b"data/build_parameters.yaml", None);
    fs::write(tree_dir.join("fifo_loop_huge"), hostile).unwrap();

    let docs: [(&str, &str); 6] = [
        ("anchors", "a: &x {k: [1, 2, *y]}\n"),
        ("merge", "base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  y: 3\n"),
        ("tags", "a: !!str 1\nb: !!int '0x1f'\nc: !!float 1\nd: !!binary aGVsbG8=\ne: !!timestamp 2020-01-01\nf: !!set {x, y}\ng: !!omap [a: 1, b: 2]\n"),
        ("scalars", "- yes\n- No\n- 0o17\n- 012\n- 1:20\n- 1_000\n- 1e10\n- .inf\n- -.NaN\n- ~\n- 2001-12-14t21:59:43.10-05:00\n- '1'\n- \"\\x41\\u00e9\"\n"),
        ("laughs", "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: &c [*b, *b, *b]\n"),
        ("block", "key: |\n  literal\n  text\nother: >-\n  folded\n  text\nseq:\n- - - deep\n"),
    ];
    for (name, doc) in docs {
        fs::write(yaml_dir.join(format!("doc-{name}.yaml")), doc).unwrap();
    }
    let _ = fs::remove_dir_all(&tmp);
    println!("seeds written to {} and {}", yaml_dir.display(), tree_dir.display());
}
