"""The pre-norm decoder that GPT (LSRM's block) and Llama share.

Both are a stack of pre-norm residual blocks, ``x + Attn(norm(x))`` then ``x + FFN(norm(x))``,
with one dropout rate per block (the LSRM paper's layer-wise adaptive dropout), an optional
relative attention bias or rotary positions chosen by ``rab`` (:mod:`recbole_lsrm.model.relative`,
computed once per batch and shared by every block) and a final norm. The models differ in
their parts (LayerNorm and GELU against RMSNorm and SwiGLU), their positions and their
parameter names, which follow GPT-2's and Llama's layouts so that the parity tests can load
HuggingFace weights.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from recbole_lsrm.model.cpu_dropout import Dropout
from recbole_lsrm.model.decoder import AllPositionDecoder
from recbole_lsrm.model.relative import Rotary, relative_modules, time_buckets


class PreNormBlock(nn.Module):
    """``x + Attn(attn_norm(x))``, then ``x + FFN(ffn_norm(x))``; one dropout rate for the whole block.

    A subclass builds its four parts, names them in ``parts`` (attention norm, attention,
    feed-forward norm, feed-forward) and calls :meth:`init_dropout` last.
    """

    parts: tuple[str, str, str, str]

    def init_dropout(self, rate: float) -> None:
        self.dropout = Dropout(rate)
        self.set_dropout(rate)

    def set_dropout(self, rate: float) -> None:
        self.dropout.p = rate
        getattr(self, self.parts[1]).dropout = rate  # the attention weights' dropout

    @property
    def dropout_rate(self) -> float:
        return self.dropout.p

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None, rotary: Rotary | None = None) -> torch.Tensor:
        attn_norm, attn, ffn_norm, ffn = (getattr(self, name) for name in self.parts)
        x = self.dropout.residual(x, attn(attn_norm(x), bias, rotary))
        return self.dropout.residual(x, ffn(ffn_norm(x)))


class PreNormDecoder(AllPositionDecoder):
    """A causal stack of :class:`PreNormBlock` over item ids; subclasses build ``blocks`` and
    ``final_norm``, call :meth:`build_relative` and define ``forward`` with :meth:`run_blocks`."""

    residual_projections: tuple[str, ...] = ()  # names (ends) of each block's last residual matrices

    def init_weights(self, std: float) -> None:
        """Normal(0, std) matrices, the residual branches' last ones scaled by 1/sqrt(2 n_layers)
        (GPT-2's, kept by Llama: the residual stream's variance stays steady with depth), the
        relative bias tables normal too, biases zero, the padding item's embedding zero."""
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                scale = 1.0 / math.sqrt(2 * self.n_layers) if name.endswith(self.residual_projections) else 1.0
                nn.init.normal_(p, mean=0.0, std=std * scale)
            elif "rab." in name:
                nn.init.normal_(p, mean=0.0, std=std)  # the bias tables, as HSTU's
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def build_relative(self, config, dataset) -> None:
        """``rab``: none, HSTU's relative bias (position, position_time) or rope, shared by every block."""
        self.rab_kind = self.option(config, "rab")
        self.num_time_buckets = config["num_time_buckets"] if self.rab_kind == "position_time" else None
        if self.num_time_buckets is not None:
            self.check_time_input(config, dataset)
        # Built once for the longest length: every block shares the bias table or the rotary tables.
        self.rab, self.rotary = relative_modules(self.rab_kind, self.token_length, self.d_model // self.n_heads,
                                                 self.num_time_buckets)

    def run_blocks(self, x: torch.Tensor, timestamps: torch.Tensor | None) -> torch.Tensor:
        """(B, T, d) inputs (embedded, positions added, dropout applied) -> (B, T, d) final states."""
        bias = None
        if self.rab is not None:  # once per batch, shared by every block
            buckets = time_buckets(timestamps, self.num_time_buckets) if self.num_time_buckets else None
            bias = self.rab(buckets, x.size(1))  # (B, T, T) or (T, T)
        for block in self.blocks:
            x = block(x, bias, self.rotary)
        return self.final_norm(x)

    def hidden_states(self, interaction) -> torch.Tensor:
        side = self.side_inputs(interaction)
        if self.num_time_buckets is None and side is None:
            return self(interaction[self.ITEM_SEQ])  # through __call__, so that compile() applies
        times = self.expand_tokens(interaction[self.TIME_SEQ]) if self.num_time_buckets is not None else None
        return self.item_positions(self(interaction[self.ITEM_SEQ], times, side))
