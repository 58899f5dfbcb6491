"""``plums_model.list_models``: every model under a folder or a bucket prefix (``pmf ls``)."""

import os
import shutil
from pathlib import Path

import pytest

import plums_model as pm
from helpers import simple_model, write

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "detector"


def tree(tmp_path, files):
    """runs/a (valid, running), runs/deep/b (valid, initialised from the example model),
    runs/broken (metadata that does not parse), notes/ (not a model)."""
    root = tmp_path / "tree"
    a = simple_model(pm, files, model_id="a-1", name="alpha")
    a.save(root / "runs" / "a")
    b = simple_model(pm, files, model_id="b-1", name="beta")
    b.register_initialisation(EXAMPLE, checkpoint_reference=2)
    b.save(root / "runs" / "deep" / "b")
    write(root / "runs" / "broken" / "metadata.yaml", "model: [unclosed\n")
    write(root / "notes" / "readme.txt", "not a model")
    return root


def test_every_model_is_one_summary_sorted_by_path(tmp_path, files):
    root = tree(tmp_path, files)
    found = pm.list_models(root)
    assert [s.path for s in found] == ["runs/a", "runs/broken", "runs/deep/b"]
    a, broken, b = found
    assert isinstance(a, pm.ModelSummary)
    assert (a.id, a.name, a.producer, a.producer_version, a.status) == ("a-1", "alpha", "faster_rcnn", "1.0.0",
                                                                         "running")
    assert (a.start_epoch, a.latest_epoch, a.end_epoch) == (0, 2, None)
    assert a.checkpoint_count == 2 and a.latest == "best"
    assert a.checkpoint_bytes == os.path.getsize(files.w1) + os.path.getsize(files.w2)
    assert a.valid and a.offences == [] and a.error is None and a.initialisation is None
    assert a.location == root / "runs" / "a"
    # The initialisation model is part of its parent's row, not a row of its own.
    assert b.initialisation == {"kind": "model", "name": "detector", "id": "detector-0001", "checkpoint": 2}
    assert b.valid
    # A model that cannot be read is listed, invalid, with its offences; the listing went on.
    assert not broken.valid and broken.id is None
    assert broken.offences and all(isinstance(o, pm.Offence) for o in broken.offences)
    assert any(o.location == "metadata.yaml" for o in broken.offences), broken.offences


def test_depth_limits_the_walk(tmp_path, files):
    root = tree(tmp_path, files)
    assert [s.path for s in pm.list_models(root, depth=1)] == []
    assert [s.path for s in pm.list_models(root, depth=2)] == ["runs/a", "runs/broken"]
    assert [s.path for s in pm.list_models(root / "runs" / "a", depth=0)] == ["."]


def test_strict_verifies_checksums(tmp_path, files):
    root = tree(tmp_path, files)
    checkpoint = next((root / "runs" / "a" / "data" / "checkpoints").iterdir())
    checkpoint.write_bytes(checkpoint.read_bytes() + b"!")
    assert next(s for s in pm.list_models(root) if s.path == "runs/a").valid
    a = next(s for s in pm.list_models(root, strict=True) if s.path == "runs/a")
    assert not a.valid and a.strict
    assert any("checksum" in o.message for o in a.offences), a.offences


def test_a_linked_folder_is_not_followed(tmp_path, files):
    root = tree(tmp_path, files)
    outside = tmp_path / "outside"
    shutil.copytree(EXAMPLE, outside / "model")
    os.symlink(outside, root / "linked")
    assert "linked/model" not in [s.path for s in pm.list_models(root)]


def test_a_missing_location_raises(tmp_path):
    with pytest.raises(OSError):
        pm.list_models(tmp_path / "nothing")
    with pytest.raises(pm.InvalidLocationError):
        pm.list_models("ftp://host/models")


def test_a_bucket_prefix_is_listed(s3, isolated, tmp_path, files):
    good = simple_model(pm, files, model_id="g-1")
    good.save(s3.url("team/good"), storage_options=s3.storage_options)
    other = simple_model(pm, files, model_id="o-1")
    other.save(s3.url("team/nested/other"), storage_options=s3.storage_options)
    s3.client.put_object(Bucket=s3.bucket, Key=s3.key("team/bad/metadata.yaml"), Body=b"model: [unclosed\n")
    found = pm.list_models(s3.url("team"), storage_options=s3.storage_options)
    assert [(s.path, s.id, s.valid) for s in found] == [("bad", None, False), ("good", "g-1", True),
                                                        ("nested/other", "o-1", True)]
    assert found[1].location == s3.url("team/good")
    assert found[1].checkpoint_count == 2
