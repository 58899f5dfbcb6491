"""Models on object storage from Python: ``Model.load`` and ``validate`` on ``s3://`` URLs, against
the real S3 test server (SeaweedFS, the ``s3`` fixture of conftest.py), and the rule that a ``str``
with a scheme is never a local path in any entry point that takes a location.

Models are written to a local folder (by us or by the reference ``plums.model``) and uploaded with
boto3, so that what is read from the store is independent of our own writer (saves to object
storage are tested in test_object_save.py).
"""

import hashlib
import os
import pickle
import traceback
from pathlib import Path

import pytest

import plums_model as pm
from helpers import fields, md5, reference_api, simple_model, write


# A cache of the test's own and no AWS_* variable from the caller's environment (conftest).
pytestmark = pytest.mark.usefixtures("isolated")


def upload(s3, folder, rel=""):
    """Upload every file under ``folder`` to ``s3.key(rel)/...``; the keys uploaded."""
    folder = Path(folder)
    keys = []
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = s3.key((rel + "/" if rel else "") + path.relative_to(folder).as_posix())
            s3.client.put_object(Bucket=s3.bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
    return keys


def full_model(files, tmp_path):
    """A finished model with two checkpoints and a weight-file initialisation, saved locally."""
    model = simple_model(pm, files)
    model.register_initialisation(str(files.init), name="imagenet")
    model.register_epoch(3)
    model.add_checkpoint(pm.Checkpoint(3, str(files.w3), 3))
    model.register_training_end(True)
    folder = tmp_path / "local" / "model"
    model.save(folder)
    return folder


def check_files(local, remote, cache):
    """Every checkpoint of ``remote`` is a readable local cache file with the bytes of ``local``'s."""
    for reference, checkpoint in remote.checkpoint_collection.items():
        path = checkpoint.path
        assert isinstance(path, Path) and path.is_file()
        assert str(path).startswith(str(cache)), path
        assert path.read_bytes() == local.checkpoint_collection[reference].path.read_bytes()
        assert hashlib.md5(path.read_bytes()).hexdigest() == checkpoint.hash


# ------------------------------------------------------------------------------------------------
# Loading and validating from S3
# ------------------------------------------------------------------------------------------------
def test_strict_load_from_s3_equals_the_local_load(s3, files, tmp_path, isolated):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    local = pm.Model.load(folder)
    remote = pm.Model.load(s3.url(), storage_options=s3.storage_options)
    assert fields(remote) == fields(local)
    assert remote.path is None and remote.location == s3.url()
    assert local.location == folder
    check_files(local, remote, isolated)
    # The initialisation weight file is fetched and verified by a strict load too.
    assert remote.initialisation.path.read_bytes() == files.init.read_bytes()
    assert Path(remote.producer.configuration).read_bytes() == files.config.read_bytes()


def test_non_strict_load_fetches_a_checkpoint_on_first_access_of_its_path(s3, files, tmp_path, isolated):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    local = pm.Model.load(folder)
    remote = pm.Model.load(s3.url(), strict=False, storage_options=s3.storage_options)
    assert fields(remote) == fields(local)
    checkpoint = remote.checkpoint_collection[1]
    # Nothing large downloaded yet; a repr does not download and shows no secret.
    assert checkpoint._remote_pending
    text = repr(checkpoint)
    assert "not fetched" in text and s3.server.secret_access_key not in text
    assert not list(isolated.rglob("*.h5")) and checkpoint._remote_pending
    path = checkpoint.path
    assert not checkpoint._remote_pending and checkpoint.path == path
    assert path.read_bytes() == files.w1.read_bytes()
    with open(path, "rb") as f:  # what torch.load(checkpoint.path) does
        assert f.read() == files.w1.read_bytes()
    # The other checkpoints: through fetch_checkpoint, or their path.
    assert remote.fetch_checkpoint("best").read_bytes() == files.w2.read_bytes()
    check_files(local, remote, isolated)


def test_a_fetched_checkpoint_is_verified(s3, files, tmp_path):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    remote = pm.Model.load(s3.url(), strict=False, storage_options=s3.storage_options)
    # The object changes after the load: the fetch verifies the registered MD5.
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key("data/checkpoints/w1.h5"), Body=b"tampered")
    with pytest.raises(pm.ChecksumMismatchError) as caught:
        remote.checkpoint_collection[1].path
    assert caught.value.expected == md5(files.w1)
    assert caught.value.found == hashlib.md5(b"tampered").hexdigest()
    assert remote.checkpoint_collection[1]._remote_pending


