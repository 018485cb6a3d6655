"""The contract of the plugin's models, declared once: what the trainer, the tasks, the sweeps
and the benchmarks may ask of LSRM, HSTU and FMLP-Rec.

A :class:`NextItemModel` scores item ``i`` for a user as ``full_sort_hidden(user) . item_table()[i]``
(tied embeddings), so ranking, the held-out CE and generation run in item chunks
(:func:`~recbole_lsrm.model.next_item.rank_items`) and never build a (users, n_items) matrix.
It also says its own size: :meth:`NextItemModel.non_embedding_params` (the scaling law's N)
and :meth:`NextItemModel.flops_per_position`.

RecBole's own models (SASRec, GRU4Rec, ...) keep RecBole's interface: N is counted from their
parameters, in one place (:func:`parameter_counts`). The names: N is ``non_embedding_params``
(the paper's count, where a model has one) or ``non_embedding_params_counted`` (from the
parameters), as in summary.json and results.csv.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from typing import Any, Mapping

import torch

from recbole.model.abstract_recommender import SequentialRecommender

from recbole_lsrm.config import plugin_defaults
from recbole_lsrm.model.next_item import rank_items
from recbole_lsrm.options import setting


class NextItemModel(SequentialRecommender, metaclass=ABCMeta):
    """A sequential recommender whose scores are a user state times a tied item table.

    A subclass that does not define :meth:`hidden_states`, :meth:`full_sort_hidden` and
    :meth:`item_table` cannot be instantiated.
    """

    # The data path cuts each user's training items into windows with a loss at every position
    # (LSRM, HSTU); False: RecBole's one prefix per target (FMLP-Rec).
    all_position_training = False
    # properties/scale/<scale>.yaml (n_layers, d_model, n_heads) applies to the model.
    uses_scale_presets = False
    # The config keys the paper-style N is computed from (see non_embedding_params_for).
    size_keys: tuple[str, ...] = ()

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.sizes = {key: config[key] if key in config else None for key in self.size_keys}

    @classmethod
    def option(cls, config, key: str) -> Any:
        """``config[key]``, or the model's property-file default where the config has none (a
        config written before the key existed, or one built by hand): defaults have one source."""
        return setting(config, key, plugin_defaults(cls.__name__).get(key))

    # --- size -------------------------------------------------------------------------
    @classmethod
    def non_embedding_params_for(cls, sizes: Mapping[str, Any]) -> int | None:
        """N as the paper counts it (the blocks' weight matrices) from a config or a mapping of
        :attr:`size_keys`, before any model is built; None where the model has no such count
        (its N is then counted from its parameters)."""
        return None

    def non_embedding_params(self) -> int:
        """The scaling law's N: the paper's count where the model has one, else the
        parameters outside the embeddings (biases and norms included)."""
        n = self.non_embedding_params_for(self.sizes)
        return n if n is not None else counted_non_embedding_params(self)

    def mixing_flops_per_position(self) -> float:
        """Training FLOPs per position of what mixes positions and has no weights (attention scores)."""
        return 0.0

    def flops_per_position(self) -> float:
        """Training FLOPs per target position: 6 per weight (forward and backward) for the blocks'
        N and for the tied scores over every item, plus :meth:`mixing_flops_per_position`."""
        width = self.item_table().size(1)
        return 6.0 * (self.non_embedding_params() + self.n_items * width) + self.mixing_flops_per_position()

    # --- scores -----------------------------------------------------------------------
    @abstractmethod
    def hidden_states(self, interaction) -> torch.Tensor:
        """(B, T, d) hidden state of every position of the interaction's item sequences."""

    @abstractmethod
    def full_sort_hidden(self, interaction) -> torch.Tensor:
        """(B, d) the query state of each row: its scores are this times :meth:`item_table`."""

    @abstractmethod
    def item_table(self) -> torch.Tensor:
        """(n_items, d) the item side of every score; row 0 (padding) is never ranked."""

    @torch.no_grad()
    def generate(
        self,
        interaction,
        steps: int,
        exclude: torch.Tensor | None = None,
        chunk: int | None = None,
    ) -> torch.Tensor:
        """(B, steps) items generated greedily after each row's sequence, each fed back as input.

        An item in ``exclude`` ((B, L) ids, 0 = nothing) or generated before in the row is never
        chosen. Items are ranked ``chunk`` at a time (:func:`rank_items`), so memory stays within
        the evaluation's bound. ``interaction`` is updated in place: its sequences end with the
        generated items.
        """
        rows = len(interaction[self.ITEM_SEQ_LEN])
        banned = exclude if exclude is not None else torch.zeros((rows, 0), dtype=torch.long, device=self.device)
        generated: list[torch.Tensor] = []
        table = self.item_table().float()
        for _ in range(steps):
            _, top, _ = rank_items(self.full_sort_hidden(interaction).float(), table, 1,
                                   exclude=torch.cat([banned, *(g[:, None] for g in generated)], dim=1), chunk=chunk)
            generated.append(top[:, 0])
            append_items(interaction, self.ITEM_ID, self.ITEM_SEQ[len(self.ITEM_ID):], self.ITEM_SEQ_LEN, top[:, 0],
                         self.max_seq_length)
        return torch.stack(generated, dim=1) if generated else torch.zeros((rows, 0), dtype=torch.long)


def append_items(
    interaction, item_field: str, suffix: str, length_field: str, items: torch.Tensor, width: int
) -> None:
    """Feed ``items`` (B,) back as each row's next input: appended to every list field (name
    ending in ``suffix``) of the interaction; rows shift left when full, and the list fields
    other than ``item_field + suffix`` (times, ...) repeat their last value."""
    item_seq_field = item_field + suffix
    lengths = interaction[length_field]
    rows = torch.arange(len(lengths), device=lengths.device)
    full = lengths >= width
    last = (lengths - 1).clamp(min=0)
    for field in list(interaction.columns):
        if not field.endswith(suffix) or interaction[field].dim() < 2:
            continue
        values = interaction[field]
        new = items.to(values.dtype) if field == item_seq_field else values[rows, last]
        values[full] = torch.roll(values[full], shifts=-1, dims=1)
        values[rows, torch.where(full, width - 1, lengths)] = new
    interaction[length_field] = torch.clamp(lengths + 1, max=width)


def is_plugin_model(model_or_class) -> bool:
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    return issubclass(cls, NextItemModel)


def papers_non_embedding_params(model_class: type, config) -> int | None:
    """N as the paper counts it for ``model_class`` under ``config``, before building the model;
    None for a model that has no such count (RecBole's, FMLP-Rec): count its parameters."""
    return model_class.non_embedding_params_for(config) if is_plugin_model(model_class) else None


def counted_non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the embedding tables (every parameter whose name has no 'embedding')."""
    return sum(p.numel() for name, p in model.named_parameters() if "embedding" not in name)


def parameter_counts(model: torch.nn.Module, config) -> dict[str, Any]:
    """The three counts a run summary records: the paper's N (None where the model has none),
    the non-embedding parameters counted, and all parameters."""
    return {
        "non_embedding_params": papers_non_embedding_params(type(model), config),
        "non_embedding_params_counted": counted_non_embedding_params(model),
        "total_params": sum(p.numel() for p in model.parameters()),
    }
