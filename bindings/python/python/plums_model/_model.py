"""The Model class, ``initialisation`` and ``validate``: loading, validating and saving run in Rust."""

from . import _native
from ._components import CheckpointCollection, Producer, Training, _path
from ._version import _formats

FORMAT_VERSION = _native.FORMAT_VERSION


def validate(path, strict=False, verbose=False, checkpoints=True, **kwargs):
    """Validate the PMF model at ``path`` and return its parsed metadata.

    Every offence is found (not only the first); ``verbose=True`` puts them all in the message,
    and the exception's ``offences`` attribute always lists them.

    Raises:
        PlumsModelTreeValidationError: If the tree is invalid; ``ModelNotFoundError`` (also a
            ``FileNotFoundError``) if ``path`` does not exist.
        PlumsModelMetadataValidationError: If the metadata is invalid (``MetadataOffencesError``,
            also a tree error, for compatibility with the reference).
    """
    _reject_unknown(kwargs)
    return _native.validate(_path(path), bool(strict), bool(checkpoints), bool(verbose))


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
        self._token = _native.save(
            self, _path(path), _formats, force=bool(force), checkpoints=bool(kwargs.get("checkpoints", True)),
            lock_timeout=float(kwargs.get("lock_timeout", 30.0)),
            overwrite_concurrent_changes=bool(kwargs.get("overwrite_concurrent_changes", False)),
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
        return _native.load(cls, _path(path), bool(strict), bool(checkpoints), bool(verbose), _formats)


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
    return _native.initialisation(Model, _path(path), checkpoint_reference, name, _formats)
