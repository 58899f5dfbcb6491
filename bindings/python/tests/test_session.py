"""Training sessions: ``with model.training_session(path, ...) as session:`` records the start of
the training and saves on entry, registers and saves epochs (``session.epoch(...)``, every
``save_every`` calls, in the background by default, with a retention policy), and whatever ends
the block (its end, an exception, KeyboardInterrupt, SIGTERM) records the end (finished or
failed), saves it and waits for every save.

SIGTERM is tested on child interpreters running a session loop. As in test_background.py, a
"slow save" is a save waiting for the model's writer lock held by the test (``HeldLock``): no
test depends on how fast anything runs; time-outs are generous and only bound a failure.
"""

import os
import selectors
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import plums_model as pm
from helpers import HeldLock, md5, wait_until, write

LOCK_TIMEOUT = 120.0


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def new_model(root, model_id="session-1"):
    """A pending model (never started) without checkpoints."""
    config = write(root / "inputs" / "config.py", "# configuration\nlr = 0.1\n")
    return pm.Model("trainer", "py_pa", "1.0.0", "session", model_id, str(config), {"classes": 3})


def weights(root, epoch, content=None):
    data = content if content is not None else "weights of epoch {}\n".format(epoch).encode()
    return write(root / "weights" / "e{}.pt".format(epoch), data)


def training(folder, **options):
    """The training section of the metadata at ``folder``, validated strictly first."""
    return pm.validate(folder if isinstance(folder, str) else str(folder), strict=True, **options)["model"]["training"]


def checkpoint_files(folder):
    return sorted(os.listdir(str(folder / "data" / "checkpoints")))


