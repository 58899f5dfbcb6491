//! `gc`: what interrupted saves leave is removed under each model's lock, and nothing else.
//!
//! On disk: every leftover state an interrupted save can leave (built by name as
//! `read_only.rs` builds them, and made for real by killing a saving child process, with and
//! without `RENAME_EXCHANGE`) is removed (or, for a missing model folder, put back in place),
//! the model then validates strictly, registered and foreign files are kept byte for byte, a
//! dry run changes nothing, a held lock is a skip with its holder and never a wait without end,
//! links are never followed. On S3 (the SeaweedFS test server, skipped without it unless
//! `PMF_REQUIRE_S3=1`): unreferenced objects at PMF's paths are deleted, registered and foreign
//! objects and every key outside the prefix keep their ETags, stale and live lock objects and
//! the marker of an interrupted save are handled as documented in `gc.rs`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::leftovers::{self, Fx, State, STATES, SUFFIX_A, SUFFIX_B};
use common::rng::Rng;
use common::s3::{s3_or_skip, S3Server, S3Test};
use common::{names, snapshot, strace_injection_unavailable, STRACE_RENAMEAT2_EINVAL};
use plums_model::{
    gc, validate, validate_at, Checkpoint, Error, GcKind, GcOptions, GcReport, Initialisation, LoadOptions, Location,
    Model, SaveOptions, SkipKind, StorageOptions, ValidateOptions, Value, LOCK_FILE, SAVE_MARKER,
};

// ---------------------------------------------------------------------------------------------
// Folders: fixtures
// ---------------------------------------------------------------------------------------------

impl State {
    /// How many checkpoints the model in place has once collected.
    fn epochs(self) -> usize {
        match self {
            State::NewAndOldNoModel | State::NewNoModel | State::OldInStaging => 3,
            _ => 2,
        }
    }

    /// What gc removes, as (path relative to the location, kind), sorted.
    fn expected(self) -> Vec<(String, GcKind)> {
        let staging = (format!(".model.pmf-save-{SUFFIX_A}"), GcKind::StagingFolder);
        let temporary = [
            (format!("model/.metadata.yaml.pmf-tmp-{SUFFIX_A}"), GcKind::TempFile),
            (format!("model/data/checkpoints/.3.h5.pmf-tmp-{SUFFIX_B}"), GcKind::TempFile),
        ];
        let journal = [
            (format!("model/data/checkpoints/.pmf-append-{SUFFIX_A}"), GcKind::Journal),
            ("model/data/checkpoints/9.h5".to_owned(), GcKind::JournalFile),
        ];
        let mut out = match self {
            State::Staging => vec![staging],
            State::NewBesideModel => vec![(format!(".model.pmf-new-{SUFFIX_A}"), GcKind::NewTree)],
            State::NewAndOldNoModel => vec![(format!(".model.pmf-old-{SUFFIX_A}"), GcKind::OldTree)],
            State::NewNoModel | State::OldNoModel => vec![],
            State::OldInStaging => vec![(format!(".model.pmf-save-{SUFFIX_B}"), GcKind::StagingFolder)],
            State::TemporaryFiles => temporary.to_vec(),
            State::AppendJournal => journal.to_vec(),
            State::Everything => {
                let mut all = vec![staging, (format!(".model.pmf-new-{SUFFIX_B}"), GcKind::NewTree)];
                all.extend(temporary);
                all.extend(journal);
                all
            }
        };
        out.sort();
        out
    }

    /// The tree an interrupted commit leaves to put in place, relative to the location.
    fn completed_from(self) -> Option<String> {
        match self {
            State::NewAndOldNoModel | State::NewNoModel => Some(format!(".model.pmf-new-{SUFFIX_A}")),
            State::OldNoModel => Some(format!(".model.pmf-old-{SUFFIX_A}")),
            _ => None,
        }
    }
}

/// What the append journal of a leftover state names: `9.h5` (a complete file the metadata does
/// not register), and also a registered file, a path out of the model and a missing file: none
/// goes.
const JOURNAL: &[u8] = b"9.h5\x001.h5\x00../../../inputs/config.py\x00missing.h5\x00";

/// Save a model (2 checkpoints) at the model root and a newer one (3 checkpoints) elsewhere,
/// arrange the folders as `state` says (the journal holding [`JOURNAL`]), and add foreign files:
/// in the tree that ends up in place (`notes.txt`, an unregistered checkpoint file no journal
/// names, temporary-looking names where saves write none or of another form) and next to it
/// (folders and a file whose names only look like leftovers).
fn make_state(fx: &Fx, state: State) {
    leftovers::make_state(fx, state, JOURNAL);
    let root = fx.root();
    let in_place = match state.completed_from() {
        Some(from) => fx.parent().join(from),
        None => root,
    };
    for (rel, content) in FOREIGN_INSIDE {
        fs::write(in_place.join(rel), content).unwrap();
    }
    for dir in FOREIGN_FOLDERS_BESIDE {
        fs::create_dir_all(fx.parent().join(dir)).unwrap();
        fs::write(fx.parent().join(dir).join("mine.txt"), b"not PMF's").unwrap();
    }
    fs::write(fx.parent().join(FOREIGN_FILE_BESIDE), b"a file, not a leftover folder").unwrap();
}

/// Files of the user's in the model: kept whatever their names look like.
const FOREIGN_INSIDE: [(&str, &[u8]); 5] = [
    ("notes.txt", b"my notes"),
    ("data/checkpoints/keep.h5", b"an unregistered file no journal names"),
    ("data/.build_parameters.yaml.pmf-tmp-4242-9-0000abcd", b"saves write no temporary file here"),
    (".notes.pmf-tmp-notasuffix", b"not the library's suffix"),
    ("data/checkpoints/.pmf-append-notasuffix", b"keep.h5\x00"),
];

