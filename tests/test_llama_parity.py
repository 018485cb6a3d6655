"""Llama is Llama: the same weights in HuggingFace ``transformers``' LlamaModel give the same numbers.

Pre-RMSNorm blocks, rotary positions (half-split pairs, base 10000), SwiGLU of width 8d/3
rounded to 8, a final RMSNorm, no biases. Compared on right-padded windows at the valid
positions: hidden states, the full-sort scores of the last item and the all-position CE.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import Items, build_model
from recbole_lsrm.model import Llama
from recbole_lsrm.model.llama import llama_ffn_dim, non_embedding_params

transformers = pytest.importorskip("transformers")

N_ITEMS, T, D, LAYERS, HEADS = 50, 12, 16, 3, 2


def make_llama(**overrides) -> Llama:
    config = {"MAX_ITEM_LIST_LENGTH": T, "n_layers": LAYERS, "d_model": D, "n_heads": HEADS, "layer_dropout": 0.0,
              "initializer_range": 0.3, "rab": "rope", "ffn_dim": None, "rms_norm_eps": 1e-6, **overrides}
    return build_model(Llama, config, Items(N_ITEMS))


def llama_with_our_weights(model: Llama) -> torch.nn.Module:
    config = transformers.LlamaConfig(
        vocab_size=N_ITEMS, hidden_size=D, intermediate_size=model.ffn_dim, num_hidden_layers=LAYERS,
        num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=T, rms_norm_eps=1e-6,
        rope_theta=10000.0, attention_bias=False, mlp_bias=False, hidden_act="silu",
        pad_token_id=None, bos_token_id=None, eos_token_id=None,
    )
    hf = transformers.LlamaModel(config).eval()
    ours = model.state_dict()
    theirs = {"embed_tokens.weight": ours["item_embedding.weight"], "norm.weight": ours["final_norm.weight"]}
    names = {"input_layernorm": "input_norm", "post_attention_layernorm": "post_attention_norm",
             **{f"self_attn.{p}": f"attn.{p}" for p in ("q_proj", "k_proj", "v_proj", "o_proj")},
             **{f"mlp.{p}": f"mlp.{p}" for p in ("gate_proj", "up_proj", "down_proj")}}
    for i in range(LAYERS):
        for theirs_name, own in names.items():
            theirs[f"layers.{i}.{theirs_name}.weight"] = ours[f"blocks.{i}.{own}.weight"]
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return hf


@pytest.fixture(scope="module")
def pair():
    model = make_llama().eval()
    with torch.no_grad():  # RMSNorm weights away from 1, so that each mapping is tested
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    hf = llama_with_our_weights(model)
    torch.manual_seed(5)
    lengths = torch.tensor([12, 7, 1, 10])
    valid = torch.arange(T)[None] < lengths[:, None]
    seq = torch.randint(1, N_ITEMS, (4, T)) * valid
    targets = torch.randint(1, N_ITEMS, (4, T)) * valid
    return model, hf, seq, targets, lengths, valid


def _theirs(hf, seq, valid):
    return hf(input_ids=seq, attention_mask=valid.long()).last_hidden_state


def test_hidden_states_equal_llamas_at_every_valid_position(pair):
    model, hf, seq, _, _, valid = pair
    with torch.no_grad():
        torch.testing.assert_close(model(seq)[valid], _theirs(hf, seq, valid)[valid], atol=1e-5, rtol=1e-5)


def test_full_sort_scores_equal_llamas_last_state_times_its_embedding(pair):
    model, hf, seq, _, lengths, valid = pair
    with torch.no_grad():
        ours = model.full_sort_predict({"item_id_list": seq, "item_length": lengths})
        theirs = _theirs(hf, seq, valid)[torch.arange(4), lengths - 1] @ hf.embed_tokens.weight.T
    torch.testing.assert_close(ours[:, 1:], theirs[:, 1:], atol=1e-5, rtol=1e-5)
    assert torch.isneginf(ours[:, 0]).all()


def test_all_position_cross_entropy_equals_llamas(pair):
    model, hf, seq, targets, lengths, valid = pair
    with torch.no_grad():
        ours = model.calculate_loss({"item_id_list": seq, "item_length": lengths, "target_item_id_list": targets})
        logits = _theirs(hf, seq, valid) @ hf.embed_tokens.weight.T
        logits[..., 0] = float("-inf")
        theirs = F.cross_entropy(logits[valid], targets[valid])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_rope_is_the_parity_and_learned_positions_are_absent(pair):
    """Without rotary positions the numbers differ: the comparison tests the rotation."""
    model, hf, seq, _, _, valid = pair
    plain = make_llama(rab="none").eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(seq)[valid], _theirs(hf, seq, valid)[valid], atol=1e-3)
    assert not hasattr(model, "position_embedding")


def test_n_counts_the_blocks_weight_matrices(pair):
    model = pair[0]
    assert llama_ffn_dim(64) == 168 and llama_ffn_dim(16) == 40
    counted = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and "embedding" not in n)
    assert model.non_embedding_params() == counted == non_embedding_params(LAYERS, D)
