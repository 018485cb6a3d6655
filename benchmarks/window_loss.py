"""Cut-apart windows against overlapping windows that train each target once, on ML-1M.

    python benchmarks/window_loss.py [--settings=cut,new] [--n_layers=2 --d_model=64]
                                     [--max_len=50 --epochs=15] [--out=FILE.json]
    python benchmarks/window_loss.py --settings=new:12,cut:16    # about equal training time

With windows cut ``MAX_ITEM_LIST_LENGTH`` apart (``cut``: stride L, ``window_loss: all``) a
target sees on average half a window of history. ``new`` (stride L/2, ``window_loss: new``)
keeps every target once per epoch but trains it in the window where it has the most history
(at least L/2 items), at the price of more windows run through the model (on ML-1M at
length 50: 1.6x the windows, 1.34x the time per epoch).
``overlap`` (stride L/2, ``window_loss: all``) is the control: the same windows as ``new``
with every target trained twice per epoch.

Each setting trains the same LSRM (the plugin's recipe: AdamW then SGD, layer-wise dropout) on
ML-1M (read from ``../shared/datasets/ml-1m/``; skipped, saying so, when absent) for the same
number of epochs (or each its own: ``NAME:EPOCHS``, to compare at about equal training time),
one after the other in this process, and is tested on the same leave-one-out
test rows (full ranking of 3,706 items). Printed per setting: windows and positions per epoch,
seconds per epoch, test CE / HR@10 / NDCG@10 with 95% bootstrap intervals over the 6,040 test
users; then each setting against the first as a paired difference over the same users.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ml1m_data import DEFAULT_DATASETS, ml1m_source, unpacked_ml1m

SETTINGS = {  # name: (window_stride as a share of L, window_loss)
    "cut": (1.0, "all"),
    "new": (0.5, "new"),
    "overlap": (0.5, "all"),
}
METRICS = ("celoss", "hit@10", "ndcg@10")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m/")
    parser.add_argument("--settings", default="cut,new", help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--n_layers", type=int, default=2)
    parser.add_argument("--d_model", type=int, default=64)
    parser.add_argument("--n_heads", type=int, default=2)
    parser.add_argument("--max_len", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    epochs_of = {}
    for item in (s for s in args.settings.split(",") if s):
        name, _, epochs = item.partition(":")
        if epochs and not epochs.isdigit():
            parser.error(f"--settings: {item!r}: the epochs after ':' must be a whole number")
        epochs_of[name] = int(epochs) if epochs else args.epochs
    names = list(epochs_of)
    unknown = [s for s in names if s not in SETTINGS]
    if unknown or not names:
        parser.error(f"--settings: unknown {unknown or 'empty'}; choose from {', '.join(SETTINGS)}")
    source = ml1m_source(args.datasets)
    if source is None:
        return 0

    import torch

    from recbole_lsrm.evaluation.intervals import load_per_user, paired_difference
    from recbole_lsrm.io import make_dir, write_json
    from recbole_lsrm.pipeline import run

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    rows, per_user = [], {}
    with unpacked_ml1m(source, "window-loss-") as (work, data_path):
        for name in names:
            share, loss = SETTINGS[name]
            stride = max(1, round(share * args.max_len))
            options = {
                "n_layers": args.n_layers, "d_model": args.d_model, "n_heads": args.n_heads,
                "MAX_ITEM_LIST_LENGTH": args.max_len, "window_stride": stride, "window_loss": loss,
                "epochs": epochs_of[name], "show_progress": False, "state": "WARNING",
                "data_path": str(data_path), "checkpoint_dir": str(work / "saved" / name),
            }
            print(f"{name}: window_stride {stride}, window_loss {loss}, {epochs_of[name]} epochs ...", flush=True)
            started = time.perf_counter()
            summary = run("LSRM", "ml-1m", options=options)
            wall = time.perf_counter() - started
            epoch_s = [r["train_time_s"] for r in summary["history"]]
            test, ci = summary["test"], summary.get("test_intervals") or {}
            per_user[name] = load_per_user(Path(summary["run_dir"]))
            rows.append({
                "setting": name, "window_stride": stride, "window_loss": loss,
                "windows": summary["train_rows"],
                "positions_per_epoch": summary["train_positions"] / max(1, summary["epochs_run"]),
                "epochs": epochs_of[name], "epoch_s": sum(epoch_s) / len(epoch_s), "train_s": sum(epoch_s), "wall_s": wall,
                "epochs_run": summary["epochs_run"], "best_epoch": summary["best_epoch"],
                "switch_epoch": summary.get("switch_epoch"),
                "test": {m: test[m] for m in METRICS}, "test_intervals": {m: ci[m] for m in METRICS if m in ci},
            })
            print(f"  done in {wall / 60:.1f} min: test CE {test['celoss']:.4f}, NDCG@10 {test['ndcg@10']:.4f}", flush=True)

    epochs_text = ", ".join(f"{n} {e}" for n, e in epochs_of.items()) if len(set(epochs_of.values())) > 1 else str(args.epochs)
    print(f"\nML-1M, LSRM {args.n_layers}x{args.d_model}, max length {args.max_len}, epochs {epochs_text}; "
          f"device {device}; leave-one-out test, full ranking, [95% bootstrap over test users]")
    print(f"{'setting':8} {'stride':>6} {'loss':>4} {'windows':>8} {'positions':>10} {'epochs':>6} {'s/epoch':>8} {'train s':>8} "
          + " ".join(f"{m:>22}" for m in ("test CE", "HR@10", "NDCG@10")))
    for r in rows:
        cells = [f"{r['test'][m]:.4f} [{r['test_intervals'][m][0]:.4f},{r['test_intervals'][m][1]:.4f}]"
                 if m in r["test_intervals"] else f"{r['test'][m]:.4f}" for m in METRICS]
        print(f"{r['setting']:8} {r['window_stride']:>6} {r['window_loss']:>4} {r['windows']:>8,} "
              f"{r['positions_per_epoch']:>10,.0f} {r['epochs']:>6} {r['epoch_s']:>8.1f} {r['train_s']:>8.0f} "
              + " ".join(f"{c:>22}" for c in cells))
    base = names[0]
    comparisons = {}
    for name in names[1:]:
        if per_user.get(base) is None or per_user.get(name) is None:
            continue
        diffs = {m: paired_difference(per_user[base], per_user[name], m) for m in METRICS if m in per_user[base]}
        comparisons[f"{name} - {base}"] = diffs
        cost = next(r for r in rows if r["setting"] == name)["epoch_s"] / rows[0]["epoch_s"]
        print(f"{name} - {base}: " + ", ".join(
            f"{m} {d['mean']:+.4f} [{d['lo']:+.4f},{d['hi']:+.4f}]" for m, d in diffs.items())
            + f"; epoch time x{cost:.2f}, training time x{next(r for r in rows if r['setting'] == name)['train_s'] / rows[0]['train_s']:.2f}")
    if args.out:
        make_dir(args.out.parent)
        write_json({"device": device, "n_layers": args.n_layers, "d_model": args.d_model, "max_len": args.max_len,
                    "epochs": epochs_of if len(set(epochs_of.values())) > 1 else args.epochs, "settings": rows, "paired_differences": comparisons}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
