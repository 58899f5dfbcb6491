"""Training, Checkpoint, CheckpointCollection, Producer and versions: same behaviour in both
implementations (every test runs against plums_model and against the reference plums.model)."""

import pytest

from helpers import HASH, make_version_class, md5, write

OTHER_HASH = "fedcba9876543210fedcba9876543210"
STATUSES = ["pending", "running", "failed", "finished"]


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------
def training_in(api, status):
    """A valid training in ``status``, built through the constructor."""
    if status == "pending":
        return api.Training()
    if status == "running":
        return api.Training(start_time=1, start_epoch=0, status="running")
    if status == "failed":
        return api.Training(status="failed")
    return api.Training(start_time=1, start_epoch=0, end_time=2, end_epoch=3, status="finished")


def test_training_defaults(api):
    training = api.Training()
    assert training.status == "pending"
    assert (training.start_epoch, training.start_timestamp, training.latest_epoch, training.latest_timestamp,
            training.end_epoch, training.end_timestamp) == (None,) * 6
    assert (training.is_pending, training.is_running, training.is_finished, training.is_failed) == (
        True, False, False, False)


def test_training_latest_defaults_to_end_then_start(api):
    training = api.Training(start_time=1, start_epoch=0, end_time=5.5, end_epoch=3, status="finished")
    assert (training.latest_epoch, training.latest_timestamp) == (3, 5.5)
    training = api.Training(start_time=1, start_epoch=0, status="running")
    assert (training.latest_epoch, training.latest_timestamp) == (0, 1)
    training = api.Training(start_time=1, start_epoch=0, latest_time=2, latest_epoch=1, end_time=3, end_epoch=2,
                            status="failed")
    assert (training.latest_epoch, training.latest_timestamp) == (1, 2)
    assert training.is_failed


def test_training_keeps_int_and_float_times(api):
    training = api.Training(start_time=10, start_epoch=0, latest_time=20.0, latest_epoch=1, status="running")
    assert type(training.start_timestamp) is int and type(training.latest_timestamp) is float


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(status="bogus"), "status"),
    (dict(start_time=1), "start_time"),
    (dict(start_time=1, start_epoch=0), "pending"),
    (dict(start_time=5, start_epoch=0, latest_time=1, latest_epoch=1, status="running"), "latest_time"),
    (dict(end_time=5, end_epoch=0, status="finished"), "end_time"),
    (dict(start_time=1, start_epoch=0, end_time=2, end_epoch=1, status="running"), "end_"),
    (dict(start_time=1, start_epoch=3, latest_time=2, latest_epoch=1, status="running"), "latest_epoch"),
])
def test_training_invalid_combinations_are_value_errors(api, kwargs, fragment):
    with pytest.raises(ValueError, match="(?i)invalid training") as error:
        api.Training(**kwargs)
    assert fragment in str(error.value)


def test_training_reports_every_broken_rule(api):
    with pytest.raises(ValueError) as error:
        api.Training(start_time=1)
    message = str(error.value)
    for fragment in ("start_time", "start_epoch", "pending"):
        assert fragment in message


# pending -> pending|running|failed; running -> running|finished|failed; failed -> failed; finished -> nothing.
ALLOWED = {("pending", "pending"), ("pending", "running"), ("pending", "failed"), ("running", "running"),
           ("running", "finished"), ("running", "failed"), ("failed", "failed")}


@pytest.mark.parametrize("current", STATUSES)
@pytest.mark.parametrize("new", STATUSES)
def test_training_status_machine(api, current, new):
    training = training_in(api, current)
    assert training.status == current
    if (current, new) in ALLOWED:
        training.status = new
        assert training.status == new
    else:
        with pytest.raises(ValueError, match="(?i)invalid training status"):
            training.status = new
        assert training.status == current


def test_training_status_must_be_known(api):
    training = api.Training()
    with pytest.raises(ValueError, match="(?i)invalid training status"):
        training.status = "done"


def test_training_start_register_end(api):
    training = api.Training()
    training.start(3)
    assert training.is_running
    assert training.start_epoch == training.latest_epoch == 3
    assert training.start_timestamp == training.latest_timestamp
    assert isinstance(training.start_timestamp, float)
    start = training.start_timestamp
    training.register_epoch()
    assert training.latest_epoch == 4
    assert training.latest_timestamp >= start
    training.register_epoch(10)
    assert training.latest_epoch == 10
    training.register_epoch(5)  # latest is max(latest, epoch)
    assert training.latest_epoch == 10
    training.end()
    assert training.is_finished
    assert (training.end_epoch, training.end_timestamp) == (training.latest_epoch, training.latest_timestamp)
    with pytest.raises(ValueError):
        training.start(0)
    with pytest.raises(ValueError):
        training.interrupt()