# ------------------------------------------------------------------------------------------------
# Entry
# ------------------------------------------------------------------------------------------------
def test_entry_starts_the_training_and_saves_it(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with model.training_session(folder, start_epoch=2, background=False) as session:
        assert isinstance(session, pm.TrainingSession)
        assert model.training.status == "running"
        assert model.training.start_epoch == 2
        t = training(folder)
        assert t["status"] == "running" and t["start_epoch"] == 2 and t["latest_epoch"] == 2
        assert session.epochs == 0
    assert training(folder)["status"] == "finished"


def test_entry_saves_before_the_block_runs_with_background_saves(tmp_path):
    """With the default ``background=True`` too, the folder holds the running model when the
    block starts. The folder's lock is held until another thread releases it, 1 s later: an
    entry that saved (waiting for the lock) finds it released; an entry that only queued the
    save returns while the folder is still empty."""
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    lock = HeldLock(folder)
    releaser = threading.Timer(1.0, lock.release)
    releaser.start()
    try:
        with model.training_session(folder, lock_timeout=LOCK_TIMEOUT):
            assert (folder / "metadata.yaml").is_file(), "the block started before the entry's save was written"
            assert training(folder)["status"] == "running"
    finally:
        releaser.join()
        lock.release()
    assert training(folder)["status"] == "finished"


def test_a_destination_that_refuses_the_model_is_an_error_at_entry(tmp_path):
    """A session whose destination cannot take the model (a foreign folder) must fail on entry,
    before the block (the training) runs, as with ``background=False``."""
    folder = tmp_path / "foreign"
    write(folder / "somebody_elses.txt", "not a model\n")
    for background in (False, True):
        ran = []
        with pytest.raises(pm.ForeignFolderError):
            with new_model(tmp_path).training_session(folder, background=background):
                ran.append(True)
        assert ran == [], "background={}: the block ran although the destination refuses the model".format(
            background)
    left = os.listdir(str(folder))
    assert "somebody_elses.txt" in left and "metadata.yaml" not in left


@pytest.mark.parametrize("save_every", [0, -1, True, 1.5, "2"])
def test_save_every_must_be_a_positive_int(tmp_path, save_every):
    with pytest.raises(ValueError, match=r"save_every must be a positive int \(save every N epochs\), got"):
        new_model(tmp_path).training_session(tmp_path / "model", save_every=save_every)
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("success, status", [(True, "finished"), (False, "failed")])
def test_an_ended_training_refuses_a_session(tmp_path, success, status):
    model = new_model(tmp_path)
    model.register_training_start(0)
    model.register_epoch(1)
    model.register_training_end(success)
    folder = tmp_path / "model"
    ran = []
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(ValueError):
        with model.training_session(folder):
            ran.append(True)
    assert ran == []
    assert model.training.status == status
    assert not (folder / "metadata.yaml").exists()
    assert signal.getsignal(signal.SIGTERM) == previous  # no handler left behind


def test_a_running_model_resumes_where_it_was(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    model.register_training_start(2)
    for epoch in (3, 4):
        model.register_epoch(epoch)
        model.add_checkpoint(pm.Checkpoint(epoch, str(weights(tmp_path, epoch)), epoch))
    model.save(folder)
    loaded = pm.Model.load(folder)
    start_time = loaded.training.start_timestamp
    assert loaded.training.status == "running"
    with loaded.training_session(folder, start_epoch=0) as session:  # start_epoch ignored: running
        assert loaded.training.start_epoch == 2
        assert loaded.training.start_timestamp == start_time
        session.epoch(checkpoint=str(weights(tmp_path, 5)))
        assert loaded.training.latest_epoch == 5
    t = training(folder)
    assert (t["status"], t["start_epoch"], t["start_time"], t["latest_epoch"], t["end_epoch"]) == \
        ("finished", 2, start_time, 5, 5)
    assert list(t["checkpoints"]) == [3, 4, 5]


def test_a_session_is_entered_once_and_epoch_needs_the_block(tmp_path):
    model = new_model(tmp_path)
    session = model.training_session(tmp_path / "model", background=False)
    with pytest.raises(RuntimeError, match=r"session.epoch\(\) is called inside the `with` block"):
        session.epoch()
    with session:
        with pytest.raises(RuntimeError, match="this training session is already running"):
            session.__enter__()
        session.epoch()
    with pytest.raises(RuntimeError, match=r"session.epoch\(\) is called inside the `with` block"):
        session.epoch()
    assert session.epochs == 1
    assert "TrainingSession(model=Model(name=session, id=session-1)" in repr(session)
    assert repr(session).endswith("epochs=1)")


# ------------------------------------------------------------------------------------------------
# Epochs
# ------------------------------------------------------------------------------------------------
def test_epoch_with_a_path_registers_the_next_epoch_and_its_checkpoint(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with model.training_session(folder) as session:
        for epoch in (1, 2, 3):
            path = weights(tmp_path, epoch)
            handle = session.epoch(checkpoint=str(path))
            assert isinstance(handle, pm.SaveHandle)
            assert model.training.latest_epoch == epoch
            checkpoint = model.checkpoint_collection[epoch]
            assert (checkpoint.name, checkpoint.epoch, checkpoint.hash) == (epoch, epoch, md5(path))
            assert model.checkpoint_collection.latest == epoch
        assert session.epochs == 3
        assert handle.result() is None
        assert list(training(folder)["checkpoints"]) == [1, 2, 3]
    t = training(folder)
    assert t["status"] == "finished" and t["end_epoch"] == 3
    assert checkpoint_files(folder) == ["e1.pt", "e2.pt", "e3.pt"]


def test_epoch_with_an_epoch_and_a_checkpoint(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with model.training_session(folder, background=False) as session:
        assert session.epoch(epoch=5, checkpoint=pm.Checkpoint("best", str(weights(tmp_path, 5)), 5)) is None
        assert model.training.latest_epoch == 5
        session.epoch()  # no checkpoint: epoch 6
        assert model.training.latest_epoch == 6
        t = training(folder)
        assert t["latest_epoch"] == 6 and list(t["checkpoints"]) == ["best"]
    t = training(folder)
    assert t["checkpoints"]["best"]["epoch"] == 5 and t["latest"] == "best"


def test_save_every_saves_every_n_calls(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with model.training_session(folder, save_every=3, background=False) as session:
        assert training(folder)["latest_epoch"] == 0
        seen = []
        for epoch in range(1, 8):
            assert session.epoch(checkpoint=str(weights(tmp_path, epoch))) is None
            seen.append(training(folder)["latest_epoch"])
        assert seen == [0, 0, 3, 3, 3, 6, 6]
        assert list(training(folder)["checkpoints"]) == [1, 2, 3, 4, 5, 6]
    t = training(folder)
    assert (t["status"], t["latest_epoch"], t["end_epoch"]) == ("finished", 7, 7)
    assert list(t["checkpoints"]) == list(range(1, 8))


def test_save_every_in_the_background_returns_a_handle_on_saving_calls_only(tmp_path):
    model = new_model(tmp_path)
    with model.training_session(tmp_path / "model", save_every=2) as session:
        handles = [session.epoch() for _ in range(4)]
    assert handles[0] is None and handles[2] is None
    assert isinstance(handles[1], pm.SaveHandle) and isinstance(handles[3], pm.SaveHandle)
    assert handles[1].done() and handles[3].done()


def test_retention_inside_a_session(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with model.training_session(folder, retention=pm.Retention(last=2)) as session:
        for epoch in range(1, 7):
            session.epoch(checkpoint=str(weights(tmp_path, epoch)))
    t = training(folder)
    assert t["status"] == "finished"
    assert list(t["checkpoints"]) == [5, 6]
    assert checkpoint_files(folder) == ["e5.pt", "e6.pt"]
    assert list(model.checkpoint_collection.keys()) == [5, 6]


# ------------------------------------------------------------------------------------------------
# Exit
# ------------------------------------------------------------------------------------------------
def test_a_normal_exit_records_finished_and_waits_for_every_save(tmp_path, ref):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    handles = []
    previous = signal.getsignal(signal.SIGTERM)
    with model.training_session(folder, lock_timeout=LOCK_TIMEOUT) as session:
        assert signal.getsignal(signal.SIGTERM) != previous  # the session's handler
        lock = HeldLock(folder)  # the saves of the loop wait...
        for epoch in range(1, 5):
            handles.append(session.epoch(checkpoint=str(weights(tmp_path, epoch))))
        assert not any(h.done() for h in handles)
        threading.Timer(0.3, lock.release).start()  # ...until the exit waits for them
    lock.release()
    assert all(h.done() for h in handles)
    assert [h.result() for h in handles] == [None] * 4
    assert signal.getsignal(signal.SIGTERM) == previous  # restored
    assert model.training.status == "finished"
    t = training(folder)
    assert (t["status"], t["latest_epoch"], t["end_epoch"]) == ("finished", 4, 4)
    assert list(t["checkpoints"]) == [1, 2, 3, 4]
    loaded = ref.Model.load(str(folder))
    assert loaded.training.status == "finished"
    assert sorted(loaded.checkpoint_collection.keys()) == [1, 2, 3, 4]


@pytest.mark.parametrize("background", [True, False], ids=["background", "sync"])
def test_an_exception_in_the_block_is_re_raised_and_the_training_failed(tmp_path, background):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="the loss is NaN"):
        with model.training_session(folder, background=background) as session:
            session.epoch(checkpoint=str(weights(tmp_path, 1)))
            session.epoch()
            raise RuntimeError("the loss is NaN")
    assert model.training.status == "failed"
    t = training(folder)
    assert (t["status"], t["latest_epoch"], t["end_epoch"]) == ("failed", 2, 2)
    assert list(t["checkpoints"]) == [1]
    assert signal.getsignal(signal.SIGTERM) == previous


def test_keyboard_interrupt_is_re_raised_and_the_training_failed(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        with model.training_session(folder) as session:
            session.epoch(checkpoint=str(weights(tmp_path, 1)))
            raise KeyboardInterrupt
    t = training(folder)
    assert (t["status"], t["end_epoch"]) == ("failed", 1)
    assert list(t["checkpoints"]) == [1]


def _failing_save_in_session(tmp_path, session, model):
    """In the block: an epoch whose background save fails (its file was rewritten before the
    worker copied it), then the file put back as it was, so that the end can be saved."""
    path = weights(tmp_path, 1)
    original = path.read_bytes()
    model.register_epoch(1)
    model.add_checkpoint(pm.Checkpoint(1, str(path), 1))
    path.write_bytes(b"rewritten\n")
    handle = session.save()
    wait_until(handle.done, what="the failing background save")  # done() takes nothing
    path.write_bytes(original)
    return path


def test_a_failed_background_save_is_raised_at_the_exit_after_the_end_was_saved(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with pytest.raises(pm.ChecksumMismatchError, match="does not have the checksum it was registered with") as info:
        with model.training_session(folder) as session:
            path = _failing_save_in_session(tmp_path, session, model)
    assert str(path) in str(info.value)
    t = training(folder)
    assert (t["status"], t["end_epoch"]) == ("finished", 1)
    assert list(t["checkpoints"]) == [1]
    assert model.wait_for_saves() is None  # raised once


def test_a_failed_background_save_is_a_note_of_the_blocks_exception(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with pytest.raises(RuntimeError, match="diverged") as info:
        with model.training_session(folder) as session:
            _failing_save_in_session(tmp_path, session, model)
            raise RuntimeError("diverged")
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 1, notes
    assert notes[0].startswith("plums_model: the training session: ChecksumMismatchError: ")
    assert "does not have the checksum it was registered with" in notes[0]
    t = training(folder)
    assert (t["status"], t["end_epoch"]) == ("failed", 1)


def test_unknown_save_options_are_refused_on_entry(tmp_path):
    model = new_model(tmp_path)
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\): bogus"):
        with model.training_session(tmp_path / "model", bogus=1):
            pytest.fail("the block ran")
    assert signal.getsignal(signal.SIGTERM) == previous


def test_a_session_in_another_thread_installs_no_signal_handler(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    previous = signal.getsignal(signal.SIGTERM)
    seen = {}

    def train():
        try:
            with model.training_session(folder) as session:
                seen["handler"] = signal.getsignal(signal.SIGTERM)
                for epoch in (1, 2):
                    session.epoch(checkpoint=str(weights(tmp_path, epoch)))
        except BaseException as error:  # reported below
            seen["error"] = error

    thread = threading.Thread(target=train)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "error" not in seen, seen.get("error")
    assert seen["handler"] == previous
    t = training(folder)
    assert (t["status"], t["end_epoch"]) == ("finished", 2)


def test_session_save_now(tmp_path):
    model = new_model(tmp_path)
    folder = tmp_path / "model"
    with model.training_session(folder, save_every=100) as session:
        session.epoch(checkpoint=str(weights(tmp_path, 1)))
        assert session.save(background=False) is None  # synchronous, waits for the entry's save
        assert list(training(folder)["checkpoints"]) == [1]
        session.epoch(checkpoint=str(weights(tmp_path, 2)))
        handle = session.save()  # the session's setting: background
        assert handle.result() is None
        assert list(training(folder)["checkpoints"]) == [1, 2]


def test_training_terminated_is_not_an_exception():
    assert issubclass(pm.TrainingTerminated, BaseException)
    assert not issubclass(pm.TrainingTerminated, Exception)


# ------------------------------------------------------------------------------------------------
# SIGTERM
# ------------------------------------------------------------------------------------------------
CHILD = """
    import os, signal, sys, time
    from pathlib import Path
    import plums_model as pm

    root, mode = sys.argv[1], sys.argv[2]
    Path("config.py").write_text("lr = 0.1\\n")
    Path("weights").mkdir(exist_ok=True)
    model = pm.Model("trainer", "py_pa", "1.0.0", "child", "child-1", "config.py", {"classes": 3})
    if mode == "handler":
        def on_sigterm(signum, frame):
            # Run after the session saved the end: the folder says so.
            status = pm.validate(root, strict=True)["model"]["training"]["status"]
            Path("marker").write_text("{} {}".format(status, signum))
            sys.exit(3)
        signal.signal(signal.SIGTERM, on_sigterm)
    with model.training_session(root, lock_timeout=300) as session:
        for epoch in range(1, 1000000):
            path = Path("weights") / "e{}.pt".format(epoch)
            path.write_bytes(b"weights of epoch %d" % epoch)
            session.epoch(checkpoint=str(path))
            if epoch == 3:
                print("ready", flush=True)
            time.sleep(0.05)
    print("the loop ended", flush=True)
"""


def start_child(tmp_path, folder, mode):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    return subprocess.Popen([sys.executable, str(script), str(folder), mode], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(process, expected, timeout=60.0):
    """Read the child's stdout until the line ``expected`` (at most ``timeout`` s)."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            process.kill()
            pytest.fail("the child did not print {!r} within {} s".format(expected, timeout))
        line = process.stdout.readline()
    if line.strip() != expected:
        process.kill()
        out, err = process.communicate()
        pytest.fail("the child printed {!r} instead of {!r}; stderr: {}".format(line + out, expected, err))


def finish(process, timeout=120):
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail("the child did not end within {} s after SIGTERM; stderr: {}".format(timeout, err))
    return out, err


def check_failed(folder):
    t = training(folder)
    assert t["status"] == "failed"
    assert t["latest_epoch"] >= 3 and t["end_epoch"] == t["latest_epoch"]
    checkpoints = list(t["checkpoints"])
    # Every epoch's checkpoint, but maybe the last epoch's (SIGTERM between its registration and
    # its checkpoint).
    assert checkpoints == list(range(1, len(checkpoints) + 1))
    assert len(checkpoints) in (t["latest_epoch"], t["latest_epoch"] - 1)
    return t


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_records_failed_and_ends_the_process_by_sigterm(tmp_path):
    folder = tmp_path / "model"
    process = start_child(tmp_path, folder, "default")
    wait_for_line(process, "ready")
    process.send_signal(signal.SIGTERM)
    out, err = finish(process)
    assert process.returncode == -signal.SIGTERM, err
    assert "the loop ended" not in out
    check_failed(folder)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_during_a_slow_background_save_waits_for_it(tmp_path):
    folder = tmp_path / "model"
    process = start_child(tmp_path, folder, "default")
    wait_for_line(process, "ready")
    with HeldLock(folder):  # the child's next saves wait for it
        process.send_signal(signal.SIGTERM)
        # The child cannot end while its saves wait: the session waits for them.
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=1.0)
        # A second SIGTERM while the end is being saved is deferred: the save still ends.
        process.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=0.5)
    out, err = finish(process)
    assert process.returncode == -signal.SIGTERM, err
    check_failed(folder)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_runs_the_handler_installed_before_the_session_after_the_save(tmp_path):
    folder = tmp_path / "model"
    process = start_child(tmp_path, folder, "handler")
    wait_for_line(process, "ready")
    process.send_signal(signal.SIGTERM)
    out, err = finish(process)
    assert process.returncode == 3, err
    assert (tmp_path / "marker").read_text() == "failed {}".format(int(signal.SIGTERM))
    check_failed(folder)


# ------------------------------------------------------------------------------------------------
# Object storage
# ------------------------------------------------------------------------------------------------
def test_a_session_on_s3_with_background_saves(s3, tmp_path, isolated):
    model = new_model(tmp_path)
    with model.training_session(s3.url(), storage_options=s3.storage_options,
                                retention=pm.Retention(last=3)) as session:
        for epoch in range(1, 6):
            assert isinstance(session.epoch(checkpoint=str(weights(tmp_path, epoch))), pm.SaveHandle)
    t = training(s3.url(), storage_options=s3.storage_options)
    assert (t["status"], t["latest_epoch"], t["end_epoch"]) == ("finished", 5, 5)
    assert list(t["checkpoints"]) == [3, 4, 5]
    prefix = s3.key("data/checkpoints/")
    keys = []
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        keys.extend(o["Key"][len(prefix):] for o in page.get("Contents", []))
    assert sorted(keys) == ["e3.pt", "e4.pt", "e5.pt"]
    loaded = pm.Model.load(s3.url(), storage_options=s3.storage_options)
    assert loaded.training.status == "finished"
