"""Type stubs of plums_model: the Plums Model Format (PMF) 1.0.0 with the API of ``plums.model``."""

import abc
import os
from pathlib import Path
from typing import (
    Any,
    Callable,
    ClassVar,
    Dict,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    List,
    Literal,
    NamedTuple,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
    ValuesView,
    overload,
)

from schema import SchemaError

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

StrPath = Union[str, "os.PathLike[str]"]
#: A model location: an ``os.PathLike`` (always a local path) or a ``str``: a local path, or a URL
#: (``s3://bucket/prefix``, ``file:///abs/path``; a ``str`` with a scheme is never a local path).
Location = Union[str, "os.PathLike[str]"]
#: Storage options: object_store's key names (``endpoint``, ``access_key_id``, ``secret_access_key``,
#: ``region``, ``allow_http``, ``session_token``, ... or ``aws_``-prefixed), and ``timeout``,
#: ``connect_timeout``, ``retry_max``, ``retry_timeout``; they win over the ``AWS_*`` environment.
StorageOptions = Dict[str, Union[str, bool, int, float]]
#: Where an error happened: a local path, or an object-store URL as a ``str`` (``s3://bucket/prefix``).
ErrorPath = Union[Path, str, None]
#: A checkpoint reference: an int or a str (``1`` and ``"1"`` are different references; not a bool).
Reference = Union[int, str]
#: A training time: seconds since the Unix epoch.
Timestamp = Union[int, float]
_V = TypeVar("_V", bound="Version")

#: The PMF version this package reads and writes.
FORMAT_VERSION: str

# ------------------------------------------------------------------------------------------------
# Exceptions
# ------------------------------------------------------------------------------------------------
class Offence(NamedTuple):
    """One thing wrong with a model."""

    kind: str
    """``"tree"`` or ``"metadata"``."""
    location: str
    """A file path relative to the model root, or a dotted metadata key path."""
    message: str
    """What is wrong, and what would be right."""

class PlumsError(Exception):
    """Base exception for all Plums specific errors."""

class PlumsValidationError(SchemaError, PlumsError):
    """Base exception for all Plums schema validation errors; also a ``schema.SchemaError``."""

    offences: List[Offence]
    path: ErrorPath
    def __init__(
        self,
        autos: Any,
        errors: Any = ...,
        offences: Iterable[Union[Offence, Tuple[str, str, str]]] = ...,
        path: ErrorPath = ...,
    ) -> None: ...

class PlumsModelError(PlumsError):
    """Base exception for all Plums Model specific errors."""

class PlumsModelTreeValidationError(PlumsValidationError, PlumsModelError):
    """A model's folder tree is invalid; also raised for metadata offences found in a folder."""

class PlumsModelMetadataValidationError(PlumsValidationError, PlumsModelError):
    """A model's metadata is invalid."""

class MetadataOffencesError(PlumsModelMetadataValidationError, PlumsModelTreeValidationError):
    """Metadata offences found while validating a model folder (a tree error too, as in the reference)."""

class ModelNotFoundError(PlumsModelTreeValidationError, FileNotFoundError):
    """The model folder given to ``validate`` or ``Model.load`` does not exist."""

class SaveProblem(NamedTuple):
    """One reason a model cannot be saved as a valid PMF model."""

    location: str
    message: str

class LockHolder(NamedTuple):
    """Who holds a model's writer lock (``None``: unknown)."""

    pid: Optional[int]
    host: Optional[str]
    since: Optional[int]

class ConcurrentChangeError(FileExistsError):
    """Another writer saved the model since this model object loaded or last saved it."""

    path: ErrorPath

class OtherModelError(FileExistsError):
    """The save destination holds another PMF model."""

    path: ErrorPath
    found_id: str
    saving_id: str

class ForeignFolderError(FileExistsError):
    """The save destination is a non-empty folder that is not a PMF model (save with ``force``)."""

    path: ErrorPath

class InvalidDestinationError(OSError):
    """The save destination's metadata.yaml is not PMF metadata; never overwritten."""

    path: ErrorPath
    reason: str

class InvalidSameModelError(OSError):
    """The save destination holds an invalid model with the same id (save with ``force``)."""

    path: ErrorPath
    offences: List[Offence]

class ModelLockedError(BlockingIOError):
    """Another writer holds the model's lock."""

    path: ErrorPath
    holder: LockHolder
    waited: float

