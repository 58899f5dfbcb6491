"""plums_model: the Plums Model Format (PMF) 1.0.0, with the API of ``plums.model`` on a Rust core.

Replace ``from plums.model import ...`` with ``from plums_model import ...``: the classes,
signatures and exceptions are the same; loading, validating, hashing and saving run in Rust,
with the GIL released, and validation reports every offence at once. Refusals raise precise
exceptions (``plums_model.exception``), each a subclass of the built-in exception the
reference raises.
"""

from ._components import Checkpoint, CheckpointCollection, Producer, Training
from ._model import FORMAT_VERSION, Model, initialisation, list_models, validate
from ._native import ModelSummary, Retention, SaveHandle
from ._session import TrainingSession, TrainingTerminated
from ._version import PyPA, Version, register, version
from .exception import (
    ChecksumMismatchError,
    CheckpointWithoutEpochError,
    ConcurrentChangeError,
    DestinationIsFileError,
    ForeignFolderError,
    InterruptedSaveError,
    InvalidDestinationError,
    InvalidLocationError,
    InvalidSameModelError,
    InvalidRetentionError,
    InvalidSessionError,
    InvalidStorageOptionError,
    LockHolder,
    MetadataOffencesError,
    ModelLockedError,
    ModelNotFoundError,
    Offence,
    OtherModelError,
    PlumsError,
    PlumsModelError,
    PlumsModelMetadataValidationError,
    PlumsModelTreeValidationError,
    PlumsValidationError,
    SaveProblem,
    StorageError,
    StorageNotFoundError,
    StoragePermissionError,
    StorageTimeoutError,
    UnsupportedLocationError,
    WouldNotValidateError,
)

__all__ = [
    "Checkpoint", "CheckpointCollection", "CheckpointWithoutEpochError", "ChecksumMismatchError",
    "ConcurrentChangeError", "DestinationIsFileError", "FORMAT_VERSION", "ForeignFolderError",
    "InterruptedSaveError", "InvalidDestinationError", "InvalidLocationError", "InvalidSameModelError",
    "InvalidRetentionError", "InvalidSessionError", "InvalidStorageOptionError", "LockHolder",
    "MetadataOffencesError", "Model", "ModelLockedError", "ModelNotFoundError", "Offence", "OtherModelError",
    "PlumsError", "PlumsModelError", "PlumsModelMetadataValidationError", "PlumsModelTreeValidationError",
    "PlumsValidationError", "Producer", "PyPA", "Retention", "SaveHandle", "SaveProblem", "StorageError", "StorageNotFoundError",
    "StoragePermissionError", "StorageTimeoutError", "Training", "TrainingSession", "TrainingTerminated",
    "UnsupportedLocationError", "Version",
    "WouldNotValidateError",
    "ModelSummary", "initialisation", "list_models", "register", "validate", "version",
]
