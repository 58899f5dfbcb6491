"""Model components: Producer, Training, Checkpoint and CheckpointCollection.

The rules (training cross-checks, status machine, checksums, version parsing) are the Rust
core's, reached through ``_native``; these classes keep the reference API's Python semantics.
"""

import os
import re
import time
from collections import OrderedDict
from functools import total_ordering
from pathlib import Path

from . import _native
from ._version import version as _version

_MD5 = re.compile(r"^[a-f0-9]{32}$")
_STATUSES = ("pending", "running", "failed", "finished")


def _path(value):
    return Path(os.fspath(value))


def _require_file(path, what):
    """OSError unless ``path`` is a file: FileNotFoundError when nothing is there,
    IsADirectoryError for a folder (the reference raises a plain OSError for both)."""
    if path.is_file():
        return
    message = "Invalid {}: {} is not a file.".format(what, path)
    if path.is_dir():
        raise IsADirectoryError(message)
    if not os.path.lexists(path):
        raise FileNotFoundError("Invalid {}: {} does not exist.".format(what, path))
    raise OSError(message)


def _check_reference(name):
    if isinstance(name, bool) or not isinstance(name, (int, str)):
        raise ValueError("Invalid checkpoint reference {!r}: a reference is an int or a str.".format(name))


@total_ordering
class Producer:
    """The package that produced a model, its version and its configuration file.

    Raises:
        OSError: If ``configuration`` is not an existing file.
        ValueError: If the version format is unknown or the version invalid.
    """

    def __init__(self, name, version_format, version_string, configuration):
        configuration = _path(configuration)
        _require_file(configuration, "configuration")
        self.name = name
        self.version = _version(version_format, version_string)
        self.configuration = configuration

    def __repr__(self):
        return "{}(name={}, version={!r})".format(type(self).__name__, self.name, self.version)

    def __eq__(self, other):
        if not isinstance(other, Producer):
            return NotImplemented
        return self.name == other.name and self.version == other.version

    def __lt__(self, other):
        if not isinstance(other, Producer):
            return NotImplemented
        return self.name == other.name and self.version < other.version

    __hash__ = None

    def strict_equals(self, other):
        """Whether both producers are equal and their configuration files have the same content."""
        if not isinstance(other, Producer):
            return NotImplemented
        if self != other:
            return False
        if os.path.getsize(self.configuration) != os.path.getsize(other.configuration):
            return False
        return _native.md5_file(self.configuration) == _native.md5_file(other.configuration)


