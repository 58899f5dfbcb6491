"""The Model class, ``initialisation`` and ``validate``: loading, validating and saving run in Rust.

Every function taking a location takes a ``str`` or an ``os.PathLike``. An ``os.PathLike``
(``pathlib.Path``) is always a local path. A ``str`` with a scheme (``scheme://``) is a URL, never
a local path: ``s3://bucket/prefix`` (``gs://`` and ``az://`` untested) is a model in object
storage, ``file:///abs/path`` a local path, and any other scheme an ``InvalidLocationError``.
Every entry point works on object storage as on a local folder: ``validate``, ``Model.load``,
``Model.save`` (with the guarantees of a local save: what is written validates, a reader sees
the old model or the new one, no lost update, only PMF's objects change), ``initialisation``
and ``Model.register_initialisation`` (a weight file is the object at the URL; a PMF model is a
prefix holding ``metadata.yaml``).
``storage_options`` (a dict of str to str, bool or int, object_store's key names: ``endpoint``,
``access_key_id``, ``secret_access_key``, ``region``, ``allow_http``, ``session_token``, ..., or
their ``aws_``-prefixed forms, and ``timeout``, ``connect_timeout``, ``retry_max``,
``retry_timeout``) wins over the ``AWS_*`` environment variables.
"""

import atexit
import os
import sys
import weakref

from . import _native
from ._components import CheckpointCollection, Producer, Training, _path
from ._version import _formats

FORMAT_VERSION = _native.FORMAT_VERSION


def validate(path, strict=False, verbose=False, checkpoints=True, storage_options=None, **kwargs):
    """Validate the PMF model at ``path`` (a folder, or an object-storage URL) and return its
    parsed metadata.

    Every offence is found (not only the first); ``verbose=True`` puts them all in the message,
    and the exception's ``offences`` attribute always lists them. On object storage, one listing
    of the prefix gives the tree; ``strict=True`` downloads every file with a checksum into the
    local cache (``PMF_CACHE_DIR``), verifying it while it streams, and reuses what it verified
    while the object's ETag and size are unchanged.

    Raises:
        PlumsModelTreeValidationError: If the tree is invalid; ``ModelNotFoundError`` (also a
            ``FileNotFoundError``) if ``path`` does not exist.
        PlumsModelMetadataValidationError: If the metadata is invalid (``MetadataOffencesError``,
            also a tree error, for compatibility with the reference).
        InvalidLocationError: If ``path`` is a URL that cannot be used (unknown scheme, ...).
        InvalidStorageOptionError: If a storage option is unknown.
        StorageError: If the object store fails or refuses (``StorageNotFoundError``, also a
            ``FileNotFoundError``, when no object is under the prefix).
    """
    _reject_unknown(kwargs)
    return _native.validate(_location(path), bool(strict), bool(checkpoints), bool(verbose),
                            storage_options=storage_options)


