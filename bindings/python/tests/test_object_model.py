"""How the Python objects map onto the Rust core.

A ``Model`` and its parts (``producer``, ``training``, ``checkpoint_collection``, the checkpoints,
``build_parameters``) are Python objects shared by reference, as in the reference: mutating a
sub-object mutates the model, whoever holds it. They become a core ``plums_model::Model`` when
the model is saved (and are rebuilt from one when it is loaded), so what is saved is always the
state of the objects at the time of the ``save`` call. These tests run against both
implementations where the behaviour is the reference's, and against ``plums_model`` alone for
the conversions (paths, build parameters, errors, versions) that the reference does not define.
"""

import datetime
import math
import os
import pathlib

import pytest

from helpers import HASH, md5, simple_model, write


class FsPath:
    """An ``os.PathLike`` that is neither a str nor a pathlib path."""

    def __init__(self, path):
        self._path = str(path)

    def __fspath__(self):
        return self._path


# ------------------------------------------------------------------------------------------------
# Sub-objects are shared by reference (both implementations)
# ------------------------------------------------------------------------------------------------
def test_training_held_elsewhere_is_the_models_training(api, files, tmp_path):
    model = simple_model(api, files, checkpoints=False)
    model.training = api.Training()
    training = model.training
    training.start(3)  # through the sub-object ...
    assert model.training is training and model.training.is_running and model.training.start_epoch == 3
    model.register_epoch(5)  # ... and through the model
    assert training.latest_epoch == 5
    model.training.register_epoch()
    assert training.latest_epoch == 6
    model.save(str(tmp_path / "model"))
    loaded = api.Model.load(str(tmp_path / "model"))
    assert (loaded.training.status, loaded.training.start_epoch, loaded.training.latest_epoch) == ("running", 3, 6)
    assert loaded.training.start_timestamp == training.start_timestamp
    assert loaded.training.latest_timestamp == training.latest_timestamp


def test_collection_held_elsewhere_is_the_models_collection(api, files, tmp_path):
    model = simple_model(api, files, checkpoints=False)
    collection = model.checkpoint_collection
    collection.add(api.Checkpoint(1, str(files.w1), 1))
    model.checkpoint_collection[2] = api.Checkpoint("ignored", str(files.w2), 2)
    collection["three"] = api.Checkpoint(3, str(files.w3), 2)
    del model.checkpoint_collection[1]
    assert list(collection.keys()) == [2, "three"] and collection.latest == "three"
    model.save(str(tmp_path / "model"))
    loaded = api.Model.load(str(tmp_path / "model"))
    assert list(loaded.checkpoint_collection.keys()) == [2, "three"]
    assert loaded.checkpoint_collection.latest == "three"
    assert loaded.checkpoint_collection[2].hash == md5(files.w2)
    assert sorted(os.listdir(str(tmp_path / "model" / "data" / "checkpoints"))) == ["w2.h5", "w3.h5"]


def test_replaced_sub_objects_are_what_is_saved(api, files, tmp_path):
    model = simple_model(api, files)
    old_collection = model.checkpoint_collection
    model.checkpoint_collection = api.CheckpointCollection(api.Checkpoint("only", str(files.w3), 2))
    old_collection.add(api.Checkpoint(9, str(files.w1), 1))  # no longer the model's
    model.training = api.Training(start_time=1, start_epoch=0, end_time=2, end_epoch=2, status="finished")
    model.build_parameters = {"replaced": True}
    model.name, model.id = "renamed", "new-id"
    model.save(str(tmp_path / "model"))
    loaded = api.Model.load(str(tmp_path / "model"))
    assert list(loaded.checkpoint_collection.keys()) == ["only"]
    assert (loaded.training.status, loaded.training.end_epoch, loaded.training.latest_epoch) == ("finished", 2, 2)
    assert (loaded.name, loaded.id, loaded.build_parameters) == ("renamed", "new-id", {"replaced": True})


def test_mutations_after_a_save_are_saved_by_the_next_save(api, files, tmp_path):
    model = simple_model(api, files)
    model.save(str(tmp_path / "model"))
    model.build_parameters["layers"] = [64, 128]  # the dict itself is shared
    model.checkpoint_collection["best"].epoch = 1  # checkpoints are mutable too
    model.register_epoch(4)
    model.save(str(tmp_path / "model"))
    loaded = api.Model.load(str(tmp_path / "model"))
    assert loaded.build_parameters == {"backbone": "resnet50", "layers": [64, 128]}
    assert loaded.checkpoint_collection["best"].epoch == 1
    assert loaded.training.latest_epoch == 4


