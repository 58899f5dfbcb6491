"""What the S3 test server (SeaweedFS ``weed mini``, started only by ``scripts/s3-server``, always with ``-master.telemetry=false`` on 127.0.0.1) does, measured with
boto3: the behaviours the core's object-storage code relies on. A SeaweedFS version that changes
one of them fails here, loudly, before the core's tests fail in obscure ways.

Relied on: a conditional create (``If-None-Match: *``) of an existing key and a conditional update
(``If-Match``) with a stale ETag are refused with 412 and leave the object alone; the ETag of a
single-part PUT is the quoted MD5 hex of the content; ListObjectsV2 gives each key's size and
ETag. Also pinned: multipart ETags, ranged GETs, DELETE of a missing key, credentials checked,
and a PUT to a server killed mid-upload fails fast with boto3's defaults and leaves the old
object whole. docs/RELIABILITY.md ("Object storage: what the test server does") has the figures.
"""

import concurrent.futures
import hashlib
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import s3_client
from helpers import REPO



def md5(data):
    return '"{}"'.format(hashlib.md5(data).hexdigest())


def error_of(call):
    """(code, HTTP status) of the ClientError ``call()`` raises; fails if it does not raise."""
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    pytest.fail("expected a refusal, the request succeeded")


def body(s3, key):
    return s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()


# ------------------------------------------------------------------------------------------------
# Conditional writes: the commit of metadata.yaml
# ------------------------------------------------------------------------------------------------
def test_conditional_create_is_refused_when_the_key_exists(s3):
    c, key = s3.client, s3.key("metadata.yaml")
    c.put_object(Bucket=s3.bucket, Key=key, Body=b"first", IfNoneMatch="*")
    assert error_of(lambda: c.put_object(Bucket=s3.bucket, Key=key, Body=b"second", IfNoneMatch="*")) == (
        "PreconditionFailed",
        412,
    )
    assert body(s3, key) == b"first"


def test_conditional_update_is_refused_on_a_stale_etag(s3):
    c, key = s3.client, s3.key("metadata.yaml")
    seen = c.put_object(Bucket=s3.bucket, Key=key, Body=b"v1")["ETag"]
    # The writer that saw v1 updates it...
    now = c.put_object(Bucket=s3.bucket, Key=key, Body=b"v2", IfMatch=seen)["ETag"]
    assert now == md5(b"v2")
    # ... and a second writer that also saw v1 is refused, v2 stays.
    assert error_of(lambda: c.put_object(Bucket=s3.bucket, Key=key, Body=b"v2-other", IfMatch=seen)) == (
        "PreconditionFailed",
        412,
    )
    assert body(s3, key) == b"v2"
    # An update of a key that is gone is refused too (the model was deleted meanwhile).
    c.delete_object(Bucket=s3.bucket, Key=key)
    assert error_of(lambda: c.put_object(Bucket=s3.bucket, Key=key, Body=b"v3", IfMatch=now)) == (
        "PreconditionFailed",
        412,
    )
    assert error_of(lambda: c.head_object(Bucket=s3.bucket, Key=key)) == ("404", 404)


def test_conditional_delete_is_refused_on_a_stale_etag(s3):
    c, key = s3.client, s3.key("k")
    c.put_object(Bucket=s3.bucket, Key=key, Body=b"x")
    assert error_of(lambda: c.delete_object(Bucket=s3.bucket, Key=key, IfMatch=md5(b"y"))) == (
        "PreconditionFailed",
        412,
    )
    assert body(s3, key) == b"x"
    c.delete_object(Bucket=s3.bucket, Key=key, IfMatch=md5(b"x"))
    assert error_of(lambda: c.head_object(Bucket=s3.bucket, Key=key)) == ("404", 404)


@pytest.mark.parametrize("round", range(5))
def test_writers_racing_a_conditional_update_one_wins(s3, round):
    c, key = s3.client, s3.key("metadata.yaml")
    seen = c.put_object(Bucket=s3.bucket, Key=key, Body=b"base")["ETag"]

    def write(i):
        try:
            c.put_object(Bucket=s3.bucket, Key=key, Body=b"writer %d" % i, IfMatch=seen)
            return i
        except Exception:
            return None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        winners = [i for i in pool.map(write, range(8)) if i is not None]
    assert len(winners) == 1, winners
    assert body(s3, key) == b"writer %d" % winners[0]


