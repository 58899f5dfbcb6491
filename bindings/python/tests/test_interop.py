"""Interoperability with the reference implementation, both ways.

- Models saved by the reference (the harness corpus, 24 cases, and hand-made models with tricky
  strings) load in plums_model with the same fields as in the reference.
- Models saved by plums_model (rebuilt from the corpus recipes, re-saved after loading, and
  hand-made) validate strictly and load in the reference with the same fields.
- The harness's 86 invalid models are refused by plums_model wherever the reference refuses them,
  and also where the reference wrongly accepts them.
"""

import json
import os

import pytest
import yaml

from helpers import basename, build_ours, describe, make_version_class, md5, unordered, write

CORPUS_CASES = [
    "basic_pending", "running_int_times", "running_float_times", "finished_api", "failed_explicit",
    "failed_int_times", "failed_interrupt", "failed_never_started", "mixed_refs", "many_checkpoints",
    "many_str_refs", "sorted_refs_order", "yaml_tricky_strings", "unicode", "file_init", "pmf_init",
    "pmf_init_chain", "nested_build_params", "md5_digits", "version_forms", "version_epoch_post_dev",
    "edge_times", "big_int_times", "shared_checkpoint_file",
]
OPTIONS = [{}, {"strict": False}, {"checkpoints": False}]


def test_corpus_has_the_expected_cases(corpus):
    assert corpus[1] == CORPUS_CASES


# ------------------------------------------------------------------------------------------------
# reference -> ours (the corpus)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("options", OPTIONS, ids=["strict", "non_strict", "no_checkpoints"])
@pytest.mark.parametrize("case", CORPUS_CASES)
def test_reference_saved_model_loads_in_ours_with_the_same_fields(harness, corpus, ours, case, options):
    folder = str(corpus[0] / case / "model")
    expected = harness.describe(folder, **options)
    assert expected["ok"], expected
    ours.validate(folder, strict=options.get("strict", True), checkpoints=options.get("checkpoints", True))
    loaded = ours.Model.load(folder, **options)
    assert str(loaded.path) == folder
    assert describe(harness, loaded) == expected["model"]


@pytest.mark.parametrize("case", CORPUS_CASES)
def test_validate_returns_the_metadata_the_reference_returns(corpus, ours, ref, case):
    folder = str(corpus[0] / case / "model")
    theirs = ref.validate(folder, strict=True)
    mine = ours.validate(folder, strict=True)
    assert mine == theirs  # the reference's Path objects compare equal to our strs
    assert typed(mine) == typed(theirs)  # and the types are the same too (1 is not "1")


def typed(value):
    """A value with the type of every scalar made explicit (paths as str), mappings as sorted lists
    (the reference's schema validation rebuilds mappings in its own order)."""
    if isinstance(value, dict):
        return ("dict", sorted(((typed(k), typed(v)) for k, v in value.items()), key=repr))
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if value is None or isinstance(value, (bool, int, float, str)):
        return (type(value).__name__, value)
    return ("str", str(value))  # the reference's plums.commons.path.Path


# ------------------------------------------------------------------------------------------------
# ours -> reference (the corpus recipes, and the corpus re-saved)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS_CASES)
def test_recipe_saved_by_ours_validates_and_loads_in_the_reference(harness, corpus, tmp_path, case):
    case_dir = corpus[0] / case
    with open(str(case_dir / "recipe.json")) as f:
        recipe = json.load(f)
    out = tmp_path / "ours"
    build_ours(harness, recipe, case_dir, out)
    for options in ({"strict": True}, {"strict": False}, {"strict": True, "checkpoints": False}):
        assert harness.verdict(str(out), **options)["valid"], (options, harness.verdict(str(out), **options))
    theirs = harness.describe(str(case_dir / "model"))
    mine = harness.describe(str(out))
    assert mine["ok"], mine
    assert unordered(mine["model"]) == unordered(theirs["model"])
    # latest is the last inserted reference in both
    assert mine["model"]["latest"] == theirs["model"]["latest"]


