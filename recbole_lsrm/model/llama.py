"""Llama over item IDs: pre-RMSNorm, a SwiGLU feed-forward and rotary positions, no learned
position table, scores tied to the item table; trained exactly like LSRM (all-position windows,
the chunked full-softmax CE, the switching optimizer and layer-wise dropout).

The HSTU scaling study compares it with HSTU, GPT (LSRM's block) and SASRec scaled by depth:
with HSTU, the one that keeps improving with more blocks.

    x = x + W_o Attn(rope(Q), rope(K), V)    Q, K, V = W_q,k,v RMSNorm(x)      causal softmax
    x = x + W_down (SiLU(W_gate h) * W_up h) h = RMSNorm(x)

``rab`` (``rope`` by default) also takes HSTU's relative bias (``position``, ``position_time``)
or ``none``, from the same implementation as HSTU's and LSRM's
(:mod:`recbole_lsrm.model.relative`).

Reference:
    Hugo Touvron et al. "LLaMA: Open and Efficient Foundation Language Models." arXiv:2302.13971, 2023.
    Wei Guo et al. "Scaling New Frontiers: Insights into Large Recommendation Models."
    arXiv:2412.00714, 2024. (Llama as a recommendation backbone)
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from recbole_lsrm.model.cpu_dropout import causal_attention
from recbole_lsrm.model.decoder import SideInputs
from recbole_lsrm.model.prenorm import PreNormBlock, PreNormDecoder
from recbole_lsrm.model.relative import Rotary


def llama_ffn_dim(d_model: int) -> int:
    """SwiGLU's width: 8 d / 3 rounded to a multiple of 8, so that its three matrices hold about
    the 8 d^2 weights of GPT's two d x 4d ones (Llama's choice, without its 256 rounding)."""
    return max(8, int(round(8 * d_model / 3 / 8)) * 8)


def non_embedding_params(n_layers: int, d_model: int, ffn_dim: int | None = None) -> int:
    """The blocks' weight matrices: 4 d^2 for Q, K, V, O and 3 d ffn_dim for SwiGLU, per block
    (RMSNorm weights left out, as LSRM's N leaves out biases and LayerNorms)."""
    ffn_dim = ffn_dim or llama_ffn_dim(d_model)
    return n_layers * (4 * d_model * d_model + 3 * d_model * ffn_dim)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight, computed in fp32 (Zhang & Sennrich 2019; Llama's)."""

    def __init__(self, d_model: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class LlamaAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.o_proj = nn.Linear(d_model, d_model, bias=False)
        self.dropout = 0.0

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, rotary: Rotary | None) -> torch.Tensor:
        B, T, d = x.shape
        q, k, v = (proj(x).view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for proj in (self.q_proj, self.k_proj, self.v_proj))  # (B, h, T, dh)
        if rotary is not None:
            q, k = rotary(q), rotary(k)
        y = causal_attention(q, k, v, self.dropout, self.training, bias)  # (B, h, T, dh)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, d))  # (B, T, d)


class SwiGLU(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, ffn_dim, bias=False)
        self.up_proj = nn.Linear(d_model, ffn_dim, bias=False)
        self.down_proj = nn.Linear(ffn_dim, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(PreNormBlock):
    """Pre-RMSNorm block: x + Attn(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)); one dropout rate per layer."""

    parts = ("input_norm", "attn", "post_attention_norm", "mlp")

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int, eps: float, dropout: float) -> None:
        super().__init__()
        self.input_norm = RMSNorm(d_model, eps)
        self.attn = LlamaAttention(d_model, n_heads)
        self.post_attention_norm = RMSNorm(d_model, eps)
        self.mlp = SwiGLU(d_model, ffn_dim)
        self.init_dropout(dropout)


class Llama(PreNormDecoder):
    r"""Llama decoder over item IDs, trained on every position of a window (Touvron et al. 2023)."""

    residual_projections = ("o_proj.weight", "down_proj.weight")  # Llama's residual branches' last matrices

    position_table = False
    size_keys = ("n_layers", "d_model", "ffn_dim")

    @classmethod
    def non_embedding_params_for(cls, sizes: Mapping[str, Any]) -> int:
        return non_embedding_params(sizes["n_layers"], sizes["d_model"], sizes["ffn_dim"] if "ffn_dim" in sizes else None)

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)  # sizes, layer_dropout, the item table, scores
        self.ffn_dim = self.option(config, "ffn_dim") or llama_ffn_dim(self.d_model)
        self.sizes["ffn_dim"] = self.ffn_dim
        eps = float(self.option(config, "rms_norm_eps"))
        self.blocks = nn.ModuleList(
            LlamaBlock(self.d_model, self.n_heads, self.ffn_dim, eps, rate) for rate in self.layer_dropout
        )
        self.build_relative(config, dataset)
        self.final_norm = RMSNorm(self.d_model, eps)
        self.set_layer_dropout(self.layer_dropout)
        self.init_weights(config["initializer_range"])


    def forward(self, item_seq: torch.Tensor, timestamps: torch.Tensor | None = None,
                side: SideInputs | None = None) -> torch.Tensor:
        """Hidden states for every position: (B, T) item ids (with rab: position_time, their times
        in seconds; ``side``: users and behaviours, where used) -> (B, T, d)."""
        x = self.input_items(item_seq, side)  # (B, T, d); (B, 2T, d) with behaviour tokens
        return self.run_blocks(self.embedding_dropout(x), timestamps)