class InterruptedSaveError(FileNotFoundError):
    """A save was interrupted while replacing the model folder; its new tree is at ``leftover``."""

    path: ErrorPath
    leftover: Path

class WouldNotValidateError(ValueError):
    """The model cannot be saved as a valid PMF model; ``reasons`` lists why."""

    path: ErrorPath
    reasons: List[SaveProblem]

class ChecksumMismatchError(ValueError):
    """A file does not have the checksum it was registered with; nothing was saved."""

    path: ErrorPath
    expected: str
    found: str

class DestinationIsFileError(ValueError):
    """The save destination is a file."""

    path: ErrorPath

class CheckpointWithoutEpochError(ValueError):
    """A checkpoint without an epoch was added to a collection."""

    path: ErrorPath
    reference: Reference

class InvalidLocationError(ValueError):
    """A location that cannot be used (unknown URL scheme, no bucket, credentials in the URL, ...)."""

    path: None
    location: str
    reason: str

class InvalidRetentionError(ValueError):
    """A retention policy that cannot be used."""

    field: str
    reason: str

class InvalidSessionError(ValueError):
    """A training session that cannot be run as asked."""

    reason: str

class InvalidStorageOptionError(ValueError):
    """A storage option that is unknown or whose value cannot be used (its value is never shown)."""

    path: None
    key: str
    reason: str

class UnsupportedLocationError(NotImplementedError):
    """An operation not supported on a kind of location; raised by nothing in this version (kept for compatibility)."""

    path: None
    operation: str
    location: str

class StorageError(OSError):
    """An object store refused or failed a request; the message never carries a credential."""

    path: None
    location: str
    operation: str
    #: ``not_found``, ``permission_denied``, ``precondition_failed``, ``timeout``, ``configuration``
    #: or ``other``.
    kind: str

class StorageNotFoundError(StorageError, FileNotFoundError):
    """A StorageError of kind ``not_found``."""

class StoragePermissionError(StorageError, PermissionError):
    """A StorageError of kind ``permission_denied``."""

class StorageTimeoutError(StorageError, TimeoutError):
    """A StorageError of kind ``timeout``."""

# ------------------------------------------------------------------------------------------------
# Versions
# ------------------------------------------------------------------------------------------------
class Version(metaclass=abc.ABCMeta):
    """Abstract base class of producer versions.

    Subclasses define ``__init__(value)``, ``__str__``, ``__eq__`` and ``__lt__``; their format
    is the class name in snake case (``CalVer`` -> ``cal_ver``), readable on the class too.
    """

    #: The version format: the class name in snake case, on the class and on its instances.
    format: ClassVar[str]
    @property
    def version(self) -> str: ...
    @abc.abstractmethod
    def __str__(self) -> str: ...
    @abc.abstractmethod
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...
    @abc.abstractmethod
    def __lt__(self, other: Any) -> bool: ...
    def __le__(self, other: Any) -> bool: ...
    def __gt__(self, other: Any) -> bool: ...
    def __ge__(self, other: Any) -> bool: ...
    def __hash__(self) -> int: ...

class PyPA(Version):
    """A PEP 440 version (format ``py_pa``), normalised (``1.0.0-RC1`` -> ``1.0.0rc1``)."""

    format: ClassVar[str]
    def __init__(self, version: str) -> None: ...
    def __str__(self) -> str: ...
    def __eq__(self, other: object) -> bool: ...
    def __lt__(self, other: Any) -> bool: ...
    def __hash__(self) -> int: ...

def register(cls: Type[_V], hook: Optional[Callable[[_V], Version]] = ...) -> None:
    """Register a version class under its ``format``, with an optional construction hook."""

def version(format: str, value: str) -> Version:
    """A version of the registered ``format``; ValueError for an unknown format or invalid value."""

# ------------------------------------------------------------------------------------------------
# Components
# ------------------------------------------------------------------------------------------------
class Producer:
    """The package that produced a model; OSError if ``configuration`` is not a file."""

    name: str
    version: Version
    configuration: Path
    def __init__(self, name: str, version_format: str, version_string: str, configuration: StrPath) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __lt__(self, other: "Producer") -> bool: ...
    def __le__(self, other: "Producer") -> bool: ...
    def __gt__(self, other: "Producer") -> bool: ...
    def __ge__(self, other: "Producer") -> bool: ...
    __hash__: None  # type: ignore[assignment]
    def strict_equals(self, other: "Producer") -> bool:
        """Equal, and the configuration files have the same content."""