def test_loaded_sub_objects_are_plain_mutable_objects(api, files, tmp_path):
    simple_model(api, files).save(str(tmp_path / "model"))
    loaded = api.Model.load(str(tmp_path / "model"))
    assert type(loaded.training) is api.Training
    assert type(loaded.checkpoint_collection) is api.CheckpointCollection
    assert all(type(c) is api.Checkpoint for c in loaded.checkpoint_collection.values())
    assert type(loaded.producer) is api.Producer
    loaded.checkpoint_collection["best"].name = "renamed"  # a checkpoint's name is settable
    assert loaded.checkpoint_collection["best"].name == "renamed"
    loaded.training.status = "finished"
    assert loaded.training.is_finished


def test_initialisation_model_is_kept_by_reference(api, files, tmp_path):
    base = simple_model(api, files, model_id="base")
    base.save(str(tmp_path / "base"))
    model = simple_model(api, files, model_id="child")
    model.register_initialisation(str(tmp_path / "base"), checkpoint_reference="best")
    init = model.initialisation
    assert model.initialisation is init and init.checkpoint == "best"
    init.name = "renamed base"  # saved with the model, as the reference does
    model.save(str(tmp_path / "child"))
    loaded = api.Model.load(str(tmp_path / "child"))
    assert loaded.initialisation.name == "renamed base" and loaded.initialisation.checkpoint == "best"


# ------------------------------------------------------------------------------------------------
# Paths (ours): str or os.PathLike in, pathlib.Path out
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [str, pathlib.Path, FsPath])
def test_paths_in_any_form_and_pathlib_out(ours, files, tmp_path, kind):
    model = ours.Model("prod", "py_pa", "1.0", "n", "i", kind(files.config), {})
    assert type(model.producer.configuration) is pathlib.PosixPath
    checkpoint = ours.Checkpoint(1, kind(files.w1), 1)
    assert isinstance(checkpoint.path, pathlib.Path) and checkpoint.path == pathlib.Path(str(files.w1))
    model.add_checkpoint(checkpoint)
    model.register_initialisation(kind(files.init), name="imagenet")
    assert isinstance(model.initialisation.path, pathlib.Path)
    model.save(kind(tmp_path / "model"))
    assert ours.validate(kind(tmp_path / "model"), strict=True)["model"]["id"] == "i"
    loaded = ours.Model.load(kind(tmp_path / "model"))
    assert isinstance(loaded.path, pathlib.Path) and loaded.path == tmp_path / "model"
    assert isinstance(loaded.producer.configuration, pathlib.Path)
    assert loaded.checkpoint_collection[1].path == tmp_path / "model" / "data" / "checkpoints" / "w1.h5"
    assert loaded.initialisation.path == tmp_path / "model" / "data" / "initialisation" / "imagenet.h5"
    assert ours.initialisation(kind(tmp_path / "model"), checkpoint_reference=1).path == tmp_path / "model"


def test_checkpoint_path_is_settable_and_may_be_none(ours, files):
    checkpoint = ours.Checkpoint(1, hash=HASH, epoch=1)
    assert checkpoint.path is None
    checkpoint.path = str(files.w1)
    assert checkpoint.path == pathlib.Path(str(files.w1))
    checkpoint.path = FsPath(files.w2)
    assert checkpoint.path == pathlib.Path(str(files.w2))
    checkpoint.path = None
    assert checkpoint.path is None


# ------------------------------------------------------------------------------------------------
# Build parameters (ours): plain Python values <-> the core's YAML values
# ------------------------------------------------------------------------------------------------
BUILD_PARAMETERS = {
    "str": "text", "yes": "yes", "null_text": "null", "octal_text": "012", "exp_text": "1e10",
    "int": 3, "max": 2 ** 63 - 1, "min": -2 ** 63, "float": 0.1, "big_float": 1e300, "bool": False, "none": None,
    "list": [1, "two", [3.0]], "nested": {"a": {"b": {"c": []}}}, 7: "int key", 1.5: "float key", None: "null key",
    "bytes": b"\x00\xff", "date": datetime.date(2020, 1, 2),
    "datetime": datetime.datetime(2020, 1, 2, 3, 4, 5, 678000),
}


@pytest.mark.parametrize("parameters", [BUILD_PARAMETERS, {}, [], None, "a string", 5])
def test_build_parameters_round_trip(api, files, tmp_path, parameters):
    model = api.Model("prod", "py_pa", "1.0", "n", "i", str(files.config), parameters)
    model.save(str(tmp_path / "model"))
    assert api.Model.load(str(tmp_path / "model")).build_parameters == parameters