@pytest.mark.parametrize("case", CORPUS_CASES)
def test_reference_model_resaved_by_ours_loads_in_the_reference(harness, corpus, ours, tmp_path, case):
    original = str(corpus[0] / case / "model")
    out = tmp_path / "resaved"
    ours.Model.load(original).save(str(out))
    assert harness.verdict(str(out), strict=True)["valid"]
    mine = harness.describe(str(out))
    assert mine["ok"], mine
    assert unordered(mine["model"]) == unordered(harness.describe(original)["model"])
    # and in ours, the checkpoints keep the order they had (the order of the reference's file)
    assert describe(harness, ours.Model.load(str(out))) == describe(harness, ours.Model.load(original))


# ------------------------------------------------------------------------------------------------
# Hand-made models with tricky strings, both ways
# ------------------------------------------------------------------------------------------------
TRICKY = ["yes", "No", "on", "OFF", "1e10", "0x1F", "~", "null", "Null", "2020-01-01", "1:20", "012", "1_000",
          ".inf", "=", "<<", "", " lead", "modèle 日本 🙂", "a: b", "#hash", "multi\nline", "3.14", "True"]


def build_tricky(api, root, tag):
    """A model whose every string is one PyYAML would read back as something else if unquoted.

    It has int and str references (``1`` and ``"1"``), a PMF initialisation (itself initialised
    from a file) and a file initialisation below that.
    """
    inputs = root / "inputs_{}".format(tag)
    config = write(inputs / "réglages 1e10.cfg", "# tricky\n")
    base_config = write(inputs / "base" / "yes.cfg", "# base\n")
    init_file = write(inputs / "base" / "0x1F weights.h5", b"pretrained\n")
    base = api.Model("init_producer", "py_pa", "2!1.0.post1", "null", "~", str(base_config),
                     {"role": "base", "yes": "no"})
    base.training = api.Training(start_time=1, start_epoch=0, latest_time=2, latest_epoch=2, end_time=2,
                                 end_epoch=2, status="finished")
    base.add_checkpoint(api.Checkpoint("1", str(write(inputs / "base" / "s1.h5", b"s1")), 1),
                        api.Checkpoint(1, str(write(inputs / "base" / "i1.h5", b"i1")), 2))
    base.register_initialisation(str(init_file), name="0x1F")
    base_dir = root / "base_{}".format(tag)
    base.save(str(base_dir))

    model = api.Model("x_1", "py_pa", "1.0.0-RC1", "yes", "2020-01-01", str(config), {
        "strings": list(TRICKY), "keys": {s: s for s in TRICKY if s}, "ints": {1: "1", 2: "2"},
        "date-like": "2020-01-01", "float-like": "1e10", "bool-like": "on", "null-like": "~", "number": 1e10,
        "nested": {"list": [1, "1", None, True, "true"], "empty": {}}})
    model.training = api.Training(start_time=1552464823.25, start_epoch=0, latest_time=1552481973,
                                  latest_epoch=len(TRICKY) + 1, status="running")
    checkpoints = [api.Checkpoint(1, str(write(inputs / "int_1.h5", b"int")), 1),
                   api.Checkpoint("1", str(write(inputs / "str_1.h5", b"str")), 1)]
    for i, reference in enumerate(TRICKY):
        checkpoints.append(api.Checkpoint(reference, str(write(inputs / "t{:02d}.h5".format(i), reference)), i + 2))
    model.add_checkpoint(*checkpoints)
    model.register_initialisation(str(base_dir), checkpoint_reference="1")
    return model


