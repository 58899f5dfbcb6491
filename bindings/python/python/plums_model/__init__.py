"""plums_model: the Plums Model Format (PMF) 1.0.0, with the API of ``plums.model`` on a Rust core.

Replace ``from plums.model import ...`` with ``from plums_model import ...``: the classes,
signatures and exceptions are the same; loading, validating, hashing and saving run in Rust,
with the GIL released, and validation reports every offence at once.
"""

from ._components import Checkpoint, CheckpointCollection, Producer, Training
from ._model import FORMAT_VERSION, Model, initialisation, validate
from ._version import PyPA, Version, register, version
from .exception import (
    Offence,
    PlumsError,
    PlumsModelError,
    PlumsModelMetadataValidationError,
    PlumsModelTreeValidationError,
    PlumsValidationError,
)

__all__ = [
    "Checkpoint", "CheckpointCollection", "FORMAT_VERSION", "Model", "Offence", "PlumsError", "PlumsModelError",
    "PlumsModelMetadataValidationError", "PlumsModelTreeValidationError", "PlumsValidationError", "Producer",
    "PyPA", "Training", "Version", "initialisation", "register", "validate", "version",
]
