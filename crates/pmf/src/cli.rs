//! The command line: every command, option and help text of `pmf`, as clap derive types.
//!
//! Only parsing lives here; each command runs in its own module (`validate_cmd`, `show`,
//! `edit`). Every command carries an example in its help (`after_help`).

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

const ROOT_HELP: &str = "\
Exit codes:
  0  success (every model valid, the edit was saved)
  1  a model is invalid, or an edit was refused (it would make the model invalid, or the
     training state does not allow it)
     (pmf diff: the two models differ; pmf lineage: a missing parent, duplicate id or cycle)
  2  the command could not run: bad command line, missing or unreadable path, I/O error,
     an object store that failed or refused

A model LOCATION is a local folder, file:///absolute/path, or s3://bucket/prefix (every
command reads and writes both; gs:// and az:// untested). Stores are configured by the AWS_*
variables and --storage-option KEY=VALUE, which wins (see docs/CLI.md).

Examples:
  pmf validate examples/detector
  pmf show examples/detector
  pmf ls models/ --where status=running
  pmf lineage models/
  pmf diff models/a models/b
  pmf new my-model --producer trainer --version 1.0.0 --config config.yaml --id run-42
  pmf training start my-model
  pmf checkpoint add my-model weights-1.pt --epoch 1
  pmf training end my-model
  pmf validate s3://models/detector --storage-option endpoint=http://127.0.0.1:8333
  pmf cp examples/detector s3://models/detector
  pmf cache info
  pmf gc models/ --dry-run

Colours are used on a terminal only; NO_COLOR=1 or --color never turns them off.";

/// Check, inspect and write Plums Model Format (PMF) models.
#[derive(Debug, Parser)]
#[command(name = "pmf", version, about, after_help = ROOT_HELP, subcommand_required = true, arg_required_else_help = true)]
pub struct Cli {
    /// When to use colours: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, global = true, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN", hide_possible_values = true)]
    pub color: ColorWhen,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// When to write colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that models are valid PMF models (checksums verified unless --quick).
    #[command(after_help = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Show what a model holds: producer, training, checkpoints, build parameters, initialisation.
    #[command(after_help = SHOW_HELP)]
    Show(ShowArgs),
    /// List every PMF model under folders or bucket prefixes: one line each, with its validity.
    #[command(after_help = LS_HELP)]
    Ls(LsArgs),
    /// Show which model was initialised from which, as a tree, for the models under LOCATIONs.
    #[command(after_help = LINEAGE_HELP)]
    Lineage(LineageArgs),
    /// Show what differs between two models (or two locations of one model).
    #[command(after_help = DIFF_HELP)]
    Diff(DiffArgs),
    /// Create a new PMF model from a configuration file.
    #[command(after_help = NEW_HELP)]
    New(Box<NewArgs>),
    /// Add or remove checkpoints of a model.
    #[command(subcommand, after_help = CHECKPOINT_HELP)]
    Checkpoint(CheckpointCommand),
    /// Record the training of a model: start, epochs, end.
    #[command(subcommand, after_help = TRAINING_HELP)]
    Training(TrainingCommand),
    /// Copy a whole model between two locations (folders, s3:// URLs), verified, incremental.
    #[command(after_help = CP_HELP)]
    Cp(CpArgs),
    /// Remove what interrupted saves left behind (staging folders, journals, unreferenced objects).
    #[command(after_help = GC_HELP)]
    Gc(GcArgs),
    /// Report or trim the local cache of files downloaded from object storage.
    #[command(subcommand, after_help = CACHE_HELP)]
    Cache(CacheCommand),
    /// Print a shell completion script.
    #[command(after_help = COMPLETIONS_HELP)]
    Completions(CompletionsArgs),
}

const VALIDATE_HELP: &str = "\
Exit code 0 when every model is valid, 1 when any is invalid, 2 when a path cannot be
examined (missing, unreadable) or the command line is wrong (2 wins over 1).

