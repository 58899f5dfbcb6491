"""The Model class, ``initialisation`` and ``validate``: loading, validating and saving run in Rust."""

import os
from pathlib import Path

from . import _native
from ._components import Checkpoint, CheckpointCollection, Producer, Training, _path
from .exception import _from_failure, _missing_model

FORMAT_VERSION = "1.0.0"


def _native_call(verbose, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except _native.ValidationFailure as failure:
        raise _from_failure(failure, verbose) from None


def _read_model(verbose, function, path, *args):
    """``_native_call`` for validate/load: a model folder that does not exist is a tree error too."""
    try:
        return _native_call(verbose, function, path, *args)
    except FileNotFoundError as error:
        if os.path.lexists(path):
            raise
        raise _missing_model(path, error) from None


def validate(path, strict=False, verbose=False, checkpoints=True, **kwargs):
    """Validate the PMF model at ``path`` and return its parsed metadata.

    Every offence is found (not only the first); ``verbose=True`` puts them all in the message,
    and the exception's ``offences`` attribute always lists them.

    Raises:
        PlumsModelTreeValidationError: If the tree is invalid, or ``path`` does not exist (then
            also a ``FileNotFoundError``).
        PlumsModelMetadataValidationError: If the metadata is invalid (also a tree error, for
            compatibility with the reference).
    """
    _reject_unknown(kwargs)
    return _read_model(verbose, _native.validate, _path(path), bool(strict), bool(checkpoints))


def _reject_unknown(kwargs, allowed=()):
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError("unexpected keyword argument(s): {}".format(", ".join(unknown)))


class Model:
    """A PMF model.

    Args:
        producer_name (str): The name of the package that produced the model.
        producer_version_format (str): The version format of that package (``py_pa``).
        producer_version_string (str): Its version.
        model_name (str): The model name (may be None).
        model_id (str): The model's unique identifier.
        configuration (PathLike): The producer configuration file.
        build_parameters (dict): What a consumer needs to instantiate the model from its weights.
    """

    __version__ = FORMAT_VERSION

    def __init__(self, producer_name, producer_version_format, producer_version_string,
                 model_name, model_id, configuration, build_parameters):
        self.producer = Producer(producer_name, producer_version_format, producer_version_string, configuration)
        self.name = model_name
        self.id = model_id
        self.build_parameters = build_parameters
        self.training = Training()
        self.checkpoint_collection = CheckpointCollection()
        self._initialisation = None
        self._path = None
        self._checkpoint = None
        self._token = None

    @property
    def initialisation(self):
        """Model or Checkpoint: The model's initialisation, or None."""
        return self._initialisation

    @property
    def path(self):
        """Path: The folder the model was loaded from, or None."""
        return self._path

    @property
    def checkpoint(self):
        """hashable: For an initialisation model, the reference of the checkpoint used, or None."""
        return self._checkpoint

    def __repr__(self):
        return "{}(name={}, id={})".format(type(self).__name__, self.name, self.id)

    def add_checkpoint(self, *checkpoints):
        """Add checkpoints to the checkpoint collection."""
        for checkpoint in checkpoints:
            self.checkpoint_collection.add(checkpoint)

    def register_training_start(self, epoch):
        """Start the training at ``epoch``."""
        self.training.start(epoch)

    def register_epoch(self, epoch=None):
        """Register ``epoch`` (default: latest + 1) as the latest epoch."""
        self.training.register_epoch(epoch)

    def register_training_end(self, success):
        """End the training: finished when ``success``, failed otherwise."""
        if success:
            self.training.end()
        else:
            self.training.interrupt()

    def register_initialisation(self, path, checkpoint_reference=None, name=None):
        """Register the initialisation found at ``path`` (see :func:`initialisation`)."""
        self._initialisation = initialisation(path, checkpoint_reference, name)

    def _describe(self):
        init = self._initialisation
        if init is None:
            init_desc = None
        elif isinstance(init, Model):
            init_desc = ("model", init._describe(), init._checkpoint)
        elif isinstance(init, Checkpoint):
            init_desc = ("file", init.name, None if init.path is None else os.fspath(init.path), init.hash,
                         getattr(init, "_core", None))
        else:
            raise TypeError("the initialisation must be a Model, a Checkpoint or None")
        training = self.training
        return {
            "producer": {
                "name": self.producer.name,
                "version_format": self.producer.version.format,
                "version": str(self.producer.version),
                "configuration": os.fspath(self.producer.configuration),
            },
            "name": self.name,
            "id": self.id,
            "build_parameters": self.build_parameters,
            "training": training._record(),
            "checkpoints": [(ref, None if c.path is None else os.fspath(c.path), c.epoch, c.hash, getattr(c, "_core", None))
                            for ref, c in self.checkpoint_collection.items()],
            "latest": self.checkpoint_collection.latest,
            "initialisation": init_desc,
        }

    def save(self, path, force=False, **kwargs):
        """Save the model to the folder ``path``.

        Keyword Args:
            checkpoints (bool): Write checkpoint files (default True).
            lock_timeout (float): Seconds to wait for another writer (default 30).
            overwrite_concurrent_changes (bool): Save even if the folder changed since this model
                was loaded from or saved to it (default False: refused with an OSError).
            durable (bool): Sync the written files and folders to disk before returning (default
                True). ``False`` is faster; the save stays atomic, but a power loss right after it
                may lose it.
            keep_unregistered_files (bool): Keep the files of the previous save that the model no
                longer registers, such as a deleted checkpoint's file (default False: removed, so
                that the folder holds what a save into a new folder would write, plus foreign files).

        Raises:
            ValueError: If ``path`` is a file, or the model would not be valid.
            OSError: If ``path`` is a non-empty folder that is not a PMF model (unless ``force``),
                a PMF model with another id or invalid metadata, an invalid PMF model with the same
                id (unless ``force``), or was changed by another writer since this model read it.
        """
        _reject_unknown(kwargs, ("checkpoints", "lock_timeout", "overwrite_concurrent_changes", "durable",
                                 "keep_unregistered_files"))
        self._token = _native_call(
            True, _native.save, self._describe(), _path(path), bool(force),
            bool(kwargs.get("checkpoints", True)), float(kwargs.get("lock_timeout", 30.0)),
            bool(kwargs.get("overwrite_concurrent_changes", False)), self._token,
            durable=bool(kwargs.get("durable", True)),
            keep_unregistered_files=bool(kwargs.get("keep_unregistered_files", False)))

    @classmethod
    def load(cls, path, strict=True, verbose=False, checkpoints=True, **kwargs):
        """Load and validate the model at ``path`` (strict: also compare checksums).

        Raises:
            PlumsModelTreeValidationError: If the model is invalid, or ``path`` does not exist
                (then also a ``FileNotFoundError``).
            PlumsModelMetadataValidationError: If its metadata is invalid.
        """
        _reject_unknown(kwargs)
        description, token = _read_model(verbose, _native.load, _path(path), bool(strict), bool(checkpoints))
        model = cls._from_description(description)
        model._token = token
        return model

    @classmethod
    def _from_description(cls, d):
        model = cls.__new__(cls)
        producer = Producer.__new__(Producer)
        producer.name = d["producer"]["name"]
        from ._version import version
        producer.version = version(d["producer"]["version_format"], d["producer"]["version"])
        producer.configuration = Path(d["producer"]["configuration"])
        model.producer = producer
        model.name = d["name"]
        model.id = d["id"]
        model.build_parameters = d["build_parameters"]
        record = d["training"]
        training = Training.__new__(Training)
        training._status = record["status"]
        training._start_epoch, training._start_timestamp = record["start_epoch"], record["start_time"]
        training._latest_epoch, training._latest_timestamp = record["latest_epoch"], record["latest_time"]
        training._end_epoch, training._end_timestamp = record["end_epoch"], record["end_time"]
        model.training = training
        collection = CheckpointCollection()
        checkpoints = collection._checkpoints
        for ref, path, epoch, digest in d["checkpoints"]:
            checkpoints[ref] = Checkpoint._loaded(ref, path, epoch, digest)
        collection._latest = d["latest"]
        model.checkpoint_collection = collection
        init = d["initialisation"]
        if init is None:
            model._initialisation = None
        elif init[0] == "file":
            model._initialisation = Checkpoint._loaded(init[1], init[2], None, init[3])
        else:
            nested = cls._from_description(init[1])
            nested._checkpoint = init[2]
            model._initialisation = nested
        model._path = None if d["path"] is None else Path(d["path"])
        model._checkpoint = d["checkpoint"]
        model._token = None
        return model


def initialisation(path, checkpoint_reference=None, name=None):
    """The initialisation at ``path``: a :class:`Checkpoint` for a weight file (needs ``name``),
    a :class:`Model` loaded without its checkpoint files for a PMF model (needs
    ``checkpoint_reference``, which must be one of its checkpoints).

    Raises:
        OSError: If ``path`` does not exist, or is neither a file nor a PMF model folder.
        ValueError: If the arguments do not fit the kind of initialisation.
        PlumsModelTreeValidationError: If the PMF model is invalid.
        PlumsModelMetadataValidationError: If the PMF model's metadata is invalid.
    """
    path = _path(path)
    if not path.exists():
        raise FileNotFoundError("Invalid path provided: {} does not exist.".format(path))
    if path.is_file():
        if name is None:
            raise ValueError("Invalid arguments provided: {} points to a file but name is None.".format(path))
        return Checkpoint(name, path)
    if path.is_dir() and (path / "metadata.yaml").is_file():
        if checkpoint_reference is None:
            raise ValueError("Invalid arguments provided: {} points to a PMF model but no checkpoint "
                             "reference was given.".format(path))
        model = Model.load(path, checkpoints=False)
        if checkpoint_reference not in model.checkpoint_collection:
            raise ValueError("Invalid arguments provided: {} points to a PMF model which does not contain {!r} "
                             "as a checkpoint (it has: {}).".format(
                                 path, checkpoint_reference, ", ".join(map(repr, model.checkpoint_collection.keys()))))
        model._checkpoint = checkpoint_reference
        model._token = None
        return model
    raise OSError("Invalid path provided: {} must either be a PMF model or a weight file.".format(path))
