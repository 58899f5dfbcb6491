"""Background saves: ``Model.save(path, background=True)``, ``SaveHandle`` (``done()``,
``result(timeout=None)``, ``location``), ``Model.wait_for_saves(timeout=None)`` and the wait at
interpreter exit.

No test depends on how fast a save runs: a "slow save" is a save to a folder whose writer lock
(``<folder>/.pmf.lock``, the ``flock`` every local save takes) this test holds (``HeldLock``):
the save cannot finish before the test releases it, whatever the machine's load. Waits have
generous time-outs (60 s or more) and only bound a failure.
"""

import copy
import os
import pickle
import subprocess
import sys
import textwrap
import threading

import pytest

import plums_model as pm
from helpers import HeldLock, md5, wait_until, write

# A save that waits for the lock held by a test waits at most this long (the test releases it
# long before; a save that times out on it is a failure of the test, with a clear error).
LOCK_TIMEOUT = 120.0


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def new_model(root, model_id="bg-1", name="background"):
    """A running model (start epoch 0) without checkpoints; its configuration under ``root``."""
    config = write(root / "inputs" / "config.py", "# configuration\nlr = 0.1\n")
    model = pm.Model("trainer", "py_pa", "1.0.0", name, model_id, str(config), {"classes": 3})
    model.register_training_start(0)
    return model


def weights(root, epoch, content=None):
    """The weight file of ``epoch`` (its own name, its own content)."""
    data = content if content is not None else "weights of epoch {}\n".format(epoch).encode()
    return write(root / "weights" / "e{}.pt".format(epoch), data)


def next_epoch(model, root, epoch):
    """Register ``epoch`` and its checkpoint (reference ``epoch``, file ``e<epoch>.pt``)."""
    model.register_epoch(epoch)
    path = weights(root, epoch)
    model.add_checkpoint(pm.Checkpoint(epoch, str(path), epoch))
    return path


def training(folder):
    """The training section of the metadata of ``folder``, validated strictly first."""
    return pm.validate(str(folder), strict=True)["model"]["training"]


def checkpoint_files(folder):
    return sorted(os.listdir(str(folder / "data" / "checkpoints")))


def run_script(tmp_path, body, *args, env=None, timeout=120, prologue=None):
    """Run ``prologue`` (default: CHILD_PROLOGUE) then ``body`` (Python, each dedented) in a
    child interpreter, in ``tmp_path``, with ``args``."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD_PROLOGUE if prologue is None else prologue) + textwrap.dedent(body))
    environment = dict(os.environ)
    environment.update(env or {})
    return subprocess.run([sys.executable, str(script)] + [str(a) for a in args], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=timeout, env=environment)


# The child scripts' common start: a model saved (synchronously) to argv[1] at epoch 0.
CHILD_PROLOGUE = """
    import atexit, fcntl, os, sys
    from pathlib import Path
    import plums_model as pm

    root = sys.argv[1]
    Path("config.py").write_text("lr = 0.1\\n")
    model = pm.Model("trainer", "py_pa", "1.0.0", "child", "child-1", "config.py", {"classes": 3})
    model.register_training_start(0)
    model.save(root)
    Path("e1.pt").write_bytes(b"weights of epoch 1")
    model.register_epoch(1)
    model.add_checkpoint(pm.Checkpoint(1, "e1.pt", 1))
