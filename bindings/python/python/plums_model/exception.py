"""Exceptions of plums_model, with the hierarchy of ``plums.model.exception``."""

from typing import List, NamedTuple

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


class PlumsError(Exception):
    """Base exception for all Plums specific errors."""


class PlumsValidationError(SchemaError, PlumsError):
    """Base exception for all Plums schema validation errors; also a ``schema.SchemaError``.

    The constructor is ``schema.SchemaError``'s, ``(autos, errors=None)``, as in the reference,
    plus ``offences``: every offence found, kept as a list of :class:`Offence` named tuples
    ``(kind, location, message)`` in the ``offences`` attribute (``[]`` when not given).
    """

    def __init__(self, autos, errors=None, offences=()):
        super().__init__(autos, errors)
        self.offences: List[Offence] = [o if isinstance(o, Offence) else Offence(*o) for o in offences]

    def __reduce__(self):
        # Pickle (multiprocessing) with the offences, which ``Exception``'s default would drop.
        return type(self), (self.autos, self.errors, self.offences)


class PlumsModelError(PlumsError):
    """Base exception for all Plums Model specific errors."""


class PlumsModelTreeValidationError(PlumsValidationError, PlumsModelError):
    """A model's folder tree is invalid (missing, misplaced or unsafe files, checksum mismatches)."""


class PlumsModelMetadataValidationError(PlumsValidationError, PlumsModelError):
    """A model's metadata is invalid."""


class _MetadataOffencesError(PlumsModelMetadataValidationError, PlumsModelTreeValidationError):
    """Raised for metadata offences found while validating a model folder.

    The reference raises ``PlumsModelTreeValidationError`` for every invalid folder (its
    metadata errors are wrapped into tree errors); this class is both, so code written for the
    reference keeps catching it while new code can tell metadata offences apart.
    """


def _from_failure(failure, verbose=False):
    """The Plums exception for a native ``ValidationFailure(kind, message, offences)``."""
    kind, message, offences = failure.args
    cls = _MetadataOffencesError if kind == "metadata" else PlumsModelTreeValidationError
    if not verbose:
        lines = message.splitlines()
        if len(lines) > 1:
            # One offence: say what it is; several: say the first and where to find the others.
            message = lines[0] + (": " if len(offences) <= 1 else "; first: ") + lines[1].strip()
        if len(offences) > 1:
            message += " (verbose=True lists them all; see .offences)"
    return cls(message, offences=offences)


class _MissingModelError(PlumsModelTreeValidationError, FileNotFoundError):
    """Raised when the model folder given to ``validate`` or ``Model.load`` does not exist.

    The reference raises ``PlumsModelTreeValidationError`` for it; this class is also a
    ``FileNotFoundError``, so both ways of catching it work.
    """


def _missing_model(path, error):
    """The exception for a model folder ``path`` that does not exist (``error``: the native one)."""
    missing = _MissingModelError(str(error), offences=[("tree", ".", "{} does not exist".format(path))])
    missing.errno = getattr(error, "errno", None)
    return missing