# ------------------------------------------------------------------------------------------------
# ETags and listings: what validation compares
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 1000, 5 << 20, (20 << 20) + 3])
def test_the_etag_of_a_single_part_put_is_the_md5(s3, size):
    # 5 and 20 MiB: above the filer's 4 MiB chunk size (stored in several chunks, still one PUT).
    data = os.urandom(size)
    key = s3.key("f")
    etag = s3.client.put_object(Bucket=s3.bucket, Key=key, Body=data)["ETag"]
    assert etag == md5(data)
    head = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert (head["ETag"], head["ContentLength"]) == (md5(data), size)


def test_the_etag_of_a_multipart_upload_is_not_the_md5(s3):
    c, key = s3.client, s3.key("big")
    parts = [os.urandom(5 << 20), os.urandom(5 << 20), b"tail"]
    upload = c.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    done = []
    for n, part in enumerate(parts, 1):
        r = c.upload_part(Bucket=s3.bucket, Key=key, UploadId=upload, PartNumber=n, Body=part)
        assert r["ETag"] == md5(part)
        done.append({"ETag": r["ETag"], "PartNumber": n})
    etag = c.complete_multipart_upload(
        Bucket=s3.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}
    )["ETag"]
    # As AWS: the MD5 of the parts' binary MD5s, a dash, the number of parts.
    expected = '"{}-3"'.format(hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest())
    assert etag == expected
    assert etag != md5(b"".join(parts))
    listed = c.list_objects_v2(Bucket=s3.bucket, Prefix=key)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [(key, sum(map(len, parts)), expected)]

    # A create-only multipart upload over it is refused at completion, the object stays.
    again = c.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    part = c.upload_part(Bucket=s3.bucket, Key=key, UploadId=again, PartNumber=1, Body=b"other")["ETag"]
    refused = error_of(
        lambda: c.complete_multipart_upload(
            Bucket=s3.bucket,
            Key=key,
            UploadId=again,
            MultipartUpload={"Parts": [{"ETag": part, "PartNumber": 1}]},
            IfNoneMatch="*",
        )
    )
    assert refused == ("PreconditionFailed", 412)
    c.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=again)
    assert c.head_object(Bucket=s3.bucket, Key=key)["ETag"] == expected


def test_listing_gives_every_size_and_etag(s3):
    c = s3.client
    files = {"metadata.yaml": b"format: 1\n", "data/checkpoints/a.h5": b"", "data/checkpoints/b.h5": os.urandom(70000)}
    for rel, data in files.items():
        c.put_object(Bucket=s3.bucket, Key=s3.key(rel), Body=data)
    got = {
        o["Key"][len(s3.prefix) + 1 :]: (o["Size"], o["ETag"])
        for o in c.list_objects_v2(Bucket=s3.bucket, Prefix=s3.prefix + "/")["Contents"]
    }
    assert got == {rel: (len(data), md5(data)) for rel, data in files.items()}
    sub = c.list_objects_v2(Bucket=s3.bucket, Prefix=s3.key("data/checkpoints/"))
    assert sub["KeyCount"] == 2
    top = c.list_objects_v2(Bucket=s3.bucket, Prefix=s3.prefix + "/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == [s3.key("data/")]
    assert [o["Key"] for o in top["Contents"]] == [s3.key("metadata.yaml")]


def test_listing_pages_hold_1000_keys(s3):
    c = s3.client
    n = 1001
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: c.put_object(Bucket=s3.bucket, Key=s3.key("k/%05d" % i), Body=b"x"), range(n)))
    first = c.list_objects_v2(Bucket=s3.bucket, Prefix=s3.key("k/"))
    assert (first["KeyCount"], first["IsTruncated"]) == (1000, True)
    rest = c.list_objects_v2(Bucket=s3.bucket, Prefix=s3.key("k/"), ContinuationToken=first["NextContinuationToken"])
    assert (rest["KeyCount"], rest["IsTruncated"]) == (1, False)
    assert rest["Contents"][0]["Key"] == s3.key("k/%05d" % (n - 1))