def fields(model):
    """Everything a model holds, as plain values (checkpoints in collection order)."""
    init = model.initialisation
    if init is None:
        init_fields = None
    elif hasattr(init, "checkpoint_collection"):
        init_fields = {"pmf": fields(init), "checkpoint": init.checkpoint}
    else:
        init_fields = {"file": (init.name, init.hash, basename(init.path))}
    t = model.training
    return {
        "name": model.name, "id": model.id, "build_parameters": model.build_parameters,
        "producer": (model.producer.name, model.producer.version.format, str(model.producer.version),
                     basename(model.producer.configuration), md5(str(model.producer.configuration))),
        "training": (t.status, t.start_epoch, t.start_timestamp, t.latest_epoch, t.latest_timestamp, t.end_epoch,
                     t.end_timestamp),
        "checkpoints": [(r, c.name, c.epoch, c.hash) for r, c in model.checkpoint_collection.items()],
        "initialisation": init_fields,
    }


def check_same_model(written, read, folder):
    assert fields(read) == fields(written)
    # int and str references stay apart, and types are kept
    keys = list(read.checkpoint_collection.keys())
    assert 1 in keys and "1" in keys and keys.index(1) != keys.index("1")
    assert [type(k) for k in keys] == [type(k) for k in written.checkpoint_collection.keys()]
    with open(os.path.join(str(folder), "metadata.yaml"), encoding="utf-8") as f:
        metadata = yaml.safe_load(f)  # PyYAML itself reads back exactly what was meant
    assert metadata["model"]["training"]["latest"] == written.checkpoint_collection.latest == TRICKY[-1]
    assert metadata["model"]["name"] == "yes" and metadata["model"]["id"] == "2020-01-01"
    assert list(metadata["model"]["training"]["checkpoints"]) == list(written.checkpoint_collection.keys())


@pytest.mark.parametrize("writer, reader", [("ours", "ref"), ("ref", "ours")])
def test_tricky_model_round_trips(request, tmp_path, writer, reader):
    write_api = request.getfixturevalue(writer)
    read_api = request.getfixturevalue(reader)
    model = build_tricky(write_api, tmp_path, writer)
    folder = tmp_path / "model_{}".format(writer)
    model.save(str(folder))
    read_api.validate(str(folder), strict=True)
    write_api.validate(str(folder), strict=True)
    loaded = read_api.Model.load(str(folder))
    check_same_model(model, loaded, folder)
    # the PMF initialisation was saved without its checkpoint files, recursively with its file init
    init = loaded.initialisation
    assert isinstance(init, read_api.Model)
    assert (init.name, init.id, init.checkpoint) == ("null", "~", "1")
    assert list(init.checkpoint_collection.keys()) == ["1", 1]
    assert all(c.path is None for c in init.checkpoint_collection.values())
    assert isinstance(init.initialisation, read_api.Checkpoint) and init.initialisation.name == "0x1F"
    assert os.path.isfile(str(init.initialisation.path))
    assert md5(str(init.initialisation.path)) == init.initialisation.hash


@pytest.mark.parametrize("writer, reader", [("ours", "ref"), ("ref", "ours")])
def test_initialisation_from_a_model_saved_by_the_other(request, tmp_path, writer, reader):
    """``initialisation()``/``register_initialisation`` of a PMF model written by the other side."""
    write_api = request.getfixturevalue(writer)
    read_api = request.getfixturevalue(reader)
    model = build_tricky(write_api, tmp_path, writer)
    folder = tmp_path / "model_{}".format(writer)
    model.save(str(folder))
    for reference in (1, "1", "yes", "~", "2020-01-01"):
        init = read_api.initialisation(str(folder), checkpoint_reference=reference)
        assert init.checkpoint == reference and init.id == "2020-01-01"
    top_config = write(tmp_path / "top" / "config.py", "top")
    top = read_api.Model("top_model", "py_pa", "1", "top", "top-id", str(top_config), {})
    top.register_initialisation(str(folder), checkpoint_reference="1e10")
    top.save(str(tmp_path / "top_saved"))
    for api in (write_api, read_api):
        loaded = api.Model.load(str(tmp_path / "top_saved"))
        assert loaded.initialisation.checkpoint == "1e10"
        assert fields(loaded.initialisation)["checkpoints"] == fields(model)["checkpoints"]


