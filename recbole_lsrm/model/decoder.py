"""What LSRM, HSTU and Llama share around their blocks: sizes, per-layer dropout rates, the input
layer (item embeddings with their fused features, user features, behaviours as embeddings or
tokens, domain embeddings), the tied scores, the loss and the full-sort states."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole.data.interaction import Interaction
from recbole.utils import InputType

from recbole_lsrm.data.domains import item_domains
from recbole_lsrm.data.fields import DOMAIN_FIELD, target_list_field
from recbole_lsrm.data.negatives import check_negative_ratio, negative_counts, sample_negatives, user_item_keys
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.contract import NextItemModel
from recbole_lsrm.model.cpu_dropout import Dropout
from recbole_lsrm.model.features import feature_fusion
from recbole_lsrm.model.ranking import RankingHead
from recbole_lsrm.options import resolve_layer_dropout
from recbole_lsrm.model.next_item import all_position_ce_loss, full_sort_scores, l2_normalize

# Evaluation rows run at once on a CPU, each group trimmed to its longest sequence.
EVAL_ROWS_PER_GROUP = 512


class SideInputs(NamedTuple):
    """Inputs beside the item ids: (B,) user ids (user features), (B, T) behaviour ids."""

    users: torch.Tensor | None = None
    behaviors: torch.Tensor | None = None
    labels: torch.Tensor | None = None  # (B, T) ranking: each input's label + 1 (0 = padding)


class AllPositionDecoder(NextItemModel):
    """A causal decoder over item IDs trained on every position of a window (LSRM paper III-A)."""

    input_type = InputType.POINTWISE
    all_position_training = True
    uses_scale_presets = True
    size_keys = ("n_layers", "d_model")
    # A learned absolute position table (LSRM, HSTU); Llama's positions are rotary only.
    position_table = True
    # Reads side information, behaviours and domains (the config refuses them for other models).
    feature_inputs = True

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.n_layers = config["n_layers"]
        self.d_model = config["d_model"]
        self.n_heads = config["n_heads"]
        self.layer_dropout = resolve_layer_dropout(config["layer_dropout"], self.n_layers)
        self.TARGET_SEQ = target_list_field(config)
        self.TIME_FIELD = config["TIME_FIELD"]
        self.TIME_SEQ = config["TIME_FIELD"] + config["LIST_SUFFIX"]
        self.item_embedding = nn.Embedding(self.n_items, self.d_model, padding_idx=0)
        # behavior_mode: token puts each interaction's behaviour after its item as a token of its
        # own: every row holds two tokens per interaction, and the tables are sized for them.
        self.tokens_per_item = 2 if self.option(config, "behavior_mode") == "token" else 1
        self.token_length = self.tokens_per_item * self.max_seq_length
        if self.position_table:
            self.position_embedding = nn.Embedding(self.token_length, self.d_model)
        self.embedding_dropout = Dropout()  # at the bottom layer's rate
        # Side information (feature_fusion: mean): an item's features join its id embedding in
        # the input and in the scores; a user's are added to every input position.
        self.item_features = feature_fusion(config, dataset, "item", self.d_model)
        self.user_features = feature_fusion(config, dataset, "user", self.d_model)
        self.USER_ID = config["USER_ID_FIELD"]
        # Several behaviours, given explicitly (behavior_mode: embed): one embedding per behaviour.
        behavior_field = self.option(config, "behavior_field")
        embed = behavior_field is not None and self.option(config, "behavior_mode") in ("embed", "token")
        self.BEHAVIOR_SEQ = f"{behavior_field}{config['LIST_SUFFIX']}" if behavior_field else None
        self.behavior_embedding = nn.Embedding(dataset.num(behavior_field), self.d_model, padding_idx=0) if embed else None
        # Several domains (domain_embedding): each input item's domain, looked up from a buffer.
        self.domain_embedding = None
        if self.option(config, "domain_embedding"):
            domains = item_domains(dataset)
            if domains is None:
                raise ConfigError(f"domain_embedding needs each item's '{DOMAIN_FIELD}': an item field in "
                                  f"{config['dataset']}.item (load_col item: [{config['ITEM_ID_FIELD']}, {DOMAIN_FIELD}]) "
                                  f"or a {DOMAIN_FIELD} column in the .inter")
            self.register_buffer("item_domains", torch.as_tensor(domains, dtype=torch.long), persistent=False)
            self.domain_embedding = nn.Embedding(dataset.num(DOMAIN_FIELD), self.d_model, padding_idx=0)
        # objective: ranking scores a candidate through a head and gives the history's labels as input.
        self.objective = self.option(config, "objective")
        self.ranking_head = self.label_embedding = None
        if self.objective == "ranking":
            self.ranking_head = RankingHead(self.option(config, "ranking_head"), self.d_model)
            self.label_embedding = nn.Embedding(3, self.d_model, padding_idx=0)  # padding, label 0, label 1
            self.neg_ratio = float(self.option(config, "neg_ratio"))
            self.LABEL = config["LABEL_FIELD"]
            self.LABEL_SEQ = self.LABEL + config["LIST_SUFFIX"]
            self.TARGET_LABEL_SEQ = f"target_{self.LABEL}{config['LIST_SUFFIX']}"
            history = getattr(dataset, "raw_inter_feat", None)
            history = history if history is not None else dataset.inter_feat
            self.register_buffer("user_item_keys", user_item_keys(
                history[config["USER_ID_FIELD"]], history[config["ITEM_ID_FIELD"]], self.n_items), persistent=False)
            check_negative_ratio(self.user_item_keys, self.n_items, self.neg_ratio)
        # Large item sets (see next_item): chunked full softmax, or a sampled softmax.
        self.ce_chunk_size = self.option(config, "ce_chunk_size")
        self.sampled_softmax = self.option(config, "sampled_softmax")
        if self.sampled_softmax is not None and self.sampled_softmax >= self.n_items - 1:
            raise ConfigError(
                f"sampled_softmax={self.sampled_softmax} negatives needs more than {self.n_items - 1} items: "
                "use the full softmax (sampled_softmax: ~)"
            )
        self.sampled_negatives = self.option(config, "sampled_negatives")
        # Scores: hidden . item (dot), or both L2-normalised (cosine, HSTU's reference), over a temperature.
        self.similarity = self.option(config, "similarity")
        self.temperature = float(self.option(config, "temperature"))

    def check_time_input(self, config, dataset) -> None:
        """A time bias (``rab: position_time``) needs raw timestamps in seconds, one per input item."""
        time_field = config["TIME_FIELD"]
        if self.TIME_SEQ not in getattr(dataset, "field2type", {}):
            raise ConfigError(
                f"rab: position_time needs the timestamp of every input item ('{self.TIME_SEQ}'), but the "
                f"dataset has no '{time_field}' column loaded: add it to load_col (inter: [..., {time_field}]) "
                "or set rab: position"
            )
        normalized = config["normalize_field"] or []
        if config["normalize_all"] or time_field in normalized:
            raise ConfigError(
                f"rab: position_time buckets time differences in seconds, but '{time_field}' is normalized: "
                f"set normalize_all: False and leave {time_field} out of normalize_field"
            )

    # --- what subclasses define -------------------------------------------------------
    # self.blocks: the layers, bottom first, each with set_dropout(rate) and dropout_rate;
    # hidden_states(interaction) and non_embedding_params_for(sizes) (NextItemModel).
    def mixing_flops_per_position(self) -> float:
        """The attention scores and their weighted sum: 6 * n_layers * T * d per position."""
        return 6.0 * self.n_layers * self.token_length * self.d_model * self.tokens_per_item

    # --- layer-wise adaptive dropout ---------------------------------------------------
    def set_layer_dropout(self, rates: list[float]) -> None:
        """Set each layer's dropout rate (bottom first); the embedding uses the bottom rate."""
        if len(rates) != self.n_layers:
            raise ConfigError(f"expected {self.n_layers} dropout rates, got {len(rates)}")
        self.embedding_dropout.p = rates[0]
        for block, rate in zip(self.blocks, rates):
            block.set_dropout(rate)

    def layer_dropout_rates(self) -> list[float]:
        return [block.dropout_rate for block in self.blocks]

    # --- shared: loss and scores ------------------------------------------------------
    # Every score is query_states(h) . item_table()[i]: the loss, the ranking, the CE metric
    # and the tasks all read these two, so cosine scores and the temperature apply everywhere.
    def query_states(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., d) hidden states -> the query side of the scores: L2-normalised with cosine, / temperature."""
        if self.similarity == "cosine":
            hidden = l2_normalize(hidden)
        return hidden / self.temperature if self.temperature != 1.0 else hidden

    def item_vectors(self) -> torch.Tensor:
        """(n_items, d) each item's token: its id embedding, plus its fused features if any."""
        weight = self.item_embedding.weight
        if self.item_features is None:
            return weight
        features = self.item_features.rows()
        return weight + torch.cat([torch.zeros_like(features[:1]), features[1:]])  # padding stays 0

    def input_items(self, item_seq: torch.Tensor, side: SideInputs | None = None) -> torch.Tensor:
        """(B, T, d) the input tokens of (B, T) item ids: the items' vectors, plus the row's user
        features at every position and each interaction's behaviour embedding (``side``)."""
        x = self.item_embedding(item_seq) if self.item_features is None else self.item_vectors()[item_seq]
        if self.domain_embedding is not None:
            x = x + self.domain_embedding(self.item_domains[item_seq])  # (B, T, d)
        if side is not None and side.users is not None and self.user_features is not None:
            x = x + self.user_features.rows(side.users).unsqueeze(1)  # (B, 1, d): every position
        if side is not None and side.labels is not None and self.label_embedding is not None:
            x = x + self.label_embedding(side.labels)  # (B, T, d): liked or not
        if self.behavior_embedding is None:
            return x
        if side is None or side.behaviors is None:
            raise ConfigError(f"behavior_mode needs each input's behaviour ('{self.BEHAVIOR_SEQ}'), and the rows have none")
        behaviors = self.behavior_embedding(side.behaviors)  # (B, T, d)
        if self.tokens_per_item == 1:
            return x + behaviors
        return torch.stack([x, behaviors], dim=2).flatten(1, 2)  # (B, 2T, d): item, its behaviour, item, ...

    def expand_tokens(self, values: torch.Tensor | None) -> torch.Tensor | None:
        """(B, T) per-interaction values (times) for every token of the row: (B, 2T) in token mode."""
        if values is None or self.tokens_per_item == 1:
            return values
        return values.repeat_interleave(self.tokens_per_item, dim=1)

    def item_positions(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, d) the states that predict each next item: in token mode, those after each behaviour token."""
        return hidden if self.tokens_per_item == 1 else hidden[:, self.tokens_per_item - 1 :: self.tokens_per_item]

    def side_inputs(self, interaction) -> SideInputs | None:
        """What the rows give besides item ids and times (their users, their interactions'
        behaviours), where the model uses it; None when it uses neither."""
        users = interaction[self.USER_ID] if self.user_features is not None and self.USER_ID in interaction else None
        behaviors = (interaction[self.BEHAVIOR_SEQ] if self.behavior_embedding is not None
                     and self.BEHAVIOR_SEQ in interaction else None)
        labels = None
        if self.label_embedding is not None and self.LABEL_SEQ in interaction:
            labels = (interaction[self.LABEL_SEQ].long() + 1) * (interaction[self.ITEM_SEQ] > 0)
        return None if users is None and behaviors is None and labels is None else SideInputs(users, behaviors, labels)

    def item_table(self) -> torch.Tensor:
        """(n_items, d) the item side of the scores: the items' vectors (tied to the input), L2-normalised with cosine."""
        weight = self.item_vectors()
        return l2_normalize(weight) if self.similarity == "cosine" else weight

    def calculate_loss(self, interaction) -> torch.Tensor:
        """Mean CE of the next item at every non-padding position of the windows (ranking: the
        mean BCE of each next interaction's label and of the sampled negatives)."""
        if self.objective == "ranking":
            return self.ranking_loss(interaction)
        return all_position_ce_loss(
            self.query_states(self.hidden_states(interaction)),
            interaction[self.TARGET_SEQ],  # (B, T), 0 = padding
            self.item_table(),
            chunk=self.ce_chunk_size,
            sampled_negatives=self.sampled_softmax if self.training else None,
            per_position=self.sampled_negatives == "position",
        )

    def ranking_loss(self, interaction) -> torch.Tensor:
        """BCE at every position: the next interaction with its label, and ``neg_ratio`` items the
        user never had, labelled 0 (all positions of a window in one pass)."""
        hidden = self.hidden_states(interaction)  # (B, T, d)
        targets = interaction[self.TARGET_SEQ]
        valid = targets > 0
        states = hidden[valid]  # (P, d)
        items = self.item_vectors()
        logits = [self.ranking_head(states, items[targets[valid]])]
        labels = [interaction[self.TARGET_LABEL_SEQ][valid].float()]
        counts = negative_counts(len(states), self.neg_ratio, device=states.device)
        rows = torch.repeat_interleave(torch.arange(len(states), device=states.device), counts)
        if len(rows):
            users = interaction[self.USER_ID].unsqueeze(1).expand_as(targets)[valid][rows]
            negatives = sample_negatives(users, self.n_items, self.user_item_keys)
            logits.append(self.ranking_head(states[rows], items[negatives]))
            labels.append(torch.zeros(len(rows), device=states.device))
        return F.binary_cross_entropy_with_logits(torch.cat(logits), torch.cat(labels))

    def score_candidates(self, interaction, candidates: torch.Tensor) -> torch.Tensor:
        """(B, C) logits of (B, C) candidate items for the state after each row's history."""
        lengths = interaction[self.ITEM_SEQ_LEN]
        state = self._last_hidden(interaction, torch.arange(len(lengths), device=lengths.device))  # (B, d)
        return self.ranking_head(state.unsqueeze(1).expand(-1, candidates.size(1), -1), self.item_vectors()[candidates])

    def full_sort_hidden(self, interaction) -> torch.Tensor:
        """(B, d) query state at each sequence's last item: the user's scores are it x item_table().

        Sequences are right-padded and the blocks are causal, so the padding after a row's
        last item cannot change its state: each group of rows runs trimmed to its longest
        sequence. On a CPU the rows are first sorted by length and run
        :data:`EVAL_ROWS_PER_GROUP` at a time (at length 200 about half of ML-1M's evaluation
        positions are padding); on a GPU the batch runs as one group.
        """
        lengths = interaction[self.ITEM_SEQ_LEN]
        if lengths.device.type != "cpu":
            return self.query_states(self._last_hidden(interaction, torch.arange(len(lengths), device=lengths.device)))
        hidden = None
        order = lengths.argsort()
        for rows in order.split(EVAL_ROWS_PER_GROUP):
            part = self._last_hidden(interaction, rows)  # (rows, d)
            if hidden is None:
                hidden = part.new_empty((len(lengths), part.size(1)))
            hidden[rows] = part
        return self.query_states(hidden)

    def _last_hidden(self, interaction, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), d) states at the last item of the given rows, run trimmed to their longest."""
        lengths = interaction[self.ITEM_SEQ_LEN][rows]
        width = int(lengths.max())
        fields = interaction.interaction if isinstance(interaction, Interaction) else interaction  # or a dict
        part = {
            field: values[rows, :width] if values.dim() > 1 and values.size(1) == self.max_seq_length else values[rows]
            for field, values in fields.items()
        }
        return self.gather_indexes(self.hidden_states(Interaction(part)), lengths - 1)

    def predict(self, interaction) -> torch.Tensor:
        hidden = self.full_sort_hidden(interaction)
        return (hidden * self.item_table()[interaction[self.ITEM_ID]]).sum(dim=-1)  # (B,)

    def full_sort_predict(self, interaction) -> torch.Tensor:
        return full_sort_scores(self.full_sort_hidden(interaction), self.item_table())  # (B, n_items) fp32
