"""What LSRM and HSTU share around their blocks: sizes, per-layer dropout rates, embeddings."""

from __future__ import annotations

from torch import nn

from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType

from recbole_lsrm.data.fields import target_list_field
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.dropout import resolve_layer_dropout


class AllPositionDecoder(SequentialRecommender):
    """A causal decoder over item IDs trained on every position of a window (SPEC 2)."""

    input_type = InputType.POINTWISE
    # The data path cuts each user's training items into windows, loss at every position.
    all_position_training = True
    # properties/scale/<scale>.yaml sets n_layers, d_model and n_heads.
    uses_scale_presets = True

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.n_layers = config["n_layers"]
        self.d_model = config["d_model"]
        self.n_heads = config["n_heads"]
        if self.d_model % self.n_heads != 0:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        self.layer_dropout = resolve_layer_dropout(config["layer_dropout"], self.n_layers)
        self.TARGET_SEQ = target_list_field(config)
        self.item_embedding = nn.Embedding(self.n_items, self.d_model, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.d_model)