/// Folders next to the model whose names only look like leftovers.
const FOREIGN_FOLDERS_BESIDE: [&str; 4] = [
    ".model.pmf-save-notasuffix",
    "model.pmf-save-4242-0-0000abcd",
    ".model.pmf-saved-4242-0-0000abcd",
    ".model.pmf-save-4242-0-0000abcd-x",
];

/// A file (not a folder) with a leftover folder's name.
const FOREIGN_FILE_BESIDE: &str = ".model.pmf-save-4242-7-0000abcf";

/// The names next to the model once collected.
fn expected_beside() -> Vec<String> {
    let mut out: Vec<String> = FOREIGN_FOLDERS_BESIDE.iter().map(|s| s.to_string()).collect();
    out.push(FOREIGN_FILE_BESIDE.to_owned());
    out.push("model".to_owned());
    out.sort();
    out
}

fn no_wait() -> GcOptions {
    GcOptions::new().lock_timeout(Duration::from_millis(200))
}

/// What a report removed, as (path relative to `base`, kind), sorted.
fn removed(report: &GcReport, base: &Path) -> Vec<(String, GcKind)> {
    let mut out: Vec<(String, GcKind)> = report
        .removed
        .iter()
        .map(|i| {
            let Location::Local(p) = &i.location else { panic!("{i:?}") };
            (p.strip_prefix(base).unwrap_or(p).to_string_lossy().into_owned(), i.kind)
        })
        .collect();
    out.sort();
    out
}

