"""Model components: Producer (Python), and the native Training, Checkpoint and CheckpointCollection.

``Training``, ``Checkpoint`` and ``CheckpointCollection`` are classes of the Rust extension:
their rules (training defaults, cross-checks and status machine, checksum syntax and file
checks, collection semantics) are the core's. ``Producer`` stays a Python class because it
holds a Python ``Version`` object (user-registered version classes are Python classes).
"""

import os
from functools import total_ordering
from pathlib import Path

from . import _native
from ._version import version as _version

Training = _native.Training
Checkpoint = _native.Checkpoint
CheckpointCollection = _native.CheckpointCollection


def _path(value):
    return Path(os.fspath(value))


@total_ordering
class Producer:
    """The package that produced a model, its version and its configuration file.

    Raises:
        OSError: If ``configuration`` is not an existing file.
        ValueError: If the version format is unknown or the version invalid.
    """

    def __init__(self, name, version_format, version_string, configuration):
        configuration = _path(configuration)
        _native.check_configuration(configuration)
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
        return _native.same_configuration(self.configuration, other.configuration)