class Training:
    """A model's training state: status, epochs and times (ValueError on an invalid combination)."""

    def __init__(
        self,
        start_time: Optional[Timestamp] = ...,
        start_epoch: Optional[int] = ...,
        latest_time: Optional[Timestamp] = ...,
        latest_epoch: Optional[int] = ...,
        end_time: Optional[Timestamp] = ...,
        end_epoch: Optional[int] = ...,
        status: str = ...,
    ) -> None: ...
    @property
    def status(self) -> str: ...
    @status.setter
    def status(self, value: str) -> None: ...
    @property
    def start_epoch(self) -> Optional[int]: ...
    @property
    def start_timestamp(self) -> Optional[Timestamp]: ...
    @property
    def latest_epoch(self) -> Optional[int]: ...
    @property
    def latest_timestamp(self) -> Optional[Timestamp]: ...
    @property
    def end_epoch(self) -> Optional[int]: ...
    @property
    def end_timestamp(self) -> Optional[Timestamp]: ...
    @property
    def is_running(self) -> bool: ...
    @property
    def is_pending(self) -> bool: ...
    @property
    def is_finished(self) -> bool: ...
    @property
    def is_failed(self) -> bool: ...
    def start(self, epoch: int) -> None: ...
    def register_epoch(self, epoch: Optional[int] = ...) -> None:
        """ValueError unless the training is running."""
    def interrupt(self) -> None: ...
    def end(self) -> None: ...

class Checkpoint:
    """A checkpoint: reference (``name``), data file, epoch and MD5 (computed from ``path`` when not given).

    For a model loaded from object storage with ``strict=False`` (its checkpoints and its
    initialisation weight file), the first access of ``path`` fetches the file into the local
    cache, verified (it can raise StorageError or ChecksumMismatchError).
    """

    name: Reference
    path: Optional[Path]
    epoch: Optional[int]
    hash: str
    def __init__(
        self,
        name: Reference,
        path: Optional[StrPath] = ...,
        epoch: Optional[int] = ...,
        hash: Optional[str] = ...,
    ) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...

class _EpochIndexer:
    def __getitem__(self, epoch: int) -> "CheckpointCollection": ...

class _IndexIndexer:
    @overload
    def __getitem__(self, key: int) -> Checkpoint: ...
    @overload
    def __getitem__(self, key: slice) -> Tuple[Checkpoint, ...]: ...

class CheckpointCollection:
    """An insertion-ordered mapping reference -> Checkpoint, with a ``latest`` reference."""

    def __init__(self, *checkpoints: Checkpoint) -> None: ...
    @property
    def latest(self) -> Optional[Reference]: ...
    def prune(self, policy: "Retention") -> List[Reference]:
        """Remove the checkpoints ``policy`` does not keep (never the latest, a pinned or a best one);
        their references, in order. The metric is called for every checkpoint first."""
    @property
    def eloc(self) -> _EpochIndexer: ...
    @property
    def iloc(self) -> _IndexIndexer: ...
    def __eq__(self, other: object) -> bool: ...
    __hash__: None  # type: ignore[assignment]
    def add(self, checkpoint: Checkpoint) -> None:
        """KeyError on a duplicate reference, ValueError on a checkpoint without epoch."""
    def __getitem__(self, reference: Reference) -> Checkpoint: ...
    def __setitem__(self, reference: Reference, checkpoint: Checkpoint) -> None: ...
    def __delitem__(self, reference: Reference) -> None: ...
    def __contains__(self, reference: object) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Reference]: ...
    @overload
    def get(self, reference: Reference) -> Optional[Checkpoint]: ...
    @overload
    def get(self, reference: Reference, default: Any) -> Any: ...
    def keys(self) -> KeysView[Reference]: ...
    def values(self) -> ValuesView[Checkpoint]: ...
    def items(self) -> ItemsView[Reference, Checkpoint]: ...