def test_a_remote_model_saves_to_a_local_folder(s3, files, tmp_path):
    """A copy down: after a strict load, from the cache; after a non-strict one, the unfetched
    checkpoints are fetched (verified) for the save."""
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    remote = pm.Model.load(s3.url(), storage_options=s3.storage_options)
    remote.save(tmp_path / "copy")
    assert pm.validate(tmp_path / "copy", strict=True) == pm.validate(folder, strict=True)
    # Non-strict (test_object_save.py saves a non-strict load with an initialisation file too).
    plain = simple_model(pm, files)
    plain.save(tmp_path / "plain")
    upload(s3, tmp_path / "plain", "plain")
    remote = pm.Model.load(s3.url("plain"), strict=False, storage_options=s3.storage_options)
    assert remote.checkpoint_collection[1]._remote_pending
    remote.save(tmp_path / "plain-copy")
    assert pm.validate(tmp_path / "plain-copy", strict=True) == pm.validate(tmp_path / "plain", strict=True)


def test_validate_from_s3_returns_the_local_metadata(s3, files, tmp_path):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    expected = pm.validate(folder, strict=True)
    assert pm.validate(s3.url(), storage_options=s3.storage_options) == expected
    assert pm.validate(s3.url(), strict=True, storage_options=s3.storage_options) == expected
    assert pm.validate(s3.url() + "/", strict=True, storage_options=s3.storage_options) == expected


def test_a_corrupted_object_is_a_tree_validation_error_with_a_checksum_offence(s3, files, tmp_path):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key("data/checkpoints/w2.h5"), Body=b"corrupted weights\n")
    # Not strict: the checksums are not compared, the model is valid.
    pm.validate(s3.url(), storage_options=s3.storage_options)
    for call in (lambda: pm.validate(s3.url(), strict=True, storage_options=s3.storage_options),
                 lambda: pm.Model.load(s3.url(), storage_options=s3.storage_options)):
        with pytest.raises(pm.PlumsModelTreeValidationError) as caught:
            call()
        offences = caught.value.offences
        assert [o.location for o in offences] == ["data/checkpoints/w2.h5"], offences
        assert offences[0].kind == "tree" and "checksum" in offences[0].message.lower()


def test_a_missing_prefix_is_a_storage_not_found_error(s3):
    for call in (lambda: pm.validate(s3.url("nothing"), storage_options=s3.storage_options),
                 lambda: pm.Model.load(s3.url("nothing"), storage_options=s3.storage_options)):
        with pytest.raises(pm.StorageError) as caught:
            call()
        error = caught.value
        assert isinstance(error, FileNotFoundError) and isinstance(error, pm.StorageNotFoundError)
        assert error.kind == "not_found" and error.location == s3.url("nothing")
        assert s3.url("nothing") in str(error)


def test_a_missing_bucket_is_a_storage_error(s3):
    with pytest.raises(pm.StorageError) as caught:
        pm.Model.load("s3://no-such-bucket-pmf/m", storage_options=s3.storage_options)
    assert caught.value.kind in ("not_found", "other"), caught.value.kind


# ------------------------------------------------------------------------------------------------
# Interoperability: a model saved by the reference plums.model
# ------------------------------------------------------------------------------------------------
def test_a_reference_saved_model_uploaded_with_boto3_loads_strictly(s3, files, tmp_path, isolated):
    ref = reference_api()
    model = ref.Model("faster_rcnn", "py_pa", "1.0.0", "a model", "ref-model", str(files.config),
                      {"backbone": "resnet50", "layers": [1, 2, 3]})
    model.register_training_start(0)
    model.register_epoch(1)
    model.add_checkpoint(ref.Checkpoint(1, str(files.w1), 1))
    model.register_epoch(2)
    model.add_checkpoint(ref.Checkpoint("best", str(files.w2), 2))
    model.register_training_end(True)
    folder = tmp_path / "refsaved"
    model.save(str(folder))
    upload(s3, folder)
    ours = pm.Model.load(s3.url(), storage_options=s3.storage_options)
    theirs = ref.Model.load(str(folder))
    assert (ours.name, ours.id, ours.build_parameters) == (theirs.name, theirs.id, theirs.build_parameters)
    assert ours.training.status == theirs.training.status == "finished"
    assert list(ours.checkpoint_collection.keys()) == list(theirs.checkpoint_collection.keys())
    for reference, checkpoint in ours.checkpoint_collection.items():
        other = theirs.checkpoint_collection[reference]
        assert (checkpoint.epoch, checkpoint.hash) == (other.epoch, other.hash)
        assert checkpoint.path.read_bytes() == Path(str(other.path)).read_bytes()
    assert pm.validate(s3.url(), strict=True, storage_options=s3.storage_options) == pm.validate(folder)


