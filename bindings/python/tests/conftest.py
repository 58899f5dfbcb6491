"""Shared fixtures of the plums_model test suite.

``api`` runs a test twice: against ``plums_model`` (ours) and against the reference
implementation ``plums.model`` (PyPI ``plums`` 0.5.2), through one namespace holding the public
names of each (the reference's names are spread over several modules). Helpers shared by
the test modules are in helpers.py.

``harness`` is the reference-side interoperability script ``tests/interop/reference.py``
(imported, not run as a subprocess); ``corpus`` and ``invalid_cases`` are the models it writes
with the reference, once per session.

``s3_server`` and ``s3`` are the S3 test server that ``scripts/test`` starts (SeaweedFS, see
``scripts/s3-server``): ``s3`` gives a test a boto3 client and a key prefix of its own in the test
bucket. Without the server (``PMF_TEST_S3_*`` unset) those tests are skipped, unless
``PMF_REQUIRE_S3=1`` (``scripts/test``, CI): then they fail.

Beware of one reference quirk: ``plums.commons.path.Path`` takes a last path component with a
dot for a file name and then refuses to join anything to it, so model folders in these tests
never have a dot in their name.
"""

import importlib.util
import os
import sys
import types
import uuid

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


# ------------------------------------------------------------------------------------------------
# The S3 test server
# ------------------------------------------------------------------------------------------------
S3_VARIABLES = (
    "PMF_TEST_S3_ENDPOINT",
    "PMF_TEST_S3_BUCKET",
    "PMF_TEST_S3_ACCESS_KEY_ID",
    "PMF_TEST_S3_SECRET_ACCESS_KEY",
    "PMF_TEST_S3_REGION",
)


def _no_s3(why):
    if os.environ.get("PMF_REQUIRE_S3") == "1":
        pytest.fail("the S3 test server is required (PMF_REQUIRE_S3=1) but " + why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def s3_server():
    """The S3 test server: ``endpoint``, ``bucket``, ``access_key_id``, ``secret_access_key``,
    ``region``, and ``storage_options`` (object_store's key names) for the API under test."""
    missing = [name for name in S3_VARIABLES if not os.environ.get(name)]
    if missing:
        _no_s3(
            "no S3 test server: {} unset (scripts/test starts one; by hand: "
            'eval "$(scripts/s3-server start DIR)")'.format(", ".join(missing))
        )
    try:
        import boto3  # noqa: F401
    except ImportError as e:
        _no_s3("boto3 is not installed ({})".format(e))
    env = os.environ
    server = types.SimpleNamespace(
        endpoint=env["PMF_TEST_S3_ENDPOINT"],
        bucket=env["PMF_TEST_S3_BUCKET"],
        access_key_id=env["PMF_TEST_S3_ACCESS_KEY_ID"],
        secret_access_key=env["PMF_TEST_S3_SECRET_ACCESS_KEY"],
        region=env["PMF_TEST_S3_REGION"],
    )
    server.storage_options = {
        "endpoint": server.endpoint,
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
        "region": server.region,
        "allow_http": "true",
    }
    return server


AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_ALLOW_HTTP", "AWS_SESSION_TOKEN", "AWS_ENDPOINT")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A cache of the test's own and no AWS_* variable from the caller's environment (the
    object-storage modules use it for every test)."""
    monkeypatch.setenv("PMF_CACHE_DIR", str(tmp_path / "cache"))
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "cache"


def s3_client(server, **config):
    """A boto3 S3 client of ``server``; ``config`` goes to ``botocore.config.Config``."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(**config),
    )


@pytest.fixture
def s3(s3_server, request):
    """One test's corner of the test bucket: ``client`` (boto3), ``bucket``, ``prefix`` (unique:
    ``pmf-tests/TEST-PID-RANDOM``, no trailing ``/``), ``key(rel)`` (``prefix/rel``), ``url(rel)``
    (``s3://bucket/prefix/rel``), ``server`` and ``storage_options``."""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in request.node.name)[:80]
    prefix = "pmf-tests/{}-{}-{}".format(name, os.getpid(), uuid.uuid4().hex[:12])

    def key(rel=""):
        return prefix + "/" + rel.lstrip("/") if rel else prefix

    return types.SimpleNamespace(
        server=s3_server,
        client=s3_client(s3_server),
        bucket=s3_server.bucket,
        prefix=prefix,
        key=key,
        url=lambda rel="": "s3://{}/{}".format(s3_server.bucket, key(rel)),
        storage_options=dict(s3_server.storage_options),
    )