def _location(value):
    """A location for the native module: a ``str`` as it is (the core parses it: a URL is never
    a local path), an ``os.PathLike`` as a local ``Path``."""
    if isinstance(value, str):
        return value
    return _path(value)


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
        self._location = None
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
    def location(self):
        """Path or str: Where the model was loaded from: its folder (a ``Path``, as ``path``), or
        its object-storage URL (a ``str``, ``s3://bucket/prefix``; ``path`` is then None), or None."""
        return getattr(self, "_location", None) or self._path

    def fetch_checkpoint(self, reference):
        """The local file of the checkpoint ``reference`` (a ``Path``).

        For a model loaded from object storage, the verified cache file: fetched now if the load
        did not fetch it (``strict=False``), which is also what the first access of the
        checkpoint's ``path`` does. For a local model, the checkpoint's ``path``.

        Raises:
            KeyError: If the model has no checkpoint ``reference``.
            StorageError: If the object store fails; ``ChecksumMismatchError`` if the object does
                not have the registered checksum (nothing is kept).
            ValueError: If the checkpoint has no file.
        """
        path = self.checkpoint_collection[reference].path
        if path is None:
            raise ValueError("checkpoint {!r} has no file".format(reference))
        return path

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

    def register_initialisation(self, path, checkpoint_reference=None, name=None, storage_options=None):
        """Register the initialisation found at ``path``, a local path or an object-storage URL
        reached with ``storage_options`` (see :func:`initialisation`). It is copied into the
        model at its next save."""
        self._initialisation = initialisation(path, checkpoint_reference, name, storage_options=storage_options)

    def save(self, path, force=False, storage_options=None, background=False, retention=None, **kwargs):
        """Save the model to the folder ``path``, or to the object-storage prefix ``path``
        (``s3://bucket/prefix``; a ``str`` with a scheme is a URL, never a local folder).

        With ``background=True`` the call returns at once with a :class:`SaveHandle`
        (``handle.done()``, ``handle.result(timeout=None)``) and the save runs on a worker
        thread, without the GIL: what it writes is the model as it is at the call (changing the
        model afterwards, the next epoch, a new checkpoint, does not change that save). A
        checkpoint file is read later by the worker and its MD5, computed when the
        ``Checkpoint`` was created, is verified while it is copied or uploaded: a file rewritten
        in between (a trainer reusing ``last.pt``) fails that save with ``ChecksumMismatchError``
        naming the file; it is never stored with other bytes. The saves of a model run one at a
        time, in call order (a save queues behind the one in flight, never beside it); each is
        complete. An exception of a background save is raised by ``handle.result()``; if nobody
        called it, by the model's next ``save`` (which then does not save) or
        ``wait_for_saves()``. A synchronous save first waits for the background ones. At
        interpreter exit, pending saves are waited for (at most ``PLUMS_MODEL_EXIT_TIMEOUT``
        seconds, default 600), and an abandoned save or an exception nobody took is reported on
        the standard error; a process killed during a background save leaves the old model or
        the new one, as for any save.

        ``retention`` (a :class:`Retention`) is applied first: the checkpoints it does not keep
        are removed from ``checkpoint_collection`` now, and their files by this save (with its
        guarantees: never a registered checkpoint without its file).

        On object storage a save has the guarantees of a local one: it takes the model's writer
        lock (the object ``.pmf.lock``, with a renewed lease), sends the new objects first and
        writes ``metadata.yaml`` last, conditionally on the version this model last saw (no lost
        update), so that readers see the old model or the new one. Only what changed is sent:
        saving a model back where it was loaded from or last saved to (a training loop) sends
        the new checkpoints and the metadata, never the objects already there, even those this
        model never fetched (``Model.load(url, strict=False)``). Saved anywhere else, such a
        model's unfetched files are fetched first (verified).

        ``storage_options`` reach the destination store (over the ``AWS_*`` environment); the
        unfetched files of a remote model are fetched with the options of its load.

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
            ValueError: If ``path`` is a file, or the model would not be valid
                (``WouldNotValidateError``, listing every reason).
            OSError: If ``path`` is a non-empty folder (or prefix) that is not a PMF model
                (``ForeignFolderError``, unless ``force``), a PMF model with another id
                (``OtherModelError``) or invalid metadata (``InvalidDestinationError``), an
                invalid PMF model with the same id (``InvalidSameModelError``, unless ``force``),
                was changed by another writer since this model read it
                (``ConcurrentChangeError``), or another writer holds its lock beyond
                ``lock_timeout`` (``ModelLockedError``).
            StorageError: If the object store fails or refuses (``StoragePermissionError``,
                ``StorageTimeoutError``, ...); the message never carries a credential.
            InvalidLocationError: If ``path`` is a URL that cannot be used.
            InvalidStorageOptionError: If a storage option is unknown.
        """
        _reject_unknown(kwargs, ("checkpoints", "lock_timeout", "overwrite_concurrent_changes", "durable",
                                 "keep_unregistered_files"))
        if retention is not None and not isinstance(retention, _native.Retention):
            raise TypeError("retention must be a plums_model.Retention")
        saves = self.__dict__.get("_saves")
        if saves is not None:
            if background:
                saves.raise_error()
            else:
                saves.drain(self)
        if retention is not None:
            self.checkpoint_collection.prune(retention)
        if background and saves is None:
            saves = self._saves = _native.SaveQueue()
            _QUEUES.add(saves)
        result = _native.save(
            self, _location(path), _formats, force=bool(force), checkpoints=bool(kwargs.get("checkpoints", True)),
            lock_timeout=float(kwargs.get("lock_timeout", 30.0)),
            overwrite_concurrent_changes=bool(kwargs.get("overwrite_concurrent_changes", False)),
            durable=bool(kwargs.get("durable", True)),
            keep_unregistered_files=bool(kwargs.get("keep_unregistered_files", False)),
            storage_options=storage_options, queue=saves if background else None)
        if background:
            return result
        self._token = result
        return None

    def wait_for_saves(self, timeout=None):
        """Wait until every background save of this model has finished (at most ``timeout``
        seconds: then ``TimeoutError``, and the saves go on), and raise the oldest exception of
        a background save that nobody took with ``handle.result()`` (call again for the next).

        Returns at once when there is no background save.
        """
        saves = self.__dict__.get("_saves")
        if saves is not None and not saves.drain(self, timeout):
            raise TimeoutError("{} background save(s) of model {} still running after {} s".format(
                saves.pending(), self.id, timeout))

    def training_session(self, path, start_epoch=0, save_every=1, background=True, retention=None,
                         storage_options=None, **kwargs):
        """A :class:`TrainingSession` saving this model to ``path``: use it as a context manager.

        On entry the training starts at ``start_epoch`` (a running training, a resumed model,
        goes on as it is) and the model is saved; in the loop, ``session.epoch(epoch=None,
        checkpoint=None)`` registers the epoch, adds the checkpoint (a file path, referenced by
        its epoch, or a ``Checkpoint``) and saves every ``save_every`` calls (in the background
        unless ``background=False``, applying ``retention``); on a normal exit the training is
        recorded ``finished``, on an exception, KeyboardInterrupt or SIGTERM ``failed``
        (``interrupt()``), and the model is saved and every save waited for. The exception is
        re-raised; after SIGTERM the process then ends as SIGTERM asks (or the handler that was
        installed before runs). The other keyword arguments are those of :meth:`save`.
        """
        from ._session import TrainingSession
        return TrainingSession(self, path, start_epoch=start_epoch, save_every=save_every, background=background,
                               retention=retention, storage_options=storage_options, **kwargs)

    @classmethod
    def load(cls, path, strict=True, verbose=False, checkpoints=True, storage_options=None, **kwargs):
        """Load and validate the model at ``path`` (strict: also compare checksums).

        ``path`` is a folder or an object-storage URL (``s3://bucket/prefix``). A remote model's
        files go to the local cache (``PMF_CACHE_DIR``, default under the user's cache folder),
        verified against their MD5: its configuration always; with ``strict=True`` (the default)
        every checkpoint and the initialisation file too, so that each ``checkpoint.path`` is a
        verified local file. With ``strict=False`` nothing large is downloaded: a checkpoint's
        file (or the initialisation weight file) is fetched, verified, on the first access of
        its ``path`` (or :meth:`fetch_checkpoint`). ``model.path`` is None for a remote model;
        ``model.location`` is its URL. Saved back there (:meth:`save`), the model sends only
        what changed, fetching nothing.

        Raises:
            PlumsModelTreeValidationError: If the model is invalid, or ``path`` does not exist
                (then also a ``FileNotFoundError``).
            PlumsModelMetadataValidationError: If its metadata is invalid.
            InvalidLocationError: If ``path`` is a URL that cannot be used.
            InvalidStorageOptionError: If a storage option is unknown.
            StorageError: If the object store fails or refuses (``StorageNotFoundError``, also a
                ``FileNotFoundError``, when no object is under the prefix).
        """
        _reject_unknown(kwargs)
        return _native.load(cls, _location(path), bool(strict), bool(checkpoints), bool(verbose), _formats,
                            storage_options=storage_options)