# ------------------------------------------------------------------------------------------------
# Configuration: storage_options and the AWS_* environment
# ------------------------------------------------------------------------------------------------
def aws_environment(monkeypatch, server, **overrides):
    values = {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": server.access_key_id,
              "AWS_SECRET_ACCESS_KEY": server.secret_access_key, "AWS_REGION": server.region,
              "AWS_ALLOW_HTTP": "true"}
    values.update(overrides)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_the_environment_alone_is_enough(s3, files, tmp_path, monkeypatch):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    aws_environment(monkeypatch, s3.server)
    assert pm.Model.load(s3.url()).id == "model-1"
    assert pm.validate(s3.url())["model"]["id"] == "model-1"


def test_storage_options_win_over_the_environment(s3, files, tmp_path, monkeypatch):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    # A wrong secret in the environment, the right one explicitly: the explicit one wins.
    aws_environment(monkeypatch, s3.server, AWS_SECRET_ACCESS_KEY="wrong-env-secret-0123")
    assert pm.Model.load(s3.url(), storage_options={"secret_access_key": s3.server.secret_access_key}).id == "model-1"
    # The aws_-prefixed form too.
    assert pm.validate(s3.url(), storage_options={"aws_secret_access_key": s3.server.secret_access_key})
    # And without it, the environment's wrong secret is used and refused.
    with pytest.raises(pm.StorageError) as caught:
        pm.Model.load(s3.url())
    assert isinstance(caught.value, PermissionError) and caught.value.kind == "permission_denied"
    # An explicit wrong endpoint wins over the environment's right one.
    with pytest.raises(pm.StorageError):
        pm.validate(s3.url(), storage_options={"secret_access_key": s3.server.secret_access_key,
                                               "endpoint": "http://127.0.0.1:9", "retry_max": 0,
                                               "connect_timeout": 1})


def test_storage_option_values(s3, files, tmp_path):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    options = dict(s3.storage_options, allow_http=True, retry_max=2, timeout=30)
    assert pm.validate(s3.url(), storage_options=options)["model"]["id"] == "model-1"
    with pytest.raises(pm.InvalidStorageOptionError) as caught:
        pm.validate(s3.url(), storage_options=dict(s3.storage_options, endpiont="http://x"))
    assert isinstance(caught.value, ValueError) and caught.value.key == "endpiont"
    with pytest.raises(TypeError):
        pm.validate(s3.url(), storage_options=dict(s3.storage_options, region=["us-east-1"]))
    with pytest.raises(TypeError):
        pm.validate(s3.url(), storage_options=dict(s3.storage_options, **{"1": 1}).items())
    with pytest.raises(TypeError):
        pm.validate(s3.url(), storage_options={1: "x"})


def test_secrets_never_appear_in_errors(s3, files, tmp_path):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    secret = "Sup3rSecretValue-never-shown-4242"
    options = dict(s3.storage_options, secret_access_key=secret)
    for call in (lambda: pm.Model.load(s3.url(), storage_options=options),
                 lambda: pm.validate(s3.url(), strict=True, storage_options=options)):
        with pytest.raises(pm.StorageError) as caught:
            call()
        error = caught.value
        assert error.kind == "permission_denied" and isinstance(error, PermissionError)
        shown = [str(error), repr(error), "".join(traceback.format_exception(type(error), error, error.__traceback__)),
                 repr(error.__dict__), repr(pickle.loads(pickle.dumps(error)).__dict__)]
        for text in shown:
            assert secret not in text
            assert s3.server.secret_access_key not in text
    # A wrong value type of a secret option is named by its key, never shown.
    with pytest.raises(TypeError) as caught:
        pm.validate(s3.url(), storage_options={"secret_access_key": [secret]})
    assert secret not in str(caught.value)
    # The unfetched checkpoints of a model hold the options: their repr never shows them.
    remote = pm.Model.load(s3.url(), strict=False, storage_options=s3.storage_options)
    assert s3.server.secret_access_key not in repr(remote.checkpoint_collection)
    assert s3.server.secret_access_key not in repr(remote)


