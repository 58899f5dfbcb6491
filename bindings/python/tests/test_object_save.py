"""Saving models to object storage from Python: ``Model.save("s3://...")``, initialisations read
from object storage, and interoperability with the reference ``plums.model`` through S3, against
the real S3 test server (SeaweedFS, the ``s3`` fixture of conftest.py). Without the server these
tests are skipped, unless ``PMF_REQUIRE_S3=1``: then they fail.

What the store holds is checked with boto3 (listings, downloads), never with our own reader
alone. Whether a save sent an object again is seen on the object itself: before the save, each
object that must not be sent gets user metadata (a copy onto itself, which keeps its content and
its ETag); any upload of the object drops it.
"""

import hashlib
import os
import pickle
import time
import traceback
from pathlib import Path

import pytest

import plums_model as pm
from helpers import fields, md5, reference_api, simple_model, write

MARK = "pmf-test-unsent"


# A cache of the test's own and no AWS_* variable from the caller's environment (conftest).
pytestmark = pytest.mark.usefixtures("isolated")


# ------------------------------------------------------------------------------------------------
# Helpers: the store as boto3 sees it
# ------------------------------------------------------------------------------------------------
def _prefix(s3, rel):
    return s3.key(rel) + "/"


def objects(s3, rel=""):
    """``{key relative to the prefix s3.key(rel): ETag}`` of every object under it."""
    prefix = _prefix(s3, rel)
    found = {}
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            found[o["Key"][len(prefix):]] = o["ETag"]
    return found


def upload(s3, folder, rel=""):
    """Upload every file under ``folder`` to the prefix ``s3.key(rel)``."""
    folder = Path(folder)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = _prefix(s3, rel) + path.relative_to(folder).as_posix()
            s3.client.put_object(Bucket=s3.bucket, Key=key, Body=path.read_bytes())


def download(s3, folder, rel=""):
    """Download every object under ``s3.key(rel)`` into ``folder``; the folder."""
    folder = Path(folder)
    for key in objects(s3, rel):
        body = s3.client.get_object(Bucket=s3.bucket, Key=_prefix(s3, rel) + key)["Body"].read()
        write(folder / key, body)
    return folder


def mark(s3, keys, rel=""):
    """Give the objects ``keys`` (relative to ``s3.key(rel)``) user metadata, content and ETag unchanged."""
    for key in keys:
        full = _prefix(s3, rel) + key
        before = s3.client.head_object(Bucket=s3.bucket, Key=full)["ETag"]
        s3.client.copy_object(Bucket=s3.bucket, Key=full, CopySource={"Bucket": s3.bucket, "Key": full},
                              Metadata={MARK: "1"}, MetadataDirective="REPLACE")
        assert s3.client.head_object(Bucket=s3.bucket, Key=full)["ETag"] == before


def unsent(s3, key, rel=""):
    """Whether the object ``key`` still has the mark: nothing uploaded it since :func:`mark`."""
    head = s3.client.head_object(Bucket=s3.bucket, Key=_prefix(s3, rel) + key)
    return head.get("Metadata", {}).get(MARK) == "1"


