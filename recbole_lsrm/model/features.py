"""Side information as part of a token (HSTU scaling study, part 3): the mean of a row's
feature embeddings, for every item (added to its id embedding, so the scores stay tied to one
item table) or for the user of a sequence (added to every input position).

Each field is embedded once per row of its atomic file and looked up from buffers made when the
model is built, never from the dataset's Python objects during training:

- ``token``: one embedding per value;
- ``token_seq``: the mean of its values' embeddings (a movie's genres);
- ``float``: a learned vector scaled by the standardised value.

Rows without the field (an item missing from ``.item``) hold padding, whose embedding is zero.
"""

from __future__ import annotations

from logging import getLogger
from typing import Sequence

import torch
from recbole.utils import FeatureType
from torch import nn

from recbole_lsrm.errors import ConfigError


class FeatureFusion(nn.Module):
    """(rows, d) the mean over ``fields`` of each row's embedded feature."""

    def __init__(self, feat, fields: Sequence[str], field2type: dict, num, d_model: int, where: str) -> None:
        super().__init__()
        self.fields = list(fields)
        self.kinds: dict[str, str] = {}
        self.embeddings = nn.ModuleDict()
        for field in self.fields:
            if feat is None or field not in feat.columns:
                loaded = ", ".join(c for c in (feat.columns if feat is not None else [])) or "no file loaded"
                raise ConfigError(f"{where}: no column {field!r} (loaded: {loaded})")
            kind = field2type[field]
            values = feat[field]
            if kind in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
                self.register_buffer(f"ids_{field}", values.long(), persistent=False)
                self.embeddings[field] = nn.Embedding(num(field), d_model, padding_idx=0)
                self.kinds[field] = "token" if kind == FeatureType.TOKEN else "token_seq"
            elif kind == FeatureType.FLOAT:
                x = values.double()
                bad = (~torch.isfinite(x)).nonzero().flatten()
                if len(bad):
                    raise ConfigError(
                        f"{where}: float feature {field!r} holds {len(bad):,} value(s) that are not finite numbers "
                        f"(NaN or inf; first at row {int(bad[0])}): fix those values, or leave {field} out of the features")
                x = ((x - x.mean()) / x.std().clamp(min=1e-12)).float()
                self.register_buffer(f"values_{field}", x, persistent=False)
                self.embeddings[field] = nn.Linear(1, d_model, bias=False)
                self.kinds[field] = "float"
            else:
                raise ConfigError(f"{where}: column {field!r} is {kind.value}; features are token, token_seq or float")

    def rows(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """(len(index), d) fused features of the given rows (every row where ``index`` is None)."""
        vectors = []
        for field in self.fields:
            kind, embedding = self.kinds[field], self.embeddings[field]
            if kind == "float":
                values = getattr(self, f"values_{field}")
                values = values if index is None else values[index]
                vectors.append(embedding(values.unsqueeze(-1)))
                continue
            ids = getattr(self, f"ids_{field}")
            ids = ids if index is None else ids[index]
            if kind == "token":
                vectors.append(embedding(ids))
            else:  # the mean of the values present (0 is padding)
                present = (ids > 0).unsqueeze(-1).float()
                vectors.append((embedding(ids) * present).sum(-2) / present.sum(-2).clamp(min=1.0))
        return torch.stack(vectors).mean(0)


def feature_fusion(config, dataset, kind: str, d_model: int) -> FeatureFusion | None:
    """The item (``kind="item"``) or user fusion a config asks for, or None."""
    fields = list(config[f"{kind}_features"] or []) if f"{kind}_features" in config else []
    fusion = config["feature_fusion"] if "feature_fusion" in config else "none"
    if not fields or (fusion or "none") == "none":
        return None
    feat = getattr(dataset, f"{kind}_feat", None)
    where = f"{kind}_features: {config['dataset']}.{kind}"
    module = FeatureFusion(feat, fields, dataset.field2type, dataset.num, d_model, where)
    rows = len(feat) - 1  # row 0 is padding
    token_fields = [f for f in fields if module.kinds[f] != "float"]
    if rows and token_fields:
        missing = torch.ones(rows, dtype=torch.bool)
        for field in token_fields:
            missing &= (getattr(module, f"ids_{field}")[1:].reshape(rows, -1) == 0).all(1)
        if missing.any():
            getLogger().warning(f"{where}: {int(missing.sum()):,} of {rows:,} {kind}s have no row there (or only "
                                f"empty values): their features are padding")
    return module
