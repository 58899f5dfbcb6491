"""The public names of plums_model, the exception hierarchy, and the type stubs."""

import ast
import inspect
import os
from pathlib import Path

import pytest
import schema

import plums_model
from helpers import NAMES

STUB = Path(plums_model.__file__).with_name("__init__.pyi")

PRECISE = ("CheckpointWithoutEpochError", "ChecksumMismatchError", "ConcurrentChangeError", "DestinationIsFileError",
           "ForeignFolderError", "InterruptedSaveError", "InvalidDestinationError", "InvalidSameModelError",
           "MetadataOffencesError", "ModelLockedError", "ModelNotFoundError", "OtherModelError",
           "WouldNotValidateError", "InvalidLocationError", "InvalidStorageOptionError", "UnsupportedLocationError",
           "StorageError", "StorageNotFoundError", "StoragePermissionError", "StorageTimeoutError",
           "InvalidRetentionError", "InvalidSessionError")
# The training loop (issue 11): background saves, retention, sessions.
TRAINING_LOOP = {"Retention", "SaveHandle", "TrainingSession", "TrainingTerminated"}
# Many models at once (issue 12).
FLEET = {"ModelSummary", "list_models"}
PUBLIC = sorted(set(NAMES) | {"FORMAT_VERSION", "Offence", "SaveProblem", "LockHolder"} | set(PRECISE) | TRAINING_LOOP | FLEET)


def test_all_lists_every_public_name():
    assert sorted(plums_model.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(plums_model, name) is not None


@pytest.mark.parametrize("name", ["Model", "Producer", "Training", "CheckpointCollection", "Checkpoint",
                                  "initialisation", "validate", "version", "register"])
def test_signatures_match_the_reference(ours, ref, name):
    """Every parameter of the reference's callables is accepted by ours, under the same name and default."""
    theirs = inspect.signature(getattr(ref, name))
    mine = inspect.signature(getattr(ours, name))
    for parameter in theirs.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            continue
        assert parameter.name in mine.parameters, (name, parameter.name)
        assert mine.parameters[parameter.name].default == parameter.default, (name, parameter.name)


@pytest.mark.parametrize("cls, methods", [
    ("Model", ["add_checkpoint", "register_training_start", "register_epoch", "register_training_end",
               "register_initialisation", "save", "load", "initialisation", "path", "checkpoint"]),
    ("Training", ["start", "interrupt", "end", "register_epoch", "status", "start_epoch", "start_timestamp",
                  "latest_epoch", "latest_timestamp", "end_epoch", "end_timestamp", "is_running", "is_pending",
                  "is_finished", "is_failed"]),
    ("CheckpointCollection", ["add", "get", "keys", "values", "items", "latest", "eloc", "iloc", "__getitem__",
                              "__setitem__", "__delitem__", "__contains__", "__len__", "__eq__"]),
    ("Producer", ["strict_equals", "__eq__", "__lt__"]),
    ("Checkpoint", ["__eq__", "__hash__"]),
])
def test_classes_have_the_seed_methods(api, cls, methods):
    for method in methods:
        assert hasattr(getattr(api, cls), method), (cls, method)


def test_model_format_version(api):
    assert api.Model.__version__ == "1.0.0"
    if api.ours:
        assert plums_model.FORMAT_VERSION == "1.0.0"


def test_exception_hierarchy(api):
    """The seed's hierarchy, in both implementations."""
    assert issubclass(api.PlumsError, Exception)
    assert issubclass(api.PlumsValidationError, schema.SchemaError)
    assert issubclass(api.PlumsValidationError, api.PlumsError)
    assert issubclass(api.PlumsModelError, api.PlumsError)
    assert not issubclass(api.PlumsModelError, api.PlumsValidationError)
    for leaf in (api.PlumsModelTreeValidationError, api.PlumsModelMetadataValidationError):
        assert issubclass(leaf, api.PlumsValidationError)
        assert issubclass(leaf, api.PlumsModelError)
        assert issubclass(leaf, schema.SchemaError)
    assert not issubclass(api.PlumsModelTreeValidationError, api.PlumsModelMetadataValidationError)
    assert not issubclass(api.PlumsModelMetadataValidationError, api.PlumsModelTreeValidationError)


def test_validation_errors_carry_offences_and_schema_fields():
    error = plums_model.PlumsModelTreeValidationError("broken", offences=[("tree", "metadata.yaml", "is missing")])
    assert str(error) == "broken"
    assert error.offences == [plums_model.Offence("tree", "metadata.yaml", "is missing")]
    assert str(error.offences[0]) == "[tree] metadata.yaml: is missing"
    assert error.code == "broken"  # schema.SchemaError's message
    assert plums_model.PlumsModelMetadataValidationError("m").offences == []
    with pytest.raises(schema.SchemaError, match="broken"):
        raise error


def test_validation_errors_take_the_schema_error_arguments(api):
    """``(autos, errors=None)``, as ``schema.SchemaError`` and the reference: code that raises or
    builds these exceptions itself keeps working."""
    for cls in (api.PlumsValidationError, api.PlumsModelTreeValidationError, api.PlumsModelMetadataValidationError):
        error = cls(["auto message", None], ["the error"])
        assert (error.autos, error.errors, error.code, str(error)) == (
            ["auto message", None], ["the error"], "the error", "the error")
        assert cls("only autos").code == "only autos"
        assert cls("a", errors="e").errors == ["e"]


def test_validation_errors_pickle_with_their_offences(ours, files, tmp_path):
    """Errors cross process boundaries (multiprocessing) with their offences."""
    import pickle

    with pytest.raises(ours.PlumsModelTreeValidationError) as caught:
        ours.validate(str(tmp_path / "missing"))
    for error in (caught.value, ours.PlumsModelMetadataValidationError("m", offences=[("metadata", "a.b", "c")])):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (str(copy), copy.offences, copy.code) == (str(error), error.offences, error.code)


def test_exceptions_live_in_plums_model_exception():
    from plums_model import exception

    for name in ("PlumsError", "PlumsValidationError", "PlumsModelError", "PlumsModelTreeValidationError",
                 "PlumsModelMetadataValidationError", "Offence"):
        assert getattr(exception, name) is getattr(plums_model, name)


# ------------------------------------------------------------------------------------------------
# The type stubs
# ------------------------------------------------------------------------------------------------
def _stub():
    return ast.parse(STUB.read_text(encoding="utf-8"))


def _stub_names(tree):
    names = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node
    return names


def test_stub_file_exists_and_is_shipped_with_py_typed():
    assert STUB.is_file()
    assert STUB.with_name("py.typed").is_file()


def test_stub_declares_every_public_name():
    names = _stub_names(_stub())
    assert sorted(set(PUBLIC) - set(names)) == []
    assert "__all__" in names


def test_stub_all_matches_the_package():
    for node in _stub().body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            assert sorted(ast.literal_eval(node.value)) == sorted(plums_model.__all__)
            return
    pytest.fail("no __all__ in the stub")


@pytest.mark.parametrize("cls", ["Model", "Producer", "Training", "CheckpointCollection", "Checkpoint", "Version",
                                 "PyPA", "Offence", "PlumsValidationError"])
def test_stub_classes_declare_the_public_members(cls):
    """Every public member of the runtime class is in its stub, and the stub invents none."""
    node = _stub_names(_stub())[cls]
    declared = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef):
            declared.add(item.name)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            declared.add(item.target.id)
    runtime = getattr(plums_model, cls)
    public = {name for name in vars(runtime) if not name.startswith("_")}
    if cls == "Model":
        public |= {"name", "id", "build_parameters", "producer", "training", "checkpoint_collection"}
    if cls in ("Producer",):
        public |= {"name", "version", "configuration"}
    if cls == "Checkpoint":
        public |= {"name", "path", "epoch", "hash"}
    if cls == "Offence":
        public -= {"count", "index"}
    assert sorted(public - declared) == []
    undeclared = {name for name in declared if not name.startswith("_")} - public
    if cls == "PlumsValidationError":
        undeclared -= {"offences", "path"}  # set in __init__
    if cls in ("Version", "PyPA"):
        undeclared -= {"format"}  # a metaclass property
    assert sorted(undeclared) == []