Examples:
  pmf validate examples/detector
  pmf validate --quick models/*
  pmf validate --json --no-checkpoints run-1 run-2 | jq '.models[] | select(.valid | not)'
  pmf validate s3://models/detector --storage-option endpoint=http://127.0.0.1:8333";

/// `pmf validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Models to check: local folders or URLs (s3://bucket/prefix).
    #[arg(required = true, value_name = "LOCATION")]
    pub paths: Vec<OsString>,
    /// Do not verify MD5 checksums (much faster for large checkpoints).
    #[arg(long)]
    pub quick: bool,
    /// Do not require the registered checkpoint files (as for initialisation models).
    #[arg(long)]
    pub no_checkpoints: bool,
    /// Print one JSON document on stdout (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// How to reach an object store.
    #[command(flatten)]
    pub storage: StorageArgs,
}

const LS_HELP: &str = "\
One line per model: path, name, id, producer@version, status, epochs (start/latest/end),
checkpoints (count, size), latest checkpoint, initialisation, and validity with its offence
count (the quick check: tree and metadata; --strict verifies checksums). A folder holding
metadata.yaml is a model (its initialisation model is part of it); other folders are
searched down to --depth. Links to folders are never followed, and nothing outside LOCATION
is read. A model that cannot be read is listed as invalid with the reason.

--where KEY=VALUE keeps the models whose KEY is VALUE (`*` matches any text; several are
ANDed); --sort KEY orders them (default path). KEYs: path, name, id, producer, version,
status, valid, latest, initialisation (none, file, pmf), init_id, start_epoch, latest_epoch,
end_epoch, checkpoints, size, offences.

--html FILE writes one self-contained HTML page (no network access: inline style and
script) of the models listed: the table (sortable, filterable), each model's details and the
lineage graph; it is written atomically, and stdout gets one line instead of the table.

Exit code 0 when every model listed is valid, 1 when one is invalid or could not be read,
2 when a LOCATION cannot be listed or the command line is wrong (2 wins over 1).

Examples:
  pmf ls runs/
  pmf ls runs/ --html models.html
  pmf ls runs/ --where status=running --sort latest_epoch
  pmf ls runs/ --where valid=false --strict
  pmf ls --json s3://models/team --depth 2 | jq '.models[] | select(.valid | not) | .path'";

/// `pmf ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Where to look for models: local folders or URLs (s3://bucket/prefix).
    #[arg(required = true, value_name = "LOCATION")]
    pub paths: Vec<OsString>,
    /// Print one JSON document on stdout (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// Search N levels of folders below each LOCATION (0: LOCATION itself only; default: all).
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// Keep only the models whose KEY is VALUE (repeatable: all must hold; `*` is a wildcard).
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub filters: Vec<String>,
    /// Order the models by KEY (path, name, id, status, latest_epoch, checkpoints, size, ...);
    /// default: each LOCATION's models by path, the LOCATIONs in the order given.
    #[arg(long, value_name = "KEY")]
    pub sort: Option<String>,
    /// Verify every checksum (reads every file; on object storage, downloads them).
    #[arg(long)]
    pub strict: bool,
    /// Write one self-contained HTML page of the models to FILE (table, details, lineage graph).
    #[arg(long, value_name = "FILE")]
    pub html: Option<OsString>,
    /// How to reach an object store.
    #[command(flatten)]
    pub storage: StorageArgs,
}

const LINEAGE_HELP: &str = "\
The models under each LOCATION are found as `pmf ls` finds them (--depth as there; nothing
outside LOCATION is read), then matched by initialisation: a model initialised from a PMF
model is shown under every listed model with that id, with the checkpoint it used; a model
initialised from a weight file under that file (one node per file name). A parent that no
listed model has is shown as missing; two models with one id, and models initialised from one
another (a cycle), are marked, and every problem is listed at the end. A model shown twice
(under two parents with one id) says `(see above)` the second time.

Exit code 0 when the lineage has no problem, 1 when a parent is missing, an id is shared or
there is a cycle, 2 when a LOCATION cannot be listed or the command line is wrong (2 wins).

Examples:
  pmf lineage runs/
  pmf lineage s3://models/team --depth 2
  pmf lineage --json runs/ | jq '.problems[] | select(.kind == \"missing_parent\")'";

/// `pmf lineage`.
#[derive(Debug, Args)]
pub struct LineageArgs {
    /// Where to look for models: local folders or URLs (s3://bucket/prefix).
    #[arg(required = true, value_name = "LOCATION")]
    pub paths: Vec<OsString>,
    /// Print one JSON document on stdout: nodes, edges, problems (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// Search N levels of folders below each LOCATION (0: LOCATION itself only; default: all).
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// How to reach an object store.
    #[command(flatten)]
    pub storage: StorageArgs,
}

const DIFF_HELP: &str = "\
Compares what the two models record: name and id, producer and version, training record
(status, epochs, times, latest), checkpoints (added, removed, or changed: epoch, file, MD5),
configuration (file name, content MD5), initialisation (kind, id, name, checkpoint, weight
file and its MD5) and build parameters, each change at its key path
(model.build_parameters.layers.0.size). Contents are compared by the MD5s the metadata
records: no file is hashed (`pmf validate` verifies them). A model that is invalid but whose
metadata.yaml can be read is compared, with a warning. A and B are folders or s3:// prefixes:
a model and its copy compare equal.

Exit code 0 when the models are equal, 1 when they differ, 2 when one cannot be read
(missing, metadata.yaml unreadable or without the schema's types, a store that fails) or the
command line is wrong, as with diff(1).

Examples:
  pmf diff runs/a runs/b
  pmf diff runs/detector s3://models/detector
  pmf diff --json runs/a runs/b | jq '.changes[] | select(.section == \"checkpoints\")'";

/// `pmf diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "A")]
    pub a: OsString,
    /// The second model.
    #[arg(value_name = "B")]
    pub b: OsString,
    /// Print one JSON document on stdout, also on failure (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// How to reach an object store.
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// `--storage-option KEY=VALUE`, on every command that takes a model location.
#[derive(Debug, Clone, Default, Args)]
pub struct StorageArgs {
    /// An object-store option (repeatable): endpoint, access_key_id, secret_access_key, region,
    /// allow_http, session_token, timeout, retry_timeout, ...; wins over the AWS_* variables.
    #[arg(long = "storage-option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

const GC_HELP: &str = "\
Every model under each LOCATION is found as `pmf ls` finds it (--depth as there; links are
never followed) and collected under its writer lock, as its next save would: on disk the
staging folders next to it (.<name>.pmf-save-*, -new-*, -old-*), temporary files
(.<file>.pmf-tmp-*) and journals of interrupted in-place saves (with the unregistered
checkpoint files they name) are removed, and a model folder that a commit left missing is put
back; on object storage the objects at PMF's paths (data/checkpoints/<file>,
data/initialisation/...) that the model's metadata does not reference are deleted, and a
gone writer's lock object. Never a file or object a model registers, never a foreign one.
The marker of an interrupted save that replaced objects (.pmf-save-in-progress) is kept: only
a save of the model repairs it. --dry-run reports and changes nothing.

Exit code 0 when everything found was collected, 1 when something was skipped (a model
another writer holds for --lock-timeout, an interrupted save's marker, a link, a leftover
that could not be removed: run gc again later), 2 when a LOCATION cannot be listed, a
model's folder or store failed, or the command line is wrong (2 wins over 1).

Examples:
  pmf gc runs/ --dry-run
  pmf gc runs/
  pmf gc --json s3://models/team --depth 2 --lock-timeout 10";

/// `pmf gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Where to collect: local folders or URLs (s3://bucket/prefix), searched for models.
    #[arg(required = true, value_name = "LOCATION")]
    pub paths: Vec<OsString>,
    /// Print what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print one JSON document on stdout (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// Search N levels of folders below each LOCATION (0: LOCATION itself only; default: all).
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// How long to wait, in seconds, for another writer of a model before skipping it.
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = parse_seconds)]
    pub lock_timeout: f64,
    /// How to reach an object store.
    #[command(flatten)]
    pub storage: StorageArgs,
}

const CP_HELP: &str = "\
SRC is loaded with every checksum verified (a remote model's files are downloaded into the
local cache, verified while they stream), then saved to DEST with the guarantees of a save:
DEST holds its old content or the new model, never a mixture. Files DEST already holds with
the same content are not sent again. DEST must be empty, missing, or the same model (same
id, valid); --force saves over a folder or prefix that is not a PMF model, or over an invalid
model with the same id (foreign files and objects are kept). One set of --storage-option
reaches both locations.

Examples:
  pmf cp runs/detector s3://models/detector
  pmf cp s3://models/detector ./detector
  pmf cp s3://models/detector s3://archive/detector --storage-option endpoint=http://127.0.0.1:8333
  pmf cp --json runs/a runs/b";

/// `pmf cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// The model to copy: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "SRC")]
    pub src: OsString,
    /// Where to copy it: a local folder or a URL.
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// Save over a destination that is not a PMF model, or over an invalid model with the same id.
    #[arg(long)]
    pub force: bool,
    /// Output, locking and storage.
    #[command(flatten)]
    pub edit: EditOptions,
}

const SHOW_HELP: &str = "\
The model is validated first (without checksums); an invalid model prints its offences and
exits 1. Times are shown in UTC.

Examples:
  pmf show examples/detector
  pmf show --json examples/detector | jq '.model.checkpoints[] | .reference'
  pmf show s3://models/detector";

/// `pmf show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "LOCATION")]
    pub path: OsString,
    /// Print one JSON document on stdout (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// How to reach an object store.
    #[command(flatten)]
    pub storage: StorageArgs,
}

const NEW_HELP: &str = "\
Build parameters (--param KEY=VALUE): VALUE is read as YAML with PyYAML's rules, so
lr=0.1 is a float, epochs=10 an int, pretrained=yes a boolean, name=resnet a string,
sizes=[1, 2] a list, and `key=` is null; quote to force a string: --param \"name='yes'\".
A dotted KEY builds nested mappings: backbone.depth=50 gives {backbone: {depth: 50}}.
--params FILE reads a YAML mapping first; --param then adds or replaces keys.

Examples:
  pmf new my-model --producer trainer --version 1.0.0 --config config.yaml --id run-42
  pmf new my-model --producer trainer --version 2.1 --config config.py --name detector \\
      --id run-43 --param lr=0.01 --param backbone.depth=50 \\
      --init-model pretrained/ --init-checkpoint 12
  pmf new my-model --producer trainer --version 2.1 --config config.py --id run-44 \\
      --init-file imagenet.pt --init-name imagenet";

/// `pmf new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The model to create: a missing or empty folder, or a URL (s3://bucket/prefix).
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// The producer name: a letter, then at least one letter, digit or `_`.
    #[arg(long, value_name = "NAME")]
    pub producer: String,
    /// The producer version (in the --version-format).
    #[arg(long = "version", alias = "producer-version", value_name = "VALUE")]
    pub producer_version: String,
    /// The producer version format.
    #[arg(long, value_name = "FORMAT", default_value = "py_pa")]
    pub version_format: String,
    /// The configuration file (copied to the model root under its own name).
    #[arg(long, value_name = "FILE")]
    pub config: OsString,
    /// The model name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The model's unique id.
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// A build parameter (repeatable); VALUE is YAML, a dotted KEY nests.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A YAML file holding a mapping of build parameters (read before --param).
    #[arg(long = "params", value_name = "FILE")]
    pub params_file: Option<OsString>,
    /// Initialise from a weight file (needs --init-name).
    #[arg(long, value_name = "FILE", requires = "init_name", conflicts_with = "init_model")]
    pub init_file: Option<OsString>,
    /// The name that identifies the initialisation weight file.
    #[arg(long, value_name = "NAME", requires = "init_file")]
    pub init_name: Option<String>,
    /// Initialise from a PMF model (needs --init-checkpoint); it is copied without its checkpoint files.
    #[arg(long, value_name = "DIR", requires = "init_checkpoint")]
    pub init_model: Option<OsString>,
    /// The reference of the initialisation model's checkpoint that was used.
    #[arg(long, value_name = "REF", requires = "init_model")]
    pub init_checkpoint: Option<String>,
    /// Read --init-checkpoint as a string reference even if it is all digits.
    #[arg(long, requires = "init_checkpoint")]
    pub init_checkpoint_str: bool,
    /// Output and locking.
    #[command(flatten)]
    pub edit: EditOptions,
}

/// Options of every writing command (`new`, `checkpoint ...`, `training ...`).
#[derive(Debug, Clone, Args)]
pub struct EditOptions {
    /// Print one JSON document on stdout, also on failure (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// How long to wait, in seconds, while another writer holds the model's lock.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = parse_seconds)]
    pub lock_timeout: f64,
    /// How to reach an object store.
    #[command(flatten)]
    pub storage: StorageArgs,
}

impl EditOptions {
    /// The lock timeout as a duration.
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::try_from_secs_f64(self.lock_timeout).unwrap_or(std::time::Duration::MAX)
    }
}

/// A number of seconds: finite and not negative.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!("expected a number of seconds >= 0, got {text:?}")),
    }
}

const CHECKPOINT_HELP: &str = "\
Examples:
  pmf checkpoint add my-model out/epoch-3.pt --epoch 3
  pmf checkpoint rm my-model 3
  pmf checkpoint prune my-model --keep-last 3 --keep-every 10 --dry-run";

const TRAINING_HELP: &str = "\
A producer's flow: pmf new, then training start, checkpoint add (registers each epoch), and
training end (or fail).

Examples:
  pmf training start my-model
  pmf training epoch my-model
  pmf training end my-model";

/// `pmf checkpoint ...`.
#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Register a checkpoint file (copied to data/checkpoints/).
    #[command(after_help = CHECKPOINT_ADD_HELP)]
    Add(CheckpointAddArgs),
    /// Unregister a checkpoint and delete its file from data/checkpoints/.
    #[command(after_help = CHECKPOINT_RM_HELP)]
    Rm(CheckpointRmArgs),
    /// Remove the checkpoints a retention policy does not keep (the latest is always kept).
    #[command(after_help = CHECKPOINT_PRUNE_HELP)]
    Prune(CheckpointPruneArgs),
}

const CHECKPOINT_ADD_HELP: &str = "\
REF defaults to the epoch; an all-digit REF is an int reference (12), anything else a string
reference (best); --ref-str makes an all-digit REF a string ('12'). The new checkpoint becomes
the latest.

Epochs: a checkpoint epoch may not exceed the training's latest epoch. When the training is
running and N is after the latest epoch, epoch N is registered first (as `pmf training epoch
DEST N` would). A finished or failed training refuses checkpoints after its end epoch.

Examples:
  pmf checkpoint add my-model out/epoch-3.pt --epoch 3
  pmf checkpoint add my-model out/best.pt --epoch 3 --ref best";

/// `pmf checkpoint add`.
#[derive(Debug, Args)]
pub struct CheckpointAddArgs {
    /// The model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// The checkpoint file.
    #[arg(value_name = "FILE")]
    pub file: OsString,
    /// The epoch the checkpoint was taken at.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub epoch: i64,
    /// The checkpoint reference (default: the epoch).
    #[arg(long = "ref", value_name = "REF")]
    pub reference: Option<String>,
    /// Make an all-digit reference a string reference.
    #[arg(long)]
    pub ref_str: bool,
    /// Output and locking.
    #[command(flatten)]
    pub edit: EditOptions,
}

const CHECKPOINT_RM_HELP: &str = "\
REF is an int reference when all digits, unless --ref-str. The checkpoint's file is deleted
from data/checkpoints/ after the model is saved, unless --keep-file or another checkpoint
uses the same file.

Examples:
  pmf checkpoint rm my-model 3
  pmf checkpoint rm my-model best --keep-file";

/// `pmf checkpoint rm`.
#[derive(Debug, Args)]
pub struct CheckpointRmArgs {
    /// The model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// The checkpoint reference.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Read an all-digit REF as a string reference.
    #[arg(long)]
    pub ref_str: bool,
    /// Keep the checkpoint file in data/checkpoints/ (unregistered).
    #[arg(long)]
    pub keep_file: bool,
    /// Output and locking.
    #[command(flatten)]
    pub edit: EditOptions,
}

const CHECKPOINT_PRUNE_HELP: &str = "\
Kept: the latest checkpoint (always), every --keep REF, the --keep-last N checkpoints with the
highest epochs (among equal epochs, the later added), and every checkpoint whose epoch is a
multiple of --keep-every K. Every other checkpoint is unregistered and its file deleted from
data/checkpoints/ by the save (unless another kept checkpoint uses the same file). Give at
least one of --keep-last, --keep-every or --keep. An all-digit REF is an int reference unless
--ref-str; a REF the model does not have is refused (exit 2) and nothing is changed.
--dry-run prints what would be removed and changes nothing.

Examples:
  pmf checkpoint prune my-model --keep-last 3
  pmf checkpoint prune my-model --keep-last 3 --keep-every 10 --keep best --dry-run
  pmf checkpoint prune s3://models/detector --keep-last 5 --json";

/// `pmf checkpoint prune`.
#[derive(Debug, Args)]
pub struct CheckpointPruneArgs {
    /// The model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// Keep the N checkpoints with the highest epochs (N >= 1).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub keep_last: Option<usize>,
    /// Keep every checkpoint whose epoch is a multiple of K (K >= 1).
    #[arg(long, value_name = "K", allow_negative_numbers = true)]
    pub keep_every: Option<i64>,
    /// Keep the checkpoint REF (repeatable); it must be registered.
    #[arg(long = "keep", value_name = "REF")]
    pub keep: Vec<String>,
    /// Read every all-digit --keep REF as a string reference.
    #[arg(long)]
    pub ref_str: bool,
    /// Print what would be removed; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Output and locking.
    #[command(flatten)]
    pub edit: EditOptions,
}

/// `pmf training ...`.
#[derive(Debug, Subcommand)]
pub enum TrainingCommand {
    /// Start the training (status running) at an epoch, now.
    #[command(
        after_help = "Allowed when the training is pending (or running: a restart).\n\nExamples:\n  pmf training start my-model\n  pmf training start my-model --epoch 10"
    )]
    Start(TrainingStartArgs),
    /// Register the latest epoch of a running training, now.
    #[command(
        after_help = "Without N, the latest epoch becomes latest + 1; with N, it becomes max(latest, N).\n\nExamples:\n  pmf training epoch my-model\n  pmf training epoch my-model 7"
    )]
    Epoch(TrainingEpochArgs),
    /// End a running training normally (status finished).
    #[command(after_help = "The end epoch and time are the latest ones.\n\nExample:\n  pmf training end my-model")]
    End(DestArgs),
    /// End a training abnormally (status failed).
    #[command(
        after_help = "Allowed when the training is pending, running or failed.\n\nExample:\n  pmf training fail my-model"
    )]
    Fail(DestArgs),
}

/// A command that only needs the model folder.
#[derive(Debug, Args)]
pub struct DestArgs {
    /// The model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// Output and locking.
    #[command(flatten)]
    pub edit: EditOptions,
}

/// `pmf training start`.
#[derive(Debug, Args)]
pub struct TrainingStartArgs {
    /// The model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// The starting epoch.
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true)]
    pub epoch: i64,
    /// Output and locking.
    #[command(flatten)]
    pub edit: EditOptions,
}

/// `pmf training epoch`.
#[derive(Debug, Args)]
pub struct TrainingEpochArgs {
    /// The model: a local folder or a URL (s3://bucket/prefix).
    #[arg(value_name = "DEST")]
    pub dest: OsString,
    /// The epoch (default: latest + 1).
    #[arg(value_name = "N", allow_negative_numbers = true)]
    pub epoch: Option<i64>,
    /// Output and locking.
    #[command(flatten)]
    pub edit: EditOptions,
}

const CACHE_HELP: &str = "\
Files of remote models (configuration, checkpoints, initialisation) are downloaded into a local
cache, verified against their MD5, and reused while the object is unchanged. The cache is
PMF_CACHE_DIR, else $XDG_CACHE_HOME/plums-model, else ~/.cache/plums-model.

Examples:
  pmf cache info
  pmf cache prune --max-size 20G --older-than 30d";

/// `pmf cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show where the cache is and how much it holds.
    #[command(after_help = "Examples:\n  pmf cache info\n  pmf cache info --json | jq .bytes")]
    Info(CacheInfoArgs),
    /// Remove cached files: those not used for a while, then the least recently used ones.
    #[command(
        after_help = "Without an option only the leftovers of killed downloads (older than a day) are removed.\nSIZE: bytes, or a number with K, M, G, T (powers of 1024; KiB, MiB, ... too) or KB, MB,\nGB, TB (powers of 1000). DURATION: a number with s, m, h, d or w, or several (1d12h).\n\nExamples:\n  pmf cache prune --max-size 20G\n  pmf cache prune --older-than 30d\n  pmf cache prune --max-size 0"
    )]
    Prune(CachePruneArgs),
}

/// `pmf cache info`.
#[derive(Debug, Args)]
pub struct CacheInfoArgs {
    /// Print one JSON document on stdout (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

/// `pmf cache prune`.
#[derive(Debug, Args)]
pub struct CachePruneArgs {
    /// Remove least recently used files until the cache holds at most SIZE.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_size: Option<u64>,
    /// Remove the files not used for DURATION.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Print one JSON document on stdout (see docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

/// A size: bytes, or a number with a unit (K/KiB = 1024, KB = 1000, ... up to T).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        _ => return Err(format!("expected a size such as 500M, 20G or 1000000, got {text:?}")),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n * factor < 1.8e19 => Ok((n * factor).round() as u64),
        _ => Err(format!("expected a size such as 500M, 20G or 1000000, got {text:?}")),
    }
}

/// A duration: one or more `<number><unit>` with unit s, m, h, d or w (`30d`, `1d12h`).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("expected a duration such as 30d, 12h, 1d12h or 90s, got {text:?}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..end].parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let unit_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            _ => return Err(bad()),
        };
        rest = rest[unit_end..].trim_start();
        total += number * seconds;
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| bad())
}

const COMPLETIONS_HELP: &str = "\
Examples:
  pmf completions bash > ~/.local/share/bash-completion/completions/pmf
  pmf completions zsh > ~/.zfunc/_pmf
  pmf completions fish > ~/.config/fish/completions/pmf.fish";

/// `pmf completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_an_example() {
        fn walk(cmd: &clap::Command, path: &str) {
            let name = format!("{path} {}", cmd.get_name());
            let help = cmd.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains("Example"), "{name} has no example in its help");
            for sub in cmd.get_subcommands() {
                walk(sub, &name);
            }
        }
        walk(&Cli::command(), "");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2K"), Ok(2048));
        assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("-1").is_err() && parse_size("5X").is_err() && parse_size("").is_err());
        assert_eq!(parse_duration("90s").map(|d| d.as_secs()), Ok(90));
        assert_eq!(parse_duration("1d12h").map(|d| d.as_secs()), Ok(129_600));
        assert_eq!(parse_duration("2w").map(|d| d.as_secs()), Ok(1_209_600));
        assert!(parse_duration("3").is_err() && parse_duration("1y").is_err() && parse_duration("").is_err());
    }
}