/// The model validates strictly and holds `epochs` checkpoints whose files have their content.
fn assert_valid(root: &Path, epochs: usize, what: &str) {
    let metadata = validate(root, &ValidateOptions::new().strict(true)).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(metadata.model.training.checkpoints.len(), epochs, "{what}");
    for e in 1..=epochs {
        let bytes = fs::read(root.join(format!("data/checkpoints/{e}.h5"))).unwrap();
        assert_eq!(bytes, format!("weights of epoch {e}\n").as_bytes(), "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Folders: tests
// ---------------------------------------------------------------------------------------------

#[test]
fn gc_removes_every_leftover_state_and_keeps_registered_and_foreign_files() {
    for state in STATES {
        let fx = Fx::new();
        make_state(&fx, state);
        let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap_or_else(|e| panic!("{state:?}: {e}"));
        assert!(!report.dry_run);
        assert!(report.skipped.is_empty(), "{state:?}: {:?}", report.skipped);
        assert_eq!(removed(&report, &fx.parent()), state.expected(), "{state:?}");
        let completed: Vec<PathBuf> = report.completed.iter().map(|c| c.from.clone()).collect();
        assert_eq!(completed, state.completed_from().map(|f| fx.parent().join(f)).into_iter().collect::<Vec<_>>());
        assert_eq!(report.freed_bytes, report.removed.iter().map(|i| i.freed_bytes).sum::<u64>());
        // What each removed file held is what it freed (no other link to it).
        for item in report.removed.iter().filter(|i| matches!(i.kind, GcKind::TempFile | GcKind::JournalFile)) {
            assert!(item.bytes > 0 && item.freed_bytes == item.bytes, "{state:?}: {item:?}");
        }
        if state == State::TemporaryFiles {
            assert_eq!(report.freed_bytes, 4 + 11, "{state:?}");
        }

        // Nothing left but the model and what is not PMF's.
        assert_eq!(names(&fx.parent()), expected_beside(), "{state:?}");
        assert_valid(&fx.root(), state.epochs(), &format!("{state:?}"));
        for (rel, content) in FOREIGN_INSIDE {
            assert_eq!(fs::read(fx.root().join(rel)).unwrap(), content, "{state:?}: {rel}");
        }
        for dir in FOREIGN_FOLDERS_BESIDE {
            assert_eq!(fs::read(fx.parent().join(dir).join("mine.txt")).unwrap(), b"not PMF's", "{state:?}");
        }
        assert_eq!(fs::read(fx.inputs().join("config.py")).unwrap(), b"lr = 0.01\n");
        let mut in_checkpoints = names(&fx.root().join("data/checkpoints"));
        in_checkpoints.retain(|n| !n.ends_with(".h5") || n == "keep.h5");
        assert_eq!(in_checkpoints, [".pmf-append-notasuffix", "keep.h5"], "{state:?}");

        // Done: a second run finds nothing.
        let again = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
        assert!(again.removed.is_empty() && again.completed.is_empty() && again.skipped.is_empty(), "{again:?}");
        assert!(again.models_examined >= 1, "{again:?}");
        // And the next save of the model works from there.
        let mut loaded = Model::load(fx.root(), &LoadOptions::new()).unwrap();
        loaded.register_epoch(Some(5)).unwrap();
        loaded.add_checkpoint(fx.checkpoint(5)).unwrap();
        loaded.save(fx.root(), &SaveOptions::new()).unwrap();
    }
}

#[test]
fn a_dry_run_changes_nothing_and_reports_what_gc_then_removes() {
    for state in STATES {
        let fx = Fx::new();
        make_state(&fx, state);
        let everything = fx.dir.path();
        let before = snapshot(everything, &|_| false);
        let dry = gc(&Location::from(fx.parent()), &no_wait().dry_run(true)).unwrap();
        assert!(dry.dry_run);
        assert_eq!(snapshot(everything, &|_| false), before, "{state:?}: a dry run changed the tree");
        assert_eq!(removed(&dry, &fx.parent()), state.expected(), "{state:?}");
        let real = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
        let sizes = |r: &GcReport| r.removed.iter().map(|i| (i.kind, i.bytes, i.freed_bytes)).collect::<Vec<_>>();
        assert_eq!(removed(&real, &fx.parent()), removed(&dry, &fx.parent()), "{state:?}");
        assert_eq!(sizes(&real), sizes(&dry), "{state:?}");
        assert_eq!(real.completed, dry.completed, "{state:?}");
        assert_eq!(real.freed_bytes, dry.freed_bytes, "{state:?}");
        assert_ne!(snapshot(everything, &|_| false), before, "{state:?}: the real run changed nothing");
    }
}

#[test]
fn a_staging_tree_hard_linked_to_the_model_frees_only_its_own_files() {
    let fx = Fx::new();
    fx.trained(2).save(fx.root(), &SaveOptions::new().durable(false)).unwrap();
    // A save killed while it built its tree: unchanged files hard-linked from the model, one
    // new file of its own.
    let staging = fx.sibling("save", SUFFIX_A);
    fs::create_dir_all(staging.join("data/checkpoints")).unwrap();
    fs::hard_link(fx.root().join("data/checkpoints/1.h5"), staging.join("data/checkpoints/1.h5")).unwrap();
    fs::hard_link(fx.root().join(LOCK_FILE), staging.join(LOCK_FILE)).unwrap();
    fs::write(staging.join("data/checkpoints/3.h5"), vec![7u8; 1000]).unwrap();
    let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
    let [item] = report.removed.as_slice() else { panic!("{report:?}") };
    assert_eq!(item.kind, GcKind::StagingFolder);
    assert_eq!(item.bytes, 1000 + "weights of epoch 1\n".len() as u64);
    assert_eq!(item.freed_bytes, 1000, "the linked file stays the model's");
    assert_eq!(report.freed_bytes, 1000);
    assert_valid(&fx.root(), 2, "after gc");
}

/// Take the writer lock of `root` as another process would: an exclusive `flock` on its
/// `.pmf.lock` through a file of our own, the holder written in it.
fn hold_lock(root: &Path) -> fs::File {
    let path = root.join(LOCK_FILE);
    let file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).unwrap();
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    fs::write(&path, b"pid 4242 on testhost since unix time 1700000000\n").unwrap();
    file
}

#[test]
fn a_model_another_writer_holds_is_skipped_with_its_holder_without_waiting_long() {
    let fx = Fx::new();
    make_state(&fx, State::Everything);
    let held = hold_lock(&fx.root());
    for dry_run in [false, true] {
        let started = Instant::now();
        let report = gc(&Location::from(fx.parent()), &no_wait().dry_run(dry_run)).unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(10), "{waited:?}");
        assert!(report.removed.is_empty(), "dry run {dry_run}: {:?}", report.removed);
        let [skip] = report.skipped.as_slice() else { panic!("dry run {dry_run}: {:?}", report.skipped) };
        assert_eq!(skip.kind, SkipKind::Locked);
        assert_eq!(skip.location, Location::from(fx.root()));
        let Some(Error::Locked { holder, .. }) = &skip.error else { panic!("{skip:?}") };
        assert_eq!((holder.pid, holder.host.as_deref()), (Some(4242), Some("testhost")), "{skip:?}");
        assert!(skip.reason.contains("pid 4242 on testhost"), "{}", skip.reason);
    }
    // Nothing was touched.
    assert!(fx.sibling("save", SUFFIX_A).exists() && fx.sibling("new", SUFFIX_B).exists());
    assert!(fx.root().join(format!("data/checkpoints/.pmf-append-{SUFFIX_A}")).exists());
    drop(held);
    let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
    assert_eq!(removed(&report, &fx.parent()), State::Everything.expected());
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
}

#[test]
fn the_location_may_be_the_model_folder_itself_even_when_a_commit_left_it_missing() {
    for state in [State::Everything, State::NewAndOldNoModel] {
        let fx = Fx::new();
        make_state(&fx, state);
        let report = gc(&Location::from(fx.root()), &no_wait()).unwrap();
        assert_eq!(removed(&report, &fx.parent()), state.expected(), "{state:?}");
        assert_eq!(report.completed.len(), usize::from(state.model_missing()), "{state:?}");
        assert_eq!(names(&fx.parent()), expected_beside(), "{state:?}");
        assert_valid(&fx.root(), state.epochs(), &format!("{state:?}"));
    }
}

#[test]
fn models_are_found_down_to_depth_and_leftovers_of_other_folders_are_judged() {
    let fx = Fx::new();
    let deep = fx.parent().join("a/b/model");
    fx.trained(1).save(&deep, &SaveOptions::new().durable(false)).unwrap();
    let deep_staging = fx.parent().join(format!("a/b/.model.pmf-save-{SUFFIX_A}"));
    fs::create_dir_all(&deep_staging).unwrap();
    // The destination of a first save killed before its commit: only the lock file.
    let dest = fx.parent().join("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join(LOCK_FILE), b"").unwrap();
    let dest_staging = fx.parent().join(format!(".dest.pmf-save-{SUFFIX_A}"));
    fs::create_dir_all(dest_staging.join("data")).unwrap();
    // A staging folder whose model folder is gone, with the lock file every tree carries.
    let gone_staging = fx.parent().join(format!(".gone.pmf-save-{SUFFIX_B}"));
    fs::create_dir_all(&gone_staging).unwrap();
    fs::write(gone_staging.join(LOCK_FILE), b"").unwrap();
    // A folder that is neither a model nor a save's destination: its look-alike is kept.
    let plain = fx.parent().join("plain");
    fs::create_dir_all(&plain).unwrap();
    fs::write(plain.join("data.csv"), b"1,2").unwrap();
    let plain_lookalike = fx.parent().join(format!(".plain.pmf-save-{SUFFIX_A}"));
    fs::create_dir_all(&plain_lookalike).unwrap();

    let shallow = gc(&Location::from(fx.parent()), &no_wait().depth(2)).unwrap();
    assert!(deep_staging.exists(), "below --depth: {shallow:?}");
    let mut got = removed(&shallow, &fx.parent());
    got.sort();
    assert_eq!(
        got,
        [
            (format!(".dest.pmf-save-{SUFFIX_A}"), GcKind::StagingFolder),
            (format!(".gone.pmf-save-{SUFFIX_B}"), GcKind::StagingFolder)
        ]
    );
    let [skip] = shallow.skipped.as_slice() else { panic!("{:?}", shallow.skipped) };
    assert_eq!((skip.kind, &skip.location), (SkipKind::NotAModel, &Location::from(plain.clone())));
    assert!(plain_lookalike.exists() && plain.join("data.csv").exists() && dest.join(LOCK_FILE).exists());

    let deeper = gc(&Location::from(fx.parent()), &no_wait().depth(3)).unwrap();
    assert_eq!(removed(&deeper, &fx.parent()), [(format!("a/b/.model.pmf-save-{SUFFIX_A}"), GcKind::StagingFolder)]);
    assert!(!deep_staging.exists());
    validate(&deep, &ValidateOptions::new().strict(true)).unwrap();
}

#[test]
fn links_are_never_followed_and_nothing_outside_the_location_is_touched() {
    let fx = Fx::new();
    fx.trained(2).save(fx.root(), &SaveOptions::new().durable(false)).unwrap();
    let outside = fx.dir.path().join("outside");
    fx.trained(1).save(outside.join("m"), &SaveOptions::new().durable(false)).unwrap();
    fs::create_dir_all(outside.join(format!(".m.pmf-save-{SUFFIX_A}"))).unwrap();
    fs::write(outside.join(format!("m/.metadata.yaml.pmf-tmp-{SUFFIX_A}")), b"x").unwrap();
    // A link to the outside model, with a leftover-named folder next to the link; a linked folder.
    std::os::unix::fs::symlink(outside.join("m"), fx.parent().join("linked")).unwrap();
    fs::create_dir_all(fx.parent().join(format!(".linked.pmf-save-{SUFFIX_A}"))).unwrap();
    std::os::unix::fs::symlink(&outside, fx.parent().join("all-outside")).unwrap();
    fs::create_dir_all(fx.sibling("save", SUFFIX_A)).unwrap();
    let before = snapshot(&outside, &|_| false);
    let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
    assert_eq!(snapshot(&outside, &|_| false), before);
    assert_eq!(removed(&report, &fx.parent()), [(format!(".model.pmf-save-{SUFFIX_A}"), GcKind::StagingFolder)]);
    let [skip] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
    assert_eq!((skip.kind, &skip.location), (SkipKind::Link, &Location::from(fx.parent().join("linked"))));
    assert!(fx.parent().join(format!(".linked.pmf-save-{SUFFIX_A}")).exists());
}

#[test]
fn without_readable_metadata_journals_are_kept_and_reported() {
    let fx = Fx::new();
    make_state(&fx, State::Everything);
    fs::write(fx.root().join("metadata.yaml"), b"model: [unclosed\n").unwrap();
    let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
    // The staging and new trees and the temporary files go (no metadata needed); the journal
    // and the file it names stay: which files the model references is unknown.
    let expected: Vec<(String, GcKind)> = State::Everything
        .expected()
        .into_iter()
        .filter(|(_, k)| !matches!(k, GcKind::Journal | GcKind::JournalFile))
        .collect();
    assert_eq!(removed(&report, &fx.parent()), expected);
    let [skip] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
    assert_eq!(skip.kind, SkipKind::UnreadableMetadata);
    assert_eq!(skip.location, Location::from(fx.root().join(format!("data/checkpoints/.pmf-append-{SUFFIX_A}"))));
    assert!(fx.root().join("data/checkpoints/9.h5").exists());
}

#[test]
fn gc_is_a_writer_that_no_reader_reaches() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in [src.clone(), src.join("save")] {
        files.extend(
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "rs")),
        );
    }
    assert!(files.len() > 20, "{files:?}");
    let mut users = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        if name == "gc.rs" || name == "lib.rs" {
            continue;
        }
        let text = fs::read_to_string(file).unwrap();
        if text.contains("crate::gc") || text.contains("gc::") {
            users.push(name.into_owned());
        }
    }
    assert!(users.is_empty(), "modules that use gc: {users:?}");
    let gc_text = fs::read_to_string(src.join("gc.rs")).unwrap();
    assert!(
        gc_text.contains("commit::lock_writer(") && gc_text.contains("commit::repair("),
        "gc must lock and repair as a save does"
    );
}

