"""Models by the name users type (``--model=LSRM``): the plugin's first, then RecBole's.

RecBole's ``get_model`` only knows RecBole's models, and importing its model package turns on
``torch.autograd.set_detect_anomaly(True)`` (its ``sine.py``), which halves training speed;
:func:`get_model_class` switches it off again.
"""

from __future__ import annotations

import difflib
import importlib

import torch

from recbole_lsrm.compat import numpy_aliases
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.fmlp_rec import FMLPRec
from recbole_lsrm.model.hstu import HSTU
from recbole_lsrm.model.llama import Llama
from recbole_lsrm.model.lsrm import LSRM
from recbole_lsrm.model.recent import RecentItems

MODELS: dict[str, type] = {"LSRM": LSRM, "HSTU": HSTU, "Llama": Llama, "FMLPRec": FMLPRec, "RecentItems": RecentItems}


def _recbole_sequential_models() -> list[str]:
    """The names of RecBole's sequential models (its package lists them)."""
    try:
        package = importlib.import_module("recbole.model.sequential_recommender")
    except ImportError:
        return []
    return [n for n, v in vars(package).items() if isinstance(v, type) and n[:1].isupper()]


def _closest(name: str) -> str | None:
    """The model a mistyped name most likely meant: the same letters in another case, else a near spelling."""
    names = list(MODELS) + _recbole_sequential_models()
    by_case = {n.lower(): n for n in names}
    if name.lower() in by_case:
        return by_case[name.lower()]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def get_model_class(name: str) -> type:
    """Find a model class by name: the plugin's models first, then RecBole's."""
    if name in MODELS:
        return MODELS[name]
    numpy_aliases()
    try:
        recbole_utils = importlib.import_module("recbole.utils")
        model_class = recbole_utils.get_model(name)
    except (ValueError, ImportError, AttributeError) as err:
        suggestion = _closest(name)
        raise ConfigError(
            f"unknown model '{name}'" + (f" (did you mean {suggestion}?)" if suggestion else "")
            + f": choose one of the plugin's models ({', '.join(sorted(MODELS))}) or a RecBole "
            "sequential model (SASRec, GRU4Rec, Caser, BERT4Rec, ...)"
        ) from err
    finally:
        # recbole.model.sequential_recommender.sine turns anomaly detection on at import.
        torch.autograd.set_detect_anomaly(False)
    return model_class
