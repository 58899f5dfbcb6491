"""Exceptions of plums_model: the hierarchy of ``plums.model.exception``, and precise classes.

The Rust core raises one typed error per refusal; the native module maps each onto a class
here, by variant (never by message text). Every class is a subclass of the built-in exception
the reference raises for the same case (``except OSError`` and ``except ValueError`` keep
working), and carries the error's data as attributes. Pickling keeps them (multiprocessing).
"""

from typing import List, NamedTuple, Optional

from schema import SchemaError


class Offence(NamedTuple):
    """One thing wrong with a model: its kind, where it is, and what is wrong."""

    kind: str
    """``"tree"`` or ``"metadata"``."""
    location: str
    """A file path relative to the model root, or a dotted metadata key path."""
    message: str
    """What is wrong, and what would be right."""

    def __str__(self) -> str:
        return "[{}] {}: {}".format(self.kind, self.location, self.message)


class SaveProblem(NamedTuple):
    """One reason a model cannot be saved as a valid PMF model."""

    location: str
    """What the reason is about: a key path of the model (``producer.name``, ``checkpoints.3``)."""
    message: str
    """What is wrong, and what would be right."""

    def __str__(self) -> str:
        return "{}: {}".format(self.location, self.message)


class LockHolder(NamedTuple):
    """Who holds a model's writer lock, as it recorded itself in the lock file (``None``: unknown)."""

    pid: Optional[int]
    host: Optional[str]
    since: Optional[int]
    """When it took the lock, in seconds since the Unix epoch."""


# ------------------------------------------------------------------------------------------------
# The reference's hierarchy
# ------------------------------------------------------------------------------------------------
class PlumsError(Exception):
    """Base exception for all Plums specific errors."""


class PlumsValidationError(SchemaError, PlumsError):
    """Base exception for all Plums schema validation errors; also a ``schema.SchemaError``.

    The constructor is ``schema.SchemaError``'s, ``(autos, errors=None)``, as in the reference,
    plus ``offences``: every offence found, kept as a list of :class:`Offence` named tuples
    ``(kind, location, message)`` in the ``offences`` attribute (``[]`` when not given), and
    ``path``, the validated model folder (a ``Path``; for a model in object storage its URL, a
    ``str``), or ``None``.
    """

    def __init__(self, autos, errors=None, offences=(), path=None):
        super().__init__(autos, errors)
        self.offences: List[Offence] = [o if isinstance(o, Offence) else Offence(*o) for o in offences]
        self.path = path

    def __reduce__(self):
        # Pickle (multiprocessing) with the offences, which ``Exception``'s default would drop.
        return _restore, (type(self), (self.autos, self.errors), self.__dict__, getattr(self, "errno", None))


class PlumsModelError(PlumsError):
    """Base exception for all Plums Model specific errors."""


class PlumsModelTreeValidationError(PlumsValidationError, PlumsModelError):
    """A model's folder tree is invalid (missing, misplaced or unsafe files, checksum mismatches)."""


class PlumsModelMetadataValidationError(PlumsValidationError, PlumsModelError):
    """A model's metadata is invalid."""


# ------------------------------------------------------------------------------------------------
# Precise classes (ours)
# ------------------------------------------------------------------------------------------------
class MetadataOffencesError(PlumsModelMetadataValidationError, PlumsModelTreeValidationError):
    """Raised for metadata offences found while validating a model folder.

    The reference raises ``PlumsModelTreeValidationError`` for every invalid folder (its
    metadata errors are wrapped into tree errors); this class is both, so code written for the
    reference keeps catching it while new code can tell metadata offences apart.
    """


class ModelNotFoundError(PlumsModelTreeValidationError, FileNotFoundError):
    """Raised when the model folder given to ``validate`` or ``Model.load`` does not exist.

    The reference raises ``PlumsModelTreeValidationError`` for it; this class is also a
    ``FileNotFoundError``, so both ways of catching it work.
    """


def _restore(cls, args, state, errno):
    error = cls(*args)
    error.__dict__.update(state)
    if errno is not None:
        error.errno = errno
    return error


class _Refusal:
    """What the precise classes share: ``(message, **data)``, the data as attributes, pickling.

    ``path`` is where it happened: a local ``Path``, or for object storage the URL (a ``str``,
    ``s3://bucket/prefix``), or ``None``."""

    _fields = ()

    def __init__(self, message, path=None, **data):
        super().__init__(message)
        self.path = path
        for field in self._fields:
            setattr(self, field, data.pop(field, None))
        if data:
            raise TypeError("unexpected keyword argument(s): {}".format(", ".join(sorted(data))))

    def __reduce__(self):
        return _restore, (type(self), self.args, self.__dict__, getattr(self, "errno", None))

    def __str__(self):
        return str(self.args[0]) if self.args else ""


class ConcurrentChangeError(_Refusal, FileExistsError):
    """Another writer saved the model since this model object loaded or last saved it: saving
    would lose that update. Reload, or save with ``overwrite_concurrent_changes=True``."""


class OtherModelError(_Refusal, FileExistsError):
    """The save destination holds another PMF model (``found_id``; ``saving_id`` is the saved
    model's id): never overwritten, even with ``force``."""

    _fields = ("found_id", "saving_id")


