"""Helpers shared by the test modules (fixtures are in conftest.py)."""

import hashlib
import json
import math
import os
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HARNESS = REPO / "tests" / "interop" / "reference.py"

NAMES = (
    "Model", "initialisation", "Producer", "Training", "CheckpointCollection", "Checkpoint", "validate",
    "version", "register", "Version", "PyPA", "PlumsError", "PlumsValidationError", "PlumsModelError",
    "PlumsModelTreeValidationError", "PlumsModelMetadataValidationError",
)

HASH = "0123456789abcdef0123456789abcdef"


def ours_api():
    import plums_model

    return types.SimpleNamespace(label="ours", ours=True, module=plums_model,
                                 **{name: getattr(plums_model, name) for name in NAMES})


def reference_api():
    import plums.model as ref
    from plums.model import exception
    from plums.model.components import version as version_module
    from plums.model.model import initialisation
    from plums.model.validation import validate

    classes = ("Model", "Producer", "Training", "CheckpointCollection", "Checkpoint")
    names = {name: getattr(ref, name) for name in classes}
    names.update({name: getattr(exception, name) for name in NAMES if name.startswith("Plums")})
    names.update(initialisation=initialisation, validate=validate, version=version_module.version,
                 register=version_module.register, Version=version_module.Version, PyPA=version_module.PyPA)
    return types.SimpleNamespace(label="ref", ours=False, module=ref, **names)


