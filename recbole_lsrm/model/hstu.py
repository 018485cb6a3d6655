"""HSTU: Hierarchical Sequential Transduction Units, trained like LSRM (SPEC 6).

Each block is one fused projection and a pointwise attention, with no separate FFN:

    U, V, Q, K = split(SiLU(W_uvqk LayerNorm(x)))
    A          = SiLU(Q K^T + rab) / n          causal, no softmax
    x          = x + W_o(Dropout(LayerNorm(A V) * U))

``rab`` is a learned relative attention bias: one scalar per position distance i - j plus, with
timestamps, one per log bucket of the time difference t_i - t_j. It is computed once per batch
and shared by all blocks. Three ablation switches (the study's): ``attn_activation`` (silu or
softmax), ``rab`` (none, position or position_time) and ``gating`` (U on or off).

Everything around the blocks is LSRM's, so the two differ only in the block: item plus learned
absolute position embedding, a final LayerNorm, scores by the tied item embedding, and the
cross-entropy of the next item at every non-padding position of a training window.

Differences from the reference implementation (generative-recommenders), and why:

- the query's time is the timestamp of the input item at that position, not of the item to be
  predicted: the training windows carry the input items' times only, and the target's time
  would tell the model when the next interaction happens, which it cannot know in advance;
- one bias table shared by all blocks instead of one per block, so that the (B, T, T) bias is
  gathered once per batch;
- full cross-entropy over all items with LSRM's tied scores, instead of sampled softmax over
  L2-normalised embeddings, so that HSTU and LSRM are compared under one loss.

Timestamps are the raw Unix seconds RecBole loads (``normalize_all: False``); padding has time 0
but is never attended to by a valid position (causal mask, right padding). RecBole keeps float
fields as float32, so times near 1e9 s arrive in steps of 64 s: gaps under about a minute
(buckets 0 to 13) are not told apart.

Reference:
    Jiaqi Zhai et al. "Actions Speak Louder than Words: Trillion-Parameter Sequential
    Transducers for Generative Recommendations." ICML 2024. (HSTU)
    Wei Guo et al. "Scaling New Frontiers: Insights into Large Recommendation Models."
    arXiv:2412.00714, 2024. (the ablations)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.cpu_dropout import Dropout
from recbole_lsrm.model.decoder import AllPositionDecoder

ATTN_ACTIVATIONS = ("silu", "softmax")
RAB_KINDS = ("none", "position", "position_time")
# The reference implementation's buckets: floor(ln(max(|dt|, 1)) / 0.301), so each bucket is
# e^0.301 = 1.35 times wider than the one before (1 s, 1 min, 1 h, 1 day: buckets 0, 13, 27, 37).
TIME_BUCKET_LOG_WIDTH = 0.301


def non_embedding_params(n_layers: int, d_model: int, gating: bool = True) -> int:
    """Weight matrices of the blocks, counted like LSRM's N: (4 or 3) d^2 for U,V,Q,K plus d^2 for W_o."""
    return n_layers * (4 if gating else 3) * d_model * d_model + n_layers * d_model * d_model


def time_buckets(timestamps: torch.Tensor, num_buckets: int) -> torch.Tensor:
    """Log bucket of every pairwise time difference: (B, T) seconds -> (B, T, T) int64 ids.

    Entry (b, i, j) buckets |t_i - t_j| (query i, key j) as floor(ln(max(|dt|, 1)) / 0.301),
    capped at ``num_buckets``; differences under one second share bucket 0.
    """
    dt = (timestamps.unsqueeze(2) - timestamps.unsqueeze(1)).abs().clamp(min=1.0)  # (B, T, T)
    return (torch.log(dt) / TIME_BUCKET_LOG_WIDTH).long().clamp(0, num_buckets)


class RelativeAttentionBias(nn.Module):
    """rab[i, j] = w_pos[i - j] (+ w_time[bucket(t_i - t_j)]) for keys j <= i.

    Only causal pairs are used, so one weight per distance 0 .. max_len - 1 suffices.
    """

    def __init__(self, max_len: int, num_time_buckets: int | None) -> None:
        super().__init__()
        self.num_time_buckets = num_time_buckets
        self.position_bias = nn.Parameter(torch.zeros(max_len))
        self.time_bias = nn.Parameter(torch.zeros(num_time_buckets + 1)) if num_time_buckets else None
        index = torch.arange(max_len)
        self.register_buffer("distance", (index[:, None] - index[None, :]).clamp(min=0), persistent=False)

    def forward(self, timestamps: torch.Tensor | None, seq_len: int) -> torch.Tensor:
        """(B, T) timestamps (or None) -> bias (B, T, T), or (T, T) without time."""
        bias = self.position_bias[self.distance[:seq_len, :seq_len]]  # (T, T)
        if self.time_bias is not None:
            bias = bias + self.time_bias[time_buckets(timestamps, self.num_time_buckets)]  # (B, T, T)
        return bias


