"""HSTU: Hierarchical Sequential Transduction Units (Zhai et al., ICML 2024), with two recipes.

Each block is one fused projection and a pointwise attention, with no separate FFN:

    U, V, Q, K = split(SiLU(W_uvqk LayerNorm(x)))
    A          = SiLU(Q K^T + rab) / n          causal, no softmax
    x          = x + W_o(Dropout(LayerNorm(A V) * U))

``rab`` is a learned relative attention bias: one scalar per position distance i - j plus, with
timestamps, one per log bucket of the time gap between query i and key j. Three ablation
switches (the study's): ``attn_activation`` (silu or softmax), ``rab`` (none, position or
position_time) and ``gating`` (U on or off).

Two recipes (``--recipe``, properties/recipe/HSTU/):

- ``plugin`` (the default): everything around the blocks is LSRM's, so the two differ only in
  the block: item plus learned position embedding, a final LayerNorm, tied dot-product scores,
  the full cross-entropy of the next item at every position of every window, LSRM's optimiser.
- ``reference``: the model and training of HSTU's reference code (generative-recommenders,
  ``research/``), each difference its own option, so that the published results can be
  reproduced and each difference ablated. docs/hstu.md lists them and why each
  exists; in the model they are ``input_scale``, ``hstu_init``, ``layer_norm``, ``uvqk_bias``,
  ``final_layer_norm``, ``attention_divisor``, ``time_query``, ``rab_per_block`` and, in the
  shared decoder, ``similarity``, ``temperature`` and ``sampled_negatives``.

The query's time (``time_query``): ``input`` buckets t_i - t_j with t_i the time of the input
item at position i, which is known before the next interaction; ``target`` (the reference)
uses the time of the item being predicted at position i, i.e. the time of the request the
recommendation answers: the next input's time inside a sequence and, after the last input, the
held-out item's own time (the row's ``timestamp``). Training windows then carry
``target_timestamp_list``.

Timestamps are the raw Unix seconds (``normalize_all: False``), kept in float64 by the
all-position datasets so that gaps of a few seconds keep their buckets. Padding has time 0 but
is never attended to by a valid position (causal mask, right padding).

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


from recbole_lsrm.data.fields import target_time_list_field
from recbole_lsrm.errors import ConfigError
from recbole_lsrm.model.cpu_dropout import Dropout
from recbole_lsrm.model.decoder import AllPositionDecoder, SideInputs
from recbole_lsrm.model.relative import RelativeAttentionBias, Rotary, relative_modules, time_buckets

# layer_norm: plain is the reference's: no scale or shift, eps 1e-6.
PLAIN_LAYER_NORM_EPS = 1e-6


def non_embedding_params(n_layers: int, d_model: int, gating: bool = True) -> int:
    """Weight matrices of the blocks, counted like LSRM's N: (4 or 3) d^2 for U,V,Q,K plus d^2 for W_o."""
    return n_layers * (4 if gating else 3) * d_model * d_model + n_layers * d_model * d_model


class PointwiseAttention(nn.Module):
    """HSTU's attention weights: SiLU(QK^T + rab) / n, no softmax, 0 above the diagonal.

    The weights are divided by a fixed n (``attention_divisor``; by default the maximum sequence
    length, the padded width of every row; the reference divides by its own padded width), not
    by a row's number of valid items: that count includes the items after a position, so a
    past output would change when items are appended (breaking causality, and making a window's
    positions disagree with the same prefix at evaluation). Dividing by the i + 1 items a query
    sees would be causal but turn the sum into a mean, losing how much history supports a
    pattern: the intensity signal the HSTU paper keeps by not normalising the weights.
    """

    def __init__(self, divisor: int) -> None:
        super().__init__()
        self.n = divisor

    def forward(self, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None, causal: torch.Tensor) -> torch.Tensor:
        scores = q @ k.transpose(-2, -1)  # (B, h, T, T)
        if bias is not None:
            scores = scores + bias.unsqueeze(-3)  # one bias for all heads
        return F.silu(scores).masked_fill(~causal, 0.0) / self.n