class Retention:
    """A retention policy: keeps the latest checkpoint, the pinned ``keep`` references, the ``last``
    N by epoch, every checkpoint whose epoch is a multiple of ``every``, and the ``best`` N by
    ``metric(checkpoint)`` (``mode`` "min" or "max"; a checkpoint whose metric is None or NaN is
    kept); removes the others. ValueError for a policy that keeps nothing or a bad value."""

    def __init__(
        self,
        last: Optional[int] = ...,
        every: Optional[int] = ...,
        best: Optional[int] = ...,
        metric: Optional[Callable[[Checkpoint], Optional[float]]] = ...,
        mode: Literal["min", "max"] = ...,
        keep: Union[Reference, Iterable[Reference]] = ...,
    ) -> None: ...
    @property
    def last(self) -> Optional[int]: ...
    @property
    def every(self) -> Optional[int]: ...
    @property
    def best(self) -> Optional[int]: ...
    @property
    def metric(self) -> Optional[Callable[[Checkpoint], Optional[float]]]: ...
    @property
    def mode(self) -> str: ...
    @property
    def keep(self) -> List[Reference]: ...

class SaveHandle:
    """A background save (``Model.save(..., background=True)``)."""

    @property
    def location(self) -> str: ...
    def done(self) -> bool: ...
    def result(self, timeout: Optional[float] = ...) -> None:
        """Wait (TimeoutError after ``timeout`` seconds); raise the save's exception if it failed."""

class TrainingTerminated(BaseException):
    """Raised in the loop by a training session's SIGTERM handler."""

class TrainingSession:
    """A training loop that records its start, epochs and end, and saves (``Model.training_session``)."""

    model: "Model"
    path: Location
    start_epoch: int
    save_every: int
    background: bool
    retention: Optional[Retention]
    @property
    def epochs(self) -> int: ...
    def __enter__(self) -> "TrainingSession": ...
    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Any) -> Literal[False]: ...
    def epoch(
        self, epoch: Optional[int] = ..., checkpoint: Union[StrPath, Checkpoint, None] = ...
    ) -> Optional[SaveHandle]: ...
    def save(self, background: Optional[bool] = ...) -> Optional[SaveHandle]: ...

# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------
class Model:
    """A PMF model."""

    __version__: str
    name: Optional[str]
    id: str
    build_parameters: Any
    producer: Producer
    training: Training
    checkpoint_collection: CheckpointCollection
    def __init__(
        self,
        producer_name: str,
        producer_version_format: str,
        producer_version_string: str,
        model_name: Optional[str],
        model_id: str,
        configuration: StrPath,
        build_parameters: Any,
    ) -> None: ...
    @property
    def initialisation(self) -> Union["Model", Checkpoint, None]: ...
    @property
    def path(self) -> Optional[Path]: ...
    @property
    def location(self) -> Union[Path, str, None]:
        """The folder (a Path) or the object-storage URL (a str) the model was loaded from."""
    @property
    def checkpoint(self) -> Optional[Reference]: ...
    def fetch_checkpoint(self, reference: Reference) -> Path:
        """The local (for a remote model: verified cache) file of checkpoint ``reference``."""
    def add_checkpoint(self, *checkpoints: Checkpoint) -> None: ...
    def register_training_start(self, epoch: int) -> None: ...
    def register_epoch(self, epoch: Optional[int] = ...) -> None: ...
    def register_training_end(self, success: bool) -> None: ...
    def register_initialisation(
        self,
        path: Location,
        checkpoint_reference: Optional[Reference] = ...,
        name: Optional[str] = ...,
        storage_options: Optional[StorageOptions] = ...,
    ) -> None:
        """Register the initialisation at ``path`` (a local path or an object-storage URL)."""
    @overload
    def save(
        self,
        path: Location,
        force: bool = ...,
        storage_options: Optional[StorageOptions] = ...,
        *,
        background: Literal[True],
        retention: Optional[Retention] = ...,
        checkpoints: bool = ...,
        lock_timeout: float = ...,
        overwrite_concurrent_changes: bool = ...,
        durable: bool = ...,
        keep_unregistered_files: bool = ...,
    ) -> SaveHandle: ...
    @overload
    def save(
        self,
        path: Location,
        force: bool = ...,
        storage_options: Optional[StorageOptions] = ...,
        background: Literal[False] = ...,
        retention: Optional[Retention] = ...,
        *,
        checkpoints: bool = ...,
        lock_timeout: float = ...,
        overwrite_concurrent_changes: bool = ...,
        durable: bool = ...,
        keep_unregistered_files: bool = ...,
    ) -> None:
        """Save to a folder or an object-storage prefix (``s3://bucket/prefix``): the same guarantees
        (validates, old or new model, no lost update); only what changed is sent.

        ValueError if ``path`` is a file or the model would be invalid; OSError (see the docs) otherwise
        (ConcurrentChangeError, ModelLockedError, OtherModelError, StorageError, ...). ``storage_options``
        reach the destination; a remote model's unfetched files are fetched with the options of its load."""
    def wait_for_saves(self, timeout: Optional[float] = ...) -> None:
        """Wait for the background saves; raise the oldest exception nobody took (TimeoutError after ``timeout``)."""
    def training_session(
        self,
        path: Location,
        start_epoch: int = ...,
        save_every: int = ...,
        background: bool = ...,
        retention: Optional[Retention] = ...,
        storage_options: Optional[StorageOptions] = ...,
        **kwargs: Any,
    ) -> TrainingSession: ...
    @classmethod
    def load(
        cls,
        path: Location,
        strict: bool = ...,
        verbose: bool = ...,
        checkpoints: bool = ...,
        storage_options: Optional[StorageOptions] = ...,
    ) -> "Model": ...