class Training:
    """A model's training state: status, epochs and times.

    Missing latest values default to the end values, then the start values; an invalid
    combination raises ``ValueError`` listing every broken rule.
    """

    def __init__(self, start_time=None, start_epoch=None, latest_time=None, latest_epoch=None,
                 end_time=None, end_epoch=None, status="pending"):
        if status not in _STATUSES:
            raise ValueError("Invalid training status: {!r} is not pending, running, failed or finished.".format(status))
        if latest_epoch is None:
            latest_epoch = end_epoch if end_epoch is not None else start_epoch
        if latest_time is None:
            latest_time = end_time if end_time is not None else start_time
        record = {"status": status, "start_time": start_time, "start_epoch": start_epoch,
                  "latest_time": latest_time, "latest_epoch": latest_epoch,
                  "end_time": end_time, "end_epoch": end_epoch}
        _native.new_training(record)
        self._status = status
        self._start_epoch, self._start_timestamp = start_epoch, start_time
        self._latest_epoch, self._latest_timestamp = latest_epoch, latest_time
        self._end_epoch, self._end_timestamp = end_epoch, end_time

    def _record(self):
        return {"status": self._status, "start_time": self._start_timestamp, "start_epoch": self._start_epoch,
                "latest_time": self._latest_timestamp, "latest_epoch": self._latest_epoch,
                "end_time": self._end_timestamp, "end_epoch": self._end_epoch}

    @property
    def status(self):
        """str: pending, running, failed or finished; set it through the status machine."""
        return self._status

    @status.setter
    def status(self, value):
        if value not in _STATUSES:
            raise ValueError("Invalid training status: {!r} is not pending, running, failed or finished.".format(value))
        if not _native.status_can_become(self._status, value):
            raise ValueError("Invalid training status: a {} training cannot become {}.".format(self._status, value))
        self._status = value

    start_epoch = property(lambda self: self._start_epoch, doc="int: The starting epoch, or None.")
    start_timestamp = property(lambda self: self._start_timestamp, doc="float: The starting time, or None.")
    latest_epoch = property(lambda self: self._latest_epoch, doc="int: The latest epoch, or None.")
    latest_timestamp = property(lambda self: self._latest_timestamp, doc="float: The latest epoch's time, or None.")
    end_epoch = property(lambda self: self._end_epoch, doc="int: The ending epoch, or None.")
    end_timestamp = property(lambda self: self._end_timestamp, doc="float: The ending time, or None.")
    is_running = property(lambda self: self._status == "running", doc="bool: Whether the training is running.")
    is_pending = property(lambda self: self._status == "pending", doc="bool: Whether the training is pending.")
    is_finished = property(lambda self: self._status == "finished", doc="bool: Whether the training is finished.")
    is_failed = property(lambda self: self._status == "failed", doc="bool: Whether the training is failed.")

    def __repr__(self):
        return "{}({})".format(type(self).__name__, self._status)

    def start(self, epoch):
        """Start the training at ``epoch``, now."""
        self.status = "running"
        self._start_epoch = self._latest_epoch = epoch
        self._start_timestamp = self._latest_timestamp = time.time()

    def register_epoch(self, epoch=None):
        """Register ``epoch`` (default: latest + 1) as the latest epoch, now.

        Raises:
            ValueError: If the training is not running (the reference crashes with a TypeError).
        """
        if self._status != "running" or self._latest_epoch is None:
            raise ValueError("Cannot register an epoch: the training is {}, expected running "
                             "(call start first).".format(self._status))
        self._latest_epoch = max(self._latest_epoch, epoch) if epoch is not None else self._latest_epoch + 1
        self._latest_timestamp = time.time()

    def interrupt(self):
        """End the training abnormally: status failed, end set to latest."""
        self.status = "failed"
        self._end_epoch, self._end_timestamp = self._latest_epoch, self._latest_timestamp

    def end(self):
        """End the training normally: status finished, end set to latest."""
        self.status = "finished"
        self._end_epoch, self._end_timestamp = self._latest_epoch, self._latest_timestamp


class Checkpoint:
    """A checkpoint: a unique reference (``name``), a data file, an epoch and an MD5 checksum.

    Equality and hashing use ``(epoch, hash)`` only.

    Raises:
        OSError: If ``path`` is given and is not a file.
        ValueError: If ``hash`` is not 32 lowercase hexadecimal digits, or neither path nor hash is given.
    """

    def __init__(self, name, path=None, epoch=None, hash=None):
        self._core = None
        self.path = _path(path) if path is not None else None
        if self.path is not None:
            _require_file(self.path, "checkpoint")
        self.name = name
        self.epoch = epoch
        if hash is not None:
            if not isinstance(hash, str) or not _MD5.match(hash):
                raise ValueError("Invalid checkpoint hash {!r}: expected 32 lowercase hexadecimal digits.".format(hash))
            self.hash = hash
        elif self.path is not None:
            # The core remembers what the file looked like when hashed: a save copies it
            # without reading it again if it has not changed since.
            self.hash, self._core = _native.hash_checkpoint(self.path)
        else:
            raise ValueError("Invalid checkpoint {!r}: give a path to its file or its MD5 hash "
                             "(neither was given).".format(name))

    @property
    def path(self):
        """Path: The checkpoint data file, or None."""
        path = self._path
        if path is not None and not isinstance(path, Path):
            path = self._path = Path(path)
        return path

    @path.setter
    def path(self, value):
        self._path = None if value is None else _path(value)

    @classmethod
    def _loaded(cls, name, path, epoch, digest):
        """A checkpoint from validated metadata (no checks; the path becomes a Path on first use)."""
        checkpoint = cls.__new__(cls)
        checkpoint.name, checkpoint._path, checkpoint.epoch, checkpoint.hash = name, path, epoch, digest
        checkpoint._core = None
        return checkpoint

    def __repr__(self):
        return "{}(name={}, path={}, epoch={}, hash={})".format(
            type(self).__name__, self.name, self.path, self.epoch, self.hash)

    __str__ = __repr__

    def __eq__(self, other):
        if not isinstance(other, Checkpoint):
            return NotImplemented
        return self.epoch == other.epoch and self.hash == other.hash

    def __hash__(self):
        return hash((self.epoch, self.hash))