// ---------------------------------------------------------------------------------------------
// Folders: a writer killed while saving
// ---------------------------------------------------------------------------------------------

const ROLE: &str = "PMF_GC_ROLE";
const DIR: &str = "PMF_GC_DIR";

/// The child: flip the model in `$PMF_GC_DIR/models/model` between 2 checkpoints and 3 (the
/// third 2 MiB: added in place, with a journal; removed by a staging exchange that also
/// changes the build parameters), forever.
#[test]
#[ignore = "child process of a_writer_killed_while_saving_leaves_what_gc_removes"]
fn gc_kill_child() {
    if std::env::var(ROLE).as_deref() != Ok("saver") {
        return;
    }
    let base = PathBuf::from(std::env::var(DIR).unwrap());
    let root = base.join("models/model");
    let third = base.join("inputs/3.h5");
    let mut model = Model::load(&root, &LoadOptions::new()).unwrap();
    println!("PMF-READY pid={}", std::process::id());
    for round in 0u64.. {
        if model.checkpoint_collection.len() == 2 {
            model.register_epoch(Some(3)).unwrap();
            model.add_checkpoint(Checkpoint::new(3, Some(&third), Some(3), None).unwrap()).unwrap();
        } else {
            model.checkpoint_collection.remove(&plums_model::Reference::Int(3)).unwrap();
            model.build_parameters = Value::from(format!("resnet-{round}"));
        }
        model.save(&root, &SaveOptions::new()).unwrap_or_else(|e| panic!("round {round}: {e}"));
    }
}

