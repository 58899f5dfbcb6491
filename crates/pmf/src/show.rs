//! `pmf show LOCATION`: what a model holds, for people or as one JSON document (shape in
//! docs/CLI.md). The model (a local folder or an object-store prefix) is validated without
//! checksums (as `Model::load_at` does with `LoadOptions::new().strict(false)`) and shown as its
//! metadata records it; the initialisation chain is shown recursively. File sizes are read from
//! a local folder only (null for a remote model: nothing is downloaded).

use std::path::Path;

use plums_model::{
    validate_model_at, InitialisationMetadata, Md5, Reference, Timestamp, ValidateOptions, ValidatedModel,
    FORMAT_VERSION,
};
use serde::Serialize;

use crate::cli::ShowArgs;
use crate::failure::{Failure, JsonFailure, EXIT_INVALID, EXIT_OK};
use crate::output::outln;
use crate::output::{
    human_bytes, human_duration, human_time, offence_line, paint, rfc3339, show_path, JsonOffence, JsonRef, JsonTime,
    JsonYaml, BAD, BOLD, DIM, GOOD, KEY,
};
use crate::{location, progress};

/// `pmf show --json` output.
#[derive(Serialize)]
struct JsonShow<'a> {
    path: String,
    valid: bool,
    offences: Vec<JsonOffence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<JsonFailure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<JsonModel<'a>>,
}

#[derive(Serialize)]
struct JsonModel<'a> {
    name: Option<&'a str>,
    id: &'a str,
    format_version: &'static str,
    producer: JsonProducer<'a>,
    configuration: JsonFile<'a>,
    training: JsonTraining,
    latest: Option<JsonRef<'a>>,
    checkpoints: Vec<JsonCheckpoint<'a>>,
    build_parameters: JsonYaml<'a>,
    build_parameters_yaml: String,
    initialisation: Option<JsonInitialisation<'a>>,
}

#[derive(Serialize)]
struct JsonProducer<'a> {
    name: &'a str,
    version_format: &'a str,
    version: &'a str,
}

#[derive(Serialize)]
struct JsonFile<'a> {
    path: &'a str,
    hash: String,
    size: Option<u64>,
}

#[derive(Serialize)]
struct JsonTraining {
    status: &'static str,
    start_epoch: Option<i64>,
    start_time: Option<JsonTime>,
    start_time_utc: Option<String>,
    latest_epoch: Option<i64>,
    latest_time: Option<JsonTime>,
    latest_time_utc: Option<String>,
    end_epoch: Option<i64>,
    end_time: Option<JsonTime>,
    end_time_utc: Option<String>,
}

#[derive(Serialize)]
struct JsonCheckpoint<'a> {
    reference: JsonRef<'a>,
    epoch: i64,
    path: &'a str,
    size: Option<u64>,
    hash: String,
    latest: bool,
}

#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum JsonInitialisation<'a> {
    File {
        name: Option<&'a str>,
        path: &'a str,
        hash: String,
        size: Option<u64>,
    },
    Pmf {
        name: Option<&'a str>,
        id: &'a str,
        checkpoint: JsonRef<'a>,
        path: &'a str,
        model: Option<Box<JsonModel<'a>>>,
    },
}

/// Run `pmf show`; returns the exit code.
pub fn run(args: &ShowArgs) -> u8 {
    let path = Path::new(&args.path);
    let mut out = JsonShow {
        path: location::shown(&args.path),
        valid: false,
        offences: Vec::new(),
        error: None,
        failure: None,
        model: None,
    };
    let prepared =
        location::model_location(&args.path).and_then(|at| Ok((at, location::storage_options(&args.storage)?)));
    let (at, storage) = match prepared {
        Ok(p) => p,
        Err(failure) => {
            if !args.json {
                failure.report();
                return failure.code;
            }
            out.error = Some(failure.message.clone());
            out.failure = Some(failure.to_json());
            return print_json(&out).unwrap_or(failure.code);
        }
    };
    let loaded = progress::during(format!("reading {}", show_path(path)), || {
        validate_model_at(&at, &ValidateOptions::new().strict(false).checkpoints(true).storage(storage))
    });
    match loaded {
        Ok(v) => {
            if !args.json {
                for line in human_model(&v, "") {
                    outln!("{line}");
                }
                return EXIT_OK;
            }
            out.valid = true;
            out.model = Some(json_model(&v));
            print_json(&out).unwrap_or(EXIT_OK)
        }
        Err(plums_model::Error::TreeValidation(report) | plums_model::Error::MetadataValidation(report)) => {
            if !args.json {
                let n = report.offences.len();
                outln!(
                    "{} {} {}",
                    paint(BAD, "invalid"),
                    show_path(path),
                    paint(DIM, format!("({n} offence{})", if n == 1 { "" } else { "s" }))
                );
                for offence in &report.offences {
                    outln!("{}", offence_line(offence, "    "));
                }
                return EXIT_INVALID;
            }
            out.offences = report.offences.iter().map(JsonOffence::from).collect();
            print_json(&out).unwrap_or(EXIT_INVALID)
        }
        Err(e) => {
            let failure = Failure::from_library(e, path);
            if !args.json {
                failure.report();
                return failure.code;
            }
            out.error = Some(failure.message.clone());
            out.failure = Some(failure.to_json());
            print_json(&out).unwrap_or(failure.code)
        }
    }
}

