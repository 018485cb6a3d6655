"""LSRM: the decoder-only transformer of "Scaling Law of Large Sequential Recommendation Models".

Item embedding plus learnable position embedding, pre-LayerNorm causal blocks (multi-head
self-attention, GELU feed-forward of width 4d), a final LayerNorm, and scores over all items
by the dot product with the (tied) item embedding. Trained on all positions: cross-entropy of
the next item at every non-padding position of each window (LSRM paper III-A).

Reference:
    Gaowei Zhang, Yupeng Hou, Hongyu Lu, Yu Chen, Wayne Xin Zhao, Ji-Rong Wen.
    "Scaling Law of Large Sequential Recommendation Models." RecSys 2024.
"""

from __future__ import annotations

import torch
from torch import nn

from recbole_lsrm.model.cpu_dropout import causal_attention
from recbole_lsrm.model.decoder import SideInputs
from recbole_lsrm.model.prenorm import PreNormBlock, PreNormDecoder
from recbole_lsrm.model.relative import Rotary


def non_embedding_params(n_layers: int, d_model: int) -> int:
    """Non-embedding parameters as the paper counts them: N = 12 * n_layers * d_model^2."""
    return 12 * n_layers * d_model * d_model


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.dropout = 0.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None, rotary: Rotary | None = None) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))  # (B, h, T, dh)
        if rotary is not None:
            q, k = rotary(q), rotary(k)
        y = causal_attention(q, k, v, self.dropout, self.training, bias)  # (B, h, T, dh)
        return self.proj(y.transpose(1, 2).reshape(B, T, d))  # (B, T, d)


class DecoderBlock(PreNormBlock):
    """Pre-LN block (GPT-2's): x + Attn(LN(x)), then x + FFN(LN(x)); one dropout rate for the whole layer."""

    parts = ("ln_attn", "attn", "ln_ffn", "ffn")

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_attn = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln_ffn = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))
        self.init_dropout(dropout)


class LSRM(PreNormDecoder):
    r"""Decoder-only transformer over item IDs, trained on every position (LSRM paper III-A)."""

    residual_projections = ("proj.weight", "ffn.2.weight")  # GPT-2's residual branches' last matrices

    @classmethod
    def non_embedding_params_for(cls, sizes) -> int:
        return non_embedding_params(sizes["n_layers"], sizes["d_model"])

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)  # sizes, layer_dropout, embeddings
        self.blocks = nn.ModuleList(
            DecoderBlock(self.d_model, self.n_heads, rate) for rate in self.layer_dropout
        )
        # rab: none (the learned positions alone, the paper's LSRM), or HSTU's relative bias
        # (position, position_time: "GPT with HSTU's bias and a pre-norm residual"), or rope.
        self.build_relative(config, dataset)
        self.final_norm = nn.LayerNorm(self.d_model)
        self.set_layer_dropout(self.layer_dropout)
        self.init_weights(config["initializer_range"])


    # --- forward ----------------------------------------------------------------------
    def forward(self, item_seq: torch.Tensor, timestamps: torch.Tensor | None = None,
                side: SideInputs | None = None) -> torch.Tensor:
        """Hidden states for every position: (B, T) item ids (with rab: position_time, their times
        in seconds; ``side``: users and behaviours, where used) -> (B, T, d)."""
        x = self.input_items(item_seq, side)  # (B, T, d); (B, 2T, d) with behaviour tokens
        x = x + self.position_embedding(torch.arange(x.size(1), device=item_seq.device))
        return self.run_blocks(self.embedding_dropout(x), timestamps)