fn kill_trials(no_exchange: bool) {
    let label = if no_exchange { "gc after kills (no exchange)" } else { "gc after kills" };
    let mut rng = Rng::from_env(label);
    let fx = Fx::new();
    let mut model = fx.trained(2);
    model.save(fx.root(), &SaveOptions::new()).unwrap();
    fs::write(fx.inputs().join("3.h5"), common::rng::content(3, 2 << 20)).unwrap();
    let (mut with_leftovers, mut missing, mut unnamed, mut kinds) = (0, 0, 0, BTreeMap::new());
    let trials = 40;
    let mut kills = 0;
    for trial in 0..trials {
        kills += 1;
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "gc_kill_child", "--ignored", "--nocapture", "--test-threads=1"]);
        let mut cmd = if no_exchange {
            let mut traced = Command::new("strace");
            traced.args(STRACE_RENAMEAT2_EINVAL).arg(cmd.get_program()).args(cmd.get_args());
            traced
        } else {
            cmd
        };
        cmd.env(ROLE, "saver").env(DIR, fx.dir.path()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let pid = loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "the child ended before it was ready");
            if let Some(i) = line.find("PMF-READY pid=") {
                break line[i + 14..].trim().parse::<i32>().unwrap();
            }
        };
        std::thread::sleep(Duration::from_micros(5_000 + rng.below(400_000)));
        let _ =
            rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), rustix::process::Signal::KILL);
        child.wait().unwrap();
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);

        let leftovers_beside = names(&fx.parent()).into_iter().filter(|n| n != "model").count();
        let root_missing = !fx.root().exists();
        let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap_or_else(|e| panic!("trial {trial}: {e}"));
        assert!(report.skipped.is_empty(), "trial {trial}: {:?}", report.skipped);
        if !report.removed.is_empty() || !report.completed.is_empty() {
            with_leftovers += 1;
        }
        missing += usize::from(root_missing);
        assert_eq!(report.completed.len(), usize::from(root_missing), "trial {trial}: {report:?}");
        assert!(report.removed.len() + report.completed.len() >= leftovers_beside, "trial {trial}: {report:?}");
        for item in &report.removed {
            *kinds.entry(item.kind).or_insert(0) += 1;
        }
        // Nothing left, next to the model or in it, and the model is whole: 2 or 3 checkpoints.
        assert_eq!(names(&fx.parent()), ["model"], "trial {trial}");
        let leftovers_inside: Vec<String> = names(&fx.root())
            .into_iter()
            .chain(names(&fx.root().join("data/checkpoints")))
            .filter(|n| n.contains(".pmf-tmp-") || n.starts_with(".pmf-append-"))
            .collect();
        assert!(leftovers_inside.is_empty(), "trial {trial}: {leftovers_inside:?}");
        let metadata = validate(fx.root(), &ValidateOptions::new().strict(true))
            .unwrap_or_else(|e| panic!("trial {trial}: the model is not valid after gc: {e}"));
        let n = metadata.model.training.checkpoints.len();
        assert!(n == 2 || n == 3, "trial {trial}: {n}");
        // A save in place killed between a file's rename and its journal entry leaves a complete
        // file no journal names: gc cannot prove it PMF's and keeps it (docs/RELIABILITY.md 5).
        let files = names(&fx.root().join("data/checkpoints"));
        let registered: Vec<String> = (1..=n).map(|e| format!("{e}.h5")).collect();
        let all: Vec<String> = (1..=3).map(|e| format!("{e}.h5")).collect();
        assert!(registered.iter().all(|f| files.contains(f)), "trial {trial}: {files:?}");
        assert!(files.iter().all(|f| all.contains(f)), "trial {trial}: {files:?}");
        unnamed += usize::from(files.len() > n);
        if with_leftovers >= 8 && (!no_exchange || missing >= 1) {
            break;
        }
    }
    println!(
        "{label}: {with_leftovers} of {kills} kills left leftovers ({missing} a missing model folder, {unnamed} a file no journal names); removed {kinds:?}"
    );
    assert!(with_leftovers >= 1, "{label}: no kill of {trials} left anything for gc (the test proves nothing)");
}

#[test]
fn a_writer_killed_while_saving_leaves_what_gc_removes() {
    kill_trials(false);
}

#[test]
fn a_writer_killed_while_committing_without_rename_exchange_leaves_what_gc_repairs() {
    if let Some(why) = strace_injection_unavailable() {
        println!("SKIPPED: strace with --seccomp-bpf and inject is not available ({why})");
        return;
    }
    kill_trials(true);
}

// ---------------------------------------------------------------------------------------------
// Object storage
// ---------------------------------------------------------------------------------------------

fn storage(server: &S3Server, cache: &Path) -> StorageOptions {
    let mut o = StorageOptions::new();
    for (k, v) in server.storage_options() {
        o.set(&k, &v).unwrap();
    }
    o.cache_dir(cache);
    o
}

/// A model with 2 checkpoints and an initialisation file saved to `PREFIX/models/detector`,
/// and around it: objects a killed save would leave (unreferenced, at PMF's paths), the user's
/// objects in the model's prefix, and a sibling prefix with the same leading characters.
struct Bucket {
    s3: S3Test,
    /// The model's inputs and the cache (kept while the test runs).
    _fx: Fx,
    storage: StorageOptions,
}

/// Unreferenced objects at PMF's paths.
const ORPHANS: [(&str, usize); 3] =
    [("data/checkpoints/x.pt", 1000), ("data/checkpoints/3.h5", 2048), ("data/initialisation/old-weights.bin", 300)];

/// The user's objects in the model's prefix (not PMF's paths).
const FOREIGN_OBJECTS: [&str; 5] =
    ["notes.txt", "data/notes.txt", "data/checkpoints/sub/y.pt", "other/thing.bin", "config.py.bak"];

/// Keys beside the model's prefix (relative to the test's prefix).
const OUTSIDE: [&str; 5] = [
    "models/detector-2/data/checkpoints/x.pt",
    "models/detector-2/metadata.yaml.txt",
    "models/detectorx",
    "models/detector.pt",
    "elsewhere/data/checkpoints/x.pt",
];

