"""LSRM is GPT-2: the same weights in HuggingFace ``transformers``' GPT2Model give the same numbers.

The LSRM paper built its model with that library's GPT-2 (learned positions, pre-LayerNorm
blocks, exact-erf GELU feed-forward of width 4d, a final LayerNorm). GPT-2 keeps its projections
as ``Conv1D`` with (in, out) weights, so each of LSRM's ``nn.Linear`` weights goes in transposed.
Compared on right-padded windows at the valid positions: hidden states, the full-sort scores of
the last item and the all-position cross-entropy (item 0 is padding in both).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import make_lsrm

transformers = pytest.importorskip("transformers")

N_ITEMS, T, D, LAYERS, HEADS = 50, 12, 16, 3, 2


def gpt2_with_lsrm_weights(model) -> torch.nn.Module:
    config = transformers.GPT2Config(
        vocab_size=N_ITEMS, n_positions=T, n_embd=D, n_layer=LAYERS, n_head=HEADS, n_inner=4 * D,
        activation_function="gelu",  # exact (erf) GELU, as torch.nn.GELU()
        layer_norm_epsilon=1e-5, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None,
    )
    gpt2 = transformers.GPT2Model(config).eval()
    ours = model.state_dict()
    theirs = {"wte.weight": ours["item_embedding.weight"], "wpe.weight": ours["position_embedding.weight"],
              "ln_f.weight": ours["final_norm.weight"], "ln_f.bias": ours["final_norm.bias"]}
    names = {"ln_1": "ln_attn", "attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj", "ln_2": "ln_ffn",
             "mlp.c_fc": "ffn.0", "mlp.c_proj": "ffn.2"}
    for i in range(LAYERS):
        for hf, own in names.items():
            weight = ours[f"blocks.{i}.{own}.weight"]
            theirs[f"h.{i}.{hf}.weight"] = weight if hf.startswith("ln") else weight.T.contiguous()
            theirs[f"h.{i}.{hf}.bias"] = ours[f"blocks.{i}.{own}.bias"]
    missing, unexpected = gpt2.load_state_dict(theirs, strict=False)
    assert not unexpected and all(".attn.bias" in k or "masked_bias" in k for k in missing), (missing, unexpected)
    return gpt2


@pytest.fixture(scope="module")
def pair():
    # Weights large enough that GELU's inputs are of order 1 (where exact and tanh GELU differ by
    # about 1e-3), and non-zero biases and LayerNorm affines, so that each mapping is tested.
    model = make_lsrm(N_ITEMS, n_layers=LAYERS, d_model=D, n_heads=HEADS, initializer_range=0.3).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    gpt2 = gpt2_with_lsrm_weights(model)
    torch.manual_seed(5)
    lengths = torch.tensor([12, 7, 1, 10])
    valid = torch.arange(T)[None] < lengths[:, None]
    seq = torch.randint(1, N_ITEMS, (4, T)) * valid
    targets = torch.randint(1, N_ITEMS, (4, T)) * valid
    return model, gpt2, seq, targets, lengths, valid


def test_hidden_states_equal_gpt2_at_every_valid_position(pair):
    model, gpt2, seq, _, _, valid = pair
    with torch.no_grad():
        ours = model(seq)
        theirs = gpt2(input_ids=seq, attention_mask=valid.long()).last_hidden_state
    torch.testing.assert_close(ours[valid], theirs[valid], atol=1e-5, rtol=1e-5)


def test_full_sort_scores_equal_gpt2s_last_state_times_its_embedding(pair):
    model, gpt2, seq, _, lengths, valid = pair
    with torch.no_grad():
        ours = model.full_sort_predict({"item_id_list": seq, "item_length": lengths})
        last = gpt2(input_ids=seq, attention_mask=valid.long()).last_hidden_state[torch.arange(4), lengths - 1]
        theirs = last @ gpt2.wte.weight.T
    torch.testing.assert_close(ours[:, 1:], theirs[:, 1:], atol=1e-5, rtol=1e-5)
    assert torch.isneginf(ours[:, 0]).all()


def test_all_position_cross_entropy_equals_gpt2s(pair):
    model, gpt2, seq, targets, lengths, valid = pair
    with torch.no_grad():
        ours = model.calculate_loss({"item_id_list": seq, "item_length": lengths, "target_item_id_list": targets})
        logits = gpt2(input_ids=seq, attention_mask=valid.long()).last_hidden_state @ gpt2.wte.weight.T
        logits[..., 0] = float("-inf")
        theirs = F.cross_entropy(logits[valid], targets[valid])
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