@pytest.mark.parametrize("writer, reader", [("ours", "ref"), ("ref", "ours")])
def test_file_initialisation_and_custom_version_round_trip(request, tmp_path, writer, reader):
    write_api = request.getfixturevalue(writer)
    read_api = request.getfixturevalue(reader)
    for api in (write_api, read_api):
        api.register(make_version_class(api.Version, "InteropVer"))
    config = write(tmp_path / "in" / "config.py", "c")
    model = write_api.Model("prod", "interop_ver", "2020.01.02", None, "1e10", str(config), {})
    model.register_initialisation(str(write(tmp_path / "in" / "on.npz", b"init")), name="on")
    folder = tmp_path / "model"
    model.save(str(folder))
    loaded = read_api.Model.load(str(folder))
    assert loaded.name is None and loaded.id == "1e10"
    assert str(loaded.producer.version) == "2020.1.2" and loaded.producer.version.format == "interop_ver"
    assert (loaded.initialisation.name, loaded.initialisation.hash) == ("on", md5(tmp_path / "in" / "on.npz"))
    assert basename(loaded.initialisation.path) == "on.npz"


# ------------------------------------------------------------------------------------------------
# The invalid models
# ------------------------------------------------------------------------------------------------
MODES = {"strict": dict(strict=True), "non_strict": dict(strict=False),
         "strict_no_checkpoints": dict(strict=True, checkpoints=False)}


# Checkpoint paths that lead outside the model root or outside data/checkpoints/: offences when the
# checkpoints are checked only (a model saved as an initialisation has "." as checkpoint paths).
CHECKPOINT_PATH_CASES = {"checkpoint_path_absolute", "checkpoint_path_escapes_root",
                         "checkpoint_path_outside_checkpoints_dir", "symlink_outside_root"}


def test_unsafe_checkpoint_paths_are_dropped_when_checkpoints_are_not_checked(invalid_cases, ours):
    folder, entries = invalid_cases
    for case in sorted(CHECKPOINT_PATH_CASES - {"symlink_outside_root"}):
        root = folder / case
        model = ours.Model.load(str(root), checkpoints=False)
        assert model.checkpoint_collection[1].path is None, case  # the unsafe path is not followed
        for checkpoint in model.checkpoint_collection.values():
            if checkpoint.path is not None:
                assert os.path.realpath(str(checkpoint.path)).startswith(os.path.realpath(str(root)) + os.sep)


# Invalid cases that validation accepts, as the reference's ``validate`` does, and that only ``load``
# refuses (as the reference's ``Model.load`` does), with what load says: a producer version format
# is checked where a version is built (the core's tests/interop.rs has the same list).
LOAD_REFUSES = {"unknown_version_format": "semver"}


def test_invalid_models_are_refused_where_the_reference_refuses_them(invalid_cases, ours):
    folder, entries = invalid_cases
    assert len(entries) >= 80
    mismatches = []
    for entry in entries:
        path = str(folder / entry["path"])
        if entry["case"] in LOAD_REFUSES:
            for mode, options in MODES.items():
                ours.validate(path, **options)
                with pytest.raises(ValueError, match=LOAD_REFUSES[entry["case"]]):
                    ours.Model.load(path, **options)
            continue
        wrongly_accepted = entry["rule"].startswith("reference wrongly accepts")
        for mode, options in MODES.items():
            reference_valid = entry[mode]["valid"]
            try:
                ours.validate(path, **options)
                valid, error = True, None
            except ours.PlumsModelTreeValidationError as e:  # every refusal is a tree error, like the reference's
                valid, error = False, e
                if not e.offences:
                    mismatches.append((entry["case"], mode, "no offences listed"))
            if wrongly_accepted and not (mode == "strict_no_checkpoints" and entry["case"] in CHECKPOINT_PATH_CASES):
                if valid:
                    mismatches.append((entry["case"], mode, "accepted (the reference wrongly accepts it too)"))
            elif wrongly_accepted:
                pass  # checkpoints are not checked: see the test below
            elif valid != reference_valid:
                mismatches.append((entry["case"], mode, "ours valid={}, reference valid={} ({})".format(
                    valid, reference_valid, error)))
    assert mismatches == []