impl Bucket {
    fn new(test: &str) -> Option<Bucket> {
        let s3 = s3_or_skip(test)?;
        let fx = Fx::new();
        let storage = storage(&s3.server, &fx.dir.path().join("cache"));
        let mut model = fx.trained(2);
        let weights = fx.inputs().join("imagenet.bin");
        fs::write(&weights, b"initial weights").unwrap();
        model.set_initialisation(Some(Initialisation::File(
            Checkpoint::new("imagenet", Some(&weights), None, None).unwrap(),
        )));
        model
            .save_at(
                &Location::parse(&s3.url("models/detector")).unwrap(),
                &SaveOptions::new().storage(storage.clone()),
            )
            .unwrap();
        let b = Bucket { s3, _fx: fx, storage };
        for (rel, size) in ORPHANS {
            b.s3.put(&format!("models/detector/{rel}"), &vec![b'o'; size]);
        }
        for rel in FOREIGN_OBJECTS {
            b.s3.put(&format!("models/detector/{rel}"), b"the user's");
        }
        for key in OUTSIDE {
            b.s3.put(key, b"not this model's");
        }
        Some(b)
    }

    fn model(&self) -> Location {
        Location::parse(&self.s3.url("models/detector")).unwrap()
    }

    fn options(&self) -> GcOptions {
        GcOptions::new().storage(self.storage.clone()).lock_timeout(Duration::from_millis(500))
    }

    /// Every key under the test's prefix with its ETag.
    fn objects(&self) -> BTreeMap<String, String> {
        self.s3.list("").into_iter().map(|(k, _, e)| (k, e)).collect()
    }

    /// The model validates strictly, once the user's folder in `data/checkpoints/` (kept by gc:
    /// not a key a save writes, but an offence) is gone.
    fn assert_valid(&self) {
        self.s3.delete("models/detector/data/checkpoints/sub/y.pt");
        let options = ValidateOptions::new().strict(true).storage(self.storage.clone());
        let metadata = validate_at(&self.model(), &options).unwrap();
        assert_eq!(metadata.model.training.checkpoints.len(), 2);
    }
}

/// The removed items of a report as (key relative to the model's prefix, kind, bytes), sorted.
fn removed_objects(report: &GcReport, model: &Location) -> Vec<(String, GcKind, u64)> {
    let base = format!("{model}/");
    let mut out: Vec<(String, GcKind, u64)> = report
        .removed
        .iter()
        .map(|i| (i.location.to_string().strip_prefix(&base).unwrap_or("?").to_owned(), i.kind, i.bytes))
        .collect();
    out.sort();
    out
}

/// A lock object whose lease expired long ago.
const STALE_LOCK: &[u8] = b"pid 1 on elsewhere since unix time 1\nexpires 1\n";

fn orphans_expected() -> Vec<(String, GcKind, u64)> {
    let mut out: Vec<(String, GcKind, u64)> =
        ORPHANS.iter().map(|(k, n)| (k.to_string(), GcKind::OrphanObject, *n as u64)).collect();
    out.sort();
    out
}

#[test]
fn s3_unreferenced_objects_are_deleted_and_nothing_else() {
    let Some(b) = Bucket::new("gc_s3_orphans") else { return };
    let before = b.objects();
    // The location is the parent prefix: the model is found there, the sibling prefix is not a model.
    let parent = Location::parse(&b.s3.url("models")).unwrap();
    let report = gc(&parent, &b.options()).unwrap();
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(removed_objects(&report, &b.model()), orphans_expected());
    assert_eq!(report.freed_bytes, ORPHANS.iter().map(|(_, n)| *n as u64).sum::<u64>());
    assert_eq!(report.models_examined, 1);
    let mut expected = before.clone();
    for (rel, _) in ORPHANS {
        expected.remove(&format!("models/detector/{rel}")).unwrap();
    }
    assert_eq!(b.objects(), expected, "registered, foreign and outside objects keep their ETags; no lock left");
    b.assert_valid();
    expected.remove("models/detector/data/checkpoints/sub/y.pt").unwrap();
    // A second run finds nothing.
    let again = gc(&b.model(), &b.options()).unwrap();
    assert!(again.removed.is_empty() && again.skipped.is_empty(), "{again:?}");
    assert_eq!(b.objects(), expected);
}

#[test]
fn s3_a_dry_run_changes_nothing_and_reports_what_gc_then_removes() {
    let Some(b) = Bucket::new("gc_s3_dry_run") else { return };
    // A stale lock too: a lease that expired long ago.
    b.s3.put("models/detector/.pmf.lock", STALE_LOCK);
    let before = b.objects();
    let dry = gc(&b.model(), &b.options().dry_run(true)).unwrap();
    assert_eq!(b.objects(), before, "a dry run changed the bucket");
    let mut expected = orphans_expected();
    expected.push((LOCK_FILE.to_owned(), GcKind::StaleLock, STALE_LOCK.len() as u64));
    expected.sort();
    assert_eq!(removed_objects(&dry, &b.model()), expected);
    let real = gc(&b.model(), &b.options()).unwrap();
    assert_eq!(removed_objects(&real, &b.model()), removed_objects(&dry, &b.model()));
    assert!(!b.objects().contains_key("models/detector/.pmf.lock"), "the stale lock is gone");
    b.assert_valid();
}