"""


# ------------------------------------------------------------------------------------------------
# The handle
# ------------------------------------------------------------------------------------------------
def test_background_save_returns_a_handle_at_once_and_writes_a_valid_model(tmp_path, ref):
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    folder = tmp_path / "model"
    with HeldLock(folder):
        handle = model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
        # The save cannot have run: the lock is held. The call returned anyway.
        assert isinstance(handle, pm.SaveHandle)
        assert handle.done() is False
        assert handle.location == str(folder)
        assert repr(handle) == "SaveHandle({!r}, pending)".format(str(folder)).replace("'", '"')
        assert not (folder / "metadata.yaml").exists()
    assert handle.result() is None
    assert handle.done() is True
    assert repr(handle).endswith(", done)")
    assert handle.result() is None  # asked again: the same answer
    metadata = pm.validate(str(folder), strict=True)
    assert metadata["model"]["id"] == "bg-1"
    assert metadata["model"]["training"]["status"] == "running"
    assert list(metadata["model"]["training"]["checkpoints"]) == [1]
    assert checkpoint_files(folder) == ["e1.pt"]
    # The reference reads it.
    loaded = ref.Model.load(str(folder))
    assert loaded.id == "bg-1" and list(loaded.checkpoint_collection.keys()) == [1]
    assert md5(str(loaded.checkpoint_collection[1].path)) == model.checkpoint_collection[1].hash
    # And so do we.
    ours = pm.Model.load(folder)
    assert list(ours.checkpoint_collection.keys()) == [1] and ours.training.latest_epoch == 1


def test_a_training_loop_of_background_saves_keeps_every_checkpoint(tmp_path, ref):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    handles = []
    for epoch in range(1, 9):
        next_epoch(model, tmp_path, epoch)
        handles.append(model.save(folder, background=True))
    assert model.wait_for_saves() is None
    assert all(h.done() for h in handles)
    assert [h.result() for h in handles] == [None] * 8
    t = training(folder)
    assert t["latest_epoch"] == 8 and t["latest"] == 8
    assert list(t["checkpoints"]) == list(range(1, 9))
    assert checkpoint_files(folder) == sorted("e{}.pt".format(e) for e in range(1, 9))
    loaded = ref.Model.load(str(folder))
    assert list(loaded.checkpoint_collection.keys()) == list(range(1, 9))
    assert loaded.training.latest_epoch == 8
    # The model knows what the folder holds: a synchronous save back there is incremental and
    # is not refused as another writer's change.
    model.register_training_end(True)
    model.save(folder)
    assert training(folder)["status"] == "finished"


def test_a_background_save_writes_the_model_as_it_was_at_the_call(tmp_path):
    model = new_model(tmp_path, name="first name")
    next_epoch(model, tmp_path, 1)
    folder = tmp_path / "model"
    with HeldLock(folder):
        handle = model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
        # Everything changes before the save has even started.
        model.name = "second name"
        model.build_parameters = {"classes": 99}
        next_epoch(model, tmp_path, 2)
        del model.checkpoint_collection[1]
        assert not handle.done()
    handle.result()
    metadata = pm.validate(str(folder), strict=True)["model"]
    assert metadata["name"] == "first name"
    assert metadata["training"]["latest_epoch"] == 1
    assert list(metadata["training"]["checkpoints"]) == [1]
    assert pm.Model.load(folder).build_parameters == {"classes": 3}
    assert checkpoint_files(folder) == ["e1.pt"]
    # The model in memory kept its changes; saved again, the folder has them.
    model.save(folder)
    metadata = pm.validate(str(folder), strict=True)["model"]
    assert metadata["name"] == "second name"
    assert list(metadata["training"]["checkpoints"]) == [2]
    assert checkpoint_files(folder) == ["e2.pt"]
    assert pm.Model.load(folder).build_parameters == {"classes": 99}


def test_saves_to_one_location_run_one_at_a_time_in_call_order(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with HeldLock(folder) as lock:
        handles = []
        for epoch in range(1, 7):
            next_epoch(model, tmp_path, epoch)
            model.name = "as of epoch {}".format(epoch)
            handles.append(model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT))
        assert not any(h.done() for h in handles)
        lock.release()
        # Whenever a save is done, every earlier one is done too.
        seen = []
        while not handles[-1].done():
            state = [h.done() for h in handles]
            seen.append(state)
            assert state == sorted(state, reverse=True), seen
            threading.Event().wait(0.001)
        model.wait_for_saves()
    assert [h.result() for h in handles] == [None] * 6
    metadata = pm.validate(str(folder), strict=True)["model"]
    assert metadata["name"] == "as of epoch 6"  # the last call's model is the one left
    assert list(metadata["training"]["checkpoints"]) == list(range(1, 7))


# ------------------------------------------------------------------------------------------------
# Failures
# ------------------------------------------------------------------------------------------------
def saved_at_epoch_1(tmp_path):
    """A model saved (synchronously) at epoch 1 to ``tmp_path/model``."""
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    folder = tmp_path / "model"
    model.save(folder)
    return model, folder


def test_a_file_rewritten_before_the_background_copy_fails_that_save(tmp_path):
    model, folder = saved_at_epoch_1(tmp_path)
    before = (folder / "metadata.yaml").read_bytes()
    with HeldLock(folder):
        path = next_epoch(model, tmp_path, 2)
        handle = model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
        # A trainer that reuses its file: rewritten after Checkpoint(...) computed its MD5,
        # before the worker copies it.
        path.write_bytes(b"the weights of another epoch\n")
    for _ in range(2):  # raised each time it is asked
        with pytest.raises(pm.ChecksumMismatchError) as info:
            handle.result()
        message = str(info.value)
        assert str(path) in message
        assert "does not have the checksum it was registered with" in message
        assert model.checkpoint_collection[2].hash in message
        assert isinstance(info.value, ValueError)
    assert handle.done()
    # Nothing of that save is in the folder: the previous model, whole.
    assert (folder / "metadata.yaml").read_bytes() == before
    t = training(folder)
    assert t["latest_epoch"] == 1 and list(t["checkpoints"]) == [1]
    assert checkpoint_files(folder) == ["e1.pt"]
    # The exception was taken by result(): the model's next wait does not raise it again.
    assert model.wait_for_saves() is None


def wait_done(handle):
    wait_until(handle.done, what="the background save")


def failed_background_save(tmp_path):
    """A model saved at epoch 1, and a finished background save of epoch 2 that failed (its file
    was rewritten before the call: the worker finds it), whose exception nobody took."""
    model, folder = saved_at_epoch_1(tmp_path)
    path = next_epoch(model, tmp_path, 2)
    path.write_bytes(b"rewritten\n")
    handle = model.save(folder, background=True)
    wait_done(handle)  # done() does not take the exception
    return model, folder, path, handle


def test_an_exception_nobody_took_is_raised_by_wait_for_saves_once(tmp_path):
    model, folder, path, _ = failed_background_save(tmp_path)
    with pytest.raises(pm.ChecksumMismatchError, match="does not have the checksum") as info:
        model.wait_for_saves()
    assert str(path) in str(info.value)
    assert model.wait_for_saves() is None  # given once
    assert training(folder)["latest_epoch"] == 1


def test_an_exception_nobody_took_is_raised_by_the_next_background_save_which_saves_nothing(tmp_path):
    model, folder, path, _ = failed_background_save(tmp_path)
    # The next epoch, without the faulty checkpoint.
    del model.checkpoint_collection[2]
    next_epoch(model, tmp_path, 3)
    with pytest.raises(pm.ChecksumMismatchError) as info:
        model.save(folder, background=True)
    assert str(path) in str(info.value)
    assert model.wait_for_saves() is None  # nothing queued, nothing left to raise
    t = training(folder)
    assert t["latest_epoch"] == 1 and list(t["checkpoints"]) == [1]
    # The call after that saves.
    model.save(folder, background=True).result()
    assert list(training(folder)["checkpoints"]) == [1, 3]


def test_an_exception_nobody_took_is_raised_by_the_next_synchronous_save_which_saves_nothing(tmp_path):
    model, folder, path, _ = failed_background_save(tmp_path)
    del model.checkpoint_collection[2]
    next_epoch(model, tmp_path, 3)
    with pytest.raises(pm.ChecksumMismatchError) as info:
        model.save(folder)
    assert str(path) in str(info.value)
    t = training(folder)
    assert t["latest_epoch"] == 1 and list(t["checkpoints"]) == [1]
    model.save(folder)
    assert list(training(folder)["checkpoints"]) == [1, 3]


def test_an_exception_taken_by_result_is_not_raised_by_the_next_save(tmp_path):
    model, folder, path, handle = failed_background_save(tmp_path)
    with pytest.raises(pm.ChecksumMismatchError):
        handle.result()
    del model.checkpoint_collection[2]
    next_epoch(model, tmp_path, 3)
    assert model.save(folder, background=True).result() is None
    assert list(training(folder)["checkpoints"]) == [1, 3]


def test_a_failed_save_does_not_stop_the_saves_queued_behind_it(tmp_path):
    model, folder = saved_at_epoch_1(tmp_path)
    with HeldLock(folder):
        bad = next_epoch(model, tmp_path, 2)
        failing = model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
        bad.write_bytes(b"rewritten\n")
        del model.checkpoint_collection[2]
        next_epoch(model, tmp_path, 3)
        following = model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
    assert following.result() is None
    with pytest.raises(pm.ChecksumMismatchError):
        failing.result()
    assert list(training(folder)["checkpoints"]) == [1, 3]
    assert model.wait_for_saves() is None


# ------------------------------------------------------------------------------------------------
# Time-outs, waits
# ------------------------------------------------------------------------------------------------
def test_result_with_a_timeout_raises_timeout_error_and_the_save_goes_on(tmp_path):
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    folder = tmp_path / "model"
    with HeldLock(folder):
        handle = model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
        with pytest.raises(TimeoutError, match="the background save to .* has not finished") as info:
            handle.result(timeout=0)
        assert str(folder) in str(info.value)
        with pytest.raises(TimeoutError):
            handle.result(timeout=0.05)
        assert not handle.done()
    assert handle.result(timeout=LOCK_TIMEOUT) is None
    assert training(folder)["latest_epoch"] == 1


def test_wait_for_saves_with_a_timeout_raises_timeout_error_while_busy(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    assert model.wait_for_saves(timeout=0) is None  # no background save at all
    with HeldLock(folder):
        for epoch in (1, 2):
            next_epoch(model, tmp_path, epoch)
            model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
        with pytest.raises(TimeoutError, match=r"2 background save\(s\) of model bg-1 still running after 0 s"):
            model.wait_for_saves(timeout=0)
        with pytest.raises(TimeoutError, match="still running"):
            model.wait_for_saves(timeout=0.05)
    assert model.wait_for_saves(timeout=LOCK_TIMEOUT) is None
    assert training(folder)["latest_epoch"] == 2


def test_a_zero_timeout_on_finished_saves_returns_at_once(tmp_path):
    """``timeout=0`` asks "is it done?": on a save that has finished it must answer, not raise
    TimeoutError."""
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    handle = model.save(tmp_path / "model", background=True)
    wait_done(handle)
    assert handle.result(timeout=0) is None
    assert model.wait_for_saves(timeout=0) is None


def test_a_zero_timeout_on_a_finished_failed_save_raises_its_exception(tmp_path):
    model, folder, path, handle = failed_background_save(tmp_path)
    with pytest.raises(pm.ChecksumMismatchError):
        handle.result(timeout=0)
    model2, folder2, path2, handle2 = failed_background_save(tmp_path / "second")
    with pytest.raises(pm.ChecksumMismatchError):
        model2.wait_for_saves(timeout=0)


@pytest.mark.parametrize("timeout", [-1, float("nan"), float("-inf")])
def test_a_negative_or_non_finite_timeout_is_refused(tmp_path, timeout):
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    handle = model.save(tmp_path / "model", background=True)
    with pytest.raises(ValueError, match="timeout must be None or a non-negative number of seconds"):
        handle.result(timeout=timeout)
    with pytest.raises(ValueError, match="timeout must be None or a non-negative number of seconds"):
        model.wait_for_saves(timeout=timeout)
    model.wait_for_saves()


def test_an_infinite_timeout_is_no_limit(tmp_path):
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    handle = model.save(tmp_path / "model", background=True)
    assert handle.result(timeout=float("inf")) is None
    model.wait_for_saves(timeout=float("inf"))
    assert pm.validate(tmp_path / "model", strict=True)["model"]["training"]["latest_epoch"] == 1


def test_a_synchronous_save_waits_for_the_background_ones(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    lock = HeldLock(folder)
    handles = []
    for epoch in (1, 2, 3):
        next_epoch(model, tmp_path, epoch)
        handles.append(model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT))
    next_epoch(model, tmp_path, 4)
    # The lock is released by another thread while this one waits in the synchronous save
    # (which must wait for the background saves, not run beside them).
    releaser = threading.Timer(0.2, lock.release)
    releaser.start()
    try:
        model.save(folder, lock_timeout=LOCK_TIMEOUT)  # no ConcurrentChangeError
    finally:
        releaser.join()
        lock.release()
    assert all(h.done() for h in handles)
    assert [h.result() for h in handles] == [None] * 3
    t = training(folder)
    assert t["latest_epoch"] == 4 and list(t["checkpoints"]) == [1, 2, 3, 4]
    # And the other way round: background saves after a synchronous one.
    next_epoch(model, tmp_path, 5)
    model.save(folder, background=True).result()
    assert training(folder)["latest_epoch"] == 5


# ------------------------------------------------------------------------------------------------
# The GIL
# ------------------------------------------------------------------------------------------------
def test_the_gil_is_released_while_a_background_save_runs_and_while_waiting_for_it(tmp_path):
    """A Python thread must make progress while the save runs and while this thread waits in
    ``result()``: it is that thread that releases the lock the save waits for. Were the GIL held
    by the waiting call, the thread could not run, the lock would never be released and the save
    would fail with ModelLockedError after its lock_timeout: no timing is measured."""
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    folder = tmp_path / "model"
    lock = HeldLock(folder)
    progress = []

    def work():
        for step in range(200):
            progress.append(step)
            if step % 20 == 0:
                threading.Event().wait(0.001)
        lock.release()

    handle = model.save(folder, background=True, lock_timeout=60)
    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert handle.result(timeout=LOCK_TIMEOUT) is None
    finally:
        worker.join()
        lock.release()
    assert progress == list(range(200))
    assert training(folder)["latest_epoch"] == 1


def test_wait_for_saves_releases_the_gil(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    lock = HeldLock(folder)
    for epoch in (1, 2):
        next_epoch(model, tmp_path, epoch)
        model.save(folder, background=True, lock_timeout=60)
    releaser = threading.Timer(0.2, lock.release)
    releaser.start()
    try:
        model.wait_for_saves(timeout=LOCK_TIMEOUT)
    finally:
        releaser.join()
        lock.release()
    assert training(folder)["latest_epoch"] == 2


# ------------------------------------------------------------------------------------------------
# Copies
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_of_a_model_with_saves_in_flight_has_no_pending_save(tmp_path, how):
    model = new_model(tmp_path)
    next_epoch(model, tmp_path, 1)
    folder = tmp_path / "model"
    with HeldLock(folder):
        handle = model.save(folder, background=True, lock_timeout=LOCK_TIMEOUT)
        duplicate = {"deepcopy": copy.deepcopy, "pickle": lambda m: pickle.loads(pickle.dumps(m))}[how](model)
        # The copy has nothing to wait for, while the original's save is still held.
        assert duplicate.wait_for_saves(timeout=0) is None
        with pytest.raises(TimeoutError):
            model.wait_for_saves(timeout=0)
        assert duplicate.id == model.id and list(duplicate.checkpoint_collection.keys()) == [1]
        # The copy saves elsewhere, in the background too, on a queue of its own.
        other = tmp_path / "copy"
        assert duplicate.save(other, background=True).result(timeout=LOCK_TIMEOUT) is None
        assert not handle.done()
    handle.result()
    assert training(other)["latest_epoch"] == 1
    assert training(folder)["latest_epoch"] == 1


# ------------------------------------------------------------------------------------------------
# Interpreter exit
# ------------------------------------------------------------------------------------------------
def test_pending_background_saves_are_waited_for_at_exit(tmp_path):
    """The child holds the model's lock itself and releases it in an atexit handler registered
    after plums_model's (so run before it): at that moment the save is still pending; the
    process then ends only when plums_model's atexit wait saw it done."""
    folder = tmp_path / "model"
    result = run_script(tmp_path, """
    fd = os.open(os.path.join(root, ".pmf.lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    handle = model.save(root, background=True, lock_timeout=120)

    def release():
        print("pending at exit:", not handle.done(), flush=True)
        fcntl.flock(fd, fcntl.LOCK_UN)

    atexit.register(release)
    """, folder)
    assert result.returncode == 0, result.stderr
    assert "pending at exit: True" in result.stdout
    assert "abandoned" not in result.stderr and "nobody took" not in result.stderr, result.stderr
    t = training(folder)
    assert t["latest_epoch"] == 1 and list(t["checkpoints"]) == [1]