class HSTUBlock(nn.Module):
    """x + W_o(Dropout(LayerNorm(A V) * U)), A the pointwise (or softmax) causal attention."""

    def __init__(
        self, d_model: int, n_heads: int, max_len: int, attn_activation: str, gating: bool, dropout: float
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.attn_activation = attn_activation
        self.gating = gating
        # The SiLU weights are divided by n = the maximum sequence length (the padded width of
        # every row), as in the reference code, not by a row's number of valid items: that
        # count includes the items after a position, so a past output would change when items
        # are appended (breaking causality, and making a window's positions disagree with the
        # same prefix at evaluation). Dividing by the i + 1 items a query sees would be causal
        # but turn the sum into a mean, losing how much history supports a pattern: the
        # intensity signal the HSTU paper keeps by not normalising the weights.
        self.n = max_len
        self.norm_input = nn.LayerNorm(d_model)
        # One fused projection to U, V, Q, K; without gating U is never computed.
        self.uvqk = nn.Linear(d_model, (4 if gating else 3) * d_model)
        self.norm_attn = nn.LayerNorm(d_model)
        self.proj = nn.Linear(d_model, d_model)  # W_o
        self.dropout = Dropout(dropout)
        self.register_buffer("causal", torch.ones(max_len, max_len, dtype=torch.bool).tril(), persistent=False)

    def set_dropout(self, rate: float) -> None:
        self.dropout.p = rate

    @property
    def dropout_rate(self) -> float:
        return self.dropout.p

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Causal weights: q, k (B, h, T, dh), bias (B, T, T) or (T, T) -> (B, h, T, T); 0 above the diagonal."""
        T = q.size(2)
        causal = self.causal[:T, :T]
        scores = q @ k.transpose(-2, -1)  # (B, h, T, T)
        if self.attn_activation == "softmax":
            scores = scores / math.sqrt(q.size(-1))
        if bias is not None:
            scores = scores + bias.unsqueeze(-3)  # one bias for all heads
        if self.attn_activation == "softmax":
            return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        return F.silu(scores).masked_fill(~causal, 0.0) / self.n

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        B, T, d = x.shape
        projected = F.silu(self.uvqk(self.norm_input(x)))  # (B, T, 4d) or (B, T, 3d)
        if self.gating:
            u, v, q, k = projected.split(d, dim=2)
        else:
            v, q, k = projected.split(d, dim=2)
        v, q, k = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (v, q, k))  # (B, h, T, dh)
        attended = self.attention_weights(q, k, bias) @ v  # (B, h, T, dh)
        out = self.norm_attn(attended.transpose(1, 2).reshape(B, T, d))  # (B, T, d)
        if self.gating:
            out = out * u
        return x + self.proj(self.dropout(out))


def _choice(config, key: str, allowed: tuple[str, ...]) -> str:
    value = config[key]
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


class HSTU(AllPositionDecoder):
    r"""HSTU blocks over item IDs with LSRM's embedding, output and all-position training (SPEC 6)."""

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)  # sizes, layer_dropout, embeddings
        self.attn_activation = _choice(config, "attn_activation", ATTN_ACTIVATIONS)
        self.rab_kind = _choice(config, "rab", RAB_KINDS)
        self.gating = config["gating"]
        if not isinstance(self.gating, bool):
            raise ConfigError(f"gating must be true or false, got {self.gating!r}")
        self.TIME_SEQ = config["TIME_FIELD"] + config["LIST_SUFFIX"]
        num_time_buckets = None
        if self.rab_kind == "position_time":
            num_time_buckets = config["num_time_buckets"]
            if isinstance(num_time_buckets, bool) or not isinstance(num_time_buckets, int) or num_time_buckets < 1:
                raise ConfigError(f"num_time_buckets must be a positive integer, got {num_time_buckets!r}")
            self._check_timestamps(config, dataset)
        self.rab = None if self.rab_kind == "none" else RelativeAttentionBias(self.max_seq_length, num_time_buckets)
        self.blocks = nn.ModuleList(
            HSTUBlock(self.d_model, self.n_heads, self.max_seq_length, self.attn_activation, self.gating, rate)
            for rate in self.layer_dropout
        )
        self.final_norm = nn.LayerNorm(self.d_model)
        self.set_layer_dropout(self.layer_dropout)
        self._init_weights(config["initializer_range"])

    @classmethod
    def paper_non_embedding_params(cls, config) -> int:
        """N as the LSRM paper counts it (the blocks' weight matrices) for this config, not 12 L d^2."""
        return non_embedding_params(config["n_layers"], config["d_model"], config["gating"])

    def _check_timestamps(self, config, dataset) -> None:
        """The time bias needs raw timestamps in seconds, one per input item."""
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

    def _init_weights(self, std: float) -> None:
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                # GPT-2: residual projections scaled by depth keep the stream's variance steady.
                scale = 1.0 / math.sqrt(2 * self.n_layers) if name.endswith("proj.weight") else 1.0
                nn.init.normal_(p, mean=0.0, std=std * scale)
            elif name.startswith("rab."):
                nn.init.normal_(p, mean=0.0, std=std)  # as the reference initialises its bias tables
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    # --- forward ----------------------------------------------------------------------
    def forward(self, item_seq: torch.Tensor, timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """Hidden states for every position: (B, T) item ids and (B, T) timestamps -> (B, T, d)."""
        T = item_seq.size(1)
        if self.rab_kind == "position_time" and timestamps is None:
            raise ConfigError(f"HSTU with rab: position_time needs the '{self.TIME_SEQ}' timestamps")
        positions = torch.arange(T, device=item_seq.device)
        x = self.item_embedding(item_seq) + self.position_embedding(positions)  # (B, T, d)
        x = self.embedding_dropout(x)
        # Once per batch, shared by every block: the (B, T, T) gather is the costly part.
        bias = self.rab(timestamps, T) if self.rab is not None else None  # (B, T, T), (T, T) or None
        for block in self.blocks:
            x = block(x, bias)
        return self.final_norm(x)

    def hidden_states(self, interaction) -> torch.Tensor:
        timestamps = interaction[self.TIME_SEQ] if self.rab_kind == "position_time" else None
        return self(interaction[self.ITEM_SEQ], timestamps)  # (B, T, d), through __call__ for compile()
