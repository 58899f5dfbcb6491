"""``TrainingSession``: a training loop that records its own start, epochs and end, and saves.

The session only orders calls of the model (``register_training_start``, ``register_epoch``,
``add_checkpoint``, ``save``, ``register_training_end``, ``wait_for_saves``): every rule is the
model's (the core's). What it adds is the exit: whatever ends the ``with`` block (its end, an
exception, KeyboardInterrupt, SIGTERM), the training's end is recorded and saved.
"""

import copy
import os
import signal
import sys
import threading

from ._components import Checkpoint
from .exception import InvalidSessionError


class TrainingTerminated(BaseException):
    """Raised in the main thread by the session's SIGTERM handler, so that the ``with`` block
    ends wherever the loop is; the session then records ``failed``, saves, and ends the process
    as SIGTERM asks. A ``BaseException``, like ``KeyboardInterrupt``: ``except Exception`` in
    the loop does not swallow it."""


class TrainingSession:
    """See :meth:`Model.training_session`."""

    def __init__(self, model, path, start_epoch=0, save_every=1, background=True, retention=None,
                 storage_options=None, **kwargs):
        if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every < 1:
            reason = "save_every must be a positive int (save every N epochs), got {!r}".format(save_every)
            raise InvalidSessionError("invalid training session: " + reason, reason=reason)
        self.model = model
        self.path = path
        self.start_epoch = start_epoch
        self.save_every = save_every
        self.background = bool(background)
        self.retention = retention
        self._save_kwargs = dict(kwargs, storage_options=storage_options)
        self._epochs = 0
        self._previous_handler = None
        self._terminated = None
        self._active = False

    def __repr__(self):
        return "TrainingSession(model={!r}, path={!r}, epochs={})".format(self.model, self.path, self._epochs)

    @property
    def epochs(self):
        """int: The epochs registered in this session."""
        return self._epochs

    def __enter__(self):
        if self._active:
            raise RuntimeError("this training session is already running")
        training = self.model.training
        before = copy.copy(training)
        if not training.is_running:
            # pending -> running; a finished or failed training refuses (ValueError).
            self.model.register_training_start(self.start_epoch)
        self._install_handler()
        self._active = True
        try:
            # Synchronous: the folder says "running" before the loop runs, and a destination
            # that refuses the model says so now, not after the training.
            self.save(background=False)
        except BaseException:
            # The session did not start: the training is as it was (a retry may start it).
            self._active = False
            self._restore_handler()
            self.model.training = before
            raise
        return self

    def epoch(self, epoch=None, checkpoint=None):
        """Register ``epoch`` (default: latest + 1), add ``checkpoint`` (a path: a
        ``Checkpoint`` referenced by the epoch, its MD5 computed now; or a ``Checkpoint``), and
        save every ``save_every`` calls. Returns the save's handle (background) or None."""
        if not self._active:
            raise RuntimeError("session.epoch() is called inside the `with` block of the session")
        self.model.register_epoch(epoch)
        if checkpoint is not None:
            if not isinstance(checkpoint, Checkpoint):
                latest = self.model.training.latest_epoch
                checkpoint = Checkpoint(latest, checkpoint, latest)
            self.model.add_checkpoint(checkpoint)
        self._epochs += 1
        if self._epochs % self.save_every == 0:
            return self.save()
        return None

    def save(self, background=None):
        """Save the model now (in the background unless ``background=False``, or the session's
        setting), with the session's retention policy."""
        background = self.background if background is None else bool(background)
        return self.model.save(self.path, background=background, retention=self.retention, **self._save_kwargs)

    def __exit__(self, exc_type, exc, tb):
        # From here on, SIGTERM is only noted: the end must be saved whole.
        deferred = []
        if self._handler_installed():
            signal.signal(signal.SIGTERM, lambda signum, frame: deferred.append(signum))
        self._active = False
        problems = []
        try:
            # The background saves first (their exceptions are collected, so that the end is
            # still saved), then the end, saved synchronously.
            problems.extend(self._drain())
            try:
                if self.model.training.is_running:
                    self.model.register_training_end(exc_type is None)
                self.save(background=False)
            except Exception as error:  # noqa: BLE001 -- raised or attached below
                problems.insert(0, error)
        finally:
            previous = self._restore_handler()
        if problems and exc is None:
            first = problems[0]
            for other in problems[1:]:
                _note(first, other)
            raise first
        for problem in problems:
            _note(exc, problem)
        if isinstance(exc, TrainingTerminated) or deferred:
            self._terminate(previous)
        return False

    def _drain(self):
        """Wait for every background save; the exceptions nobody took, oldest first."""
        errors = []
        while True:
            try:
                self.model.wait_for_saves()
                return errors
            except Exception as error:  # noqa: BLE001 -- each one is reported
                errors.append(error)

    # SIGTERM -------------------------------------------------------------------------------------

    def _install_handler(self):
        """In the main thread, and unless SIGTERM is ignored: raise TrainingTerminated on it."""
        self._previous_handler = None
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if previous == signal.SIG_IGN:
            return

        def on_sigterm(signum, frame):
            raise TrainingTerminated("SIGTERM received during the training session of model {}".format(
                self.model.id))

        signal.signal(signal.SIGTERM, on_sigterm)
        self._previous_handler = (previous,)

    def _handler_installed(self):
        return self._previous_handler is not None

    def _restore_handler(self):
        """Put back the handler found on entry; returns it (None if none was replaced)."""
        if self._previous_handler is None:
            return None
        (previous,) = self._previous_handler
        self._previous_handler = None
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        return (previous,)

    @staticmethod
    def _terminate(previous):
        """End as SIGTERM asks: the handler installed before the session runs, or (the default)
        the process is killed by SIGTERM."""
        handler = previous[0] if previous else signal.SIG_DFL
        if callable(handler):
            handler(signal.SIGTERM, None)
            return
        sys.stdout.flush()
        sys.stderr.flush()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        # Delivery is immediate for a signal sent to oneself; never go on as if nothing happened.
        os._exit(128 + signal.SIGTERM)


def _note(exc, problem):
    """Attach ``problem`` (a save's exception) to ``exc``, the exception on its way out."""
    text = "plums_model: the training session: {}: {}".format(type(problem).__name__, problem)
    if hasattr(exc, "add_note"):
        exc.add_note(text)
    else:
        sys.stderr.write(text + "\n")