def test_training_interrupt(api):
    training = api.Training()
    training.start(7)
    training.register_epoch()
    training.interrupt()
    assert training.is_failed
    assert (training.end_epoch, training.end_timestamp) == (8, training.latest_timestamp)
    training.interrupt()  # failed -> failed is allowed
    with pytest.raises(ValueError):
        training.end()


def test_training_interrupt_before_start(api):
    training = api.Training()
    training.interrupt()
    assert training.is_failed and training.end_epoch is None and training.end_timestamp is None


def test_training_end_before_start_is_refused(api):
    with pytest.raises(ValueError, match="(?i)invalid training status"):
        api.Training().end()


# ------------------------------------------------------------------------------------------------
# Checkpoint
# ------------------------------------------------------------------------------------------------
def test_checkpoint_computes_the_md5(api, files):
    checkpoint = api.Checkpoint("a", str(files.w1), 1)
    assert checkpoint.hash == md5(files.w1)
    assert (checkpoint.name, checkpoint.epoch) == ("a", 1)
    assert str(checkpoint.path) == str(files.w1)


def test_checkpoint_keeps_a_given_hash(api, files):
    checkpoint = api.Checkpoint("a", str(files.w1), hash=HASH)
    assert checkpoint.hash == HASH and checkpoint.epoch is None
    assert api.Checkpoint(1, hash=HASH).path is None


def test_checkpoint_equality_and_hash_use_epoch_and_hash_only(api, files):
    a = api.Checkpoint("a", str(files.w1), 1)
    b = api.Checkpoint("b", hash=md5(files.w1), epoch=1)
    assert a == b and not a != b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != api.Checkpoint("a", str(files.w1), 2)
    assert a != api.Checkpoint("a", str(files.w2), 1)
    assert a != "a"


def test_checkpoint_missing_path_is_an_oserror(api, files):
    with pytest.raises(OSError, match="nope.h5"):
        api.Checkpoint("x", str(files.root / "nope.h5"))
    with pytest.raises(OSError, match="(?i)not a file"):
        api.Checkpoint("x", str(files.root))


@pytest.mark.parametrize("bad", ["XYZ", HASH.upper(), HASH[:31], HASH + "0", "g" * 32])
def test_checkpoint_invalid_hash_is_refused(api, bad):
    """Ours raises ValueError, the reference a PlumsValidationError (see test_differences.py)."""
    with pytest.raises((ValueError, api.PlumsValidationError)):
        api.Checkpoint("x", hash=bad)


# ------------------------------------------------------------------------------------------------
# CheckpointCollection
# ------------------------------------------------------------------------------------------------
def ckpt(api, name, epoch, digest=HASH):
    return api.Checkpoint(name, hash=digest, epoch=epoch)


@pytest.fixture
def collection(api):
    return api.CheckpointCollection(ckpt(api, 1, 1), ckpt(api, "1", 2), ckpt(api, "z", 2, OTHER_HASH))


def test_collection_empty(api):
    collection = api.CheckpointCollection()
    assert collection.latest is None and len(collection) == 0
    assert list(collection.keys()) == [] and collection.get(1) is None


def test_collection_mapping_protocol(api, collection):
    assert len(collection) == 3
    assert list(collection.keys()) == [1, "1", "z"]
    assert [c.epoch for c in collection.values()] == [1, 2, 2]
    assert [(r, c.name) for r, c in collection.items()] == [(1, 1), ("1", "1"), ("z", "z")]
    assert 1 in collection and "1" in collection and "z" in collection
    assert 2 not in collection and "2" not in collection
    assert collection[1].epoch == 1 and collection["1"].epoch == 2
    assert collection.get("z").hash == OTHER_HASH
    assert collection.get("nope") is None and collection.get("nope", 5) == 5
    with pytest.raises(KeyError):
        collection["nope"]


def test_collection_latest_is_the_last_added(api, collection):
    assert collection.latest == "z"
    collection.add(ckpt(api, 0, 0))
    assert collection.latest == 0


def test_collection_add_duplicate_reference_is_a_keyerror(api, collection):
    with pytest.raises(KeyError, match="already registered"):
        collection.add(ckpt(api, 1, 5))
    assert collection[1].epoch == 1 and collection.latest == "z"


def test_collection_add_without_epoch_is_a_valueerror(api, collection):
    with pytest.raises(ValueError, match="epoch is None"):
        collection.add(api.Checkpoint(7, hash=HASH))
    assert 7 not in collection and collection.latest == "z"
    with pytest.raises(ValueError, match="epoch is None"):
        api.CheckpointCollection(api.Checkpoint(7, hash=HASH))