def test_an_exit_timeout_of_zero_abandons_the_pending_save_and_says_so(tmp_path):
    folder = tmp_path / "model"
    result = run_script(tmp_path, """
    fd = os.open(os.path.join(root, ".pmf.lock"), os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)   # held until the process ends
    handle = model.save(root, background=True, lock_timeout=3)
    """, folder, env={"PLUMS_MODEL_EXIT_TIMEOUT": "0"})
    assert result.returncode == 0, result.stderr
    assert "plums_model: 1 background save(s) still running after 0.0 s at exit were abandoned" in result.stderr
    assert "each location holds the old model or the new one" in result.stderr
    # The folder holds the old model, whole.
    t = training(folder)
    assert t["latest_epoch"] == 0 and list(t["checkpoints"]) == []


def test_an_exit_timeout_bounds_the_exit(tmp_path):
    """``PLUMS_MODEL_EXIT_TIMEOUT=0``: the process must end without waiting for a save that cannot
    finish (here: it waits for a lock the process itself holds, for up to 600 s). The child is
    given 30 s, far more than an exit needs."""
    folder = tmp_path / "model"
    try:
        result = run_script(tmp_path, """
        fd = os.open(os.path.join(root, ".pmf.lock"), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        handle = model.save(root, background=True, lock_timeout=600)
        """, folder, env={"PLUMS_MODEL_EXIT_TIMEOUT": "0"}, timeout=30)
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else e.stderr
        pytest.fail("with PLUMS_MODEL_EXIT_TIMEOUT=0 the process still waited for its background save at exit "
                    "(after the 'abandoned' message, the native SaveQueue's drop waits for it): stderr {!r}"
                    .format(stderr))
    assert "abandoned" in result.stderr
    assert training(folder)["latest_epoch"] == 0


