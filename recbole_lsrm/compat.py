"""RecBole 1.2.1 behaviour the plugin must work around, handled here and only here.

Each function names the pitfall it fixes:

- ``numpy_aliases``: RecBole's Config sets ``np.float = np.float_`` and friends, which do not
  exist in numpy 2; we set the old names only where they are missing.
- ``quiet_recbole_warnings``: RecBole's ``fillna(inplace=True)`` makes pandas print a
  FutureWarning per float column on every load (harmless with pandas<3, which we pin).
- ``safe_torch_load``: RecBole pickles its Config into checkpoints; ours hold plain state and
  are always read with ``weights_only=True``.
- The ``sys.argv`` parsing with ``eval``, the NCCL-only device set-up and the cwd-relative
  output folders are handled by :class:`recbole_lsrm.config.LSRMConfig`, which overrides
  exactly those Config methods; RecBole's model lookup and its anomaly detection by
  :func:`recbole_lsrm.model.get_model_class`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from recbole_lsrm.errors import CheckpointError

_NUMPY_ALIASES = {
    "bool": "bool_",
    "int": "int_",
    "float": "float64",
    "complex": "complex128",
    "object": "object_",
    "str": "str_",
    "long": "int_",
    "unicode": "str_",
}


def numpy_aliases() -> None:
    """Define the numpy aliases RecBole 1.2.1 uses (``np.float`` ...) on numpy 1 and 2 alike."""
    for alias, target in _NUMPY_ALIASES.items():
        if alias not in np.__dict__:
            setattr(np, alias, getattr(np, target))


def quiet_recbole_warnings() -> None:
    """Hide pandas' chained-assignment FutureWarnings raised inside RecBole's dataset code, and
    the deprecation notices Ray 2.6 (which RecBole pins) prints at import: its use of
    ``pkg_resources`` and of ``np.bool8``. Neither says anything a user can act on."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data\.")
    warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated", category=UserWarning)
    warnings.filterwarnings("ignore", message=r"`np\.bool8` is a deprecated alias", category=DeprecationWarning)


def safe_torch_load(path: str, map_location: Any = "cpu") -> dict:
    """Load a checkpoint without unpickling arbitrary objects (tensors and plain data only)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint not found: {path}") from err
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise CheckpointError(
            f"cannot read checkpoint {path}: {err.__class__.__name__}: {err}. "
            "Only checkpoints written by recbole_lsrm (plain tensors and data) can be loaded."
        ) from err
