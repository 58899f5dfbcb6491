"""Shared fixtures of the plums_model test suite.

``api`` runs a test twice: against ``plums_model`` (ours) and against the reference
implementation ``plums.model`` (PyPI ``plums`` 0.5.2), through one namespace holding the public
names of each (the reference's names are spread over several modules). Helpers shared by
the test modules are in helpers.py.

``harness`` is the reference-side interoperability script ``tests/interop/reference.py``
(imported, not run as a subprocess); ``corpus`` and ``invalid_cases`` are the models it writes
with the reference, once per session.

Beware of one reference quirk: ``plums.commons.path.Path`` takes a last path component with a
dot for a file name and then refuses to join anything to it, so model folders in these tests
never have a dot in their name.
"""

import importlib.util
import sys
import types

import pytest

from helpers import HARNESS, ours_api, reference_api, write


@pytest.fixture(scope="session")
def ours():
    return ours_api()


@pytest.fixture(scope="session")
def ref():
    return reference_api()


@pytest.fixture(params=["ours", "ref"])
def api(request):
    """The public API of ``plums_model`` ("ours") or of the reference ``plums.model`` ("ref")."""
    return ours_api() if request.param == "ours" else reference_api()


@pytest.fixture
def files(tmp_path):
    """Input files: a configuration and three checkpoint files (``w1.h5``, ``w2.h5``, ``w3.h5``)."""
    inputs = tmp_path / "inputs"
    return types.SimpleNamespace(
        root=tmp_path,
        config=write(inputs / "config.py", "# configuration\nlr = 0.01\n"),
        config2=write(inputs / "other" / "config.py", "# another configuration\nlr = 0.1\n"),
        w1=write(inputs / "w1.h5", b"weights of epoch 1\n"),
        w2=write(inputs / "w2.h5", b"weights of epoch 2\n"),
        w3=write(inputs / "w3.h5", b"weights of epoch 3\n"),
        init=write(inputs / "init" / "imagenet.h5", b"imagenet weights\n"),
    )


# ------------------------------------------------------------------------------------------------
# The reference-side harness and its corpora
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def harness():
    if not HARNESS.is_file():
        pytest.skip("the interop harness {} is missing".format(HARNESS))
    spec = importlib.util.spec_from_file_location("pmf_interop_reference", str(HARNESS))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def corpus(harness, tmp_path_factory):
    """The 24 reference-saved models: ``(folder, [case names])``; ``folder/<case>/model`` is the model."""
    folder = tmp_path_factory.mktemp("corpus")
    names = harness.write_corpus(str(folder))
    return folder, names


@pytest.fixture(scope="session")
def invalid_cases(harness, tmp_path_factory):
    """The 86 invalid models and the reference's verdicts: ``(folder, [entries])``."""
    folder = tmp_path_factory.mktemp("invalid")
    return folder, harness.write_invalid(str(folder))