class ForeignFolderError(_Refusal, FileExistsError):
    """The save destination is a non-empty folder that is not a PMF model (save with ``force``)."""


class InvalidDestinationError(_Refusal, OSError):
    """The save destination's ``metadata.yaml`` cannot be read as PMF metadata (``reason``):
    it may be another model's, so it is never overwritten."""

    _fields = ("reason",)


class InvalidSameModelError(_Refusal, OSError):
    """The save destination holds an invalid PMF model with the same id (for example a
    corrupted checkpoint, listed in ``offences``); save with ``force`` to replace its files."""

    _fields = ("offences",)

    def __init__(self, message, path=None, offences=()):
        super().__init__(message, path, offences=[o if isinstance(o, Offence) else Offence(*o) for o in offences])


class ModelLockedError(_Refusal, BlockingIOError):
    """Another writer holds the model's lock and did not release it within ``lock_timeout``:
    ``holder`` says who (a :class:`LockHolder`), ``waited`` how long this save waited (seconds)."""

    _fields = ("holder", "waited")

    def __init__(self, message, path=None, pid=None, host=None, since=None, waited=None, holder=None):
        super().__init__(message, path, holder=holder or LockHolder(pid, host, since), waited=waited)


class InterruptedSaveError(_Refusal, FileNotFoundError):
    """A save was interrupted while replacing the model folder: the folder is missing and its
    complete new tree is at ``leftover``; the next save of the model puts it in place."""

    _fields = ("leftover",)


class WouldNotValidateError(_Refusal, ValueError):
    """The model cannot be saved as a valid PMF model: ``reasons`` lists every reason as
    :class:`SaveProblem` named tuples ``(location, message)``."""

    _fields = ("reasons",)

    def __init__(self, message, path=None, reasons=()):
        super().__init__(message, path, reasons=[r if isinstance(r, SaveProblem) else SaveProblem(*r) for r in reasons])


class ChecksumMismatchError(_Refusal, ValueError):
    """A file does not have the checksum it was registered with (``expected``; its content has
    ``found``); nothing was saved."""

    _fields = ("expected", "found")


class DestinationIsFileError(_Refusal, ValueError):
    """The save destination is a file, not a folder."""


class CheckpointWithoutEpochError(_Refusal, ValueError):
    """A checkpoint without an epoch was added to a collection (``reference``: its name)."""

    _fields = ("reference",)


class InvalidLocationError(_Refusal, ValueError):
    """A location that cannot be used: an unknown URL scheme (``ftp://``), a URL without a
    bucket, credentials, a query or a fragment in a URL, an empty, ``.`` or ``..`` key segment
    (``location``: as given, credentials replaced; ``reason``: why). A ``str`` with a scheme
    (``scheme://``) is never taken for a local path."""

    _fields = ("location", "reason")


class InvalidRetentionError(_Refusal, ValueError):
    """A retention policy that cannot be used (``field``: ``last``, ``every``, ``best``, ``mode``,
    or ``rules`` when there is no rule at all; ``reason``)."""

    _fields = ("field", "reason")


class InvalidSessionError(_Refusal, ValueError):
    """A training session that cannot be run as asked (``reason``)."""

    _fields = ("reason",)


class InvalidStorageOptionError(_Refusal, ValueError):
    """A storage option that is unknown or whose value cannot be used (``key``, ``reason``;
    never its value, which may be a secret)."""

    _fields = ("key", "reason")


class UnsupportedLocationError(_Refusal, NotImplementedError):
    """An operation this version does not do on that kind of location (``operation`` on
    ``location``): refused before anything is read or written.

    No operation raises it in this version (object storage is read and written by every entry
    point); the class is kept for code that catches it."""

    _fields = ("operation", "location")


class StorageError(_Refusal, OSError):
    """An object store refused or failed a request: ``location`` (the URL of the object or
    prefix), ``operation`` (what was being done) and ``kind``: ``"not_found"``,
    ``"permission_denied"``, ``"precondition_failed"`` (the object changed while it was read),
    ``"timeout"``, ``"configuration"`` (the store cannot be configured from the options and
    environment) or ``"other"``. The message never carries a credential.

    ``not_found``, ``permission_denied`` and ``timeout`` raise the subclasses that are also
    ``FileNotFoundError``, ``PermissionError`` and ``TimeoutError``."""

    _fields = ("location", "operation", "kind")


class StorageNotFoundError(StorageError, FileNotFoundError):
    """A :class:`StorageError` of kind ``not_found``: no object (or bucket) there; for a model,
    no object under its prefix."""


class StoragePermissionError(StorageError, PermissionError):
    """A :class:`StorageError` of kind ``permission_denied``: the credentials are refused or
    lack the permission."""


class StorageTimeoutError(StorageError, TimeoutError):
    """A :class:`StorageError` of kind ``timeout``: the store did not answer in time, after the
    retries (storage options ``timeout``, ``retry_max``, ``retry_timeout``)."""


# The names of earlier versions, kept for code that imported them.
_MetadataOffencesError = MetadataOffencesError
_MissingModelError = ModelNotFoundError
