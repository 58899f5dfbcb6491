"""A SeaweedFS cluster for fault tests, driven through ``scripts/s3-cluster``: one master, two
volume servers (replication 001: one copy of every object on each) and a filer with the S3
gateway, each its own process on 127.0.0.1 (the master with ``-telemetry=false``).

    from cluster import Cluster, weed_binary
    with Cluster(tmp_path / "cluster").start() as c:
        s3 = c.client(read_timeout=3, retries={"max_attempts": 1})
        s3.put_object(Bucket=c.bucket, Key="k", Body=b"x")
        c.kill_volume(2)      # SIGKILL; returns once the master has dropped it
        ...                   # reads still work, writes stall (see test_s3_cluster.py)
        c.start_volume(2)     # same port and data; returns once a PUT works again

``env`` holds the ``PMF_CLUSTER_*`` exports of the script (endpoint, bucket, keys, region, ports,
pids); ``aws_env()`` the ``AWS_*`` variables a child process (``pmf``, a training loop using
``plums_model``) needs to reach the cluster, ``storage_options`` the same for the API.
"""

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "s3-cluster"


def weed_binary():
    """The weed binary the script would use (``PMF_WEED``, ``.venv/bin/weed``, ``weed`` on the
    PATH), or None."""
    if os.environ.get("PMF_WEED"):
        return os.environ["PMF_WEED"] if os.access(os.environ["PMF_WEED"], os.X_OK) else None
    local = REPO / ".venv" / "bin" / "weed"
    if os.access(str(local), os.X_OK):
        return str(local)
    return shutil.which("weed")


def parse_exports(text):
    """``{name: value}`` of the ``export NAME=VALUE`` lines of ``text``."""
    out = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export "):].split("=", 1)
            out[name] = value
    return out


class Cluster:
    """The cluster whose data is in ``folder`` (absent or empty before ``start``)."""

    def __init__(self, folder, timeout=120):
        self.folder = Path(folder)
        self.timeout = timeout
        self.env = {}
        self.log = []  # the script's messages (stderr), one entry per call: timings, pids

    def _run(self, *args):
        out = subprocess.run(
            [str(SCRIPT), args[0], str(self.folder), *map(str, args[1:])],
            capture_output=True, text=True, timeout=self.timeout,
        )
        self.log.append(out.stderr)
        if out.returncode != 0:
            raise RuntimeError("scripts/s3-cluster {} failed ({}):\n{}".format(
                " ".join(map(str, args)), out.returncode, out.stderr))
        return out.stdout

    def _refresh(self):
        self.env = parse_exports(self._run("env"))

    def start(self):
        self.env = parse_exports(self._run("start"))
        return self

    def stop(self):
        """Stop every process and remove the folder (nothing happens if it is already gone)."""
        self._run("stop")
        self.env = {}

    def kill_volume(self, n):
        """SIGKILL volume server ``n`` (1 or 2); returns once the master no longer lists it."""
        self._run("kill-volume", n)

    def start_volume(self, n):
        """Start volume server ``n`` again, same port and data; returns once it is registered and
        a PUT through the gateway works."""
        self._run("start-volume", n)
        self._refresh()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # What clients need ---------------------------------------------------------------------------
    @property
    def endpoint(self):
        return self.env["PMF_CLUSTER_S3_ENDPOINT"]

    @property
    def bucket(self):
        return self.env["PMF_CLUSTER_BUCKET"]

    @property
    def access_key_id(self):
        return self.env["PMF_CLUSTER_ACCESS_KEY_ID"]

    @property
    def secret_access_key(self):
        return self.env["PMF_CLUSTER_SECRET_ACCESS_KEY"]

    @property
    def region(self):
        return self.env["PMF_CLUSTER_REGION"]

    @property
    def master_url(self):
        return self.env["PMF_CLUSTER_MASTER_URL"]

    @property
    def filer_url(self):
        return self.env["PMF_CLUSTER_FILER_URL"]

    def volume_url(self, n):
        """``127.0.0.1:PORT``, the volume server's id in the master's topology."""
        return "127.0.0.1:" + self.env["PMF_CLUSTER_VOLUME{}_PORT".format(n)]

    def pid(self, name):
        """The pid of ``master``, ``volume1``, ``volume2`` or ``filer``."""
        return int(self.env["PMF_CLUSTER_{}_PID".format(name.upper())])

    @property
    def storage_options(self):
        """object_store's key names, for ``storage_options=`` of ``plums_model``."""
        return {
            "endpoint": self.endpoint,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "region": self.region,
            "allow_http": "true",
        }

    def aws_env(self, base=None):
        """``base`` (default: ``os.environ``) with the ``AWS_*`` variables of the cluster, for a
        child process; the EC2 metadata service is switched off (no traffic off the machine)."""
        env = dict(os.environ if base is None else base)
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_ACCESS_KEY_ID=self.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.secret_access_key,
            AWS_REGION=self.region,
            AWS_ALLOW_HTTP="true",
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def client(self, **config):
        """A boto3 S3 client of the cluster; ``config`` goes to ``botocore.config.Config``."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(**config),
        )
