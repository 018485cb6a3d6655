"""The plugin's models, by the name users type with ``--model``."""

from recbole_lsrm.model.lsrm import LSRM

MODELS = {"LSRM": LSRM}

__all__ = ["LSRM", "MODELS"]
