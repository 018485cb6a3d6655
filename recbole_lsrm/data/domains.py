"""An item's domain, from the ``.item`` file (the Amazon mix) or from the ``.inter`` where each
interaction names its item's domain (the Amazon 2014 Beauty + Sports file)."""

from __future__ import annotations

import numpy as np

from recbole_lsrm.data.fields import DOMAIN_FIELD


def item_domains(dataset) -> np.ndarray | None:
    """(n_items,) domain id per item id (0 for padding), or None when the data names no domain."""
    feat = getattr(dataset, "item_feat", None)
    if feat is not None and DOMAIN_FIELD in feat.columns:
        return np.asarray(feat[DOMAIN_FIELD].numpy())
    inter = getattr(dataset, "raw_inter_feat", None)
    inter = inter if inter is not None else getattr(dataset, "inter_feat", None)
    if inter is None or DOMAIN_FIELD not in inter.columns:
        return None
    out = np.zeros(dataset.item_num, dtype=np.int64)
    out[inter[dataset.iid_field].numpy()] = inter[DOMAIN_FIELD].numpy()
    return out