def test_collection_setitem_adds_a_copy_with_the_new_name(api, collection):
    source = ckpt(api, "source", 3)
    collection["new"] = source
    assert collection.latest == "new"
    stored = collection["new"]
    assert stored.name == "new" and stored is not source and source.name == "source"
    assert stored == source and stored.hash == HASH and stored.epoch == 3
    assert list(collection.keys())[-1] == "new"


def test_collection_setitem_replaces_in_place_without_moving_latest(api, collection):
    collection[1] = ckpt(api, "other", 9, OTHER_HASH)
    assert list(collection.keys()) == [1, "1", "z"]
    assert collection[1].name == 1 and collection[1].epoch == 9 and collection[1].hash == OTHER_HASH
    assert collection.latest == "z"


def test_collection_setitem_copies_the_path(api, files):
    collection = api.CheckpointCollection()
    collection["a"] = api.Checkpoint("b", str(files.w1), 1)
    assert str(collection["a"].path) == str(files.w1)


def test_collection_setitem_new_without_epoch_is_a_valueerror(api, collection):
    with pytest.raises(ValueError, match="epoch is None"):
        collection["new"] = api.Checkpoint("x", hash=HASH)
    assert "new" not in collection


def test_collection_delitem_moves_latest(api, collection):
    del collection["z"]
    assert collection.latest == "1" and list(collection.keys()) == [1, "1"]
    del collection[1]
    assert collection.latest == "1"
    del collection["1"]
    assert collection.latest is None and len(collection) == 0
    with pytest.raises(KeyError):
        del collection["1"]


def test_collection_delete_not_latest_keeps_last(api, collection):
    del collection[1]
    assert collection.latest == "z"


def test_collection_eloc(api, collection):
    selected = collection.eloc[2]
    assert type(selected) is api.CheckpointCollection
    assert list(selected.keys()) == ["1", "z"] and selected.latest == "z"
    assert list(collection.eloc[1].keys()) == [1]
    with pytest.raises(IndexError, match="Invalid epoch number provided: 9"):
        collection.eloc[9]


def test_collection_iloc(api, collection):
    assert collection.iloc[0].name == 1
    assert collection.iloc[-1].name == "z"
    sliced = collection.iloc[0:2]
    assert isinstance(sliced, tuple) and [c.name for c in sliced] == [1, "1"]
    assert collection.iloc[5:] == ()
    with pytest.raises(IndexError):
        collection.iloc[3]


def test_collection_equality_is_set_equality(api):
    a = api.CheckpointCollection(ckpt(api, 1, 1), ckpt(api, 2, 2))
    b = api.CheckpointCollection(ckpt(api, 2, 2), ckpt(api, 1, 1))
    assert a == b and not a != b
    assert a != api.CheckpointCollection(ckpt(api, 1, 1))
    assert a != api.CheckpointCollection(ckpt(api, 1, 1), ckpt(api, 3, 2))  # other reference
    assert a != api.CheckpointCollection(ckpt(api, 1, 1), ckpt(api, 2, 3))  # other epoch
    assert api.CheckpointCollection() == api.CheckpointCollection()
    with pytest.raises(TypeError):
        hash(a)


def test_collection_int_and_str_references_differ(api):
    collection = api.CheckpointCollection(ckpt(api, 1, 1), ckpt(api, "1", 2))
    assert len(collection) == 2 and collection[1].epoch == 1 and collection["1"].epoch == 2
    assert collection != api.CheckpointCollection(ckpt(api, 1, 1), ckpt(api, 2, 2))


# ------------------------------------------------------------------------------------------------
# Producer
# ------------------------------------------------------------------------------------------------
def test_producer_fields(api, files):
    producer = api.Producer("faster_rcnn", "py_pa", "1.0.0-RC1", str(files.config))
    assert producer.name == "faster_rcnn"
    assert str(producer.version) == "1.0.0rc1" and producer.version.format == "py_pa"
    assert str(producer.configuration) == str(files.config)


def test_producer_equality_and_ordering(api, files):
    a = api.Producer("prod", "py_pa", "1.0", str(files.config))
    b = api.Producer("prod", "py_pa", "1.0.0", str(files.config2))
    c = api.Producer("prod", "py_pa", "2.0", str(files.config))
    other = api.Producer("other", "py_pa", "2.0", str(files.config))
    assert a == b and not a != b  # same name and version, other configuration
    assert a < c and c > a and a <= b and a >= b and not c < a
    assert a != other and not a < other and not other < a  # other names are not ordered
    assert a != "prod"
    with pytest.raises(TypeError):
        hash(a)


def test_producer_strict_equals_compares_configuration_contents(api, files):
    a = api.Producer("prod", "py_pa", "1.0", str(files.config))
    same = write(files.root / "copy" / "conf.py", files.config.read_bytes())
    assert a.strict_equals(api.Producer("prod", "py_pa", "1.0.0", str(same)))
    assert not a.strict_equals(api.Producer("prod", "py_pa", "1.0", str(files.config2)))
    assert not a.strict_equals(api.Producer("prod", "py_pa", "1.1", str(files.config)))
    same_size = write(files.root / "size" / "conf.py", files.config.read_bytes()[:-1] + b"!")
    assert not a.strict_equals(api.Producer("prod", "py_pa", "1.0", str(same_size)))