def list_models(location, depth=None, strict=False, storage_options=None):
    """Every PMF model under ``location`` (a folder or an object-storage prefix), as a list of
    :class:`ModelSummary`, sorted by path: its path, name, id, producer and version, training
    status and epochs, checkpoints (count, size), latest reference, initialisation, and whether
    it is valid (the quick check; ``strict=True`` verifies checksums) with its offences.

    The models are found and checked in parallel (GIL released), as ``pmf ls`` does: a folder
    holding ``metadata.yaml`` is a model and is not descended into (its initialisation model is
    part of it); other folders are walked down to ``depth`` levels (None: all); linked folders
    are never followed, and nothing outside ``location`` is read. On object storage one listing
    of the prefix finds every model. A model that cannot be read is a summary with
    ``valid=False`` and its ``error``; the listing goes on.

    Raises:
        OSError: If ``location`` does not exist or is not a folder.
        StorageError: If the prefix cannot be listed.
        InvalidLocationError: If ``location`` is a URL that cannot be used.
    """
    return _native.list_models(_location(location), depth, bool(strict), storage_options=storage_options)


def initialisation(path, checkpoint_reference=None, name=None, storage_options=None):
    """The initialisation at ``path``: a :class:`Checkpoint` for a weight file (needs ``name``),
    a :class:`Model` loaded without its checkpoint files for a PMF model (needs
    ``checkpoint_reference``, which must be one of its checkpoints).

    ``path`` may be an object-storage URL, reached with ``storage_options``: an object at the
    URL itself is a weight file (downloaded into the local cache, ``PMF_CACHE_DIR``, its MD5
    computed while it streams; the checkpoint's ``path`` is the cache file); a prefix holding
    ``metadata.yaml`` is a PMF model (validated strictly, only its configuration and
    initialisation file downloaded).

    Raises:
        OSError: If ``path`` does not exist, or is neither a file nor a PMF model folder (on
            object storage: nothing at the URL, or a prefix without ``metadata.yaml``).
        ValueError: If the arguments do not fit the kind of initialisation.
        PlumsModelTreeValidationError: If the PMF model is invalid.
        PlumsModelMetadataValidationError: If the PMF model's metadata is invalid.
        InvalidLocationError: If ``path`` is a URL that cannot be used.
        StorageError: If the object store fails or refuses.
    """
    return _native.initialisation(Model, _location(path), checkpoint_reference, name, _formats,
                                  storage_options=storage_options)


# The save queues of every model that saved in the background: waited for at interpreter exit.
_QUEUES = weakref.WeakSet()


def _exit_timeout():
    try:
        return max(0.0, float(os.environ.get("PLUMS_MODEL_EXIT_TIMEOUT", "600")))
    except ValueError:
        return 600.0


class _Holder:
    """The ``model`` argument of ``SaveQueue.drain`` at exit: takes the saved state nobody needs."""
    _token = None


@atexit.register
def _wait_for_saves_at_exit():
    """Wait for the pending background saves (bounded); report what is abandoned or failed."""
    timeout = _exit_timeout()
    for saves in list(_QUEUES):
        while True:
            try:
                if not saves.drain(_Holder(), timeout):
                    saves.abandon()
                    sys.stderr.write(
                        "plums_model: {} background save(s) still running after {} s at exit were abandoned "
                        "(each location holds the old model or the new one)\n".format(saves.pending(), timeout))
                break
            except Exception as error:  # noqa: BLE001 -- reported, never lost
                sys.stderr.write("plums_model: a background save failed and nobody took its exception: {}: {}\n"
                                 .format(type(error).__name__, error))
