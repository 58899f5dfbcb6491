"""Model, initialisation() and validate(): same behaviour in both implementations (every test runs
against plums_model and against the reference plums.model, unless its name says otherwise)."""

import os
import shutil

import pytest
import schema
import yaml

from helpers import HASH, md5, simple_model, write


def read_metadata(folder):
    with open(os.path.join(str(folder), "metadata.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def write_metadata(folder, metadata):
    with open(os.path.join(str(folder), "metadata.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(metadata, f)


def listing(folder):
    """Every file under ``folder`` (relative paths), ignoring our lock file."""
    out = []
    for root, _, names in os.walk(str(folder)):
        for name in names:
            if name != ".pmf.lock":
                out.append(os.path.relpath(os.path.join(root, name), str(folder)))
    return sorted(out)


# ------------------------------------------------------------------------------------------------
# Building a model
# ------------------------------------------------------------------------------------------------
def test_model_attributes(api, files):
    model = api.Model("faster_rcnn", "py_pa", "1.0.0-RC1", "name", "id-1", str(files.config), {"a": 1})
    assert (model.name, model.id, model.build_parameters) == ("name", "id-1", {"a": 1})
    assert model.producer == api.Producer("faster_rcnn", "py_pa", "1.0.0rc1", str(files.config))
    assert model.training.is_pending
    assert len(model.checkpoint_collection) == 0
    assert model.initialisation is None and model.path is None and model.checkpoint is None
    assert repr(model) == "Model(name=name, id=id-1)"
    for read_only in ("initialisation", "path", "checkpoint"):
        with pytest.raises(AttributeError):
            setattr(model, read_only, None)


def test_model_constructor_errors(api, files):
    with pytest.raises(OSError):
        api.Model("prod", "py_pa", "1.0", "n", "i", str(files.root / "missing.py"), {})
    with pytest.raises(ValueError, match="unknown"):
        api.Model("prod", "semver", "1.0", "n", "i", str(files.config), {})


def test_model_training_registration(api, files):
    model = simple_model(api, files, checkpoints=False)
    model.training = api.Training()
    model.register_training_start(2)
    model.register_epoch()
    model.register_epoch(7)
    assert (model.training.status, model.training.start_epoch, model.training.latest_epoch) == ("running", 2, 7)
    model.register_training_end(True)
    assert model.training.is_finished and model.training.end_epoch == 7
    other = simple_model(api, files, checkpoints=False)
    other.register_training_end(False)
    assert other.training.is_failed


def test_model_add_checkpoint(api, files):
    model = simple_model(api, files, checkpoints=False)
    model.add_checkpoint(api.Checkpoint(1, str(files.w1), 1), api.Checkpoint(2, str(files.w2), 2))
    assert list(model.checkpoint_collection.keys()) == [1, 2] and model.checkpoint_collection.latest == 2
    with pytest.raises(KeyError):
        model.add_checkpoint(api.Checkpoint(1, str(files.w3), 3))
    with pytest.raises(ValueError):
        model.add_checkpoint(api.Checkpoint(3, str(files.w3)))


# ------------------------------------------------------------------------------------------------
# save / load round trip (same implementation)
# ------------------------------------------------------------------------------------------------
def test_save_writes_the_pmf_tree(api, files, tmp_path):
    model = simple_model(api, files)
    model.register_initialisation(str(files.init), name="imagenet")
    destination = tmp_path / "saved"
    model.save(str(destination))
    assert listing(destination) == sorted([
        "metadata.yaml", "config.py", os.path.join("data", "build_parameters.yaml"),
        os.path.join("data", "checkpoints", "w1.h5"), os.path.join("data", "checkpoints", "w2.h5"),
        os.path.join("data", "initialisation", "imagenet.h5"),
    ])
    metadata = read_metadata(destination)
    assert metadata["format"] == {"version": "1.0.0", "producer": {
        "name": "faster_rcnn", "version": {"format": "py_pa", "value": "1.0.0"}}}
    assert metadata["model"]["configuration"] == {"path": "config.py", "hash": md5(files.config)}
    assert metadata["model"]["initialisation"] == {"file": {
        "name": "imagenet", "path": "data/initialisation/imagenet.h5", "hash": md5(files.init)}}
    training = metadata["model"]["training"]
    assert training["latest"] == "best"
    assert training["checkpoints"] == {
        1: {"epoch": 1, "path": "data/checkpoints/w1.h5", "hash": md5(files.w1)},
        "best": {"epoch": 2, "path": "data/checkpoints/w2.h5", "hash": md5(files.w2)},
    }
    with open(str(destination / "data" / "build_parameters.yaml")) as f:
        assert yaml.safe_load(f) == {"backbone": "resnet50"}
    assert api.validate(str(destination), strict=True) == metadata


def test_save_then_load(api, files, tmp_path):
    model = simple_model(api, files)
    model.register_initialisation(str(files.init), name="imagenet")
    destination = tmp_path / "saved"
    model.save(str(destination))
    loaded = api.Model.load(str(destination))
    assert str(loaded.path) == str(destination)
    assert (loaded.name, loaded.id, loaded.build_parameters) == (model.name, model.id, model.build_parameters)
    assert loaded.producer.strict_equals(model.producer)
    assert os.path.basename(str(loaded.producer.configuration)) == "config.py"
    assert loaded.checkpoint_collection == model.checkpoint_collection
    for reference, checkpoint in loaded.checkpoint_collection.items():
        assert os.path.dirname(str(checkpoint.path)) == str(destination / "data" / "checkpoints")
        assert md5(str(checkpoint.path)) == checkpoint.hash == model.checkpoint_collection[reference].hash
    training = loaded.training
    assert (training.status, training.start_timestamp, training.start_epoch,
            training.latest_timestamp, training.latest_epoch) == ("running", 10, 0, 20.5, 2)
    init = loaded.initialisation
    assert isinstance(init, api.Checkpoint) and init.name == "imagenet" and init.hash == md5(files.init)
    assert str(init.path) == str(destination / "data" / "initialisation" / "imagenet.h5")
    assert loaded.checkpoint is None


def test_save_and_load_pmf_initialisation(api, files, tmp_path):
    base = simple_model(api, files, model_id="base-model", name="base")
    base.register_initialisation(str(files.init), name="imagenet")
    base.save(str(tmp_path / "base"))
    model = simple_model(api, files, model_id="top-model", name="top", checkpoints=False)
    model.register_initialisation(str(tmp_path / "base"), checkpoint_reference="best")
    assert model.initialisation.checkpoint == "best" and model.initialisation.id == "base-model"
    model.save(str(tmp_path / "top"))
    init_folder = tmp_path / "top" / "data" / "initialisation"
    assert listing(init_folder) == sorted(["metadata.yaml", "config.py", os.path.join("data", "build_parameters.yaml"),
                                           os.path.join("data", "initialisation", "imagenet.h5")])
    metadata = read_metadata(tmp_path / "top")
    assert metadata["model"]["initialisation"] == {"pmf": {
        "name": "base", "id": "base-model", "checkpoint": "best", "path": "data/initialisation"}}
    init_metadata = read_metadata(init_folder)
    assert {r: c["path"] for r, c in init_metadata["model"]["training"]["checkpoints"].items()} == {1: ".", "best": "."}
    loaded = api.Model.load(str(tmp_path / "top"))
    init = loaded.initialisation
    assert isinstance(init, api.Model)
    assert (init.id, init.name, init.checkpoint) == ("base-model", "base", "best")
    assert list(init.checkpoint_collection.keys()) == [1, "best"]
    assert init.initialisation.name == "imagenet"


# ------------------------------------------------------------------------------------------------
# save: destination rules
# ------------------------------------------------------------------------------------------------
def test_save_to_a_file_is_a_valueerror(api, files):
    with pytest.raises(ValueError, match="is a file"):
        simple_model(api, files).save(str(files.config))


def test_save_to_a_foreign_folder_needs_force(api, files, tmp_path):
    folder = tmp_path / "foreign"
    write(folder / "keep.txt", "mine")
    model = simple_model(api, files)
    with pytest.raises(OSError, match="exists"):
        model.save(str(folder))
    assert listing(folder) == ["keep.txt"]
    model.save(str(folder), force=True)
    assert "keep.txt" in listing(folder) and "metadata.yaml" in listing(folder)
    assert (folder / "keep.txt").read_text() == "mine"
    api.validate(str(folder), strict=True)


def test_save_over_a_different_model_id_is_an_oserror_even_forced(api, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(api, files, model_id="first").save(str(folder))
    before = read_metadata(folder)
    for force in (False, True):
        with pytest.raises(OSError, match="different PMF model id|different PMF model"):
            simple_model(api, files, model_id="second").save(str(folder), force=force)
    assert read_metadata(folder) == before


def test_save_over_invalid_metadata_is_an_oserror_even_forced(api, files, tmp_path):
    folder = tmp_path / "model"
    write(folder / "metadata.yaml", "format: {}\n")
    for force in (False, True):
        with pytest.raises(OSError, match="not a valid PMF metadata file"):
            simple_model(api, files).save(str(folder), force=force)
    assert (folder / "metadata.yaml").read_text() == "format: {}\n"


def test_save_over_the_same_id_saves_over_it(api, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(api, files).save(str(folder))
    write(folder / "extra" / "notes.txt", "kept")
    model = simple_model(api, files)
    model.name = "renamed"
    model.register_epoch(3)
    model.add_checkpoint(api.Checkpoint(3, str(files.w3), 3))
    model.save(str(folder))
    loaded = api.Model.load(str(folder))
    assert loaded.name == "renamed" and list(loaded.checkpoint_collection.keys()) == [1, "best", 3]
    assert (folder / "extra" / "notes.txt").read_text() == "kept"


def test_save_over_the_same_id_with_an_invalid_tree_needs_force(api, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(api, files).save(str(folder))
    write(folder / "extra.txt", "kept")
    os.remove(str(folder / "config.py"))
    with pytest.raises(OSError, match="invalid PMF model with the same"):
        simple_model(api, files).save(str(folder))
    assert not (folder / "config.py").exists()
    simple_model(api, files).save(str(folder), force=True)
    api.validate(str(folder), strict=True)
    assert (folder / "extra.txt").read_text() == "kept"


def test_save_lazy_over_itself_keeps_unchanged_files(api, files, tmp_path):
    """Saving over the same model does not copy unchanged files again (the reference is lazy for
    the configuration only: it compares checkpoint hashes with Checkpoint objects)."""
    folder = tmp_path / "model"
    model = simple_model(api, files)
    model.save(str(folder))
    unchanged = [folder / "config.py"] + ([folder / "data" / "checkpoints" / "w1.h5"] if api.ours else [])
    for path in unchanged:
        os.utime(str(path), (1000000000, 1000000000))
    model.save(str(folder), force=True)
    for path in unchanged:
        assert os.stat(str(path)).st_mtime == 1000000000  # not copied again
    api.validate(str(folder), strict=True)


def test_save_without_checkpoint_files(api, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(api, files).save(str(folder), checkpoints=False)
    assert listing(folder / "data" / "checkpoints") == []
    paths = {r: c["path"] for r, c in read_metadata(folder)["model"]["training"]["checkpoints"].items()}
    assert paths == {1: ".", "best": "."}
    api.validate(str(folder), strict=True, checkpoints=False)
    loaded = api.Model.load(str(folder), checkpoints=False)
    assert list(loaded.checkpoint_collection.keys()) == [1, "best"]


# ------------------------------------------------------------------------------------------------
# initialisation()
# ------------------------------------------------------------------------------------------------
def test_initialisation_from_a_file(api, files):
    checkpoint = api.initialisation(str(files.init), name="imagenet")
    assert isinstance(checkpoint, api.Checkpoint)
    assert (checkpoint.name, checkpoint.epoch, checkpoint.hash) == ("imagenet", None, md5(files.init))
    assert str(checkpoint.path) == str(files.init)


def test_initialisation_from_a_file_needs_a_name(api, files):
    with pytest.raises(ValueError, match="points to a file but name is None"):
        api.initialisation(str(files.init))
    with pytest.raises(ValueError, match="points to a file but name is None"):
        simple_model(api, files).register_initialisation(str(files.init), checkpoint_reference=1)


def test_initialisation_missing_path_is_an_oserror(api, files):
    with pytest.raises(OSError, match="does not exist"):
        api.initialisation(str(files.root / "missing"), name="x")
    model = simple_model(api, files)
    with pytest.raises(OSError, match="does not exist"):
        model.register_initialisation(str(files.root / "missing"), name="x")
    assert model.initialisation is None


def test_initialisation_from_a_foreign_folder_is_an_oserror(api, files):
    with pytest.raises(OSError, match="must either be a PMF model or a weight file"):
        api.initialisation(str(files.root / "inputs"), checkpoint_reference=1)


@pytest.fixture
def saved(api, files, tmp_path):
    folder = tmp_path / "base"
    simple_model(api, files).save(str(folder))
    return folder


def test_initialisation_from_a_pmf_model(api, saved):
    model = api.initialisation(str(saved), checkpoint_reference="best")
    assert isinstance(model, api.Model)
    assert (model.id, model.checkpoint, str(model.path)) == ("model-1", "best", str(saved))
    assert list(model.checkpoint_collection.keys()) == [1, "best"]


def test_initialisation_from_a_pmf_model_needs_a_reference(api, saved):
    with pytest.raises(ValueError, match="no checkpoint reference was given"):
        api.initialisation(str(saved), name="x")


@pytest.mark.parametrize("reference", [99, "1", "BEST"])
def test_initialisation_reference_must_be_a_checkpoint_of_the_model(api, saved, reference):
    with pytest.raises(ValueError, match="does not contain"):
        api.initialisation(str(saved), checkpoint_reference=reference)


def test_initialisation_loads_without_checkpoint_files(api, saved):
    shutil.rmtree(str(saved / "data" / "checkpoints"))
    model = api.initialisation(str(saved), checkpoint_reference=1)
    assert model.checkpoint == 1


def test_initialisation_from_an_invalid_pmf_model(api, files, saved):
    os.remove(str(saved / "config.py"))
    with pytest.raises(api.PlumsModelTreeValidationError):
        api.initialisation(str(saved), checkpoint_reference=1)
    model = simple_model(api, files)
    with pytest.raises(schema.SchemaError):  # what the seed documents for register_initialisation
        model.register_initialisation(str(saved), checkpoint_reference=1)
    assert model.initialisation is None


def test_initialisation_from_a_model_with_invalid_metadata(api, saved):
    metadata = read_metadata(saved)
    metadata["model"]["training"]["status"] = "done"
    write_metadata(saved, metadata)
    with pytest.raises(api.PlumsModelTreeValidationError, match="(?i)status|done"):
        api.initialisation(str(saved), checkpoint_reference=1)


# ------------------------------------------------------------------------------------------------
# load / validate
# ------------------------------------------------------------------------------------------------
def test_validate_returns_the_metadata(api, saved):
    metadata = api.validate(str(saved))
    assert metadata == read_metadata(saved)
    assert api.validate(str(saved), strict=True, checkpoints=False) == metadata
    assert api.validate(str(saved), strict=False, verbose=True) == metadata


def test_validate_missing_folder_is_a_tree_error(api, tmp_path):
    with pytest.raises(api.PlumsModelTreeValidationError):
        api.validate(str(tmp_path / "missing"))
    with pytest.raises(api.PlumsModelTreeValidationError):
        api.Model.load(str(tmp_path / "missing"))


def test_validate_a_file_is_a_tree_error(api, files):
    with pytest.raises(api.PlumsModelTreeValidationError):
        api.validate(str(files.config))


def test_validate_a_foreign_folder_is_a_tree_error(api, files):
    with pytest.raises(api.PlumsModelTreeValidationError, match="metadata.yaml"):
        api.validate(str(files.root / "inputs"))


def test_load_tampered_checkpoint_strict_and_not(api, saved):
    with open(str(saved / "data" / "checkpoints" / "w1.h5"), "ab") as f:
        f.write(b"tampered")
    with pytest.raises(api.PlumsModelTreeValidationError):
        api.Model.load(str(saved))
    with pytest.raises(api.PlumsModelTreeValidationError):
        api.validate(str(saved), strict=True)
    api.validate(str(saved))  # not strict by default
    loaded = api.Model.load(str(saved), strict=False)
    assert loaded.checkpoint_collection[1].hash != md5(str(loaded.checkpoint_collection[1].path))
    api.Model.load(str(saved), checkpoints=False)  # checkpoints are not checked


def test_load_missing_checkpoint_file(api, saved):
    os.remove(str(saved / "data" / "checkpoints" / "w2.h5"))
    with pytest.raises(api.PlumsModelTreeValidationError):
        api.Model.load(str(saved), strict=False)
    api.Model.load(str(saved), checkpoints=False)


@pytest.mark.parametrize("broken", ["missing_configuration", "missing_build_parameters", "missing_data",
                                    "missing_initialisation", "invalid_yaml", "unknown_key", "latest_unknown",
                                    "bad_hash", "bad_status", "bad_producer_name"])
def test_load_broken_model_is_a_tree_error_in_both(api, saved, broken):
    """The reference raises every validation error of a folder as a tree error; ours too (metadata
    offences are both, see test_differences.py)."""
    metadata = read_metadata(saved)
    if broken == "missing_configuration":
        os.remove(str(saved / "config.py"))
    elif broken == "missing_build_parameters":
        os.remove(str(saved / "data" / "build_parameters.yaml"))
    elif broken == "missing_data":
        shutil.rmtree(str(saved / "data"))
    elif broken == "missing_initialisation":
        shutil.rmtree(str(saved / "data" / "initialisation"))
    elif broken == "invalid_yaml":
        write(saved / "metadata.yaml", "format: [unclosed\n")
    else:
        if broken == "unknown_key":
            metadata["model"]["colour"] = "blue"
        elif broken == "latest_unknown":
            metadata["model"]["training"]["latest"] = "nope"
        elif broken == "bad_hash":
            metadata["model"]["configuration"]["hash"] = HASH.upper()
        elif broken == "bad_status":
            metadata["model"]["training"]["status"] = "done"
        elif broken == "bad_producer_name":
            metadata["format"]["producer"]["name"] = "1abc"
        write_metadata(saved, metadata)
    for call in (lambda: api.validate(str(saved)), lambda: api.Model.load(str(saved)),
                 lambda: api.Model.load(str(saved), strict=False, verbose=True)):
        with pytest.raises(api.PlumsModelTreeValidationError) as error:
            call()
        assert isinstance(error.value, schema.SchemaError)
        assert isinstance(error.value, api.PlumsModelError)


def test_load_checkpoint_paths_point_into_the_loaded_tree(api, saved, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(str(saved), str(moved))
    loaded = api.Model.load(str(moved))
    for checkpoint in loaded.checkpoint_collection.values():
        assert str(checkpoint.path).startswith(str(moved))
    assert str(loaded.producer.configuration) == str(moved / "config.py")


@pytest.mark.parametrize("kind", ["str", "pathlib", "reference_path"])
def test_ours_takes_str_pathlib_or_the_reference_path(ours, files, tmp_path, kind):
    """Every path argument may be a str, a ``pathlib.Path`` or the reference's
    ``plums.commons.path.Path`` (code migrating from the reference may still build those)."""
    from pathlib import Path as PathlibPath

    from plums.commons.path import Path as ReferencePath

    convert = {"str": str, "pathlib": PathlibPath, "reference_path": lambda p: ReferencePath(str(p))}[kind]
    model = ours.Model("prod", "py_pa", "1.0", "n", "i", convert(files.config), {})
    model.add_checkpoint(ours.Checkpoint(1, convert(files.w1), 1))
    model.register_initialisation(convert(files.init), name="imagenet")
    model.save(convert(tmp_path / "saved"))
    assert ours.validate(convert(tmp_path / "saved"), strict=True)["model"]["id"] == "i"
    loaded = ours.Model.load(convert(tmp_path / "saved"))
    assert str(loaded.path) == str(tmp_path / "saved")
    assert ours.initialisation(convert(tmp_path / "saved"), checkpoint_reference=1).checkpoint == 1