def make_version_class(base, name):
    """A custom version class (dotted integers), as a user of either implementation would write it."""

    def __init__(self, value):
        self.parts = tuple(int(part) for part in str(value).split("."))

    def __str__(self):
        return ".".join(map(str, self.parts))

    def __eq__(self, other):
        return isinstance(other, type(self)) and self.parts == other.parts

    def __lt__(self, other):
        return self.parts < other.parts

    def __hash__(self):
        return hash(self.parts)

    return type(name, (base,), {"__init__": __init__, "__str__": __str__, "__eq__": __eq__, "__lt__": __lt__,
                                "__hash__": __hash__})


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def write(path, content=b""):
    """Write ``content`` (bytes or str) to ``path``, creating its folder; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def simple_model(api, files, model_id="model-1", producer="faster_rcnn", name="a model", checkpoints=True):
    """A running model with two checkpoints (references ``1`` and ``"best"``)."""
    model = api.Model(producer, "py_pa", "1.0.0", name, model_id, str(files.config), {"backbone": "resnet50"})
    model.training = api.Training(start_time=10, start_epoch=0, latest_time=20.5, latest_epoch=2, status="running")
    if checkpoints:
        model.add_checkpoint(api.Checkpoint(1, str(files.w1), 1), api.Checkpoint("best", str(files.w2), 2))
    return model


# ------------------------------------------------------------------------------------------------
# Describing models (both implementations) as JSON-like values
# ------------------------------------------------------------------------------------------------
def _number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def basename(path):
    return None if path is None else os.path.basename(os.fspath(str(path)))


def describe(harness, model, latest=None):
    """Describe a loaded model of either implementation like the harness's ``describe_model``.

    ``latest`` defaults to the model's collection ``latest`` (the harness reads it from
    metadata.yaml instead: pass it to compare with the reference's description).
    """
    training = model.training
    init = model.initialisation
    if init is None:
        init_description = None
    elif hasattr(init, "checkpoint_collection"):
        init_description = {"pmf": {"checkpoint": harness.tag(init.checkpoint), "model": describe(harness, init)}}
    else:
        init_description = {"file": {"name": init.name, "hash": init.hash, "file": basename(init.path)}}
    return {
        "producer": {"name": model.producer.name, "version_format": model.producer.version.format,
                     "version": str(model.producer.version)},
        "name": model.name,
        "id": model.id,
        "configuration": {"file": basename(model.producer.configuration),
                          "md5": md5(str(model.producer.configuration))},
        "build_parameters": harness.tag(model.build_parameters),
        "training": {
            "status": training.status,
            "start_epoch": _number(training.start_epoch), "start_time": _number(training.start_timestamp),
            "latest_epoch": _number(training.latest_epoch), "latest_time": _number(training.latest_timestamp),
            "end_epoch": _number(training.end_epoch), "end_time": _number(training.end_timestamp),
        },
        "checkpoints": [{"reference": harness.tag(r), "epoch": c.epoch, "hash": c.hash, "file": basename(c.path)}
                        for r, c in model.checkpoint_collection.items()],
        "latest": harness.tag(model.checkpoint_collection.latest if latest is None else latest),
        "initialisation": init_description,
    }


def _key(value):
    return json.dumps(value, sort_keys=True, ensure_ascii=True)


def _unordered_value(tagged):
    if isinstance(tagged, dict) and "map" in tagged:
        return {"map": sorted(([_unordered_value(k), _unordered_value(v)] for k, v in tagged["map"]), key=_key)}
    if isinstance(tagged, dict) and "seq" in tagged:
        return {"seq": [_unordered_value(v) for v in tagged["seq"]]}
    return tagged


def unordered(description):
    """A description whose checkpoints and build-parameter mappings are compared as sets.

    The reference's ``yaml.safe_dump`` sorts mappings whose keys are comparable; we keep insertion
    order: the same model saved by each has the same entries in another order.
    """
    description = json.loads(json.dumps(description))
    description["checkpoints"] = sorted(description["checkpoints"], key=_key)
    description["build_parameters"] = _unordered_value(description["build_parameters"])
    init = description["initialisation"]
    if init is not None and "pmf" in init:
        init["pmf"]["model"] = unordered(init["pmf"]["model"])
    return description


def build_ours(harness, recipe, base_dir, out_dir):
    """Rebuild a harness recipe with plums_model (what the harness's ``build`` does with the reference)."""
    import plums_model as pm

    def rel(path):
        return os.path.join(str(base_dir), path)

    producer = recipe["producer"]
    model = pm.Model(producer["name"], producer["version_format"], producer["version"], recipe["name"], recipe["id"],
                     rel(recipe["configuration"]), harness.untag(recipe["build_parameters"]))
    t = recipe["training"]
    model.training = pm.Training(start_time=t["start_time"], start_epoch=t["start_epoch"],
                                 latest_time=t["latest_time"], latest_epoch=t["latest_epoch"],
                                 end_time=t["end_time"], end_epoch=t["end_epoch"], status=t["status"])
    for entry in recipe["checkpoints"]:
        model.add_checkpoint(pm.Checkpoint(harness.untag(entry["reference"]), rel(entry["file"]), entry["epoch"]))
    init = recipe.get("initialisation")
    if init is not None:
        if "file" in init:
            model.register_initialisation(rel(init["file"]["path"]), name=init["file"]["name"])
        else:
            model.register_initialisation(rel(init["pmf"]["path"]),
                                          checkpoint_reference=harness.untag(init["pmf"]["checkpoint"]))
    model.save(str(out_dir))
    return model


def fields(model):
    """Every field of a loaded model but where its files are."""
    init = model.initialisation
    return {
        "producer": (model.producer.name, model.producer.version.format, str(model.producer.version)),
        "configuration": Path(model.producer.configuration).read_bytes(),
        "name": model.name, "id": model.id, "build_parameters": model.build_parameters,
        "training": (model.training.status, model.training.start_epoch, model.training.start_timestamp,
                     model.training.latest_epoch, model.training.latest_timestamp, model.training.end_epoch,
                     model.training.end_timestamp),
        "checkpoints": [(r, c.name, c.epoch, c.hash) for r, c in model.checkpoint_collection.items()],
        "latest": model.checkpoint_collection.latest,
        "initialisation": None if init is None else (init.name, init.hash),
        "checkpoint": model.checkpoint,
    }


# ------------------------------------------------------------------------------------------------
# Background saves: holding a model's writer lock, waiting for a condition
# ------------------------------------------------------------------------------------------------
class HeldLock:
    """The writer lock of the model folder ``folder`` (``<folder>/.pmf.lock``, the ``flock`` every
    local save takes), held by this process: a save to ``folder`` waits (up to its
    ``lock_timeout``) until :meth:`release`. A deterministic "slow save", with no timing: the
    save cannot finish while the lock is held. The folder is created if missing (a save into a
    new folder takes the lock there too)."""

    def __init__(self, folder):
        import fcntl

        os.makedirs(str(folder), exist_ok=True)
        self._fcntl = fcntl
        self._fd = os.open(os.path.join(str(folder), ".pmf.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self):
        if self._fd is not None:
            self._fcntl.flock(self._fd, self._fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def wait_until(predicate, timeout=60.0, what="the condition"):
    """Poll ``predicate()`` until it is true (at most ``timeout`` seconds: AssertionError)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("{} did not happen within {} s".format(what, timeout))
        time.sleep(0.01)
