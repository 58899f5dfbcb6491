"""The exceptions raised for each refusal: their class, the built-in exception they subclass
(the reference's, so that code written for it keeps catching them), their data and message,
and pickling. Where the reference refuses the same thing, its exception is checked to be an
instance of the same built-in.

Also the incompatibilities with the reference fixed here: a ``Version`` subclass's own
``format`` property (2) and the wording of ``initialisation()`` errors (3).
"""

import errno
import fcntl
import os
import pickle

import pytest

import plums_model
from plums_model import exception
import yaml

from helpers import HASH, md5, simple_model, write


def read_metadata(folder):
    with open(os.path.join(str(folder), "metadata.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def roundtrip(error):
    """The error after a pickle round trip, checked to keep its class, message, errno and data."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert getattr(copy, "errno", None) == getattr(error, "errno", None)
    assert vars(copy) == vars(error)
    return copy


def caught(call, cls):
    with pytest.raises(cls) as info:
        call()
    assert type(info.value) is cls, type(info.value)
    return info.value


def test_every_precise_class_is_public_and_subclasses_the_reference_builtin():
    expected = {
        "ConcurrentChangeError": FileExistsError, "OtherModelError": FileExistsError,
        "ForeignFolderError": FileExistsError, "InvalidDestinationError": OSError,
        "InvalidSameModelError": OSError, "ModelLockedError": BlockingIOError,
        "InterruptedSaveError": FileNotFoundError, "WouldNotValidateError": ValueError,
        "ChecksumMismatchError": ValueError, "DestinationIsFileError": ValueError,
        "CheckpointWithoutEpochError": ValueError, "ModelNotFoundError": FileNotFoundError,
        "MetadataOffencesError": plums_model.PlumsModelTreeValidationError,
    }
    for name, base in expected.items():
        cls = getattr(plums_model, name)
        assert cls is getattr(exception, name) and not name.startswith("_")
        assert issubclass(cls, base), name
    assert issubclass(plums_model.MetadataOffencesError, plums_model.PlumsModelMetadataValidationError)
    assert issubclass(plums_model.ModelNotFoundError, plums_model.PlumsModelTreeValidationError)
    # The earlier private names still work, but what users see is public.
    assert exception._MissingModelError is plums_model.ModelNotFoundError
    assert exception._MetadataOffencesError is plums_model.MetadataOffencesError


# ------------------------------------------------------------------------------------------------
# Save refusals
# ------------------------------------------------------------------------------------------------
def test_concurrent_change(ours, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(ours, files).save(str(folder))
    mine, theirs = ours.Model.load(str(folder)), ours.Model.load(str(folder))
    theirs.name = "theirs"
    theirs.save(str(folder))
    mine.name = "mine"
    error = caught(lambda: mine.save(str(folder)), plums_model.ConcurrentChangeError)
    assert isinstance(error, FileExistsError) and isinstance(error, OSError)
    assert error.path == folder and "changed since" in str(error) and "overwrite_concurrent_changes" in str(error)
    roundtrip(error)
    assert ours.Model.load(str(folder)).name == "theirs"
    mine.save(str(folder), overwrite_concurrent_changes=True)
    assert ours.Model.load(str(folder)).name == "mine"


def test_other_model(ours, ref, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(ours, files, model_id="first").save(str(folder))
    for force in (False, True):
        error = caught(lambda: simple_model(ours, files, model_id="second").save(str(folder), force=force),
                       plums_model.OtherModelError)
        assert isinstance(error, FileExistsError)
        assert (error.path, error.found_id, error.saving_id) == (folder, "first", "second")
        assert "different PMF model" in str(error)
        assert roundtrip(error).found_id == "first"
    simple_model(ref, files, model_id="first").save(str(tmp_path / "ref"))
    with pytest.raises(OSError):
        simple_model(ref, files, model_id="second").save(str(tmp_path / "ref"))


def test_foreign_folder(ours, ref, files, tmp_path):
    write(tmp_path / "foreign" / "notes.txt", "mine")
    error = caught(lambda: simple_model(ours, files).save(str(tmp_path / "foreign")), plums_model.ForeignFolderError)
    assert isinstance(error, FileExistsError) and error.path == tmp_path / "foreign"
    assert "not a PMF model" in str(error) and "force" in str(error)
    roundtrip(error)
    with pytest.raises(OSError):
        simple_model(ref, files).save(str(tmp_path / "foreign"))


def test_invalid_destination(ours, ref, files, tmp_path):
    write(tmp_path / "model" / "metadata.yaml", "format: {}\n")
    error = caught(lambda: simple_model(ours, files).save(str(tmp_path / "model"), force=True),
                   plums_model.InvalidDestinationError)
    assert isinstance(error, OSError) and not isinstance(error, FileExistsError)
    assert "not a valid PMF metadata file" in str(error) and error.reason and error.reason in str(error)
    assert error.path is not None
    roundtrip(error)
    with pytest.raises(OSError):
        simple_model(ref, files).save(str(tmp_path / "model"))


def test_invalid_same_model(ours, ref, files, tmp_path):
    """Incompatibility 1's refusal: a new model object over a model with the same id whose
    checkpoint fails its checksum."""
    for api, folder in ((ours, tmp_path / "ours"), (ref, tmp_path / "ref")):
        simple_model(api, files).save(str(folder))
        write(folder / "data" / "checkpoints" / "w1.h5", b"corrupted")
    error = caught(lambda: simple_model(ours, files).save(str(tmp_path / "ours")), plums_model.InvalidSameModelError)
    assert isinstance(error, OSError) and error.path == tmp_path / "ours"
    assert "invalid PMF model with the same model id" in str(error)
    assert error.offences and all(isinstance(o, plums_model.Offence) for o in error.offences)
    assert any(o.location == "data/checkpoints/w1.h5" for o in error.offences), error.offences
    assert roundtrip(error).offences == error.offences
    with pytest.raises(OSError, match="invalid PMF model with the same model id"):
        simple_model(ref, files).save(str(tmp_path / "ref"))
    simple_model(ours, files).save(str(tmp_path / "ours"), force=True)
    ours.validate(str(tmp_path / "ours"), strict=True)


def test_model_locked(ours, files, tmp_path):
    folder = tmp_path / "model"
    model = simple_model(ours, files)
    model.save(str(folder))
    with open(str(folder / ".pmf.lock"), "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as another process saving the model would
        held.seek(0)
        held.truncate()
        held.write("pid 4242 on elsewhere since unix time 1700000000\n")
        held.flush()
        error = caught(lambda: model.save(str(folder), lock_timeout=0.1), plums_model.ModelLockedError)
    assert isinstance(error, BlockingIOError) and isinstance(error, OSError)
    assert "being written" in str(error)
    assert isinstance(error.holder, plums_model.LockHolder)
    assert error.waited >= 0.1 and error.path == folder
    if error.holder.pid is not None:  # the holder as recorded in the lock file
        assert error.holder == (4242, "elsewhere", 1700000000)
    assert roundtrip(error).holder == error.holder


def test_would_not_validate(ours, files, tmp_path):
    model = simple_model(ours, files, producer="a")
    error = caught(lambda: model.save(str(tmp_path / "model")), plums_model.WouldNotValidateError)
    assert isinstance(error, ValueError) and not isinstance(error, OSError)
    assert error.reasons and all(isinstance(r, plums_model.SaveProblem) for r in error.reasons)
    location, message = error.reasons[0]
    assert location == "producer.name" and 'producer name "a"' in message
    assert message in str(error)
    assert roundtrip(error).reasons == error.reasons
    assert not (tmp_path / "model").exists()


def test_checksum_mismatch(ours, files, tmp_path):
    model = simple_model(ours, files)
    source = write(files.root / "late" / "w9.h5", b"nine")
    model.add_checkpoint(ours.Checkpoint(9, str(source), 2))
    source.write_bytes(b"changed after hashing")
    error = caught(lambda: model.save(str(tmp_path / "model")), plums_model.ChecksumMismatchError)
    assert isinstance(error, ValueError)
    assert error.expected == md5_of(b"nine") and error.found == md5(source)
    assert error.path is not None and "w9.h5" in str(error.path)
    assert "does not have the checksum it was registered with" in str(error)
    roundtrip(error)


def md5_of(data):
    import hashlib

    return hashlib.md5(data).hexdigest()


def test_destination_is_a_file(ours, ref, files):
    error = caught(lambda: simple_model(ours, files).save(str(files.w1)), plums_model.DestinationIsFileError)
    assert isinstance(error, ValueError) and error.path == files.w1 and "is a file" in str(error)
    roundtrip(error)
    with pytest.raises(ValueError):
        simple_model(ref, files).save(str(files.w1))


def test_interrupted_save_error_carries_its_leftover(tmp_path):
    error = plums_model.InterruptedSaveError("interrupted", path=tmp_path / "m", leftover=tmp_path / "new")
    assert isinstance(error, FileNotFoundError) and str(error) == "interrupted"
    assert (error.path, error.leftover) == (tmp_path / "m", tmp_path / "new")
    assert roundtrip(error).leftover == tmp_path / "new"
    with pytest.raises(TypeError):
        plums_model.InterruptedSaveError("x", unknown=1)


# ------------------------------------------------------------------------------------------------
# Components and reading
# ------------------------------------------------------------------------------------------------
def test_checkpoint_without_epoch(api):
    collection = api.CheckpointCollection()
    with pytest.raises(ValueError, match="epoch is None") as info:
        collection.add(api.Checkpoint(1, hash=HASH))
    if api.ours:
        assert type(info.value) is plums_model.CheckpointWithoutEpochError and info.value.reference == 1
        roundtrip(info.value)


def test_model_not_found(ours, ref, tmp_path):
    error = caught(lambda: ours.validate(str(tmp_path / "missing")), plums_model.ModelNotFoundError)
    assert isinstance(error, FileNotFoundError) and isinstance(error, ours.PlumsModelTreeValidationError)
    assert error.errno == errno.ENOENT and error.path == tmp_path / "missing"
    assert error.offences == [("tree", ".", "{} does not exist".format(tmp_path / "missing"))]
    assert "ModelNotFoundError" in repr(error) and "_Missing" not in repr(error)
    copy = roundtrip(error)
    assert copy.offences == error.offences and copy.errno == errno.ENOENT
    with pytest.raises(ref.PlumsModelTreeValidationError):
        ref.validate(str(tmp_path / "missing"))


def test_metadata_offences(ours, ref, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(ours, files).save(str(folder))
    metadata = (folder / "metadata.yaml").read_text()
    (folder / "metadata.yaml").write_text(metadata.replace("name: faster_rcnn", "name: 'a'"))
    error = caught(lambda: ours.validate(str(folder)), plums_model.MetadataOffencesError)
    assert isinstance(error, ours.PlumsModelMetadataValidationError)
    assert isinstance(error, ours.PlumsModelTreeValidationError)
    assert [o.location for o in error.offences] == ["format.producer.name"]
    assert error.offences[0].kind == "metadata" and error.offences[0].message in str(error)
    assert roundtrip(error).offences == error.offences


def test_validation_messages_list_every_offence_only_when_verbose(ours, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(ours, files).save(str(folder))
    os.remove(str(folder / "config.py"))
    os.remove(str(folder / "data" / "checkpoints" / "w1.h5"))
    error = caught(lambda: ours.validate(str(folder)), ours.PlumsModelTreeValidationError)
    assert len(error.offences) == 2
    assert str(error).count("\n") == 0 and "first:" in str(error) and "verbose=True" in str(error)
    verbose = caught(lambda: ours.validate(str(folder), verbose=True), ours.PlumsModelTreeValidationError)
    assert verbose.offences == error.offences
    assert all(str(o) in str(verbose) for o in verbose.offences)


def test_operating_system_errors_are_the_builtin_classes_with_errno(ours, tmp_path):
    write(tmp_path / "a_file", "not a folder")
    error = caught(lambda: ours.Model.load(str(tmp_path / "a_file" / "model")), NotADirectoryError)
    assert error.errno == errno.ENOTDIR and str(tmp_path / "a_file") in str(error)


# ------------------------------------------------------------------------------------------------
# Incompatibility 2: a Version subclass's own ``format`` property
# ------------------------------------------------------------------------------------------------
def test_a_version_subclass_reports_its_registered_format(api, files, tmp_path):
    """In the reference, the metaclass sets ``format`` on every Version class, replacing a
    subclass's own property: its instances report the format the class is registered under,
    so a save writes that format."""

    class OwnFormat(api.Version):
        def __init__(self, value):
            self.value = str(value)

        def __str__(self):
            return self.value

        def __eq__(self, other):
            return isinstance(other, OwnFormat) and self.value == other.value

        def __lt__(self, other):
            return self.value < other.value

        def __hash__(self):
            return hash(self.value)

        @property
        def format(self):
            return "not_registered"

    api.register(OwnFormat)
    version = api.version("own_format", "1.2")
    assert OwnFormat.format == "own_format" and version.format == "own_format"
    model = api.Model("prod", "own_format", "1.2", "n", "i", str(files.config), {})
    assert model.producer.version.format == "own_format"
    model.save(str(tmp_path / "model"))
    assert read_metadata(tmp_path / "model")["format"]["producer"]["version"] == {"format": "own_format",
                                                                                    "value": "1.2"}
    assert type(api.Model.load(str(tmp_path / "model")).producer.version) is OwnFormat


# ------------------------------------------------------------------------------------------------
# Incompatibility 3: initialisation() wording
# ------------------------------------------------------------------------------------------------
def test_initialisation_errors_have_the_reference_wording(api, files, tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(OSError, match="does not exists"):
        api.initialisation(missing, name="x")
    model = simple_model(api, files, model_id="base")
    model.register_training_start(0)
    with pytest.raises(OSError, match="Invalid path provided: .* does not exists"):
        model.register_initialisation(missing, name="x")
    base = tmp_path / "base"
    simple_model(api, files, model_id="base").save(str(base))
    with pytest.raises(ValueError, match="points to a PMF model which does not contains 7 as a checkpoint"):
        api.initialisation(str(base), checkpoint_reference=7)
    with pytest.raises(ValueError, match="which does not contains"):
        model.register_initialisation(str(base), checkpoint_reference=7)
    with pytest.raises(ValueError, match="points to a file but name is None"):
        api.initialisation(str(files.init))
    with pytest.raises(ValueError, match="no checkpoint reference was given"):
        api.initialisation(str(base))
    with pytest.raises(OSError, match="must either be a PMF model or a weight file"):
        api.initialisation(str(files.root / "inputs"), name="x")


def test_initialisation_missing_path_is_a_filenotfounderror(ours, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exists"):
        ours.initialisation(str(tmp_path / "missing"), name="x")


def test_initialisation_checkpoint_keeps_its_name_object_and_hash(ours, files):
    checkpoint = ours.initialisation(str(files.init), name="imagenet")
    assert isinstance(checkpoint, ours.Checkpoint)
    assert (checkpoint.name, checkpoint.path, checkpoint.hash) == ("imagenet", files.init, md5(files.init))