/// Print the JSON document; `Some(code)` when it could not be written.
fn print_json(out: &JsonShow<'_>) -> Option<u8> {
    match crate::failure::print_json(out, EXIT_OK) {
        EXIT_OK => None,
        code => Some(code),
    }
}

fn file_size(v: &ValidatedModel, rel: &str) -> Option<u64> {
    if rel == "." {
        return None;
    }
    if location::is_remote(&v.root) {
        return v.listed_sizes.get(rel.trim_start_matches("./")).copied();
    }
    std::fs::metadata(v.root.join(rel)).ok().filter(|m| m.is_file()).map(|m| m.len())
}

fn json_model(v: &ValidatedModel) -> JsonModel<'_> {
    let meta = &v.metadata;
    let m = &meta.model;
    let r = &m.training.record;
    let latest = m.training.latest.as_ref();
    let time = |t: Option<Timestamp>| t.map(JsonTime);
    let utc = |t: Option<Timestamp>| t.and_then(rfc3339);
    JsonModel {
        name: m.name.as_deref(),
        id: &m.id,
        format_version: FORMAT_VERSION,
        producer: JsonProducer {
            name: &meta.producer.name,
            version_format: &meta.producer.version_format,
            version: &meta.producer.version,
        },
        configuration: JsonFile {
            path: &m.configuration.path,
            hash: m.configuration.hash.to_string(),
            size: file_size(v, &m.configuration.path),
        },
        training: JsonTraining {
            status: r.status.as_str(),
            start_epoch: r.start_epoch,
            start_time: time(r.start_time),
            start_time_utc: utc(r.start_time),
            latest_epoch: r.latest_epoch,
            latest_time: time(r.latest_time),
            latest_time_utc: utc(r.latest_time),
            end_epoch: r.end_epoch,
            end_time: time(r.end_time),
            end_time_utc: utc(r.end_time),
        },
        latest: latest.map(JsonRef),
        checkpoints: m
            .training
            .checkpoints
            .iter()
            .map(|(reference, entry)| JsonCheckpoint {
                reference: JsonRef(reference),
                epoch: entry.epoch,
                path: &entry.path,
                size: file_size(v, &entry.path),
                hash: entry.hash.to_string(),
                latest: latest == Some(reference),
            })
            .collect(),
        build_parameters: JsonYaml(&v.build_parameters),
        build_parameters_yaml: plums_model::to_yaml(&v.build_parameters),
        initialisation: m.initialisation.as_ref().map(|init| match init {
            InitialisationMetadata::File { name, path, hash } => JsonInitialisation::File {
                name: name.as_deref(),
                path,
                hash: hash.to_string(),
                size: file_size(v, path),
            },
            InitialisationMetadata::Pmf { name, id, checkpoint, path } => JsonInitialisation::Pmf {
                name: name.as_deref(),
                id,
                checkpoint: JsonRef(checkpoint),
                path,
                model: v.initialisation.as_deref().map(|nested| Box::new(json_model(nested))),
            },
        }),
    }
}

fn short(hash: &Md5) -> String {
    hash.prefix(8)
}

fn label(indent: &str, name: &str) -> String {
    format!("{indent}  {}", paint(KEY, format!("{name:<16}")))
}