#[test]
fn s3_a_live_lock_is_a_skip_and_a_marker_is_kept() {
    let Some(b) = Bucket::new("gc_s3_locks") else { return };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let live = format!("pid 77 on another-host since unix time {now}\nexpires {}\n", now + 3600);
    b.s3.put("models/detector/.pmf.lock", live.as_bytes());
    let before = b.objects();
    for dry_run in [true, false] {
        let started = Instant::now();
        let report = gc(&b.model(), &b.options().dry_run(dry_run)).unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
        assert!(report.removed.is_empty(), "{report:?}");
        let [skip] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
        assert_eq!(skip.kind, SkipKind::Locked, "{skip:?}");
        let Some(Error::Locked { holder, .. }) = &skip.error else { panic!("{skip:?}") };
        assert_eq!((holder.pid, holder.host.as_deref()), (Some(77), Some("another-host")));
        assert_eq!(b.objects(), before, "dry run {dry_run}: a live writer's model was changed");
    }
    // The writer is done; it left the marker of an interrupted replacing save.
    b.s3.delete("models/detector/.pmf.lock");
    b.s3.put(&format!("models/detector/{SAVE_MARKER}"), b"a save replacing objects started");
    let report = gc(&b.model(), &b.options()).unwrap();
    assert_eq!(removed_objects(&report, &b.model()), orphans_expected());
    let [skip] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
    assert_eq!(skip.kind, SkipKind::InterruptedSave, "{skip:?}");
    assert!(b.objects().contains_key(&format!("models/detector/{SAVE_MARKER}")), "the marker is kept");
    // Readers still refuse the model until a save repairs it.
    let options = ValidateOptions::new().strict(true).storage(b.storage.clone());
    assert!(validate_at(&b.model(), &options).is_err());
}

#[test]
fn s3_without_readable_metadata_nothing_is_deleted() {
    let Some(s3) = s3_or_skip("gc_s3_unreadable") else { return };
    let fx = Fx::new();
    let storage = storage(&s3.server, &fx.dir.path().join("cache"));
    s3.put("m/metadata.yaml", b"model: [unclosed\n");
    s3.put("m/data/checkpoints/1.pt", b"registered? nobody can tell");
    let before = s3.list("");
    let at = Location::parse(&s3.url("m")).unwrap();
    for dry_run in [true, false] {
        let report = gc(&at, &GcOptions::new().storage(storage.clone()).dry_run(dry_run)).unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        let [skip] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
        assert_eq!(skip.kind, SkipKind::UnreadableMetadata, "{skip:?}");
        assert_eq!(s3.list(""), before);
    }
}

#[test]
fn s3_a_pmf_initialisation_belongs_to_its_model_whole() {
    let Some(s3) = s3_or_skip("gc_s3_pmf_init") else { return };
    let fx = Fx::new();
    let storage = storage(&s3.server, &fx.dir.path().join("cache"));
    let mut init = fx.trained(1);
    init.id = "init-id".into();
    init.save(fx.dir.path().join("init"), &SaveOptions::new()).unwrap();
    let mut init = Model::load(fx.dir.path().join("init"), &LoadOptions::new()).unwrap();
    init.set_checkpoint(Some(plums_model::Reference::Int(1)));
    let mut model = fx.trained(1);
    model.set_initialisation(Some(Initialisation::Model(Box::new(init))));
    let at = Location::parse(&s3.url("m")).unwrap();
    model.save_at(&at, &SaveOptions::new().storage(storage.clone())).unwrap();
    s3.put("m/data/initialisation/extra.bin", b"inside the initialisation model's tree");
    s3.put("m/data/checkpoints/orphan.pt", b"orphan");
    let before: Vec<String> = s3.list("").into_iter().map(|(k, _, _)| k).collect();
    let report = gc(&at, &GcOptions::new().storage(storage.clone())).unwrap();
    assert_eq!(removed_objects(&report, &at), [("data/checkpoints/orphan.pt".to_owned(), GcKind::OrphanObject, 6)]);
    let after: Vec<String> = s3.list("").into_iter().map(|(k, _, _)| k).collect();
    let expected: Vec<String> = before.into_iter().filter(|k| k != "m/data/checkpoints/orphan.pt").collect();
    assert_eq!(after, expected);
}

// ---------------------------------------------------------------------------------------------
// Defects fixed: what gc must never remove
// ---------------------------------------------------------------------------------------------

/// Rewrite the model's `metadata.yaml` (`root`) replacing `from` by `to` (which must be there).
fn edit_metadata(root: &Path, from: &str, to: &str) {
    let path = root.join("metadata.yaml");
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn a_journal_never_removes_a_checkpoint_registered_with_a_dot_path() {
    let fx = Fx::new();
    fx.trained(2).save(fx.root(), &SaveOptions::new().durable(false)).unwrap();
    // The validator accepts `./data/checkpoints/2.h5` for the file data/checkpoints/2.h5.
    edit_metadata(&fx.root(), "path: data/checkpoints/2.h5", "path: ./data/checkpoints/2.h5");
    validate(fx.root(), &ValidateOptions::new().strict(true)).unwrap();
    let journal = fx.root().join(format!("data/checkpoints/.pmf-append-{SUFFIX_A}"));
    // A journal naming the registered file and an unregistered one.
    fs::write(fx.root().join("data/checkpoints/9.h5"), b"complete, never registered").unwrap();
    fs::write(&journal, b"2.h5\x009.h5\x00").unwrap();
    let registered = fs::read(fx.root().join("data/checkpoints/2.h5")).unwrap();
    let dry = gc(&Location::from(fx.parent()), &no_wait().dry_run(true)).unwrap();
    let expected = [
        (format!("model/data/checkpoints/.pmf-append-{SUFFIX_A}"), GcKind::Journal),
        ("model/data/checkpoints/9.h5".to_owned(), GcKind::JournalFile),
    ];
    assert_eq!(removed(&dry, &fx.parent()), expected);
    let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
    assert_eq!(removed(&report, &fx.parent()), expected);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(fs::read(fx.root().join("data/checkpoints/2.h5")).unwrap(), registered, "the registered file is kept");
    assert!(!journal.exists() && !fx.root().join("data/checkpoints/9.h5").exists());
    validate(fx.root(), &ValidateOptions::new().strict(true)).unwrap();
}

/// Set the modification time of `path` to `ago` in the past.
fn age(path: &Path, ago: Duration) {
    let f = fs::File::open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - ago).unwrap();
}