def test_an_unfetched_checkpoint_pickles_without_its_options(s3, files, tmp_path):
    folder = full_model(files, tmp_path)
    upload(s3, folder)
    remote = pm.Model.load(s3.url(), strict=False, storage_options=s3.storage_options)
    data = pickle.dumps(remote.checkpoint_collection)
    assert s3.server.secret_access_key.encode() not in data
    restored = pickle.loads(data)
    assert restored[1].path is None and restored[1].hash == md5(files.w1)


# ------------------------------------------------------------------------------------------------
# A URL is never a local path (no server needed)
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def cwd(tmp_path, monkeypatch):
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


#: A store that refuses connections at once (nothing listens on port 9; no retry).
UNREACHABLE = {"endpoint": "http://127.0.0.1:9", "allow_http": True, "retry_max": 0, "connect_timeout": 1,
               "access_key_id": "AKIDUNREACHABLE", "secret_access_key": "unreachable-secret-0123",
               "region": "us-east-1"}


def test_saving_to_a_url_never_writes_a_local_folder(files, cwd):
    """A URL is saved to its store (here, one that cannot be reached): a StorageError, nothing
    written in the working folder, and the model keeps no state of a save that did not happen."""
    model = simple_model(pm, files)
    for url in ("s3://b/m", "S3://b/m"):
        with pytest.raises(pm.StorageError) as caught:
            model.save(url, storage_options=UNREACHABLE)
        error = caught.value
        assert isinstance(error, OSError) and not isinstance(error, pm.UnsupportedLocationError)
        assert error.location.startswith("s3://b/m"), error.location
        assert UNREACHABLE["secret_access_key"] not in str(error)
    with pytest.raises(pm.StorageError):
        model.save("s3://b/m", force=True, storage_options=UNREACHABLE)
    assert model._token is None
    assert list(cwd.iterdir()) == []


def test_an_initialisation_from_a_url_is_read_from_its_store(files, cwd):
    model = simple_model(pm, files)
    with pytest.raises(pm.StorageError) as caught:
        model.register_initialisation("s3://b/base", checkpoint_reference=1, storage_options=UNREACHABLE)
    assert caught.value.location.startswith("s3://b/base"), caught.value.location
    assert model.initialisation is None
    with pytest.raises(pm.StorageError):
        pm.initialisation("s3://b/weights.h5", name="w", storage_options=UNREACHABLE)
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize("url, reason", [
    ("foo://x", "unknown scheme"), ("ftp://host/m", "unknown scheme"), ("s3://", "no bucket"),
    ("s3://AKIA:hunter2secret@bucket/m", "credentials"), ("s3://b/a/../m", ".."), ("s3://b/m?x=1", "query"),
])
def test_invalid_locations_are_refused_everywhere(files, cwd, url, reason):
    model = simple_model(pm, files)
    for call in (lambda: pm.Model.load(url), lambda: pm.validate(url), lambda: model.save(url),
                 lambda: pm.initialisation(url, name="w"), lambda: model.register_initialisation(url, name="w")):
        with pytest.raises(pm.InvalidLocationError) as caught:
            call()
        error = caught.value
        assert isinstance(error, ValueError) and reason in error.reason, error.reason
        assert "hunter2secret" not in str(error) and "hunter2secret" not in error.location
    assert list(cwd.iterdir()) == []


def test_path_like_objects_are_local_paths(files, cwd):
    """``pathlib.Path("s3://b/m")`` is the local folder ``s3:/b/m``, as it says."""
    model = simple_model(pm, files)
    model.save(Path("s3://b/m"))
    assert (cwd / "s3:" / "b" / "m" / "metadata.yaml").is_file()
    assert pm.Model.load(Path("s3://b/m")).id == model.id
    assert pm.validate(Path("s3:/b/m"))["model"]["id"] == model.id


def test_file_urls_are_local_paths(files, tmp_path):
    model = simple_model(pm, files)
    folder = tmp_path / "a model"
    model.save("file://" + str(folder).replace(" ", "%20"))
    assert (folder / "metadata.yaml").is_file()
    assert pm.Model.load("file://" + str(folder).replace(" ", "%20")).path == folder
    assert pm.validate("file://localhost" + str(folder).replace(" ", "%20"))["model"]["id"] == model.id


def test_a_location_must_be_a_str_or_a_path():
    with pytest.raises(TypeError):
        pm.Model.load(42)
    with pytest.raises(TypeError):
        pm.validate(None)