class _EpochIndexer:
    def __init__(self, collection):
        self._collection = collection

    def __repr__(self):
        return repr(self._collection)

    def __getitem__(self, epoch):
        selected = [c for c in self._collection.values() if c.epoch == epoch]
        if not selected:
            raise IndexError("Invalid epoch number provided: {}".format(epoch))
        return CheckpointCollection(*selected)


class _IndexIndexer:
    def __init__(self, collection):
        self._collection = collection
        self._index = tuple(collection.keys())

    def __repr__(self):
        return repr(self._collection)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return tuple(self._collection[r] for r in self._index[key])
        return self._collection[self._index[key]]


class CheckpointCollection:
    """An insertion-ordered mapping of reference to :class:`Checkpoint`, with a ``latest``."""

    def __init__(self, *checkpoints):
        self._checkpoints = OrderedDict()
        self._latest = None
        for checkpoint in checkpoints:
            self.add(checkpoint)

    @property
    def latest(self):
        """hashable: The reference of the latest added checkpoint, or None."""
        return self._latest

    @property
    def eloc(self):
        """Indexer: ``eloc[epoch]`` is a new collection of the checkpoints of that epoch (IndexError if none)."""
        return _EpochIndexer(self)

    @property
    def iloc(self):
        """Indexer: ``iloc[i]`` is a checkpoint by insertion index, ``iloc[a:b]`` a tuple."""
        return _IndexIndexer(self)

    def __repr__(self):
        return "{}({})".format(type(self).__name__, tuple(self._checkpoints.values()))

    def __eq__(self, other):
        if not isinstance(other, CheckpointCollection):
            return NotImplemented
        return set(self.items()) == set(other.items())

    __hash__ = None

    def add(self, checkpoint):
        """Add a checkpoint under its name; it becomes the latest.

        Raises:
            KeyError: If the name is already registered.
            ValueError: If the checkpoint has no epoch, or its name is not an int or a str.
        """
        _check_reference(checkpoint.name)
        if checkpoint.name in self._checkpoints:
            raise KeyError("Checkpoint name {!r} already registered: {}".format(
                checkpoint.name, self._checkpoints[checkpoint.name]))
        if checkpoint.epoch is None:
            raise ValueError("Checkpoint epoch is None in a CheckpointCollection.")
        self._checkpoints[checkpoint.name] = checkpoint
        self._latest = checkpoint.name

    def __getitem__(self, reference):
        return self._checkpoints[reference]

    def __setitem__(self, reference, checkpoint):
        _check_reference(reference)
        copy = Checkpoint(reference, hash=checkpoint.hash, epoch=checkpoint.epoch)
        copy.path = checkpoint.path
        copy._core = getattr(checkpoint, "_core", None)
        if reference in self._checkpoints:
            if copy.epoch is None:
                raise ValueError("Checkpoint epoch is None in a CheckpointCollection.")
            self._checkpoints[reference] = copy
        else:
            self.add(copy)

    def __delitem__(self, reference):
        del self._checkpoints[reference]
        self._latest = next(reversed(self._checkpoints), None)

    def __contains__(self, reference):
        return reference in self._checkpoints

    def __len__(self):
        return len(self._checkpoints)

    def __iter__(self):
        return iter(self._checkpoints)

    def get(self, reference, default=None):
        """The checkpoint ``reference``, or ``default``."""
        element = self._checkpoints.get(reference)
        return element if element is not None else default

    def keys(self):
        """The references, in insertion order."""
        return self._checkpoints.keys()

    def values(self):
        """The checkpoints, in insertion order."""
        return self._checkpoints.values()

    def items(self):
        """The ``(reference, checkpoint)`` pairs, in insertion order."""
        return self._checkpoints.items()