/// The human description of a model, one line per item, each line starting with `indent`.
fn human_model(v: &ValidatedModel, indent: &str) -> Vec<String> {
    let meta = &v.metadata;
    let m = &meta.model;
    let mut out = Vec::new();
    let name = m.name.as_deref().map(|n| paint(BOLD, n)).unwrap_or_else(|| paint(DIM, "(unnamed)"));
    out.push(format!("{indent}{name}  {} {}", paint(DIM, "id"), m.id));
    out.push(format!(
        "{} {} {} {}",
        label(indent, "producer"),
        meta.producer.name,
        meta.producer.version,
        paint(DIM, format!("({}), PMF {FORMAT_VERSION}", meta.producer.version_format))
    ));
    let size = file_size(v, &m.configuration.path).map(human_bytes).unwrap_or_default();
    out.push(format!(
        "{} {}  {size}  {}",
        label(indent, "configuration"),
        m.configuration.path,
        paint(DIM, format!("md5 {}", short(&m.configuration.hash)))
    ));
    human_training(v, indent, &mut out);
    human_checkpoints(v, indent, &mut out);
    let params = plums_model::to_yaml(&v.build_parameters);
    let params = params.trim_end();
    if params.lines().count() <= 1 {
        out.push(format!("{} {params}", label(indent, "build parameters")));
    } else {
        out.push(label(indent, "build parameters"));
        out.extend(params.lines().map(|l| format!("{indent}      {l}")));
    }
    match &m.initialisation {
        None => out.push(format!("{} {}", label(indent, "initialisation"), paint(DIM, "none (trained from scratch)"))),
        Some(InitialisationMetadata::File { name, path, hash }) => {
            let size = file_size(v, path).map(human_bytes).unwrap_or_default();
            out.push(format!(
                "{} weight file {} {path}  {size}  {}",
                label(indent, "initialisation"),
                paint(BOLD, name.as_deref().unwrap_or("(unnamed)")),
                paint(DIM, format!("md5 {}", short(hash)))
            ));
        }
        Some(InitialisationMetadata::Pmf { name, id, checkpoint, .. }) => {
            out.push(format!(
                "{} PMF model {} {}, checkpoint {}",
                label(indent, "initialisation"),
                paint(BOLD, name.as_deref().unwrap_or("(unnamed)")),
                paint(DIM, format!("(id {id})")),
                checkpoint.quoted()
            ));
            if let Some(nested) = v.initialisation.as_deref() {
                out.extend(human_model(nested, &format!("{indent}      ")));
            }
        }
    }
    out
}

fn human_training(v: &ValidatedModel, indent: &str, out: &mut Vec<String>) {
    let r = &v.metadata.model.training.record;
    let status = r.status.as_str();
    let painted = match status {
        "finished" => paint(GOOD, status),
        "failed" => paint(BAD, status),
        _ => paint(BOLD, status),
    };
    let epochs = match (r.start_epoch, r.end_epoch.or(r.latest_epoch)) {
        (Some(s), Some(e)) => format!("  epochs {s} → {e}"),
        _ => String::new(),
    };
    let took = match (r.start_time, r.end_time.or(r.latest_time)) {
        (Some(s), Some(e)) if r.end_time.is_some() => {
            format!("  {}", paint(DIM, format!("(took {})", human_duration(e.as_f64() - s.as_f64()))))
        }
        (Some(s), Some(e)) if e.as_f64() > s.as_f64() => {
            format!("  {}", paint(DIM, format!("({} so far)", human_duration(e.as_f64() - s.as_f64()))))
        }
        _ => String::new(),
    };
    out.push(format!("{} {painted}{epochs}{took}", label(indent, "training")));
    for (what, epoch, time) in [
        ("started", r.start_epoch, r.start_time),
        ("latest", r.latest_epoch, r.latest_time),
        ("ended", r.end_epoch, r.end_time),
    ] {
        if epoch.is_none() && time.is_none() {
            continue;
        }
        let epoch = epoch.map(|e| format!("epoch {e}")).unwrap_or_else(|| "no epoch".into());
        let time = time.map(human_time).unwrap_or_else(|| "no time".into());
        out.push(format!("{indent}    {} {epoch:<10} {time}", paint(DIM, format!("{what:<14}"))));
    }
}

fn human_checkpoints(v: &ValidatedModel, indent: &str, out: &mut Vec<String>) {
    let t = &v.metadata.model.training;
    let n = t.checkpoints.len();
    if n == 0 {
        out.push(format!("{} {}", label(indent, "checkpoints"), paint(DIM, "none")));
        return;
    }
    let latest = t.latest.as_ref().map(|r| format!(", latest {}", r.quoted())).unwrap_or_default();
    out.push(format!("{} {n}{latest}", label(indent, "checkpoints")));
    let header = ["REF", "EPOCH", "SIZE", "FILE", "MD5"].map(str::to_owned);
    let rows: Vec<(bool, [String; 5])> = t
        .checkpoints
        .iter()
        .map(|(reference, entry)| {
            let size = file_size(v, &entry.path).map(human_bytes).unwrap_or_else(|| "-".into());
            let file = if entry.path == "." { "(not stored)".to_owned() } else { entry.path.clone() };
            (
                t.latest.as_ref() == Some(reference),
                [ref_text(reference), entry.epoch.to_string(), size, file, short(&entry.hash)],
            )
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for (_, row) in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 5]| -> String {
        let padded: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    out.push(format!("{indent}      {}", paint(DIM, line(&header))));
    for (is_latest, row) in &rows {
        let marker = if *is_latest { paint(GOOD, "*") } else { " ".to_owned() };
        out.push(format!("{indent}    {marker} {}", line(row)));
    }
}

fn ref_text(reference: &Reference) -> String {
    reference.quoted()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plums_model::Value;

    #[test]
    fn yaml_null_build_parameters_are_json_null() {
        assert_eq!(serde_json::to_string(&JsonYaml(&Value::Null)).ok().as_deref(), Some("null"));
    }
}