def test_build_parameters_special_floats_and_tuples(ours, files, tmp_path):
    parameters = {"inf": float("inf"), "ninf": float("-inf"), "nan": float("nan"), "tuple": (1, 2)}
    model = ours.Model("prod", "py_pa", "1.0", "n", "i", str(files.config), parameters)
    model.save(str(tmp_path / "model"))
    loaded = ours.Model.load(str(tmp_path / "model")).build_parameters
    assert loaded["inf"] == math.inf and loaded["ninf"] == -math.inf and math.isnan(loaded["nan"])
    assert loaded["tuple"] == [1, 2]  # a YAML sequence, as yaml.safe_dump writes a list


# ------------------------------------------------------------------------------------------------
# Errors (ours): the core's errors as the built-in exceptions the seed documents
# ------------------------------------------------------------------------------------------------
def test_missing_files_are_filenotfounderrors(ours, files):
    import errno

    with pytest.raises(FileNotFoundError, match="invalid configuration: cannot read") as error:
        ours.Producer("prod", "py_pa", "1.0", str(files.root / "missing.py"))
    assert error.value.errno == errno.ENOENT and "missing.py" in str(error.value)
    with pytest.raises(FileNotFoundError, match="invalid checkpoint: cannot read") as error:
        ours.Checkpoint(1, str(files.root / "missing.h5"))
    assert error.value.errno == errno.ENOENT and "missing.h5" in str(error.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ours.initialisation(str(files.root / "missing"), name="x")


def test_folders_given_as_files_are_isadirectoryerrors(ours, files):
    with pytest.raises(IsADirectoryError, match="not a file"):
        ours.Producer("prod", "py_pa", "1.0", str(files.root))
    with pytest.raises(IsADirectoryError, match="not a file"):
        ours.Checkpoint(1, str(files.root))


def test_save_destination_errors_are_the_seeds_exceptions(ours, files, tmp_path):
    model = simple_model(ours, files)
    with pytest.raises(ValueError, match="is a file"):
        model.save(str(files.w1))
    write(tmp_path / "foreign" / "notes.txt", "mine")
    with pytest.raises(FileExistsError, match="not a PMF model"):
        model.save(str(tmp_path / "foreign"))
    simple_model(ours, files, model_id="other").save(str(tmp_path / "other"))
    with pytest.raises(FileExistsError, match="different PMF model"):
        model.save(str(tmp_path / "other"), force=True)


def test_duplicate_and_missing_references_are_keyerrors(ours):
    collection = ours.CheckpointCollection(ours.Checkpoint(1, hash=HASH, epoch=1))
    with pytest.raises(KeyError):
        collection.add(ours.Checkpoint(1, hash=HASH, epoch=2))
    with pytest.raises(KeyError):
        collection["missing"]
    with pytest.raises(KeyError):
        del collection["missing"]
    with pytest.raises(IndexError):
        collection.eloc[42]
    with pytest.raises(IndexError):
        collection.iloc[5]


def test_validation_errors_are_classified_and_list_their_offences(ours, files, tmp_path):
    simple_model(ours, files).save(str(tmp_path / "model"))
    os.remove(str(tmp_path / "model" / "config.py"))
    with pytest.raises(ours.PlumsModelTreeValidationError) as error:
        ours.validate(str(tmp_path / "model"))
    assert type(error.value) is ours.PlumsModelTreeValidationError
    [offence] = error.value.offences
    assert (offence.kind, offence.location) == ("tree", "config.py") and "missing" in offence.message
    assert tuple(offence) == (offence.kind, offence.location, offence.message)


# ------------------------------------------------------------------------------------------------
# Versions (ours): the core's registry holds the Python classes
# ------------------------------------------------------------------------------------------------
def test_producer_version_object(api, files):
    producer = api.Producer("prod", "py_pa", "1.0.0-RC1", str(files.config))
    assert producer.version.format == "py_pa" and producer.version.version == "1.0.0rc1"
    assert str(producer.version) == "1.0.0rc1" and repr(producer.version) == "PyPA(1.0.0rc1)"
    assert api.version("py_pa", "1.0") == api.version("py_pa", "1.0.0") < api.version("py_pa", "1.0.1")


def test_equal_pypa_versions_hash_alike(ours):
    equal = [ours.version("py_pa", v) for v in ("1", "1.0", "1.0.0", "1.0.0.0")]
    assert len({hash(v) for v in equal}) == 1 and len(set(equal)) == 1
    assert len({ours.version("py_pa", v) for v in ("1.0", "1.0.1", "1.0rc1", "1!1.0", "1.0+local")}) == 5


def test_registered_versions_are_ordered_by_their_python_methods(ours, files, tmp_path):
    """A registered class's methods are the format's only rules: the core knows the format by
    name, writes ``str(instance)`` as the version value and hands the value back on load, where
    ``version()`` builds the instance (hook included). Here ``1.10 > 1.9`` and ``01.2 == 1.2``,
    which a string order would get wrong."""

    class DottedCore(ours.Version):
        def __init__(self, value):
            self.parts = tuple(int(part) for part in str(value).split("."))

        def __str__(self):
            return ".".join(map(str, self.parts))

        def __eq__(self, other):
            return isinstance(other, DottedCore) and self.parts == other.parts

        def __lt__(self, other):
            if not isinstance(other, DottedCore):
                return NotImplemented
            return self.parts < other.parts

    ours.register(DottedCore)
    v = lambda value: ours.version("dotted_core", value)  # noqa: E731
    assert v("1.10") > v("1.9") and v("1.9") < v("1.10") and v("01.2") == v("1.2")
    with pytest.raises(ValueError):
        v("1.x")
    model = ours.Model("prod", "dotted_core", "01.002", "n", "i", str(files.config), {})
    model.save(str(tmp_path / "model"))
    metadata = ours.validate(str(tmp_path / "model"))
    assert metadata["format"]["producer"]["version"] == {"format": "dotted_core", "value": "1.2"}
    loaded = ours.Model.load(str(tmp_path / "model"))
    assert type(loaded.producer.version) is DottedCore and loaded.producer == model.producer


def test_loading_uses_the_registration_hook(ours, files, tmp_path):
    class Tagged(ours.Version):
        def __init__(self, value):
            self.value = str(value)

        def __str__(self):
            return self.value

        def __eq__(self, other):
            return isinstance(other, Tagged) and self.value == other.value

        def __lt__(self, other):
            return self.value < other.value

    def hook(instance):
        instance.value = instance.value.lower()
        return instance

    ours.register(Tagged)
    model = ours.Model("prod", "tagged", "ABC", "n", "i", str(files.config), {})
    model.save(str(tmp_path / "model"))
    ours.register(Tagged, hook)
    assert ours.version("tagged", "ABC") == ours.version("tagged", "abc")
    assert str(ours.Model.load(str(tmp_path / "model")).producer.version) == "abc"
    ours.register(Tagged)
    assert ours.version("tagged", "ABC") != ours.version("tagged", "abc")


def test_pep440_is_the_cores(ours):
    v = lambda value: ours.version("py_pa", value)  # noqa: E731
    assert v("1.0.dev1") < v("1.0a1") and v("1.0") == v("1.0.0") and hash(v("1.0")) == hash(v("1.0.0"))
    assert str(v("1.0.0-RC1")) == "1.0.0rc1"
    with pytest.raises(ValueError, match="PEP 440"):
        v("not a version")
    with pytest.raises(ValueError, match="unknown"):
        ours.version("nope", "1")


# ------------------------------------------------------------------------------------------------
# Copies and pickles (both implementations: the reference's objects are plain Python objects)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_models_copy_and_pickle(api, files, tmp_path, how):
    import copy
    import pickle

    def clone(obj):
        return copy.deepcopy(obj) if how == "deepcopy" else pickle.loads(pickle.dumps(obj))

    model = simple_model(api, files)
    model.register_initialisation(str(files.init), name="imagenet")
    copied = clone(model)
    assert copied.checkpoint_collection == model.checkpoint_collection
    assert copied.checkpoint_collection is not model.checkpoint_collection
    assert copied.producer == model.producer and copied.initialisation == model.initialisation
    copied.save(str(tmp_path / "copied"))
    loaded = api.Model.load(str(tmp_path / "copied"))
    again = clone(loaded)
    assert str(again.path) == str(loaded.path)
    assert again.checkpoint_collection == loaded.checkpoint_collection
    again.name = "saved from a copy"
    again.save(str(tmp_path / "copied"))
    assert api.Model.load(str(tmp_path / "copied")).name == "saved from a copy"
    for component in (model.training, model.checkpoint_collection, model.checkpoint_collection[1],
                      model.producer.version):
        assert type(clone(component)) is type(component)


def test_a_deep_copy_shares_the_native_handles(ours, files, tmp_path):
    """A deep copy of a loaded model keeps what it knows of its folder: a save of the copy after
    another writer changed the folder is refused, as for the original. A pickled model (for
    another process) forgets it, like a model built from scratch."""
    import copy
    import pickle

    simple_model(ours, files).save(str(tmp_path / "model"))
    loaded = ours.Model.load(str(tmp_path / "model"))
    twin, stranger = copy.deepcopy(loaded), pickle.loads(pickle.dumps(loaded))
    assert twin.checkpoint_collection[1].hash == loaded.checkpoint_collection[1].hash
    other = ours.Model.load(str(tmp_path / "model"))
    other.name = "changed by another writer"
    other.save(str(tmp_path / "model"))
    with pytest.raises(FileExistsError, match="changed since"):
        twin.save(str(tmp_path / "model"))
    stranger.save(str(tmp_path / "model"))  # same id, valid model: saved over it
    assert ours.Model.load(str(tmp_path / "model")).name == "a model"


def test_core_oserrors_carry_errno(ours, tmp_path):
    import errno

    with pytest.raises(FileNotFoundError) as error:
        ours.validate(str(tmp_path / "missing"))
    assert error.value.errno == errno.ENOENT and str(tmp_path / "missing") in str(error.value)
    write(tmp_path / "a_file", "not a folder")
    with pytest.raises(NotADirectoryError) as error:
        ours.Model.load(str(tmp_path / "a_file" / "model"))
    assert error.value.errno == errno.ENOTDIR and str(tmp_path / "a_file") in str(error.value)


def test_a_writer_lock_held_elsewhere_is_a_blockingioerror(ours, files, tmp_path):
    """One writer at a time: a save waits ``lock_timeout`` seconds for the folder's lock, then
    raises BlockingIOError (an OSError) naming the holder."""
    import fcntl

    folder = tmp_path / "model"
    model = simple_model(ours, files)
    model.save(str(folder))
    with open(str(folder / ".pmf.lock"), "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process saving the model would
        with pytest.raises(BlockingIOError, match="being written"):
            model.save(str(folder), lock_timeout=0.2)
    model.save(str(folder), lock_timeout=0.2)
    with pytest.raises(ValueError, match="lock_timeout"):
        model.save(str(folder), lock_timeout=-1)


# ------------------------------------------------------------------------------------------------
# save's extra keyword arguments (ours)
# ------------------------------------------------------------------------------------------------
def test_save_without_syncing_still_writes_a_valid_model(ours, files, tmp_path):
    model = simple_model(ours, files)
    model.save(str(tmp_path / "model"), durable=False)
    ours.validate(str(tmp_path / "model"), strict=True)
    model.register_epoch(5)
    model.save(str(tmp_path / "model"), durable=False)
    assert ours.Model.load(str(tmp_path / "model")).training.latest_epoch == 5


def test_save_can_keep_the_files_of_deleted_checkpoints(ours, files, tmp_path):
    folder = tmp_path / "model"
    model = simple_model(ours, files)
    model.save(str(folder))
    del model.checkpoint_collection[1]
    model.save(str(folder), keep_unregistered_files=True)
    assert sorted(os.listdir(str(folder / "data" / "checkpoints"))) == ["w1.h5", "w2.h5"]
    ours.validate(str(folder), strict=True)
    # From then on the file is no PMF file of the model, and later saves leave it alone.
    model.save(str(folder))
    assert sorted(os.listdir(str(folder / "data" / "checkpoints"))) == ["w1.h5", "w2.h5"]
    assert list(ours.Model.load(str(folder)).checkpoint_collection.keys()) == ["best"]


def test_a_collection_holds_the_checkpoint_objects_themselves(api, files):
    first, third = api.Checkpoint(1, str(files.w1), 1), api.Checkpoint(3, str(files.w3), 1)
    collection = api.CheckpointCollection(first, third)
    assert collection[1] is first and collection.iloc[-1] is third and collection.eloc[1][3] is third
    assert collection.iloc[0:1] == (first,)
    first.name = "renamed"  # eloc builds a new collection of the selected checkpoints, by name
    assert list(collection.eloc[1].keys()) == ["renamed", 3]
    collection["copy"] = first  # stored as a copy named by its reference
    assert collection["copy"] is not first and collection["copy"].name == "copy" and collection["copy"] == first
    assert collection.latest == "copy"


def test_load_builds_instances_of_the_class_it_is_called_on(api, files, tmp_path):
    class Detector(api.Model):
        def describe(self):
            return "{} ({} checkpoints)".format(self.name, len(self.checkpoint_collection))

    simple_model(api, files).save(str(tmp_path / "model"))
    loaded = Detector.load(str(tmp_path / "model"))
    assert type(loaded) is Detector and loaded.describe() == "a model (2 checkpoints)"
    loaded.extra = "an attribute of the user's"
    loaded.save(str(tmp_path / "model"))
    assert type(api.Model.load(str(tmp_path / "model"))) is api.Model
