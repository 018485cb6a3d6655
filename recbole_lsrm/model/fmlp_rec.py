"""FMLP-Rec: an all-MLP sequential recommender with learnable filters in the frequency domain.

Each layer filters the sequence with a learnable complex weight per frequency and feature
(rfft over the positions, multiply, irfft back), adds dropout, the residual and a LayerNorm,
then applies RecBole's point-wise feed-forward layer (d -> inner -> d, dropout, residual,
LayerNorm). The input is the item plus a learned position embedding, LayerNorm and dropout;
the hidden state of the last item scores all items by the tied item embedding, trained with
the full cross-entropy on RecBole's prefix rows, like RecBole's SASRec with ``loss_type: CE``.

Padding. The paper pads on the left, so its last position is always the latest item.
RecBole's rows are left-aligned with zeros on the right, so the hidden state is gathered at
``item_length - 1``, and the padded positions are set to zero before every FFT: otherwise
their position embeddings (non-zero after the LayerNorm) would be mixed into every valid
position by the filter, and the output would depend on how much padding a row has. With the
padding zeroed, the filter (a circular convolution over T) reads at the last valid position
exactly the items before it, each weighted by its distance from the last one, which is what
it reads at position T - 1 under left padding: the two layouts filter the history alike.

Reference:
    Kun Zhou, Hui Yu, Wayne Xin Zhao, Ji-Rong Wen. "Filter-enhanced MLP is All You Need
    for Sequential Recommendation." WWW 2022.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recbole.model.layers import FeedForward
from recbole.utils import InputType

from recbole_lsrm.model.contract import NextItemModel
from recbole_lsrm.model.next_item import full_sort_scores, tied_item_logits


class FilterLayer(nn.Module):
    """LayerNorm(x + Dropout(irfft(rfft(x) * W))) over the sequence axis: (B, T, d) -> (B, T, d)."""

    def __init__(self, max_len: int, hidden_size: int, dropout: float, layer_norm_eps: float) -> None:
        super().__init__()
        # One complex weight per frequency and feature (real and imaginary part in the last axis).
        self.complex_weight = nn.Parameter(torch.randn(max_len // 2 + 1, hidden_size, 2) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """x (B, T, d) and valid (B, T, 1) with 1 at items, 0 at padding -> (B, T, d)."""
        T = x.size(1)
        x = x * valid  # padding contributes nothing to the filter
        # The FFT in float32: CUDA's half-precision FFTs take power-of-two lengths only.
        spectrum = torch.fft.rfft(x.float(), dim=1, norm="ortho")  # (B, T // 2 + 1, d) complex
        spectrum = spectrum * torch.view_as_complex(self.complex_weight)
        filtered = torch.fft.irfft(spectrum, n=T, dim=1, norm="ortho").to(x.dtype)  # (B, T, d)
        return self.norm(x + self.dropout(filtered))


class FMLPLayer(nn.Module):
    """A filter layer, then RecBole's point-wise feed-forward layer (with residual and LayerNorm)."""

    def __init__(
        self, max_len: int, hidden_size: int, inner_size: int, dropout: float, hidden_act: str, layer_norm_eps: float
    ) -> None:
        super().__init__()
        self.filter = FilterLayer(max_len, hidden_size, dropout, layer_norm_eps)
        self.ffn = FeedForward(hidden_size, inner_size, dropout, hidden_act, layer_norm_eps)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.filter(x, valid))


class FMLPRec(NextItemModel):
    r"""Filter-enhanced MLP over item IDs, last-position prediction, full cross-entropy."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)
        self.n_layers = config["n_layers"]
        self.hidden_size = config["hidden_size"]
        self.inner_size = config["inner_size"]
        self.hidden_dropout_prob = config["hidden_dropout_prob"]
        self.hidden_act = config["hidden_act"]
        self.layer_norm_eps = config["layer_norm_eps"]
        self.initializer_range = config["initializer_range"]

        self.item_embedding = nn.Embedding(self.n_items, self.hidden_size, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, self.hidden_size)
        self.embedding_norm = nn.LayerNorm(self.hidden_size, eps=self.layer_norm_eps)
        self.embedding_dropout = nn.Dropout(self.hidden_dropout_prob)
        self.layers = nn.ModuleList(
            FMLPLayer(self.max_seq_length, self.hidden_size, self.inner_size, self.hidden_dropout_prob,
                      self.hidden_act, self.layer_norm_eps)
            for _ in range(self.n_layers)
        )
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # RecBole's SASRec initialisation; the filter weights keep their own (randn * 0.02).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()
        if module is self.item_embedding:
            module.weight.data[0].zero_()

    def encode(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids and (B,) lengths -> (B, T, d) hidden state of every position."""
        T = item_seq.size(1)
        positions = torch.arange(T, device=item_seq.device)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)  # (B, T, d)
        x = self.embedding_dropout(self.embedding_norm(x))
        # From the lengths, not from item id 0: only the items a row says it has are history.
        valid = (positions[None, :] < item_seq_len[:, None]).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        for layer in self.layers:
            x = layer(x, valid)
        return x

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids and (B,) lengths -> (B, d) hidden state of each row's last item."""
        return self.gather_indexes(self.encode(item_seq, item_seq_len), item_seq_len - 1)

    def hidden_states(self, interaction) -> torch.Tensor:
        return self.encode(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])  # (B, T, d)

    def _seq_output(self, interaction) -> torch.Tensor:
        return self(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])

    def calculate_loss(self, interaction) -> torch.Tensor:
        logits = tied_item_logits(self._seq_output(interaction), self.item_embedding.weight).float()  # (B, n_items)
        return F.cross_entropy(logits, interaction[self.POS_ITEM_ID])

    def predict(self, interaction) -> torch.Tensor:
        hidden = self._seq_output(interaction)
        return (hidden * self.item_embedding(interaction[self.ITEM_ID])).sum(dim=-1)  # (B,)

    def full_sort_hidden(self, interaction) -> torch.Tensor:
        """(B, d) the user's state: scores are it x item_table() (ranked in item chunks by the trainer)."""
        return self._seq_output(interaction)

    def item_table(self) -> torch.Tensor:
        return self.item_embedding.weight

    def full_sort_predict(self, interaction) -> torch.Tensor:
        return full_sort_scores(self._seq_output(interaction), self.item_embedding.weight)  # (B, n_items) fp32
