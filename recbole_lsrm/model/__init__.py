"""The plugin's models, by the name users type with ``--model``."""

from recbole_lsrm.model.fmlp_rec import FMLPRec
from recbole_lsrm.model.hstu import HSTU
from recbole_lsrm.model.llama import Llama
from recbole_lsrm.model.lsrm import LSRM
from recbole_lsrm.model.recent import RecentItems
from recbole_lsrm.model.registry import MODELS, get_model_class

__all__ = ["FMLPRec", "HSTU", "LSRM", "Llama", "MODELS", "RecentItems", "get_model_class"]