#[test]
fn a_young_staging_folder_without_a_lock_file_is_kept_next_to_a_gone_model() {
    let fx = Fx::new();
    // The model folder is gone; a save may have just created this staging folder, before it
    // linked the lock file into it.
    let young = fx.sibling("save", SUFFIX_A);
    fs::create_dir_all(young.join("data")).unwrap();
    for dry_run in [true, false] {
        let report = gc(&Location::from(fx.parent()), &no_wait().dry_run(dry_run)).unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        let [skip] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
        assert_eq!((skip.kind, &skip.location), (SkipKind::Recent, &Location::from(young.clone())), "{skip:?}");
        assert!(young.join("data").is_dir(), "dry run {dry_run}: a young staging folder was removed");
    }
    // Untouched for two hours: no save is building it.
    age(&young, Duration::from_secs(2 * 3600));
    let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
    assert_eq!(removed(&report, &fx.parent()), [(format!(".model.pmf-save-{SUFFIX_A}"), GcKind::StagingFolder)]);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert!(!young.exists());
}

#[test]
fn a_staging_folder_whose_lock_file_is_replaced_is_never_removed_unlocked() {
    // Another process keeps replacing the lock file of a staging folder next to a gone model
    // (renames: the folder is always there). Whenever gc's lock is not on the file the name
    // leads to, the folder must be kept (a `changed` skip), never removed.
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let fx = Fx::new();
    let tree = fx.sibling("save", SUFFIX_A);
    let scratch = fx.dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let started = Instant::now();
    let mut kept = 0;
    let mut trials = 0;
    while kept == 0 && started.elapsed() < Duration::from_secs(60) {
        trials += 1;
        fs::create_dir_all(tree.join("data")).unwrap();
        fs::write(tree.join(LOCK_FILE), b"").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let (stop, tree, scratch) = (stop.clone(), tree.clone(), scratch.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let tmp = scratch.join(format!("lock-{i}"));
                    fs::write(&tmp, b"").unwrap();
                    if fs::rename(&tmp, tree.join(LOCK_FILE)).is_err() {
                        let _ = fs::remove_file(&tmp);
                        break;
                    }
                }
            })
        };
        let report = gc(&Location::from(fx.parent()), &no_wait()).unwrap();
        stop.store(true, Ordering::Relaxed);
        racer.join().unwrap();
        let removed_it = !report.removed.is_empty();
        match report.skipped.as_slice() {
            [] => assert!(removed_it, "trial {trial}: {report:?}", trial = trials),
            [skip] if skip.kind == SkipKind::Changed => {
                assert!(!removed_it, "{report:?}");
                assert!(tree.join("data").is_dir(), "trial {trials}: reported kept, but removed");
                kept += 1;
            }
            // The racer linked a lock file in while the folder was being removed.
            [skip] if skip.kind == SkipKind::NotRemoved => {}
            other => panic!("trial {trials}: {other:?}"),
        }
        let _ = fs::remove_dir_all(&tree);
    }
    assert!(kept > 0, "in {trials} trials gc never found the lock file replaced: it removed the folder every time");
}

#[test]
fn s3_a_model_whose_paths_are_not_its_keys_loses_nothing() {
    let Some(b) = Bucket::new("gc_s3_invalid_paths") else { return };
    let md_key = "models/detector/metadata.yaml";
    let text = String::from_utf8(b.s3.get(md_key).unwrap()).unwrap();
    // The reference accepts a checkpoint by its file name, and an initialisation file too:
    // the objects stay at data/checkpoints/1.h5 and data/initialisation/imagenet.bin.
    assert!(text.contains("path: data/checkpoints/1.h5"), "{text}");
    let init_path = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("path: data/initialisation/"))
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    let edited = text.replacen("path: data/checkpoints/1.h5", "path: checkpoints/1.h5", 1).replacen(
        &format!("path: data/initialisation/{init_path}"),
        &format!("path: {init_path}"),
        1,
    );
    b.s3.put(md_key, edited.as_bytes());
    let before = b.objects();
    for key in ["data/checkpoints/1.h5".to_owned(), format!("data/initialisation/{init_path}")] {
        assert!(before.contains_key(&format!("models/detector/{key}")), "{key}");
    }
    for dry_run in [true, false] {
        let report = gc(&b.model(), &b.options().dry_run(dry_run)).unwrap();
        assert!(report.removed.is_empty(), "dry run {dry_run}: {:?}", report.removed);
        let [skip] = report.skipped.as_slice() else { panic!("{:?}", report.skipped) };
        assert_eq!((skip.kind, &skip.location), (SkipKind::Invalid, &b.model()), "{skip:?}");
        assert!(skip.reason.contains("not valid"), "{}", skip.reason);
        assert_eq!(b.objects(), before, "dry run {dry_run}: an invalid model's objects were deleted");
    }
}

#[test]
fn s3_files_under_data_initialisation_stay_when_the_initialisation_is_null() {
    let Some(s3) = s3_or_skip("gc_s3_null_init") else { return };
    let fx = Fx::new();
    let storage = storage(&s3.server, &fx.dir.path().join("cache"));
    let at = Location::parse(&s3.url("m")).unwrap();
    fx.trained(1).save_at(&at, &SaveOptions::new().storage(storage.clone())).unwrap();
    // No offence: a null initialisation with a file under data/initialisation/.
    s3.put("m/data/initialisation/w.bin", b"the user's weights");
    s3.put("m/data/checkpoints/orphan.pt", b"orphan");
    validate_at(&at, &ValidateOptions::new().strict(true).storage(storage.clone())).unwrap();
    let report = gc(&at, &GcOptions::new().storage(storage.clone())).unwrap();
    assert_eq!(removed_objects(&report, &at), [("data/checkpoints/orphan.pt".to_owned(), GcKind::OrphanObject, 6)]);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(s3.get("m/data/initialisation/w.bin").as_deref(), Some(&b"the user's weights"[..]));
    assert!(s3.get("m/data/checkpoints/orphan.pt").is_none());
}