class SoftmaxAttention(nn.Module):
    """The ablation ``attn_activation: softmax``: softmax(QK^T / sqrt(d_h) + rab), causal."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None, causal: torch.Tensor) -> torch.Tensor:
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, h, T, T)
        if bias is not None:
            scores = scores + bias.unsqueeze(-3)
        return scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)


class Gating(nn.Module):
    """HSTU's feature interaction: LayerNorm(A V) * U (U is the first quarter of the projection)."""

    parts = 4  # U, V, Q, K

    def forward(self, out: torch.Tensor, u: list[torch.Tensor]) -> torch.Tensor:
        return out * u[0]


class NoGating(nn.Module):
    """The ablation ``gating: False``: U is never computed, LayerNorm(A V) passes through."""

    parts = 3  # V, Q, K

    def forward(self, out: torch.Tensor, u: list[torch.Tensor]) -> torch.Tensor:
        return out


class HSTUBlock(nn.Module):
    """x + W_o(Dropout(LayerNorm(A V) * U)), A the pointwise (or softmax) causal attention."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        max_len: int,
        attn_activation: str,
        gating: bool,
        dropout: float,
        divisor: int | None = None,
        layer_norm: str = "affine",
        uvqk_bias: bool = True,
        rab: RelativeAttentionBias | None = None,
        rotary: Rotary | None = None,
    ) -> None:
        super().__init__()
        self.n_heads = n_heads
        # The parts an ablation swaps, chosen once (attn_activation, gating).
        self.attention = PointwiseAttention(divisor or max_len) if attn_activation == "silu" else SoftmaxAttention()
        self.gate = Gating() if gating else NoGating()
        affine = layer_norm == "affine"
        eps = 1e-5 if affine else PLAIN_LAYER_NORM_EPS
        self.norm_input = nn.LayerNorm(d_model, eps=eps, elementwise_affine=affine)
        # One fused projection to U, V, Q, K; without gating U is never computed.
        self.uvqk = nn.Linear(d_model, self.gate.parts * d_model, bias=uvqk_bias)
        self.norm_attn = nn.LayerNorm(d_model, eps=eps, elementwise_affine=affine)
        self.proj = nn.Linear(d_model, d_model)  # W_o
        self.dropout = Dropout(dropout)
        self.rab = rab  # this block's own bias table (rab_per_block), else the model's shared one
        self.rotary = rotary  # rab: rope (shared by every block; its tables are buffers, not weights)
        self.register_buffer("causal", torch.ones(max_len, max_len, dtype=torch.bool).tril(), persistent=False)

    def set_dropout(self, rate: float) -> None:
        self.dropout.p = rate

    @property
    def dropout_rate(self) -> float:
        return self.dropout.p

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """Causal weights: q, k (B, h, T, dh), bias (B, T, T) or (T, T) -> (B, h, T, T); 0 above the diagonal."""
        T = q.size(2)
        return self.attention(q, k, bias, self.causal[:T, :T])

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None, buckets: torch.Tensor | None = None) -> torch.Tensor:
        B, T, d = x.shape
        if self.rab is not None:
            bias = self.rab(buckets, T)
        projected = F.silu(self.uvqk(self.norm_input(x)))  # (B, T, 4d) or (B, T, 3d)
        *u, v, q, k = projected.split(d, dim=2)  # u: [] without gating
        v, q, k = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (v, q, k))  # (B, h, T, dh)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        attended = self.attention_weights(q, k, bias) @ v  # (B, h, T, dh)
        out = self.gate(self.norm_attn(attended.transpose(1, 2).reshape(B, T, d)), u)  # (B, T, d)
        return x + self.proj(self.dropout(out))


def truncated_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """N(0, std^2) truncated at two standard deviations (the reference's item initialisation)."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


class HSTU(AllPositionDecoder):
    r"""HSTU blocks over item IDs, trained on every position of a window (Zhai et al., ICML 2024)."""

    size_keys = ("n_layers", "d_model", "gating")

    def __init__(self, config, dataset) -> None:
        super().__init__(config, dataset)  # sizes, layer_dropout, embeddings, scores
        self.attn_activation = config["attn_activation"]
        self.rab_kind = config["rab"]
        self.gating = config["gating"]
        settings = {key: self.option(config, key) for key in (
            "input_scale", "hstu_init", "layer_norm", "uvqk_bias", "final_layer_norm", "time_query", "rab_per_block")}
        self.input_scale = math.sqrt(self.d_model) if settings["input_scale"] else 1.0
        self.hstu_init = settings["hstu_init"]
        self.time_query = settings["time_query"]
        self.attention_divisor = self.option(config, "attention_divisor") or self.token_length
        if self.attention_divisor < self.token_length:
            raise ConfigError(f"attention_divisor={self.attention_divisor} is below the {self.token_length} tokens of a row "
                              f"(MAX_ITEM_LIST_LENGTH={self.max_seq_length}" + (", twice with behavior_mode: token)"
                              if self.tokens_per_item > 1 else ")") + ": the weights would sum past 1")
        self.TARGET_TIME_SEQ = target_time_list_field(config)
        num_time_buckets = None
        if self.rab_kind == "position_time":
            num_time_buckets = config["num_time_buckets"]
            self.check_time_input(config, dataset)
        self.num_time_buckets = num_time_buckets

        def bias_table() -> RelativeAttentionBias | None:
            return relative_modules(self.rab_kind, self.token_length, self.d_model // self.n_heads, num_time_buckets)[0]

        per_block = bool(settings["rab_per_block"])
        self.rab = None if per_block else bias_table()  # shared: gathered once per batch
        self.rotary = relative_modules(self.rab_kind, self.token_length, self.d_model // self.n_heads)[1]
        self.blocks = nn.ModuleList(
            HSTUBlock(
                self.d_model, self.n_heads, self.token_length, self.attn_activation, self.gating, rate,
                divisor=self.attention_divisor, layer_norm=settings["layer_norm"], uvqk_bias=bool(settings["uvqk_bias"]),
                rab=bias_table() if per_block else None, rotary=self.rotary,
            )
            for rate in self.layer_dropout
        )
        self.final_norm = nn.LayerNorm(self.d_model) if settings["final_layer_norm"] else None
        self.set_layer_dropout(self.layer_dropout)
        self._init_weights(config["initializer_range"])

    @classmethod
    def non_embedding_params_for(cls, sizes) -> int:
        """N counted like LSRM's (the blocks' weight matrices): 5 L d^2 (4 L d^2 without gating), not 12 L d^2."""
        return non_embedding_params(sizes["n_layers"], sizes["d_model"], sizes["gating"])

    def _init_weights(self, std: float) -> None:
        if self.hstu_init == "reference":
            self._init_like_reference(std)
            return
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                # GPT-2: residual projections scaled by depth keep the stream's variance steady.
                scale = 1.0 / math.sqrt(2 * self.n_layers) if name.endswith("proj.weight") else 1.0
                nn.init.normal_(p, mean=0.0, std=std * scale)
            elif "rab." in name:
                nn.init.normal_(p, mean=0.0, std=std)  # as the reference initialises its bias tables
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    @torch.no_grad()
    def _init_like_reference(self, std: float) -> None:
        """hstu_init: reference. Items truncated normal (std, cut at 2 std); U,V,Q,K normal(std);
        W_o Xavier-uniform with PyTorch's default bias; bias tables normal(std). The position
        table is Xavier-normal: the reference draws a truncated normal of std sqrt(1/d) first,
        then its model-wide initialisation overwrites it with Xavier-normal of its (n, d) table,
        n = attention_divisor rows (the same std for the rows used here)."""
        truncated_normal_(self.item_embedding.weight, std)
        self.item_embedding.weight[0].zero_()
        n, d = self.attention_divisor, self.d_model
        self.position_embedding.weight.normal_(0.0, math.sqrt(2.0 / (n + d)))
        for name, p in self.named_parameters():
            if "rab." in name:
                p.normal_(0.0, std)
        for block in self.blocks:
            block.uvqk.weight.normal_(0.0, std)
            if block.uvqk.bias is not None:
                block.uvqk.bias.zero_()
            block.proj.reset_parameters()  # nn.Linear's default bias: U(+-1/sqrt(d))
            nn.init.xavier_uniform_(block.proj.weight)

    # --- forward ----------------------------------------------------------------------
    def forward(
        self, item_seq: torch.Tensor, timestamps: torch.Tensor | None = None, query_times: torch.Tensor | None = None,
        side: SideInputs | None = None,
    ) -> torch.Tensor:
        """Hidden states for every position: (B, T) item ids, (B, T) input times -> (B, T, d).

        ``query_times`` (B, T) are the times the time bias measures gaps from (``time_query:
        target``); by default each input's own time. ``side``: the rows' users and behaviours,
        where the model uses them.
        """
        if self.rab_kind == "position_time" and timestamps is None:
            raise ConfigError(f"HSTU with rab: position_time needs the '{self.TIME_SEQ}' timestamps")
        embedded = self.input_items(item_seq, side)  # (B, T, d); (B, 2T, d) with behaviour tokens
        T = embedded.size(1)
        positions = torch.arange(T, device=item_seq.device)
        if self.input_scale != 1.0:
            embedded = embedded * self.input_scale
        x = self.embedding_dropout(embedded + self.position_embedding(positions))  # (B, T, d)
        # Once per batch, shared by every block: the (B, T, T) gathers are the costly part.
        buckets = None
        if self.num_time_buckets is not None:
            buckets = time_buckets(timestamps, self.num_time_buckets, query_times)  # (B, T, T)
        bias = self.rab(buckets, T) if self.rab is not None else None  # (B, T, T), (T, T) or None
        for block in self.blocks:
            x = block(x, bias, buckets)
        return self.final_norm(x) if self.final_norm is not None else x

    def query_times(self, interaction, timestamps: torch.Tensor) -> torch.Tensor:
        """(B, T) the time of the item predicted at each position (``time_query: target``).

        Training windows carry it (``target_timestamp_list``). Evaluation and task rows hold
        the inputs' times and the row's own ``timestamp`` (the held-out item's, i.e. the
        request's): the next input's time, and the row's time after the last input.
        """
        if self.TARGET_TIME_SEQ in interaction:
            return interaction[self.TARGET_TIME_SEQ]
        if self.TIME_FIELD not in interaction:
            raise ConfigError(
                f"time_query: target needs '{self.TARGET_TIME_SEQ}' (training windows) or the row's "
                f"'{self.TIME_FIELD}' (evaluation rows), and this batch has neither"
            )
        lengths = interaction[self.ITEM_SEQ_LEN]
        queries = torch.cat([timestamps[:, 1:], timestamps.new_zeros(timestamps.size(0), 1)], dim=1)
        last = (lengths - 1).clamp(min=0).unsqueeze(1)
        return queries.scatter(1, last, interaction[self.TIME_FIELD].to(queries.dtype).unsqueeze(1))

    def hidden_states(self, interaction) -> torch.Tensor:
        side = self.side_inputs(interaction)
        if self.rab_kind != "position_time":
            return self.item_positions(self(interaction[self.ITEM_SEQ], side=side))  # through __call__ for compile()
        timestamps = interaction[self.TIME_SEQ]
        queries = self.query_times(interaction, timestamps) if self.time_query == "target" else None
        hidden = self(interaction[self.ITEM_SEQ], self.expand_tokens(timestamps), self.expand_tokens(queries), side)
        return self.item_positions(hidden)  # (B, T, d)