def initialisation(
    path: Location,
    checkpoint_reference: Optional[Reference] = ...,
    name: Optional[str] = ...,
    storage_options: Optional[StorageOptions] = ...,
) -> Union[Model, Checkpoint]:
    """A Checkpoint for a weight file (needs ``name``), a Model for a PMF folder (needs ``checkpoint_reference``).

    On object storage: the object at the URL is a weight file (fetched into the cache, hashed), a
    prefix holding metadata.yaml a PMF model."""

class ModelSummary:
    """One model found by ``list_models``."""

    @property
    def path(self) -> str: ...
    @property
    def location(self) -> Union[Path, str]: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def id(self) -> Optional[str]: ...
    @property
    def producer(self) -> Optional[str]: ...
    @property
    def producer_version(self) -> Optional[str]: ...
    @property
    def producer_version_format(self) -> Optional[str]: ...
    @property
    def status(self) -> Optional[str]: ...
    @property
    def start_epoch(self) -> Optional[int]: ...
    @property
    def latest_epoch(self) -> Optional[int]: ...
    @property
    def end_epoch(self) -> Optional[int]: ...
    @property
    def start_time(self) -> Optional[Timestamp]:
        """The training's start time (a POSIX timestamp): an int or a float, as the metadata records it."""
    @property
    def latest_time(self) -> Optional[Timestamp]:
        """The time of the latest epoch: an int or a float, as the metadata records it."""
    @property
    def end_time(self) -> Optional[Timestamp]:
        """The training's end time: an int or a float, as the metadata records it."""
    @property
    def checkpoint_count(self) -> Optional[int]: ...
    @property
    def checkpoint_bytes(self) -> Optional[int]: ...
    @property
    def latest(self) -> Optional[Reference]: ...
    @property
    def initialisation(self) -> Optional[Dict[str, Any]]:
        """What the model was initialised from, None when trained from scratch (or unknown):
        ``{"kind": "weight_file", "name": str or None, "path": str}`` (the file's path in the
        model, ``data/initialisation/...``) or ``{"kind": "model", "name": str or None, "id": str,
        "checkpoint": int or str}`` (the reference of the parent's checkpoint used)."""
    @property
    def valid(self) -> bool: ...
    @property
    def strict(self) -> bool: ...
    @property
    def offences(self) -> List[Offence]: ...
    @property
    def error(self) -> Optional[BaseException]: ...

def list_models(
    location: Location,
    depth: Optional[int] = ...,
    strict: bool = ...,
    storage_options: Optional[StorageOptions] = ...,
) -> List[ModelSummary]:
    """Every PMF model under a folder or an object-storage prefix, sorted by path (``pmf ls``).

    Raises InvalidStorageOptionError (a ValueError) when a key of ``storage_options`` is unknown
    or its value cannot be used, and TypeError when ``storage_options`` is not a dict of str to
    str, bool or int."""

def validate(
    path: Location,
    strict: bool = ...,
    verbose: bool = ...,
    checkpoints: bool = ...,
    storage_options: Optional[StorageOptions] = ...,
) -> Dict[str, Any]:
    """The parsed metadata of the model at ``path`` (a folder or an object-storage URL), or a
    PlumsModel*ValidationError listing every offence."""