def test_invalid_training_cases_report_every_spec_offence(invalid_cases, ours):
    """The harness lists the PMF-SPEC offences of each training case; ours reports that many."""
    folder, entries = invalid_cases
    checked = 0
    for entry in entries:
        if "spec_offences" not in entry:
            continue
        with pytest.raises(ours.PlumsModelMetadataValidationError) as error:
            ours.validate(str(folder / entry["path"]))
        assert len(error.value.offences) >= len(entry["spec_offences"]), (entry["case"], entry["spec_offences"],
                                                                         error.value.offences)
        assert all(o.kind == "metadata" for o in error.value.offences)
        checked += 1
    assert checked >= 25


# ------------------------------------------------------------------------------------------------
# PyYAML's scalar rules, on generated strings
# ------------------------------------------------------------------------------------------------
ATOMS = ["yes", "No", "on", "OFF", "y", "n", "~", "null", "NULL", "true", "False", "1e10", "1.5e3", "0o17", "0x1F",
         "012", "1:20", "1_000", ".inf", "-.INF", ".NaN", "2020-01-01", "2020-01-01 10:00:00", "=", "<<", "-", "?",
         "!", "&a", "*a", "%", "@", "`", "#", " ", "\t", "\n", "\r", "\x85", "\u2028", "\ufeff", "\x07", "\x7f", "é",
         "日本", "🙂", '"', "'", "\\", ":", ": ", "- ", "[", "]", "{", "}", ",", "|", ">", "0", "1", "-1", "+1", "0.",
         ".5", "e3", "0b101", "190:20:30", "Yes", "oFF", "a" * 40]


def generated_strings(count=60, seed=20200101):
    import random

    rng = random.Random(seed)
    return ["".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 3))) for _ in range(count)]


def test_generated_strings_round_trip_both_ways(ours, ref, files, tmp_path):
    """Strings made of YAML 1.1 look-alikes, quotes, control and unicode characters, as model
    name, id, checkpoint reference and build parameters: written by one side, read back exactly
    by PyYAML itself and by the other side."""
    mismatches = []
    for i, s in enumerate(generated_strings()):
        parameters = {s: s, "list": [s], "int": -2 ** 63, "float": 1e300}
        for writer, reader in ((ours, ref), (ref, ours)):
            model = writer.Model("ab", "py_pa", "1", s, s or "x", str(files.config), parameters)
            model.training = writer.Training(start_time=1, start_epoch=0, latest_time=2, latest_epoch=1,
                                             status="running")
            model.add_checkpoint(writer.Checkpoint(s, str(files.w1), 1))
            folder = tmp_path / "m{}_{}".format(i, writer.label)
            model.save(str(folder))
            with open(str(folder / "metadata.yaml"), encoding="utf-8") as f:
                metadata = yaml.safe_load(f)
            with open(str(folder / "data" / "build_parameters.yaml"), encoding="utf-8") as f:
                written_parameters = yaml.safe_load(f)
            loaded = reader.Model.load(str(folder))
            seen = (metadata["model"]["name"], list(metadata["model"]["training"]["checkpoints"]),
                    metadata["model"]["training"]["latest"], written_parameters,
                    loaded.name, list(loaded.checkpoint_collection.keys()), loaded.build_parameters)
            if seen != (s, [s], s, parameters, s, [s], parameters):
                mismatches.append((writer.label, s, seen))
    assert mismatches == []
