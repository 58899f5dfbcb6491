"""The GIL is released while the Rust core works: hashing a large file (``Checkpoint``) or
validating a model strictly (which hashes its files) in a thread does not stop the other Python
threads.

How it is measured, without tight timing thresholds: a worker thread hashes a 64 MiB file
(sparse, so the cost is the MD5 itself, not the disk); meanwhile the main thread counts loop
iterations and records its pauses (stretches without an iteration, including the time before
its first and after its last iteration, clipped to the worker's call). Were the GIL held during
the call, the main thread would stop for all of it: its longest pause would be about the call's
duration (checked by hand with a GIL-holding call in place of the hash). We only ask that it
kept iterating and that its longest pause stayed below half the call's duration. A busy machine
can delay a thread now and then, so the measure is retried up to three times.
"""

import hashlib
import threading
import time

import plums_model

SIZE = 64 * 1024 * 1024


def run_in_thread(call):
    """Run ``call()`` in a thread while this thread counts loop iterations.

    Returns (iterations, longest pause of this thread during the call, call duration, result).
    A pause is a stretch of time without an iteration, clipped to the call: the time before the
    first iteration and after the last one count too.
    """
    inside = threading.Event()
    done = threading.Event()
    result = {}

    def work():
        inside.set()
        result["started"] = time.perf_counter()
        try:
            result["value"] = call()
        except BaseException as error:  # reported by the main thread (which would loop forever)
            result["error"] = error
        finally:
            result["ended"] = time.perf_counter()
            done.set()

    worker = threading.Thread(target=work)
    worker.start()
    inside.wait()
    iterations = 0
    pauses = []
    first = previous = time.perf_counter()
    while not done.is_set():
        now = time.perf_counter()
        if now - previous > 0.001:
            pauses.append((previous, now))
        previous = now
        iterations += 1
    worker.join()
    if "error" in result:
        raise result["error"]
    started, ended = result["started"], result["ended"]
    pauses += [(float("-inf"), first), (previous, float("inf"))]
    longest = max(max(0.0, min(b, ended) - max(a, started)) for a, b in pauses)
    return iterations, longest, ended - started, result["value"]


def big_file(folder):
    path = folder / "big.bin"
    with open(str(path), "wb") as f:
        f.truncate(SIZE)  # 64 MiB of zeros
    return path


def assert_main_thread_kept_running(call, check):
    attempts = []
    for _ in range(3):
        iterations, longest, duration, value = run_in_thread(call)
        check(value)
        attempts.append((iterations, round(longest, 4), round(duration, 4)))
        if iterations > 0 and longest < duration / 2:
            return
    raise AssertionError("the main thread stalled while the core worked (iterations, longest pause, call duration "
                         "in s): {}".format(attempts))


def test_hashing_releases_the_gil(tmp_path):
    path = big_file(tmp_path)
    expected = hashlib.md5(b"\0" * SIZE).hexdigest()

    def check(checkpoint):
        assert checkpoint.hash == expected

    assert_main_thread_kept_running(lambda: plums_model.Checkpoint("big", str(path), 1), check)


def test_strict_validation_releases_the_gil(tmp_path):
    config = tmp_path / "config.py"
    config.write_text("c")
    model = plums_model.Model("prod", "py_pa", "1.0", "big", "big-1", str(config), {})
    model.add_checkpoint(plums_model.Checkpoint(1, str(big_file(tmp_path)), 0))
    model.save(str(tmp_path / "model"))

    def check(metadata):
        assert metadata["model"]["id"] == "big-1"

    assert_main_thread_kept_running(lambda: plums_model.validate(str(tmp_path / "model"), strict=True), check)


def test_save_and_load_release_the_gil(tmp_path):
    """Saving copies (and checks) the checkpoint file, loading strictly hashes it: both in Rust,
    with the GIL released."""
    config = tmp_path / "config.py"
    config.write_text("c")
    path = big_file(tmp_path)
    digest = hashlib.md5(b"\0" * SIZE).hexdigest()
    model = plums_model.Model("prod", "py_pa", "1.0", "big", "big-2", str(config), {})
    # A given hash: the checkpoint was not hashed when created, so the save reads the whole file.
    model.add_checkpoint(plums_model.Checkpoint(1, str(path), 0, hash=digest))
    saves = iter(range(3))

    def save():
        destination = tmp_path / "model_{}".format(next(saves))
        model.save(str(destination))
        return destination

    destinations = []
    assert_main_thread_kept_running(save, destinations.append)

    def check(loaded):
        assert loaded.checkpoint_collection[1].hash == digest

    assert_main_thread_kept_running(lambda: plums_model.Model.load(str(destinations[-1]), strict=True), check)
