"""Producer versions: a registry of version formats, with PEP 440 (``py_pa``) built in."""

import abc
import re
from functools import total_ordering

from . import _native

_registry = {}
_hooks = {}

_camel1 = re.compile("(.)([A-Z][a-z]+)")
_camel2 = re.compile("([a-z0-9])([A-Z])")


def _snake(name):
    return _camel2.sub(r"\1_\2", _camel1.sub(r"\1_\2", name)).lower()


class _MetaVersion(abc.ABCMeta):
    """Gives every Version class a ``format``: its class name in snake case (``PyPA`` -> ``py_pa``)."""

    @property
    def format(cls):
        return _snake(cls.__name__)


@total_ordering
class Version(metaclass=_MetaVersion):
    """Abstract base class of producer versions: subclasses define ``__init__(value)``,
    ``__str__``, ``__eq__`` and ``__lt__`` and are registered with :func:`register`."""

    @property
    def format(self):
        """str: The version format (the class name in snake case)."""
        return type(self).format

    @property
    def version(self):
        """str: The version string (``str(self)``)."""
        return str(self)

    def __repr__(self):
        return "{}({})".format(type(self).__name__, str(self))

    @abc.abstractmethod
    def __str__(self):
        raise NotImplementedError

    @abc.abstractmethod
    def __eq__(self, other):
        return NotImplemented

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    @abc.abstractmethod
    def __lt__(self, other):
        return NotImplemented

    def __hash__(self):
        return hash((self.format, str(self)))


class PyPA(Version):
    """A PEP 440 version (format ``py_pa``), normalised, parsed and ordered by the Rust core."""

    def __init__(self, version):
        self._version = _native.pep440_normalize(str(version))

    def __str__(self):
        return self._version

    def __eq__(self, other):
        if isinstance(other, PyPA):
            return _native.compare_versions("py_pa", self._version, other._version) == 0
        return NotImplemented

    def __lt__(self, other):
        if isinstance(other, PyPA):
            return _native.compare_versions("py_pa", self._version, other._version) == -1
        return NotImplemented

    def __hash__(self):
        # Equal versions must hash alike: "1.0" == "1.0.0", so trailing zeros of the release
        # segment do not count (the string is normalised, so nothing else differs).
        epoch, release, rest = _PEP440_PARTS.match(self._version).groups()
        return hash((self.format, int(epoch or 0), re.sub(r"(?:\.0+)+$", "", release), rest))


_PEP440_PARTS = re.compile(r"^(?:(\d+)!)?(\d+(?:\.\d+)*)(.*)$", re.S)


def register(cls, hook=None):
    """Register a version class (``cls.format`` names it) with an optional construction hook.

    The class is registered in the Rust core too: models using the format can be saved and
    loaded, the core writes ``str(instance)`` as the version value, and orders versions with the
    class's ``__eq__`` and ``__lt__``, called back from Rust.
    """
    fmt = cls.format
    _registry[fmt] = cls
    if hook is not None:
        _hooks[fmt] = hook
    else:
        _hooks.pop(fmt, None)
    if cls is not PyPA:  # the core's own PEP 440 format is the built-in py_pa
        _native.register_format(fmt, lambda value, _fmt=fmt: version(_fmt, value))


def version(format, value):
    """Build a version of the registered ``format`` from its string ``value``.

    Raises:
        ValueError: If ``format`` is not registered, or ``value`` is not a valid version of it.
    """
    try:
        cls = _registry[format]
    except KeyError:
        raise ValueError("Invalid version format provided: {} is unknown (registered: {}).".format(
            format, ", ".join(sorted(_registry)))) from None
    return _hooks.get(format, lambda instance: instance)(cls(value))


register(PyPA)