# ------------------------------------------------------------------------------------------------
# Reads, deletes, credentials
# ------------------------------------------------------------------------------------------------
def test_ranged_get(s3):
    data = os.urandom(6 << 20)
    key = s3.key("f")
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=data)
    r = s3.client.get_object(Bucket=s3.bucket, Key=key, Range="bytes=4194300-4194309")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert r["ContentRange"] == "bytes 4194300-4194309/%d" % len(data)
    assert r["Body"].read() == data[4194300:4194310]
    assert r["ETag"] == md5(data)
    assert error_of(lambda: s3.client.get_object(Bucket=s3.bucket, Key=key, Range="bytes=%d-" % len(data))) == (
        "InvalidRange",
        416,
    )


def test_missing_keys(s3):
    c, key = s3.client, s3.key("never/written")
    r = c.delete_object(Bucket=s3.bucket, Key=key)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(lambda: c.get_object(Bucket=s3.bucket, Key=key)) == ("NoSuchKey", 404)
    assert error_of(lambda: c.head_object(Bucket=s3.bucket, Key=key)) == ("404", 404)


def test_credentials_are_checked(s3, s3_server):
    import types

    wrong = types.SimpleNamespace(**{**vars(s3_server), "secret_access_key": "x" * 40})
    bad = s3_client(wrong, retries={"max_attempts": 1})
    assert error_of(lambda: bad.list_objects_v2(Bucket=s3.bucket, Prefix=s3.prefix)) == ("SignatureDoesNotMatch", 403)
    import botocore

    anonymous = s3_client(s3_server, signature_version=botocore.UNSIGNED, retries={"max_attempts": 1})
    assert error_of(lambda: anonymous.list_objects_v2(Bucket=s3.bucket, Prefix=s3.prefix)) == ("AccessDenied", 403)


# ------------------------------------------------------------------------------------------------
# A server killed in the middle of an upload (a server of its own, not the shared one)
# ------------------------------------------------------------------------------------------------
def test_a_put_to_a_server_killed_mid_upload_fails_fast_and_the_old_object_stays(s3_server, tmp_path):
    script = REPO / "scripts" / "s3-server"
    folder = tmp_path / "server"
    env = dict(os.environ)
    out = subprocess.run([str(script), "start", str(folder)], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        coords = dict(line.split(" ", 1)[1].split("=", 1) for line in out.stdout.strip().splitlines())
        import types

        server = types.SimpleNamespace(
            endpoint=coords["PMF_TEST_S3_ENDPOINT"],
            bucket=coords["PMF_TEST_S3_BUCKET"],
            access_key_id=coords["PMF_TEST_S3_ACCESS_KEY_ID"],
            secret_access_key=coords["PMF_TEST_S3_SECRET_ACCESS_KEY"],
            region=coords["PMF_TEST_S3_REGION"],
        )
        client = s3_client(server)  # boto3's defaults
        client.put_object(Bucket=server.bucket, Key="m/metadata.yaml", Body=b"old")
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(256 << 20))
        pid = int((folder / "weed.pid").read_text())
        killed = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
        started = time.monotonic()
        killed.start()
        with pytest.raises(Exception) as raised, open(source, "rb") as f:
            client.put_object(Bucket=server.bucket, Key="m/metadata.yaml", Body=f)
        failed_after = time.monotonic() - started
        killed.join()
        from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

        assert isinstance(raised.value, (EndpointConnectionError, ConnectionClosedError)), repr(raised.value)
        assert failed_after < 30, failed_after
        print("PUT failed %.2f s after the start, %.2f s after the kill: %r" % (failed_after, failed_after - 0.3, raised.value))

        restarted = subprocess.run([str(script), "restart", str(folder)], env=env, capture_output=True, text=True, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        assert client.get_object(Bucket=server.bucket, Key="m/metadata.yaml")["Body"].read() == b"old"
        listed = client.list_objects_v2(Bucket=server.bucket, Prefix="m/")["Contents"]
        assert [(o["Key"], o["Size"]) for o in listed] == [("m/metadata.yaml", 3)]
    finally:
        subprocess.run([str(script), "stop", str(folder)], env=env, timeout=60)
    assert not folder.exists()