def test_an_exit_timeout_of_zero_with_every_save_done_reports_nothing(tmp_path):
    folder = tmp_path / "model"
    result = run_script(tmp_path, """
    handle = model.save(root, background=True)
    while not handle.done():
        pass
    """, folder, env={"PLUMS_MODEL_EXIT_TIMEOUT": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert training(folder)["latest_epoch"] == 1


def test_a_failed_background_save_nobody_asked_is_reported_at_exit(tmp_path):
    folder = tmp_path / "model"
    result = run_script(tmp_path, """
    Path("e1.pt").write_bytes(b"rewritten after its checksum was computed")
    handle = model.save(root, background=True)
    """, folder)
    assert result.returncode == 0, result.stderr
    assert "plums_model: a background save failed and nobody took its exception: ChecksumMismatchError:" \
        in result.stderr
    assert "e1.pt does not have the checksum it was registered with" in result.stderr
    assert result.stderr.count("nobody took") == 1, result.stderr  # reported once
    t = training(folder)
    assert t["latest_epoch"] == 0 and list(t["checkpoints"]) == []


def test_an_exit_timeout_of_zero_still_reports_a_finished_failed_save(tmp_path):
    """The save failed and finished before the exit: nothing is pending, so nothing is abandoned,
    and its exception, which nobody took, must be reported."""
    folder = tmp_path / "model"
    result = run_script(tmp_path, """
    Path("e1.pt").write_bytes(b"rewritten after its checksum was computed")
    handle = model.save(root, background=True)
    while not handle.done():
        pass
    """, folder, env={"PLUMS_MODEL_EXIT_TIMEOUT": "0"})
    assert result.returncode == 0, result.stderr
    assert "plums_model: a background save failed and nobody took its exception: ChecksumMismatchError:" \
        in result.stderr, result.stderr
    assert "abandoned" not in result.stderr, result.stderr


def test_dropping_a_model_with_a_save_in_flight_does_not_hold_the_gil(tmp_path):
    """A model whose background save is still running is dropped (a training function that
    returns without ``wait_for_saves()``). Another Python thread releases the lock that save
    waits for: were the GIL held while the dropped queue waits for its save, that thread could
    not run and the save would fail after its 10 s lock_timeout (ModelLockedError), leaving the
    old model."""
    folder = tmp_path / "model"
    model = new_model(tmp_path)
    model.save(folder)
    lock = HeldLock(folder)
    next_epoch(model, tmp_path, 1)
    model.save(folder, background=True, lock_timeout=10)
    releaser = threading.Timer(0.5, lock.release)
    releaser.start()
    try:
        del model  # the last reference
    finally:
        releaser.join()
        lock.release()
    pm.Model.load(folder)  # whatever happened, a valid model
    assert training(folder)["latest_epoch"] == 1, \
        "the dropped model's save failed: the GIL was held while its queue waited for it"


# ------------------------------------------------------------------------------------------------
# Object storage
# ------------------------------------------------------------------------------------------------
def test_a_background_loop_to_s3_with_retention(s3, tmp_path, isolated):
    model = new_model(tmp_path)
    policy = pm.Retention(last=2)
    handles = []
    for epoch in range(1, 7):
        next_epoch(model, tmp_path, epoch)
        handles.append(model.save(s3.url(), storage_options=s3.storage_options, background=True, retention=policy))
    assert handles[0].location == s3.url()
    model.wait_for_saves()
    assert [h.result() for h in handles] == [None] * 6
    assert list(model.checkpoint_collection.keys()) == [5, 6]
    metadata = pm.validate(s3.url(), strict=True, storage_options=s3.storage_options)["model"]
    assert list(metadata["training"]["checkpoints"]) == [5, 6]
    assert metadata["training"]["latest_epoch"] == 6
    prefix = s3.key("data/checkpoints/")
    keys = []
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        keys.extend(o["Key"][len(prefix):] for o in page.get("Contents", []))
    assert sorted(keys) == ["e5.pt", "e6.pt"]
    # The model knows what the prefix holds: a synchronous save there is not refused.
    model.register_training_end(True)
    model.save(s3.url(), storage_options=s3.storage_options)
    loaded = pm.Model.load(s3.url(), storage_options=s3.storage_options)
    assert loaded.training.status == "finished" and list(loaded.checkpoint_collection.keys()) == [5, 6]
