"""Producer versions: a registry of version classes, with PEP 440 (``py_pa``, the core's) built in."""

import abc
import re
from functools import total_ordering

from . import _native

_registry = {}
_hooks = {}
_formats = _native.VersionFormats()  # what the core parses producer versions with

_camel1 = re.compile("(.)([A-Z][a-z]+)")
_camel2 = re.compile("([a-z0-9])([A-Z])")


def _snake(name):
    return _camel2.sub(r"\1_\2", _camel1.sub(r"\1_\2", name)).lower()


class _MetaVersion(abc.ABCMeta):
    """Gives every Version class a ``format``: its class name in snake case (``PyPA`` -> ``py_pa``).

    As in the reference, the metaclass also sets the instances' ``format``, replacing any
    ``format`` a subclass defines: an instance always reports the format its class is
    registered under, so a save never writes an unregistered format.
    """

    def __new__(mcs, name, bases, namespace, **kwargs):
        namespace = dict(namespace)
        namespace["format"] = _instance_format
        return super().__new__(mcs, name, bases, namespace, **kwargs)

    @property
    def format(cls):
        return _snake(cls.__name__)


@property
def _instance_format(self):
    """str: The version format (the class name in snake case)."""
    return type(self).format


@total_ordering
class Version(metaclass=_MetaVersion):
    """Abstract base class of producer versions: subclasses define ``__init__(value)``,
    ``__str__``, ``__eq__`` and ``__lt__`` and are registered with :func:`register`."""

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
    """A PEP 440 version (format ``py_pa``), normalised, parsed, ordered and hashed by the Rust core."""

    def __init__(self, version):
        self._version = _native.Pep440(str(version))

    def __str__(self):
        return str(self._version)

    def __eq__(self, other):
        if isinstance(other, PyPA):
            return self._version == other._version
        return NotImplemented

    def __lt__(self, other):
        if isinstance(other, PyPA):
            return self._version < other._version
        return NotImplemented

    def __hash__(self):
        return hash(self._version)

    def __reduce__(self):
        return type(self), (str(self),)


def register(cls, hook=None):
    """Register a version class (``cls.format`` names it) with an optional construction hook.

    The format is known to the Rust core by name: models using it can be saved (the core writes
    ``str(instance)`` as the version value) and loaded (the core reads the value, and this
    function builds the instance); the class's methods are its only rules.
    """
    fmt = cls.format
    _registry[fmt] = cls
    if hook is not None:
        _hooks[fmt] = hook
    else:
        _hooks.pop(fmt, None)
    _formats.register(fmt)


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