def tree(folder):
    """``{relative path: bytes}`` of every file under ``folder`` but the writer lock file of a
    local save (``.pmf.lock``, empty, left in place)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".pmf.lock"}


def full_model(files, model_id="model-1"):
    """A running model: checkpoints ``1`` and ``"best"``, a weight-file initialisation."""
    model = simple_model(pm, files, model_id=model_id)
    model.register_initialisation(str(files.init), name="imagenet")
    return model


MODEL_OBJECTS = {"metadata.yaml", "config.py", "data/build_parameters.yaml", "data/checkpoints/w1.h5",
                 "data/checkpoints/w2.h5", "data/initialisation/imagenet.h5"}


# ------------------------------------------------------------------------------------------------
# Saving a new model, a training loop
# ------------------------------------------------------------------------------------------------
def test_a_new_model_saved_to_s3_is_the_model_saved_locally(s3, files, tmp_path, isolated):
    model = full_model(files)
    model.save(s3.url(), storage_options=s3.storage_options)
    assert set(objects(s3)) == MODEL_OBJECTS  # no lock, no marker left
    model.save(tmp_path / "local")
    # Byte for byte the tree of a local save.
    assert tree(download(s3, tmp_path / "down")) == tree(tmp_path / "local")
    assert pm.validate(s3.url(), strict=True, storage_options=s3.storage_options) == \
        pm.validate(tmp_path / "local", strict=True)
    loaded = pm.Model.load(s3.url(), storage_options=s3.storage_options)
    assert fields(loaded) == fields(pm.Model.load(tmp_path / "local"))
    assert loaded.location == s3.url() and loaded.path is None
    for reference, checkpoint in loaded.checkpoint_collection.items():
        assert checkpoint.path.read_bytes() == Path(model.checkpoint_collection[reference].path).read_bytes()
        assert str(checkpoint.path).startswith(str(isolated))
    # A trailing "/" names the same prefix.
    model.register_epoch(3)
    model.save(s3.url() + "/", storage_options=s3.storage_options)
    assert pm.validate(s3.url(), storage_options=s3.storage_options)["model"]["training"]["latest_epoch"] == 3


def test_a_training_loop_sends_only_each_new_checkpoint(s3, files, tmp_path):
    url, options = s3.url(), s3.storage_options
    model = pm.Model("trainer", "py_pa", "1.0.0", "loop", "loop-1", str(files.config), {"lr": 0.01})
    model.register_training_start(0)
    model.save(url, storage_options=options)
    assert set(objects(s3)) == {"metadata.yaml", "config.py", "data/build_parameters.yaml"}
    mark(s3, ["config.py", "data/build_parameters.yaml"])
    for epoch in range(1, 6):
        weights = write(tmp_path / "run" / "epoch_{}.pt".format(epoch), ("weights of epoch %d\n" % epoch) * 1000)
        model.register_epoch(epoch)
        model.add_checkpoint(pm.Checkpoint(epoch, str(weights), epoch))
        model.save(url, storage_options=options)
        new = "data/checkpoints/epoch_{}.pt".format(epoch)
        assert not unsent(s3, new)
        for earlier in ["config.py", "data/build_parameters.yaml"] + [
                "data/checkpoints/epoch_{}.pt".format(e) for e in range(1, epoch)]:
            assert unsent(s3, earlier), (epoch, earlier)
        mark(s3, [new])
        metadata = pm.validate(url, storage_options=options)
        assert metadata["model"]["training"]["latest"] == epoch
    model.register_training_end(True)
    model.save(url, storage_options=options)
    assert all(unsent(s3, key) for key in objects(s3) if key != "metadata.yaml")

    loaded = pm.Model.load(url, storage_options=options)
    assert loaded.training.status == "finished" and loaded.training.end_epoch == 5
    assert list(loaded.checkpoint_collection.keys()) == [1, 2, 3, 4, 5]
    assert loaded.checkpoint_collection.latest == 5
    for epoch, checkpoint in loaded.checkpoint_collection.items():
        original = tmp_path / "run" / "epoch_{}.pt".format(epoch)
        assert checkpoint.epoch == epoch and checkpoint.hash == md5(original)
        assert checkpoint.path.read_bytes() == original.read_bytes()
    assert fields(loaded)["training"] == fields(model_local_copy(model, tmp_path))["training"]


def model_local_copy(model, tmp_path):
    model.save(tmp_path / "copy")
    return pm.Model.load(tmp_path / "copy")


# ------------------------------------------------------------------------------------------------
# Refusals: another model, a foreign prefix, a lost update, a held lock
# ------------------------------------------------------------------------------------------------
def test_saving_over_another_model_is_refused(s3, files):
    options = s3.storage_options
    full_model(files, model_id="first").save(s3.url(), storage_options=options)
    before = objects(s3)
    other = full_model(files, model_id="second")
    for force in (False, True):
        with pytest.raises(pm.OtherModelError) as caught:
            other.save(s3.url(), force=force, storage_options=options)
        error = caught.value
        assert isinstance(error, FileExistsError)
        assert (error.found_id, error.saving_id) == ("first", "second")
        assert error.path == s3.url()  # the URL, not a pathlib.Path folding "s3://" into "s3:/"
    assert objects(s3) == before
    assert other._token is None


def test_a_foreign_prefix_needs_force_and_keeps_its_objects(s3, files):
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key("notes.txt"), Body=b"not a model")
    model = full_model(files)
    with pytest.raises(pm.ForeignFolderError):
        model.save(s3.url(), storage_options=s3.storage_options)
    assert set(objects(s3)) == {"notes.txt"}
    model.save(s3.url(), force=True, storage_options=s3.storage_options)
    assert set(objects(s3)) == MODEL_OBJECTS | {"notes.txt"}
    pm.validate(s3.url(), strict=True, storage_options=s3.storage_options)


def test_a_lost_update_is_refused_and_nothing_is_lost(s3, files, tmp_path):
    url, options = s3.url(), s3.storage_options
    full_model(files).save(url, storage_options=options)
    a = pm.Model.load(url, storage_options=options)
    b = pm.Model.load(url, strict=False, storage_options=options)
    a.register_epoch(3)
    a.add_checkpoint(pm.Checkpoint(3, str(files.w3), 3))
    a.save(url, storage_options=options)
    after_a = objects(s3)

    b.register_epoch(3)
    b.add_checkpoint(pm.Checkpoint("b", str(write(tmp_path / "b.h5", b"b's weights")), 3))
    for _ in range(2):  # refused every time: b's state is still the one a replaced
        with pytest.raises(pm.ConcurrentChangeError) as caught:
            b.save(url, storage_options=options)
        assert isinstance(caught.value, FileExistsError) and caught.value.path == url
        assert "overwrite_concurrent_changes" in str(caught.value)
        assert objects(s3) == after_a  # nothing sent, nothing removed
    assert list(pm.Model.load(url, storage_options=options).checkpoint_collection.keys()) == [1, "best", 3]

    # b reloads and redoes its change: both updates are kept.
    b = pm.Model.load(url, strict=False, storage_options=options)
    b.add_checkpoint(pm.Checkpoint("b", str(tmp_path / "b.h5"), 3))
    b.save(url, storage_options=options)
    assert list(pm.Model.load(url, storage_options=options).checkpoint_collection.keys()) == [1, "best", 3, "b"]

    # a is stale now; overwrite_concurrent_changes makes the last writer win, on purpose.
    with pytest.raises(pm.ConcurrentChangeError):
        a.save(url, storage_options=options)
    a.save(url, overwrite_concurrent_changes=True, storage_options=options)
    assert list(pm.Model.load(url, storage_options=options).checkpoint_collection.keys()) == [1, "best", 3]
    assert "data/checkpoints/b.h5" not in objects(s3)  # the file it no longer registers
    pm.validate(url, strict=True, storage_options=options)


def test_a_new_model_object_with_the_same_id_replaces_a_valid_model(s3, files):
    """Not a lost update: a model object that never saw the prefix may replace a model with its
    id that validates strictly (as for a folder)."""
    full_model(files).save(s3.url(), storage_options=s3.storage_options)
    again = full_model(files)
    again.register_epoch(3)
    again.add_checkpoint(pm.Checkpoint(3, str(files.w3), 3))
    again.save(s3.url(), storage_options=s3.storage_options)
    loaded = pm.Model.load(s3.url(), storage_options=s3.storage_options)
    assert list(loaded.checkpoint_collection.keys()) == [1, "best", 3]


def test_a_held_lock_is_a_model_locked_error(s3, files):
    url, options = s3.url(), s3.storage_options
    model = full_model(files)
    model.save(url, storage_options=options)
    since = int(time.time())
    host = os.uname().nodename
    lock = "pid {} on {} since unix time {}\nexpires {}\n".format(os.getpid(), host, since, since + 3600)
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key(".pmf.lock"), Body=lock.encode())
    before = objects(s3)
    model.register_epoch(3)
    model.add_checkpoint(pm.Checkpoint(3, str(files.w3), 3))
    started = time.monotonic()
    with pytest.raises(pm.ModelLockedError) as caught:
        model.save(url, lock_timeout=0.5, storage_options=options)
    error = caught.value
    assert isinstance(error, BlockingIOError)
    assert time.monotonic() - started >= 0.5 and error.waited >= 0.5
    assert error.holder == pm.LockHolder(os.getpid(), host, since)
    assert objects(s3) == before  # the other writer's lock included
    s3.client.delete_object(Bucket=s3.bucket, Key=s3.key(".pmf.lock"))
    model.save(url, storage_options=options)
    assert ".pmf.lock" not in objects(s3)
    assert pm.validate(url, storage_options=options)["model"]["training"]["latest"] == 3


# ------------------------------------------------------------------------------------------------
# Configuration and secrets
# ------------------------------------------------------------------------------------------------
def aws_environment(monkeypatch, server, **overrides):
    values = {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": server.access_key_id,
              "AWS_SECRET_ACCESS_KEY": server.secret_access_key, "AWS_REGION": server.region,
              "AWS_ALLOW_HTTP": "true"}
    values.update(overrides)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_storage_options_win_over_the_environment(s3, files, monkeypatch):
    aws_environment(monkeypatch, s3.server, AWS_SECRET_ACCESS_KEY="wrong-env-secret-0123")
    model = full_model(files)
    with pytest.raises(pm.StoragePermissionError) as caught:
        model.save(s3.url())
    assert caught.value.kind == "permission_denied" and isinstance(caught.value, PermissionError)
    assert objects(s3) == {}
    model.save(s3.url(), storage_options={"secret_access_key": s3.server.secret_access_key})
    assert set(objects(s3)) == MODEL_OBJECTS
    # The right environment alone is enough; an explicit wrong secret wins over it.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.server.secret_access_key)
    model.register_epoch(3)
    model.save(s3.url())
    model.register_epoch(4)
    with pytest.raises(pm.StoragePermissionError):
        model.save(s3.url(), storage_options={"aws_secret_access_key": "wrong-explicit-secret-0123"})
    assert pm.validate(s3.url())["model"]["training"]["latest_epoch"] == 3
    with pytest.raises(pm.InvalidStorageOptionError):
        model.save(s3.url(), storage_options={"secret_acess_key": "x"})


def test_secrets_never_appear_in_errors_nor_in_reprs(s3, files):
    secret = "Sup3rSecretValue-never-shown-4242"
    real = s3.server.secret_access_key
    model = full_model(files)
    with pytest.raises(pm.StorageError) as caught:
        model.save(s3.url(), storage_options=dict(s3.storage_options, secret_access_key=secret))
    errors = [caught.value]
    model.save(s3.url(), storage_options=s3.storage_options)
    stale = pm.Model.load(s3.url(), strict=False, storage_options=s3.storage_options)
    model.register_epoch(3)
    model.save(s3.url(), storage_options=s3.storage_options)
    with pytest.raises(pm.ConcurrentChangeError) as caught:
        stale.save(s3.url(), storage_options=s3.storage_options)
    errors.append(caught.value)
    with pytest.raises(pm.OtherModelError) as caught:
        full_model(files, model_id="other").save(s3.url(), storage_options=s3.storage_options)
    errors.append(caught.value)
    for error in errors:
        shown = [str(error), repr(error), "".join(traceback.format_exception(type(error), error, error.__traceback__)),
                 repr(error.__dict__), repr(pickle.loads(pickle.dumps(error)).__dict__)]
        for text in shown:
            assert secret not in text and real not in text
    # A saved model, a loaded one and their parts never show the options they were reached with,
    # nor pickle them.
    for m in (model, stale):
        for text in (repr(m), repr(m._token), repr(m.checkpoint_collection), repr(vars(m)), repr(m.initialisation)):
            assert real not in text
        assert real.encode() not in pickle.dumps(m)


# ------------------------------------------------------------------------------------------------
# Saving a remote model: back where it was loaded from, and elsewhere
# ------------------------------------------------------------------------------------------------
def test_a_non_strict_load_saved_back_sends_only_the_new_objects(s3, files, tmp_path, isolated):
    url, options = s3.url(), s3.storage_options
    full_model(files).save(url, storage_options=options)
    mark(s3, MODEL_OBJECTS - {"metadata.yaml"})
    remote = pm.Model.load(url, strict=False, storage_options=options)
    assert all(c._remote_pending for c in remote.checkpoint_collection.values())
    remote.register_epoch(3)
    remote.add_checkpoint(pm.Checkpoint(3, str(files.w3), 3))
    remote.save(url, storage_options=options)
    assert set(objects(s3)) == MODEL_OBJECTS | {"data/checkpoints/w3.h5"}
    for key in MODEL_OBJECTS - {"metadata.yaml"}:
        assert unsent(s3, key), key
    # Nothing was downloaded for it: the old checkpoints are still unfetched.
    assert not list(isolated.rglob("*.h5"))
    assert remote.checkpoint_collection[1]._remote_pending
    # And again (the state after a save is the new one): a training loop on a lazily loaded model.
    remote.register_epoch(4)
    remote.add_checkpoint(pm.Checkpoint(4, str(write(tmp_path / "w4.h5", b"weights of epoch 4\n")), 4))
    remote.save(url, storage_options=options)
    assert unsent(s3, "data/checkpoints/w1.h5") and not list(isolated.rglob("*.h5"))
    loaded = pm.Model.load(url, storage_options=options)
    assert list(loaded.checkpoint_collection.keys()) == [1, "best", 3, 4]
    assert loaded.checkpoint_collection[1].path.read_bytes() == files.w1.read_bytes()
    assert loaded.initialisation.path.read_bytes() == files.init.read_bytes()


def test_a_non_strict_load_saved_elsewhere_fetches_its_unfetched_files(s3, files, tmp_path, monkeypatch):
    url, options = s3.url("origin"), s3.storage_options
    model = full_model(files)
    model.save(url, storage_options=options)
    expected = pm.validate(url, strict=True, storage_options=options)
    remote = pm.Model.load(url, strict=False, storage_options=options)
    assert remote.initialisation._remote_pending and remote.checkpoint_collection[1]._remote_pending
    # To a local folder, without storage options: the load's options fetch the checkpoints and
    # the initialisation file (no AWS_* variable is set).
    remote.save(tmp_path / "local")
    assert pm.validate(tmp_path / "local", strict=True) == expected
    model.save(tmp_path / "expected")
    assert tree(tmp_path / "local") == tree(tmp_path / "expected")
    # To another prefix.
    copy = pm.Model.load(url, strict=False, storage_options=options)
    copy.save(s3.url("copy"), storage_options=options)
    assert pm.validate(s3.url("copy"), strict=True, storage_options=options) == expected
    assert tree(download(s3, tmp_path / "down", "copy")) == tree(tmp_path / "expected")
    # Then the copy is where it saves: a new checkpoint sends only itself.
    mark(s3, MODEL_OBJECTS - {"metadata.yaml"}, "copy")
    copy.register_epoch(3)
    copy.add_checkpoint(pm.Checkpoint(3, str(files.w3), 3))
    copy.save(s3.url("copy"), storage_options=options)
    assert all(unsent(s3, key, "copy") for key in MODEL_OBJECTS - {"metadata.yaml"})
    assert list(pm.Model.load(s3.url("copy"), storage_options=options).checkpoint_collection.keys()) == \
        [1, "best", 3]
    # Without checkpoint files nothing is fetched for them (a new, empty cache shows it).
    monkeypatch.setenv("PMF_CACHE_DIR", str(tmp_path / "cache2"))
    lazy = pm.Model.load(url, strict=False, storage_options=options)
    lazy.save(s3.url("bare"), checkpoints=False, storage_options=options)
    assert sorted(p.name for p in (tmp_path / "cache2").rglob("*.h5")) == ["imagenet.h5"]
    assert "data/checkpoints/w1.h5" not in objects(s3, "bare")
    assert pm.validate(s3.url("bare"), checkpoints=False, storage_options=options)["model"]["training"][
        "checkpoints"][1]["path"] == "."


def test_an_unfetched_initialisation_file_is_fetched_on_first_access(s3, files, isolated):
    full_model(files).save(s3.url(), storage_options=s3.storage_options)
    remote = pm.Model.load(s3.url(), strict=False, storage_options=s3.storage_options)
    init = remote.initialisation
    assert init._remote_pending and not list(isolated.rglob("imagenet.h5"))
    text = repr(init)
    assert "not fetched" in text and s3.server.secret_access_key not in text
    path = init.path
    assert path.name == "imagenet.h5" and path.read_bytes() == files.init.read_bytes()
    assert str(path).startswith(str(isolated)) and not init._remote_pending and init.path == path
    # Verified: an object changed since the load is refused.
    again = pm.Model.load(s3.url(), strict=False, storage_options=s3.storage_options)
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key("data/initialisation/imagenet.h5"), Body=b"tampered")
    with pytest.raises(pm.ChecksumMismatchError):
        again.initialisation.path
    assert again.initialisation._remote_pending


def test_a_remote_model_with_a_pmf_initialisation_saves_back_and_elsewhere(s3, files, tmp_path):
    options = s3.storage_options
    base = full_model(files, model_id="base")
    base.save(s3.url("base"), storage_options=options)
    top = pm.Model("trainer", "py_pa", "2.0", "top", "top-1", str(files.config2), {"from": "base"})
    top.register_initialisation(s3.url("base"), checkpoint_reference="best", storage_options=options)
    top.register_training_start(0)
    top.register_epoch(1)
    top.add_checkpoint(pm.Checkpoint(1, str(files.w3), 1))
    top.save(s3.url("top"), storage_options=options)
    expected = pm.validate(s3.url("top"), strict=True, storage_options=options)
    assert expected["model"]["initialisation"]["pmf"]["id"] == "base"
    for strict in (True, False):
        expected = pm.validate(s3.url("top"), strict=True, storage_options=options)
        remote = pm.Model.load(s3.url("top"), strict=strict, storage_options=options)
        init = remote.initialisation
        assert isinstance(init, pm.Model) and init.id == "base" and init.checkpoint == "best"
        assert all(c.path is None for c in init.checkpoint_collection.values())
        folder = tmp_path / "local_{}".format(strict)
        remote.save(folder)
        assert pm.validate(folder, strict=True) == expected
        mark(s3, [k for k in objects(s3, "top") if k != "metadata.yaml"], "top")
        remote.register_epoch(2 if strict else 3)
        remote.save(s3.url("top"), storage_options=options)
        assert all(unsent(s3, k, "top") for k in objects(s3, "top") if k != "metadata.yaml")
        pm.validate(s3.url("top"), strict=True, storage_options=options)


# ------------------------------------------------------------------------------------------------
# Initialisations read from object storage
# ------------------------------------------------------------------------------------------------
def test_an_initialisation_from_a_remote_weight_file(s3, files, tmp_path, isolated):
    options = s3.storage_options
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key("weights/imagenet.h5"), Body=files.init.read_bytes())
    url = s3.url("weights/imagenet.h5")
    init = pm.initialisation(url, name="imagenet", storage_options=options)
    assert isinstance(init, pm.Checkpoint) and init.name == "imagenet" and init.hash == md5(files.init)
    assert init.path.name == "imagenet.h5" and str(init.path).startswith(str(isolated))
    assert init.path.read_bytes() == files.init.read_bytes()

    model = simple_model(pm, files)
    model.register_initialisation(url, name="imagenet", storage_options=options)
    model.save(tmp_path / "local")
    model.save(s3.url("model"), storage_options=options)
    expected = pm.validate(tmp_path / "local", strict=True)
    assert expected["model"]["initialisation"] == {"file": {
        "name": "imagenet", "path": "data/initialisation/imagenet.h5", "hash": md5(files.init)}}
    assert pm.validate(s3.url("model"), strict=True, storage_options=options) == expected
    loaded = pm.Model.load(s3.url("model"), storage_options=options)
    assert (loaded.initialisation.name, loaded.initialisation.hash) == ("imagenet", md5(files.init))
    assert loaded.initialisation.path.read_bytes() == files.init.read_bytes()
    # The same refusals as on disk.
    with pytest.raises(FileNotFoundError):
        pm.initialisation(s3.url("weights/nothing.h5"), name="x", storage_options=options)
    with pytest.raises(ValueError):
        pm.initialisation(url, storage_options=options)  # a weight file needs a name
    with pytest.raises(OSError):
        pm.initialisation(s3.url("weights"), name="x", storage_options=options)  # objects, no metadata.yaml


def test_an_initialisation_from_a_remote_model(s3, files, tmp_path):
    options = s3.storage_options
    base = full_model(files, model_id="base")
    base.save(s3.url("base"), storage_options=options)
    init = pm.initialisation(s3.url("base"), checkpoint_reference=1, storage_options=options)
    assert isinstance(init, pm.Model) and init.id == "base" and init.checkpoint == 1
    assert init.location == s3.url("base")
    assert Path(init.producer.configuration).read_bytes() == files.config.read_bytes()

    model = pm.Model("trainer", "py_pa", "2.0", "fine-tuned", "tuned-1", str(files.config2), {})
    model.register_initialisation(s3.url("base"), checkpoint_reference=1, storage_options=options)
    model.register_training_start(0)
    model.register_epoch(1)
    model.add_checkpoint(pm.Checkpoint(1, str(files.w3), 1))
    model.save(tmp_path / "local")
    model.save(s3.url("tuned"), storage_options=options)
    expected = pm.validate(tmp_path / "local", strict=True)
    assert expected["model"]["initialisation"]["pmf"]["id"] == "base"
    assert expected["model"]["initialisation"]["pmf"]["checkpoint"] == 1
    assert pm.validate(s3.url("tuned"), strict=True, storage_options=options) == expected
    assert tree(download(s3, tmp_path / "down", "tuned")) == tree(tmp_path / "local")
    loaded = pm.Model.load(s3.url("tuned"), storage_options=options)
    assert loaded.initialisation.id == "base" and loaded.initialisation.checkpoint == 1
    assert loaded.initialisation.initialisation.hash == md5(files.init)
    # A checkpoint reference is needed, and must be one of the model's.
    with pytest.raises(ValueError):
        pm.initialisation(s3.url("base"), storage_options=options)
    with pytest.raises((KeyError, ValueError)):
        pm.initialisation(s3.url("base"), checkpoint_reference=42, storage_options=options)
    with pytest.raises(FileNotFoundError):
        pm.initialisation(s3.url("nobody"), checkpoint_reference=1, storage_options=options)


# ------------------------------------------------------------------------------------------------
# Interoperability with the reference plums.model, both ways
# ------------------------------------------------------------------------------------------------
def test_a_model_saved_to_s3_validates_and_loads_in_the_reference(s3, files, tmp_path, harness):
    options = s3.storage_options
    full_model(files, model_id="base").save(s3.url("base"), storage_options=options)
    model = full_model(files)
    model.register_epoch(3)
    model.add_checkpoint(pm.Checkpoint("3", str(files.w3), 3))
    model.register_training_end(True)
    model.save(s3.url("model"), storage_options=options)
    top = pm.Model("trainer", "py_pa", "2.0", "top", "top-1", str(files.config2), {"from": ["base", 1]})
    top.register_initialisation(s3.url("base"), checkpoint_reference="best", storage_options=options)
    top.register_training_start(0)
    # A checkpoint: an object store has no empty folder, so a model without checkpoints downloaded
    # object by object would lack the data/checkpoints/ folder a local model needs.
    top.register_epoch(1)
    top.add_checkpoint(pm.Checkpoint(1, str(files.w3), 1))
    top.save(s3.url("top"), storage_options=options)
    ref = reference_api()
    for rel in ("model", "top"):
        folder = download(s3, tmp_path / "down_{}".format(rel), rel)
        assert pm.validate(folder, strict=True) == pm.validate(s3.url(rel), strict=True, storage_options=options)
        for mode in ({"strict": True}, {"strict": False}, {"strict": True, "checkpoints": False}):
            assert harness.verdict(str(folder), **mode)["valid"], (rel, mode, harness.verdict(str(folder), **mode))
        described = harness.describe(str(folder))
        assert described["ok"], described
        theirs = ref.Model.load(str(folder))
        ours = pm.Model.load(s3.url(rel), storage_options=options)
        assert (theirs.name, theirs.id, theirs.build_parameters) == (ours.name, ours.id, ours.build_parameters)
        assert theirs.training.status == ours.training.status
        assert list(theirs.checkpoint_collection.keys()) == list(ours.checkpoint_collection.keys())
        for reference, checkpoint in ours.checkpoint_collection.items():
            other = theirs.checkpoint_collection[reference]
            assert (other.epoch, other.hash) == (checkpoint.epoch, checkpoint.hash)
            assert Path(str(other.path)).read_bytes() == checkpoint.path.read_bytes()
    theirs = ref.Model.load(str(tmp_path / "down_top"))
    assert theirs.initialisation.id == "base" and theirs.initialisation.checkpoint == "best"
    theirs = ref.Model.load(str(tmp_path / "down_model"))
    assert (theirs.initialisation.name, theirs.initialisation.hash) == ("imagenet", md5(files.init))


def test_a_reference_model_uploaded_to_s3_loads_and_saves_back_with_a_new_epoch(s3, files, tmp_path, harness):
    options = s3.storage_options
    ref = reference_api()
    model = ref.Model("faster_rcnn", "py_pa", "1.0.0", "a model", "ref-model", str(files.config),
                      {"backbone": "resnet50", "layers": [1, 2, 3]})
    model.register_initialisation(str(files.init), name="imagenet")
    model.register_training_start(0)
    model.register_epoch(1)
    model.add_checkpoint(ref.Checkpoint(1, str(files.w1), 1))
    model.register_epoch(2)
    model.add_checkpoint(ref.Checkpoint("best", str(files.w2), 2))
    folder = tmp_path / "refsaved"
    model.save(str(folder))
    upload(s3, folder)
    uploaded = set(objects(s3))
    assert uploaded == MODEL_OBJECTS
    mark(s3, ["config.py", "data/checkpoints/w1.h5", "data/checkpoints/w2.h5", "data/initialisation/imagenet.h5"])

    ours = pm.Model.load(s3.url(), storage_options=options)
    assert ours.training.status == "running" and list(ours.checkpoint_collection.keys()) == [1, "best"]
    ours.register_epoch(3)
    ours.add_checkpoint(pm.Checkpoint(3, str(files.w3), 3))
    ours.register_training_end(True)
    ours.save(s3.url(), storage_options=options)
    assert set(objects(s3)) == uploaded | {"data/checkpoints/w3.h5"}
    for key in ("config.py", "data/checkpoints/w1.h5", "data/checkpoints/w2.h5", "data/initialisation/imagenet.h5"):
        assert unsent(s3, key), key

    down = download(s3, tmp_path / "down")
    for mode in ({"strict": True}, {"strict": False}):
        assert harness.verdict(str(down), **mode)["valid"], harness.verdict(str(down), **mode)
    theirs = ref.Model.load(str(down))
    assert theirs.training.status == "finished" and theirs.training.end_epoch == 3
    assert sorted(map(str, theirs.checkpoint_collection.keys())) == ["1", "3", "best"]
    assert theirs.checkpoint_collection[3].hash == md5(files.w3)
    assert Path(str(theirs.checkpoint_collection[3].path)).read_bytes() == files.w3.read_bytes()
    assert (theirs.initialisation.name, theirs.initialisation.hash) == ("imagenet", md5(files.init))
    assert theirs.build_parameters == {"backbone": "resnet50", "layers": [1, 2, 3]}
    assert pm.validate(down, strict=True) == pm.validate(s3.url(), strict=True, storage_options=options)
    assert hashlib.md5((down / "data" / "checkpoints" / "w1.h5").read_bytes()).hexdigest() == md5(files.w1)
