"""A run's scores as two tables of vectors, for any nearest-neighbour index to serve.

The plugin's models score item ``i`` for a user as ``state(user) . item_table[i]``; with cosine
scores and a temperature both sides are already normalised and scaled, so the exported vectors'
plain dot product is the model's score whatever its recipe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from recbole_lsrm.errors import ConfigError
from recbole_lsrm.io import atomic_write, replace_folder, write_text
from recbole_lsrm.model.contract import is_plugin_model
from recbole_lsrm.recommend.loading import TrainedRun
from recbole_lsrm.recommend.ranking import _interaction, user_behaviors, user_histories

README = """\
# {model} on {dataset}: vectors for serving

Exported from `{run_dir}` by `python -m recbole_lsrm.recommend {run_dir} --export {out}`.

| file | rows | content |
|---|---|---|
| `items.npy` | {n_items:,} x {dim} float32 | the item table (padding left out) |
| `items.parquet` | {n_items:,} | `item` (raw id) and `row` (its row in items.npy) |
| `users.npy` | {n_users:,} x {dim} float32 | each user's state after their whole history (the last {length} items) |
| `users.parquet` | {n_users:,} | `user` (raw id), `row` (its row in users.npy), `history` (items in it) |
| `scoring.json` | | how the scores are formed, as below |

**Score** of item i for user u: `users[u] . items[i]`, the plain dot product: the model's
similarity is `{similarity}` with temperature {temperature:g}{cosine}. The top-k items of a user are the k
largest scores. The run {masked} items already in the user's history when it was evaluated
(`eval_mask_history: {mask}`); filter them at serving time the same way if you compare with it.
A new interaction changes a user's state: re-run the model (`recommend(run, histories=...)`)
for users whose history grows.
"""


EXPORT_FILES = ("items.npy", "items.parquet", "users.npy", "users.parquet", "scoring.json", "README.md")
SCORE = "dot(users[u], items[i])"


def _save_npy(array: np.ndarray, path: Path) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, array)

    atomic_write(path, write)


def _save_parquet(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


@torch.no_grad()
def export_run(run: TrainedRun, out: str | Path, progress: Callable[[int, int], None] | None = None) -> dict[str, Path]:
    """Write items.npy/.parquet, users.npy/.parquet, scoring.json and README.md into ``out``."""
    model, config = run.model, run.config
    if not is_plugin_model(model):
        raise ConfigError(
            f"--export needs a model whose scores are a user state times an item table (the plugin's LSRM, "
            f"HSTU, FMLPRec); {config['model']} scores through RecBole's full_sort_predict"
        )
    out = Path(out)
    files: dict[str, Path] = {}

    def write(folder: Path) -> None:
        files.update(_write_export(run, folder, out, progress))

    replace_folder(out, write, is_export)
    return {name: out / path.name for name, path in files.items()}


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an earlier export of ours, and nothing else (it may be replaced whole)."""
    names = {p.name for p in folder.iterdir()}
    if not names <= set(EXPORT_FILES) or "scoring.json" not in names:
        return False
    try:
        scoring = json.loads((folder / "scoring.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(scoring, dict) and scoring.get("score") == SCORE


def _write_export(run: TrainedRun, out: Path, shown_as: Path, progress) -> dict[str, Path]:
    """The six files of an export, written into ``out`` (a fresh folder; the README names ``shown_as``)."""
    model, config = run.model, run.config
    items = model.item_table().float()[1:].cpu().numpy().astype(np.float32)
    item_ids = list(run.dataset.field2id_token[run.item_field][1:])
    users = [u for u in run.dataset.field2id_token[run.user_field][1:]]
    histories = user_histories(run, users)
    keep = [i for i, (history, _) in enumerate(histories) if len(history)]
    users, histories = [users[i] for i in keep], [histories[i] for i in keep]
    user_ids = [run.dataset.field2token_id[run.user_field][u] for u in users]
    behaviors = user_behaviors(run, users)
    states = []
    batch = int(config["eval_batch_size"])
    for start in range(0, len(histories), batch):
        interaction = _interaction(run, histories[start : start + batch], user_ids[start : start + batch],
                                   None if behaviors is None else behaviors[start : start + batch])
        states.append(model.full_sort_hidden(interaction).float().cpu().numpy())
        if progress is not None:
            progress(min(start + batch, len(histories)), len(histories))
    user_states = np.concatenate(states).astype(np.float32) if states else np.zeros((0, items.shape[1]), np.float32)
    paths = {name: out / name for name in EXPORT_FILES}
    _save_npy(items, paths["items.npy"])
    _save_parquet(pd.DataFrame({"item": item_ids, "row": np.arange(len(item_ids))}), paths["items.parquet"])
    _save_npy(user_states, paths["users.npy"])
    _save_parquet(pd.DataFrame({"user": users, "row": np.arange(len(users)),
                                "history": [len(h) for h, _ in histories]}), paths["users.parquet"])
    similarity = getattr(model, "similarity", "dot")
    temperature = float(getattr(model, "temperature", 1.0))
    mask = bool(config["eval_mask_history"])
    scoring = {"score": SCORE, "similarity": similarity, "temperature": temperature,
               "vectors_normalised": similarity == "cosine", "eval_mask_history": mask,
               "model": config["model"], "dataset": config["dataset"], "run_dir": str(run.run_dir)}
    write_text(json.dumps(scoring, indent=2) + "\n", paths["scoring.json"])
    write_text(README.format(
        model=config["model"], dataset=config["dataset"], run_dir=run.run_dir, out=shown_as, n_items=len(item_ids),
        n_users=len(users), dim=items.shape[1], length=config["MAX_ITEM_LIST_LENGTH"], similarity=similarity,
        temperature=temperature,
        cosine=(": both vectors are L2-normalised and the user's divided by the temperature, so the dot product "
                "is the cosine over the temperature") if similarity == "cosine" else
               (" (the user's vector is divided by it)" if temperature != 1.0 else ""),
        masked="masked" if mask else "did not mask", mask=mask,
    ), paths["README.md"])
    return paths