def _compare_parameters(stub_function, runtime_callable, where):
    """The stub's positional parameters are the runtime's, in order; its keyword-only ones exist at runtime."""
    runtime = inspect.signature(runtime_callable).parameters.values()
    positional = [p.name for p in runtime if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    stub_positional = [a.arg for a in stub_function.args.args]
    if positional and positional[0] in ("self", "cls"):
        positional = positional[1:]
    if stub_positional and stub_positional[0] in ("self", "cls"):
        stub_positional = stub_positional[1:]
    assert stub_positional == positional, where
    accepts_any_keyword = any(p.kind is p.VAR_KEYWORD for p in runtime)
    names = {p.name for p in runtime}
    for argument in stub_function.args.kwonlyargs:
        assert accepts_any_keyword or argument.arg in names, (where, argument.arg)


def test_stub_functions_match_runtime_signatures():
    """Functions and methods in the stub have the runtime's parameter names."""
    names = _stub_names(_stub())
    for function in ("initialisation", "validate", "version", "register"):
        _compare_parameters(names[function], getattr(plums_model, function), function)
    for cls in ("Model", "Producer", "Training", "CheckpointCollection", "Checkpoint", "PyPA"):
        for item in names[cls].body:
            if not isinstance(item, ast.FunctionDef) or (item.name.startswith("__") and item.name != "__init__"):
                continue
            if any(isinstance(d, ast.Attribute) or (isinstance(d, ast.Name) and d.id in ("property", "overload"))
                   for d in item.decorator_list):
                continue
            runtime = getattr(plums_model, cls)
            # A native class's signature is the class's (its __init__ is object's slot wrapper).
            target = runtime if item.name == "__init__" else getattr(runtime, item.name)
            _compare_parameters(item, target, (cls, item.name))


# ------------------------------------------------------------------------------------------------
# The README
# ------------------------------------------------------------------------------------------------
def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys):
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "model.save" in block)
    for name, content in [("config.py", "lr = 0.1\n"), ("imagenet.h5", "init"), ("weights_1.h5", "1"),
                          ("weights_2.h5", "2")]:
        (tmp_path / name).write_text(content)
    (tmp_path / "some_folder").mkdir()
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 " + os.path.join("my_detector", "data", "checkpoints", "weights_2.h5")
    assert out[1].startswith("tree metadata.yaml ")
