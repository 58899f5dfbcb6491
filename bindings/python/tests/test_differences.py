"""Where plums_model differs from the reference ``plums.model`` (PyPI ``plums`` 0.5.2), on purpose.

Each test states the difference and the reason in its docstring, asserts our behaviour and, where
it is cheap, the reference's. The first group is the list of PMF-SPEC (sections 2-4); the second
gathers smaller differences that follow from the same principles (clear errors instead of crashes,
nothing invalid written).
"""

import os
import threading

import pytest
import yaml

from helpers import HASH, md5, simple_model, write


def read_metadata(folder):
    with open(os.path.join(str(folder), "metadata.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def write_metadata(folder, metadata):
    with open(os.path.join(str(folder), "metadata.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(metadata, f)


@pytest.fixture
def saved(ours, files, tmp_path):
    folder = tmp_path / "model"
    simple_model(ours, files).save(str(folder))
    return folder


# ------------------------------------------------------------------------------------------------
# The differences PMF-SPEC lists
# ------------------------------------------------------------------------------------------------
def test_register_epoch_before_start_is_a_valueerror(ours, ref):
    """``register_epoch`` before ``start``: a ValueError saying to start first.

    The reference crashes with ``TypeError: unsupported operand type(s) for +=: 'NoneType' and
    'int'``, which says nothing about what the caller did wrong.
    """
    training = ours.Training()
    with pytest.raises(ValueError, match="start"):
        training.register_epoch()
    with pytest.raises(ValueError, match="start"):
        training.register_epoch(3)
    assert training.is_pending and training.latest_epoch is None
    with pytest.raises(TypeError):
        ref.Training().register_epoch()


def test_checkpoint_without_path_or_hash_is_a_valueerror(ours, ref):
    """``Checkpoint(name)`` with neither a path nor a hash: a ValueError naming both.

    The reference tries to hash the file ``'None'`` and raises ``FileNotFoundError: [Errno 2] No
    such file or directory: 'None'``.
    """
    with pytest.raises(ValueError, match="path.*hash|hash.*path"):
        ours.Checkpoint("x", epoch=1)
    with pytest.raises(FileNotFoundError, match="None"):
        ref.Checkpoint("x", epoch=1)


def test_one_letter_producer_name_is_refused_at_save(ours, ref, files, tmp_path):
    """A model that would not validate is not saved: a one-letter producer name is a ValueError
    at ``save``, and nothing is written.

    The reference writes the model, then refuses to load it (the producer name must match
    ``^[a-zA-Z][0-9a-zA-Z_]+$``).
    """
    destination = tmp_path / "one_letter"
    model = simple_model(ours, files, producer="a")
    with pytest.raises(ValueError, match='producer name "a"'):
        model.save(str(destination))
    assert not destination.exists()

    theirs = tmp_path / "one_letter_ref"
    simple_model(ref, files, producer="a").save(str(theirs))
    with pytest.raises(ref.PlumsModelTreeValidationError):
        ref.validate(str(theirs))


def test_every_offence_is_reported(ours, ref, saved):
    """Validation reports every offence at once: ``.offences`` lists them all (kind, location,
    message) and ``verbose=True`` puts them all in the message; without ``verbose`` the message
    names the first one and says how many there are.

    The reference stops at the first offence.
    """
    metadata = read_metadata(saved)
    metadata["format"]["producer"]["name"] = "a"
    metadata["model"]["training"]["status"] = "done"
    metadata["model"]["colour"] = "blue"
    write_metadata(saved, metadata)
    with pytest.raises(ours.PlumsModelMetadataValidationError) as error:
        ours.validate(str(saved))
    offences = error.value.offences
    assert sorted(o.location for o in offences) == ["format.producer.name", "model.colour", "model.training.status"]
    assert all(o.kind == "metadata" for o in offences)
    short = str(error.value)
    assert "3 offences" in short and "verbose=True" in short and short.count("\n") == 0
    with pytest.raises(ours.PlumsModelMetadataValidationError) as error:
        ours.Model.load(str(saved), verbose=True)
    message = str(error.value)
    for offence in offences:
        assert offence.location in message and offence.message in message
    with pytest.raises(ref.PlumsModelTreeValidationError) as error:
        ref.validate(str(saved), verbose=True)
    reported = sum(fragment in str(error.value) for fragment in ("name", "done", "colour"))
    assert reported == 1  # the reference names one offence only


def test_a_single_offence_is_named_in_the_short_message(ours, saved):
    """With one offence, the message without ``verbose`` says what it is."""
    os.remove(str(saved / "config.py"))
    with pytest.raises(ours.PlumsModelTreeValidationError) as error:
        ours.validate(str(saved))
    assert "1 offence" in str(error.value) and "config.py" in str(error.value)
    assert [(o.kind, o.location) for o in error.value.offences] == [("tree", "config.py")]


def test_metadata_offences_are_metadata_and_tree_errors(ours, ref, saved):
    """Metadata offences raise an exception that is both a ``PlumsModelMetadataValidationError``
    and a ``PlumsModelTreeValidationError``.

    The reference re-wraps every metadata error found in a folder into a tree error (through the
    ``schema`` library), so code written for it catches tree errors: it keeps working, while new
    code can tell metadata offences apart. Tree offences are tree errors only.
    """
    metadata = read_metadata(saved)
    metadata["model"]["training"]["latest"] = "nope"
    write_metadata(saved, metadata)
    for call in (lambda: ours.validate(str(saved)), lambda: ours.Model.load(str(saved))):
        with pytest.raises(ours.PlumsModelMetadataValidationError) as error:
            call()
        assert isinstance(error.value, ours.PlumsModelTreeValidationError)
    with pytest.raises(ref.PlumsModelTreeValidationError) as error:
        ref.validate(str(saved))
    assert not isinstance(error.value, ref.PlumsModelMetadataValidationError)

    metadata["model"]["training"]["latest"] = "best"  # valid metadata again, then a tree offence
    write_metadata(saved, metadata)
    os.remove(str(saved / "data" / "build_parameters.yaml"))
    with pytest.raises(ours.PlumsModelTreeValidationError) as error:
        ours.validate(str(saved))
    assert not isinstance(error.value, ours.PlumsModelMetadataValidationError)


@pytest.mark.parametrize("path", ["absolute", "../w1.h5", "data/other/w1.h5"])
def test_checkpoint_paths_outside_the_root_are_refused(ours, ref, saved, tmp_path, path):
    """Paths in the metadata must be relative, stay inside the model root, and checkpoint paths
    must lie in ``data/checkpoints/``: a model from an untrusted source cannot make us read,
    hash, copy or delete anything outside its root.

    The reference only looks up the last path component in ``data/checkpoints/`` for validation
    and then follows the path as written when loading.
    """
    outside = write(tmp_path / "w1.h5", (saved / "data" / "checkpoints" / "w1.h5").read_bytes())
    write(saved / "data" / "other" / "w1.h5", outside.read_bytes())
    metadata = read_metadata(saved)
    metadata["model"]["training"]["checkpoints"][1]["path"] = str(outside) if path == "absolute" else path
    write_metadata(saved, metadata)
    with pytest.raises(ours.PlumsModelTreeValidationError) as error:
        ours.Model.load(str(saved))
    assert [o.location for o in error.value.offences] == ["model.training.checkpoints.1.path"]
    ref.validate(str(saved), strict=True)  # the reference accepts it
    if path == "absolute":
        assert str(ref.Model.load(str(saved)).checkpoint_collection[1].path) == str(outside)


def test_configuration_path_escaping_the_root_is_refused(ours, saved):
    """The configuration path must not escape the model root either (both refuse this one)."""
    metadata = read_metadata(saved)
    metadata["model"]["configuration"]["path"] = "../config.py"
    write_metadata(saved, metadata)
    with pytest.raises(ours.PlumsModelTreeValidationError, match="config.py"):
        ours.validate(str(saved))


def test_symbolic_link_outside_the_root_is_refused(ours, saved, tmp_path):
    """A checkpoint file that is a symbolic link to a file outside the root is an offence (the
    reference follows it)."""
    checkpoint = saved / "data" / "checkpoints" / "w1.h5"
    outside = write(tmp_path / "elsewhere" / "w1.h5", checkpoint.read_bytes())
    checkpoint.unlink()
    os.symlink(str(outside), str(checkpoint))
    with pytest.raises(ours.PlumsModelTreeValidationError, match="w1.h5"):
        ours.validate(str(saved), strict=True)


def test_checkpoints_sharing_a_file_name_are_refused_at_save(ours, ref, files, tmp_path):
    """Two checkpoints whose different files share a name are refused at ``save`` (ValueError,
    nothing written): they would overwrite each other in ``data/checkpoints/``.

    The reference copies both to the same place: the model it writes fails strict validation.
    The same file registered twice (an alias) is fine.
    """
    other = write(tmp_path / "elsewhere" / "w1.h5", b"other weights")

    def model(api):
        m = simple_model(api, files, checkpoints=False)
        m.add_checkpoint(api.Checkpoint(1, str(files.w1), 1), api.Checkpoint(2, str(other), 2))
        return m

    with pytest.raises(ValueError, match="w1.h5"):
        model(ours).save(str(tmp_path / "ours"))
    assert not (tmp_path / "ours").exists()
    model(ref).save(str(tmp_path / "ref"))
    with pytest.raises(ref.PlumsModelTreeValidationError):
        ref.validate(str(tmp_path / "ref"), strict=True)

    alias = simple_model(ours, files, checkpoints=False)
    alias.add_checkpoint(ours.Checkpoint(1, str(files.w1), 1), ours.Checkpoint("best", str(files.w1), 1))
    alias.save(str(tmp_path / "alias"))
    ours.validate(str(tmp_path / "alias"), strict=True)


@pytest.mark.parametrize("name", ["metadata.yaml", "data"])
def test_configuration_named_like_a_pmf_file_is_refused(ours, ref, tmp_path, name):
    """A configuration file named ``metadata.yaml`` (or ``data``) would clobber the model: a
    ValueError at ``save``, nothing written. The reference overwrites its own configuration with
    the metadata and writes a model its ``validate`` then crashes on."""
    config = write(tmp_path / "in" / name, "# configuration\n")
    with pytest.raises(ValueError, match=name):
        ours.Model("prod", "py_pa", "1.0", "n", "i", str(config), {}).save(str(tmp_path / "ours"))
    assert not (tmp_path / "ours").exists()
    if name == "metadata.yaml":
        ref.Model("prod", "py_pa", "1.0", "n", "i", str(config), {}).save(str(tmp_path / "ref"))
        with pytest.raises((OSError, ref.PlumsValidationError)):  # 0.5.2 crashes: "File name too long"
            ref.validate(str(tmp_path / "ref"), strict=True)


def test_saving_into_an_existing_empty_folder_needs_no_force(ours, ref, files, tmp_path):
    """An existing empty folder is as good as a missing one: no ``force`` needed (a caller that
    makes a temporary folder first should not have to force). The reference raises OSError."""
    (tmp_path / "empty_ours").mkdir()
    simple_model(ours, files).save(str(tmp_path / "empty_ours"))
    ours.validate(str(tmp_path / "empty_ours"), strict=True)
    (tmp_path / "empty_ref").mkdir()
    with pytest.raises(OSError, match="already exists"):
        simple_model(ref, files).save(str(tmp_path / "empty_ref"))


def test_save_over_a_folder_changed_by_another_writer(ours, ref, saved):
    """A save over a folder that another writer changed since this model was loaded from (or
    saved to) it raises ``FileExistsError`` (an OSError) instead of silently losing the other
    update; ``overwrite_concurrent_changes=True`` saves anyway. The reference has no such check:
    the last writer wins."""
    first = ours.Model.load(str(saved))
    second = ours.Model.load(str(saved))
    second.name = "second"
    second.save(str(saved))
    first.name = "first"
    with pytest.raises(FileExistsError, match="changed since"):
        first.save(str(saved))
    assert ours.Model.load(str(saved)).name == "second"
    first.save(str(saved), overwrite_concurrent_changes=True)
    assert ours.Model.load(str(saved)).name == "first"
    first.name = "first again"  # after its own save, the model is in sync again
    first.save(str(saved))
    assert ours.Model.load(str(saved)).name == "first again"

    a, b = ref.Model.load(str(saved)), ref.Model.load(str(saved))
    b.name = "b"
    b.save(str(saved))
    a.name = "a"
    a.save(str(saved))
    assert ref.Model.load(str(saved)).name == "a"


def test_concurrent_saves_from_threads_leave_one_whole_model(ours, files, saved):
    """Saves are serialised by a lock and atomic: after two threads save the same model, the
    folder holds one of the two versions, whole (the reference can interleave two writes)."""
    models = [ours.Model.load(str(saved)) for _ in range(2)]
    errors = []

    def save(model, name):
        model.name = name
        try:
            model.save(str(saved), overwrite_concurrent_changes=True)
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=save, args=(m, "thread {}".format(i))) for i, m in enumerate(models)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ours.Model.load(str(saved)).name in ("thread 0", "thread 1")


def test_checkpoints_keep_insertion_order_in_metadata(ours, ref, files, tmp_path):
    """Checkpoints are written in insertion order (PMF-SPEC section 2); the reference's
    ``yaml.safe_dump`` sorts them when the references are comparable (all str or all int).
    ``latest`` is the last inserted one in both."""
    def model(api):
        m = simple_model(api, files, checkpoints=False)
        m.add_checkpoint(api.Checkpoint("zeta", str(files.w2), 2), api.Checkpoint("alpha", str(files.w1), 1))
        return m

    model(ours).save(str(tmp_path / "ours"))
    model(ref).save(str(tmp_path / "ref"))
    ours_metadata, ref_metadata = read_metadata(tmp_path / "ours"), read_metadata(tmp_path / "ref")
    assert list(ours_metadata["model"]["training"]["checkpoints"]) == ["zeta", "alpha"]
    assert list(ref_metadata["model"]["training"]["checkpoints"]) == ["alpha", "zeta"]
    assert ours_metadata["model"]["training"]["latest"] == ref_metadata["model"]["training"]["latest"] == "alpha"
    assert list(ours.Model.load(str(tmp_path / "ours")).checkpoint_collection.keys()) == ["zeta", "alpha"]


def test_loaded_latest_is_the_metadata_latest(ours, ref, files, tmp_path):
    """A loaded collection's ``latest`` is the metadata's ``latest``. The reference rebuilds the
    collection in file order and takes the last one, so a model it saved with sorted references
    loads with another ``latest`` than the one it wrote."""
    m = simple_model(ref, files, checkpoints=False)
    m.add_checkpoint(ref.Checkpoint("zeta", str(files.w2), 2), ref.Checkpoint("alpha", str(files.w1), 1))
    m.save(str(tmp_path / "ref"))
    assert read_metadata(tmp_path / "ref")["model"]["training"]["latest"] == "alpha"
    assert ours.Model.load(str(tmp_path / "ref")).checkpoint_collection.latest == "alpha"
    assert ref.Model.load(str(tmp_path / "ref")).checkpoint_collection.latest == "zeta"


@pytest.mark.parametrize("reference", [True, False])
def test_a_bool_is_not_a_checkpoint_reference(ours, ref, reference):
    """Checkpoint references are ints or strs, and a bool is neither: YAML would write ``true``,
    which no reference type reads back, and in Python ``True == 1`` would make it collide with
    the reference ``1``. A ValueError when added (``add`` or ``c[ref] = ...``). The reference
    accepts it, and then refuses ``1`` as a duplicate of ``True``."""
    checkpoint = ours.Checkpoint(reference, hash=HASH, epoch=1)
    with pytest.raises(ValueError, match="bool|int or a str"):
        ours.CheckpointCollection(checkpoint)
    collection = ours.CheckpointCollection()
    with pytest.raises(ValueError, match="int or a str"):
        collection[reference] = ours.Checkpoint(1, hash=HASH, epoch=1)
    assert len(collection) == 0
    theirs = ref.CheckpointCollection(ref.Checkpoint(reference, hash=HASH, epoch=1))
    with pytest.raises(KeyError):
        theirs.add(ref.Checkpoint(int(reference), hash=HASH, epoch=1))


@pytest.mark.parametrize("reference", [1.5, None, (1,)])
def test_other_types_are_not_checkpoint_references(ours, reference):
    """Only ints and strs can be written as PMF references."""
    with pytest.raises(ValueError, match="int or a str"):
        ours.CheckpointCollection(ours.Checkpoint(reference, hash=HASH, epoch=1))


# ------------------------------------------------------------------------------------------------
# Smaller differences, from the same principles
# ------------------------------------------------------------------------------------------------
def test_register_epoch_on_an_ended_training_is_a_valueerror(ours, ref):
    """``register_epoch`` needs a running training. On a finished or failed one the reference
    moves ``latest_epoch`` past ``end_epoch``, a combination its own validation then refuses."""
    for status in ("finished", "failed"):
        training = ours.Training(start_time=1, start_epoch=0, end_time=2, end_epoch=3, status=status)
        with pytest.raises(ValueError, match=status):
            training.register_epoch()
        assert training.latest_epoch == 3
    theirs = ref.Training(start_time=1, start_epoch=0, end_time=2, end_epoch=3, status="finished")
    theirs.register_epoch()
    assert theirs.latest_epoch == 4 > theirs.end_epoch


def test_replacing_a_checkpoint_with_one_without_epoch_is_a_valueerror(ours, ref):
    """``c[ref] = checkpoint`` with an epoch-less checkpoint is refused whether ``ref`` is new or
    not (the seed documents the ValueError); the reference stores it when replacing, and then
    writes ``epoch: null``, which no model may hold."""
    collection = ours.CheckpointCollection(ours.Checkpoint(1, hash=HASH, epoch=1))
    with pytest.raises(ValueError, match="epoch is None"):
        collection[1] = ours.Checkpoint("x", hash=HASH)
    assert collection[1].epoch == 1
    theirs = ref.CheckpointCollection(ref.Checkpoint(1, hash=HASH, epoch=1))
    theirs[1] = ref.Checkpoint("x", hash=HASH)
    assert theirs[1].epoch is None


def test_invalid_checkpoint_hash_is_a_valueerror(ours, ref):
    """A malformed MD5 given to ``Checkpoint`` is a ValueError (an invalid argument); the
    reference raises a ``PlumsValidationError`` (a ``schema.SchemaError``)."""
    with pytest.raises(ValueError, match="32 lowercase hexadecimal"):
        ours.Checkpoint("x", hash=HASH.upper())
    with pytest.raises(ref.PlumsValidationError):
        ref.Checkpoint("x", hash=HASH.upper())


def test_missing_model_folder_is_also_a_filenotfounderror(ours, ref, tmp_path):
    """``validate``/``Model.load`` of a folder that does not exist raise an error that is both a
    ``PlumsModelTreeValidationError`` (what the reference raises) and a ``FileNotFoundError``."""
    with pytest.raises(FileNotFoundError) as error:
        ours.Model.load(str(tmp_path / "missing"))
    assert isinstance(error.value, ours.PlumsModelTreeValidationError)
    assert [o.location for o in error.value.offences] == ["."]
    with pytest.raises(ref.PlumsModelTreeValidationError) as error:
        ref.Model.load(str(tmp_path / "missing"))
    assert not isinstance(error.value, OSError)


def test_unknown_version_format_in_metadata_is_refused_by_load(ours, ref, saved):
    """As in the reference, ``validate`` accepts a producer version format that is not
    registered (only ``py_pa`` versions are checked: other formats are the producer's), and
    ``load``, which builds the version, raises ValueError. Ours checks ``py_pa`` values in
    ``validate`` too."""
    metadata = read_metadata(saved)
    metadata["format"]["producer"]["version"]["format"] = "semver"
    write_metadata(saved, metadata)
    for api in (ours, ref):
        api.validate(str(saved))
        with pytest.raises(ValueError, match="semver"):
            api.Model.load(str(saved))
    metadata["format"]["producer"]["version"] = {"format": "py_pa", "value": "not a version"}
    write_metadata(saved, metadata)
    with pytest.raises(ours.PlumsModelMetadataValidationError, match="not a version") as error:
        ours.validate(str(saved))
    assert [o.location for o in error.value.offences] == ["format.producer.version.value"]


def test_unparsable_build_parameters_are_an_offence(ours, ref, saved):
    """``validate`` parses ``data/build_parameters.yaml`` too; the reference's ``validate``
    accepts any content and its ``load`` then raises a YAML error."""
    write(saved / "data" / "build_parameters.yaml", "a: [unclosed\n")
    with pytest.raises(ours.PlumsModelTreeValidationError, match="build_parameters.yaml"):
        ours.validate(str(saved))
    ref.validate(str(saved))
    with pytest.raises(yaml.YAMLError):
        ref.Model.load(str(saved))


def test_empty_initialisation_folder_is_an_offence_not_a_crash(ours, ref, files, tmp_path):
    """A file initialisation declared in the metadata whose ``data/initialisation/`` is empty is
    a tree offence. The reference's ``validate`` crashes with ``TypeError: argument of type
    'NoneType' is not iterable``."""
    model = simple_model(ours, files)
    model.register_initialisation(str(files.init), name="imagenet")
    model.save(str(tmp_path / "model"))
    os.remove(str(tmp_path / "model" / "data" / "initialisation" / "imagenet.h5"))
    with pytest.raises(ours.PlumsModelTreeValidationError, match="imagenet.h5"):
        ours.validate(str(tmp_path / "model"))
    with pytest.raises(TypeError):
        ref.validate(str(tmp_path / "model"))


def test_unknown_keyword_arguments_are_a_typeerror(ours, saved):
    """``save``, ``load`` and ``validate`` take ``**kwargs`` like the reference's, but an unknown
    keyword (a typo such as ``checkpoint=False``) is a TypeError instead of being ignored."""
    model = ours.Model.load(str(saved))
    with pytest.raises(TypeError, match="checkpoint"):
        model.save(str(saved), checkpoint=False)
    with pytest.raises(TypeError, match="checkpoint"):
        ours.Model.load(str(saved), checkpoint=False)
    with pytest.raises(TypeError, match="checkpoint"):
        ours.validate(str(saved), checkpoint=False)


def test_a_save_never_leaves_a_mixed_model(ours, files, saved):
    """A save refused half-way leaves the previous model whole: here a new checkpoint's file
    changes after it was hashed, so its copy fails the checksum check (a ValueError saying to
    register it again); the folder still holds the model as it was before the save. The
    reference writes whatever the file holds then, under the old checksum."""
    before = read_metadata(saved)
    model = ours.Model.load(str(saved))
    model.name = "changed"
    source = write(files.root / "late" / "w9.h5", b"nine")
    model.register_epoch(9)
    model.add_checkpoint(ours.Checkpoint(9, str(source), 9))
    source.write_bytes(b"changed after hashing")
    with pytest.raises(ours.module.ChecksumMismatchError, match="does not have the checksum it was registered with"):
        model.save(str(saved))
    assert read_metadata(saved) == before
    ours.validate(str(saved), strict=True)
    assert not (saved / "data" / "checkpoints" / "w9.h5").exists()
    assert md5(saved / "config.py") == before["model"]["configuration"]["hash"]


@pytest.mark.parametrize("field", ["model_id", "model_name"])
def test_non_str_name_or_id_is_refused_at_save(ours, ref, files, tmp_path, field):
    """The model id is a str and the name a str or None in PMF metadata: an int is a ValueError at
    ``save`` and nothing is written. The reference writes the model, then refuses to load it."""
    def model(api):
        arguments = dict(model_name="n", model_id="i")
        arguments[field] = 5
        return api.Model("prod", "py_pa", "1.0", configuration=str(files.config), build_parameters={}, **arguments)

    with pytest.raises(ValueError, match="must be a str"):
        model(ours).save(str(tmp_path / "ours"))
    assert not (tmp_path / "ours").exists()
    model(ref).save(str(tmp_path / "ref"))
    with pytest.raises(ref.PlumsModelTreeValidationError):
        ref.validate(str(tmp_path / "ref"))


def test_saving_over_itself_removes_the_files_of_deleted_checkpoints(ours, ref, files, tmp_path):
    """Saving a model over its folder after deleting a checkpoint from its collection removes that
    checkpoint's file from ``data/checkpoints/`` (which holds the registered checkpoints: a stale
    weight file there would pass for one). Files PMF does not own are never touched. The
    reference leaves the stale file."""
    for api in (ours, ref):
        folder = tmp_path / api.label
        simple_model(api, files).save(str(folder))
        write(folder / "data" / "notes.txt", "mine")
        loaded = api.Model.load(str(folder))
        del loaded.checkpoint_collection["best"]
        loaded.save(str(folder))
        remaining = sorted(os.listdir(str(folder / "data" / "checkpoints")))
        assert remaining == (["w1.h5"] if api.ours else ["w1.h5", "w2.h5"])
        assert (folder / "data" / "notes.txt").read_text() == "mine"
        api.validate(str(folder), strict=True)


def test_build_parameter_integers_beyond_64_bits_are_a_valueerror(ours, ref, files, tmp_path):
    """Build parameters hold 64-bit integers: a larger one is a ValueError at ``save`` (nothing
    written), and a ``build_parameters.yaml`` holding one is a metadata offence at ``validate``.
    The Rust core, like most non-Python consumers of a model (C++, JSON, YAML 1.2 readers),
    cannot represent it; the reference writes it, and only Python reads it back unchanged."""
    def model(api):
        return api.Model("prod", "py_pa", "1.0", "n", "i", str(files.config), {"size": 2 ** 64})

    with pytest.raises(ValueError, match="64 bits"):
        model(ours).save(str(tmp_path / "ours"))
    assert not (tmp_path / "ours").exists()
    model(ref).save(str(tmp_path / "ref"))
    assert ref.Model.load(str(tmp_path / "ref")).build_parameters == {"size": 2 ** 64}
    with pytest.raises(ours.PlumsModelMetadataValidationError) as error:
        ours.validate(str(tmp_path / "ref"))
    assert [o.location for o in error.value.offences] == ["data/build_parameters.yaml"]
    assert "64-bit" in error.value.offences[0].message


@pytest.mark.parametrize("value", [object(), {1, 2}, frozenset(), 1j])
def test_unsupported_build_parameter_types_are_a_typeerror(ours, ref, files, tmp_path, value):
    """Build parameters are dicts, lists (or tuples), str, int, float, bool, None, bytes, dates
    and datetimes: anything else is a TypeError at ``save``, before anything is written. The
    reference fails half-way with ``yaml.representer.RepresenterError`` for most of them
    (leaving a partial folder behind), and writes a set as ``!!set``, which PMF consumers other
    than PyYAML do not know."""
    with pytest.raises(TypeError, match="cannot store a"):
        ours.Model("prod", "py_pa", "1.0", "n", "i", str(files.config), {"x": value}).save(str(tmp_path / "ours"))
    assert not (tmp_path / "ours").exists()
    if type(value) is object:
        with pytest.raises(yaml.representer.RepresenterError):
            ref.Model("prod", "py_pa", "1.0", "n", "i", str(files.config), {"x": value}).save(str(tmp_path / "ref"))
        assert (tmp_path / "ref" / "data").is_dir()  # what the reference leaves behind


def test_os_errors_are_the_precise_oserror_subclasses(ours, ref, files, tmp_path):
    """Where the reference raises a plain ``OSError``, we raise the subclass that says what is
    wrong (``FileNotFoundError``, ``IsADirectoryError``, ``FileExistsError``): still OSErrors, so
    ``except OSError`` keeps working."""
    cases = [
        (lambda api: api.Producer("prod", "py_pa", "1.0", str(files.root / "missing.py")), FileNotFoundError),
        (lambda api: api.Producer("prod", "py_pa", "1.0", str(files.root)), IsADirectoryError),
        (lambda api: api.Checkpoint(1, str(files.root / "missing.h5")), FileNotFoundError),
        (lambda api: api.initialisation(str(files.root / "missing")), FileNotFoundError),
    ]
    write(tmp_path / "foreign" / "notes.txt", "mine")
    cases.append((lambda api: simple_model(api, files).save(str(tmp_path / "foreign")), FileExistsError))
    for call, precise in cases:
        with pytest.raises(precise):
            call(ours)
        with pytest.raises(OSError) as error:
            call(ref)
        assert type(error.value) is OSError
