"""Models by the name users type (``--model=LSRM``): the plugin's first, then RecBole's.

RecBole's ``get_model`` only knows RecBole's models, and importing its model package turns on
``torch.autograd.set_detect_anomaly(True)`` (its ``sine.py``), which halves training speed;
:func:`get_model_class` switches it off again.
"""

from __future__ import annotations

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


def get_model_class(name: str) -> type:
    """Find a model class by name: the plugin's models first, then RecBole's."""
    if name in MODELS:
        return MODELS[name]
    numpy_aliases()
    try:
        recbole_utils = importlib.import_module("recbole.utils")
        model_class = recbole_utils.get_model(name)
    except (ValueError, ImportError, AttributeError) as err:
        raise ConfigError(
            f"unknown model '{name}': choose one of the plugin's models "
            f"({', '.join(sorted(MODELS))}) or a RecBole sequential model "
            "(SASRec, GRU4Rec, Caser, BERT4Rec, ...)"
        ) from err
    finally:
        # recbole.model.sequential_recommender.sine turns anomaly detection on at import.
        torch.autograd.set_detect_anomaly(False)
    return model_class