def test_producer_missing_configuration_is_an_oserror(api, files):
    with pytest.raises(OSError, match="(?i)invalid configuration.*missing.py"):
        api.Producer("prod", "py_pa", "1.0", str(files.root / "missing.py"))
    with pytest.raises(OSError, match="(?i)not a file"):
        api.Producer("prod", "py_pa", "1.0", str(files.root))


def test_producer_unknown_version_format_is_a_valueerror(api, files):
    with pytest.raises(ValueError, match="Invalid version format provided: semver is unknown"):
        api.Producer("prod", "semver", "1.0", str(files.config))


def test_producer_invalid_pep440_version_is_a_valueerror(api, files):
    with pytest.raises(ValueError):
        api.Producer("prod", "py_pa", "not a version", str(files.config))


# ------------------------------------------------------------------------------------------------
# Versions
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given, normalised", [
    ("1.0", "1.0"), ("1.0.0-RC1", "1.0.0rc1"), ("v2!1.0-post1.DEV2", "2!1.0.post1.dev2"), ("1.0a", "1.0a0"),
    ("1.0-1", "1.0.post1"), ("01.002", "1.2"), ("1.0+Local.7", "1.0+local.7"), (" 1.0 ", "1.0"),
    ("1.0.0.dev", "1.0.0.dev0"), ("1.0c1", "1.0rc1"),
])
def test_pypa_normalisation(api, given, normalised):
    version = api.version("py_pa", given)
    assert isinstance(version, api.PyPA) and isinstance(version, api.Version)
    assert str(version) == normalised and version.version == normalised
    assert version.format == "py_pa" and api.PyPA.format == "py_pa"
    assert repr(version) == "PyPA({})".format(normalised)


@pytest.mark.parametrize("lower, higher", [
    ("1.0.dev1", "1.0a1"), ("1.0a1", "1.0b1"), ("1.0b2", "1.0rc1"), ("1.0rc1", "1.0"), ("1.0", "1.0.post1"),
    ("1.0", "1.0+local"), ("1.9", "1.10"), ("1!0.1", "2!0.0"), ("1.0.post1.dev1", "1.0.post1"),
])
def test_pypa_ordering(api, lower, higher):
    a, b = api.version("py_pa", lower), api.version("py_pa", higher)
    assert a < b and b > a and a != b and not b < a


def test_pypa_equality(api):
    assert api.version("py_pa", "1.0") == api.version("py_pa", "1.0.0")
    assert api.version("py_pa", "1.0-RC1") == api.PyPA("1.0rc1")


@pytest.mark.parametrize("value", ["not a version", "", "1.0-foo"])
def test_pypa_invalid_is_a_valueerror(api, value):
    with pytest.raises(ValueError):
        api.version("py_pa", value)


def test_unknown_version_format_is_a_valueerror(api):
    with pytest.raises(ValueError, match="Invalid version format provided: nope is unknown"):
        api.version("nope", "1.0")


def test_register_a_custom_version_class(api, files):
    CalVer = make_version_class(api.Version, "MyCalVer")
    assert CalVer.format == "my_cal_ver"
    api.register(CalVer)
    version = api.version("my_cal_ver", "2020.01.3")
    assert type(version) is CalVer
    assert str(version) == version.version == "2020.1.3" and version.format == "my_cal_ver"
    assert version < api.version("my_cal_ver", "2021.1") and version == api.version("my_cal_ver", "2020.1.3")
    producer = api.Producer("prod", "my_cal_ver", "2020.01", str(files.config))
    assert str(producer.version) == "2020.1" and producer.version.format == "my_cal_ver"
    assert producer < api.Producer("prod", "my_cal_ver", "2020.2", str(files.config))


def test_register_with_a_hook(api):
    HookVer = make_version_class(api.Version, "HookVer")

    def hook(instance):
        instance.hooked = True
        return instance

    api.register(HookVer, hook)
    assert api.version("hook_ver", "1.2").hooked
    api.register(HookVer)  # registering again without a hook removes it
    assert not hasattr(api.version("hook_ver", "1.2"), "hooked")


def test_version_format_is_the_snake_case_class_name(api):
    for name, expected in [("SemVer", "sem_ver"), ("PyPA", "py_pa"), ("Simple", "simple"),
                           ("HTTPVersion2", "http_version2")]:
        assert make_version_class(api.Version, name).format == expected


def test_version_is_abstract(api):
    with pytest.raises(TypeError):
        api.Version()
