"""Training throughput, MFU, memory and full-sort evaluation time of LSRM (or HSTU, Llama) per scale.

    python benchmarks/gpu_throughput.py --scales=l2,l12,l24,l48 [--compile] [--full-epoch=l24]

Data: ML-20M-shaped synthetic windows built in memory, no files: ML-20M's 138,493 users with
the long-tailed lengths of ``prepare``'s synthetic generator (20,000,263 interactions), its
26,744 items, cut into training windows of MAX_ITEM_LIST_LENGTH + 1 items exactly as
``WindowedSequentialDataset`` cuts them (about 19.7M trained positions per epoch). Item ids
are uniform: speed does not depend on which items they are.

Per scale it builds the plugin's model and ``LSRMTrainer`` from the scale preset (Table IV:
batch 256) and runs the trainer's own epoch loop (``_train_epoch``: bf16 autocast, batches
from ``WindowBatches``, gradient clipping, AdamW with the per-step schedule) on a slice of the
windows: a few warm-up steps, then ``--steps`` timed steps. It prints

- tokens/s: trained positions (non-padding targets) per second, and the step time;
- MFU: model FLOPs per second / the GPU's peak dense bf16 rate. Model FLOPs per position (the model's
  ``flops_per_position()``) are
  6 * (N + n_items * d) + 6 * n_layers * T * d: 6 per parameter for the forward and backward
  matrix products (N = 12 * n_layers * d^2 for LSRM, the blocks' matrices for HSTU and Llama; the output
  layer scores n_items items), plus causal attention (QK^T and AV, forward 2 * T/2 * d per
  layer and position, backward twice that). Not counted: the recomputation in the chunked CE,
  norms, activations, the optimizer;
- peak GPU memory (torch.cuda.max_memory_allocated) of training;
- epoch: the projected time of one epoch (all positions / tokens per second), and with
  ``--full-epoch`` the measured time of a whole epoch;
- eval: one full-sort evaluation of every user (the trainer's ranking in item chunks, top 50,
  with the held-out item's CE).

On a CPU it runs a small size (l2 and l4 only, batch 32, 3 timed steps, 1,024 users
evaluated) and says so; utilisation there is against a measured fp32 matrix-product rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import numpy as np
import torch

from recbole.data.interaction import Interaction

from recbole_lsrm.model import get_model_class
from recbole_lsrm.config import LSRMConfig, available_scales
from recbole_lsrm.data.fields import target_list_field
from recbole_lsrm.data.window_loader import WindowBatches
from recbole_lsrm.data.windowed_dataset import split_points, window_bounds
from recbole_lsrm.evaluation import register_metrics
from recbole_lsrm.logging_setup import init_logging
from recbole_lsrm.prepare.synthetic import scaled_profile, user_lengths
from recbole_lsrm.trainer import LSRMTrainer

# Peak dense bf16 tensor rates (TFLOPS) from the vendors' data sheets, by device name.
PEAK_BF16_TFLOPS = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM
    ("H200", 989.4),
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("L40S", 362.1),
    ("L4", 121.0),
    ("A10", 125.0),
]
CPU_SCALES = ("l2", "l4")


class SyntheticWindows:
    """What the model and WindowBatches read from a dataset: item count and the windows."""

    def __init__(self, inter_feat: Interaction, n_items: int) -> None:
        self.inter_feat = inter_feat
        self.n_items = n_items
        self.field2type = dict.fromkeys(inter_feat.columns)  # HSTU checks its timestamps are there

    def num(self, field: str) -> int:
        return self.n_items


def ml20m_shaped(config, seed: int = 2020) -> tuple[Interaction, Interaction, int]:
    """(training windows, one evaluation row per user, n_items incl. padding) of ML-20M's shape."""
    rng = np.random.default_rng(seed)
    profile = scaled_profile("ml-20m", 1.0)
    lengths = user_lengths(rng, profile)
    starts = np.cumsum(lengths) - lengths
    train_len, _, _ = split_points(lengths)
    L = config["MAX_ITEM_LIST_LENGTH"]
    start, end = window_bounds(starts, train_len, L, L)
    n_targets = end - start - 1
    n_items = profile.shape.items + 1
    items = torch.from_numpy(rng.integers(1, n_items, (len(start), L + 1)))
    valid = torch.arange(L)[None, :] < torch.from_numpy(n_targets)[:, None]
    gaps = torch.from_numpy(rng.exponential(3600.0, (len(start), L)).astype(np.float32))
    item_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
    time_field = config["TIME_FIELD"] + config["LIST_SUFFIX"]
    windows = Interaction({
        item_field: items[:, :L].masked_fill(~valid, 0),
        target_list_field(config): items[:, 1:].masked_fill(~valid, 0),
        time_field: (1e9 + gaps.cumsum(1)).masked_fill(~valid, 0),
        config["ITEM_LIST_LENGTH_FIELD"]: torch.from_numpy(n_targets),
    })
    # Evaluation: each user's last L items before the held-out one.
    users = len(lengths)
    eval_len = torch.from_numpy(np.minimum(lengths - 1, L))
    eval_items = torch.from_numpy(rng.integers(1, n_items, (users, L)))
    eval_valid = torch.arange(L)[None, :] < eval_len[:, None]
    eval_rows = Interaction({
        item_field: eval_items.masked_fill(~eval_valid, 0),
        time_field: (1e9 + torch.arange(L, dtype=torch.float32) * 3600).repeat(users, 1).masked_fill(~eval_valid, 0),
        config["ITEM_LIST_LENGTH_FIELD"]: eval_len,
        config["ITEM_ID_FIELD"]: torch.from_numpy(rng.integers(1, n_items, users)),
    })
    return windows, eval_rows, n_items


def peak_flops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    if override:
        return override * 1e12, f"{override:g} TFLOPS (given)"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, tflops in PEAK_BF16_TFLOPS:
            if key in name:
                return tflops * 1e12, f"{tflops:g} TFLOPS dense bf16 ({name})"
        return None, f"unknown for {name}: pass --peak-tflops"
    a = torch.randn(1024, 1024)
    a @ a
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ a
    rate = reps * 2 * 1024**3 / (time.perf_counter() - start)
    return rate, f"{rate / 1e9:.1f} GFLOPS measured fp32 matmul (CPU)"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_scale(args, scale: str, on_cpu: bool) -> dict:
    model_class = get_model_class(args.model)
    options = {"scale": scale, "MAX_ITEM_LIST_LENGTH": args.max_len, "compile": args.compile,
               "state": "WARNING", "show_progress": False, "checkpoint_dir": tempfile.mkdtemp()}
    if on_cpu:
        options["train_batch_size"] = 32
    if args.batch:
        options["train_batch_size"] = args.batch
    config = LSRMConfig(model_class, "ml-20m", None, options)
    device = config["device"]
    windows, eval_rows, n_items = ml20m_shaped(config)
    torch.manual_seed(0)
    model = model_class(config, SyntheticWindows(windows, n_items)).to(device)
    trainer = LSRMTrainer(config, model, config["checkpoint_dir"], run_info={})
    batch = config["train_batch_size"]
    steps = 3 if on_cpu else args.steps
    warmup = 1 if on_cpu else args.warmup

    def loader(first: int, n_batches: int) -> WindowBatches:
        part = windows[first * batch:(first + n_batches) * batch]
        return WindowBatches(config, SyntheticWindows(part, n_items), device)

    train = loader(0, warmup + steps)
    trainer.scheduler = trainer.build_scheduler(len(train))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer._train_epoch(loader(0, warmup), 0)  # warm-up (and compilation)
    sync(device)
    start = time.perf_counter()
    _, positions = trainer._train_epoch(loader(warmup, steps), 1)
    sync(device)
    elapsed = time.perf_counter() - start
    tokens_per_s = positions / elapsed
    all_positions = int((windows[target_list_field(config)] > 0).sum())
    result = {
        "scale": scale, "model": args.model, "n_layers": config["n_layers"], "d_model": config["d_model"],
        "batch": batch, "n_items": n_items - 1, "windows_on_device": train.on_device, "compile": args.compile,
        "tokens_per_s": tokens_per_s, "step_ms": 1000 * elapsed / steps,
        "flops_per_position": model.flops_per_position(),
        "epoch_positions": all_positions, "projected_epoch_s": all_positions / tokens_per_s,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    if scale in args.full_epoch and not on_cpu:
        everything = WindowBatches(config, SyntheticWindows(windows, n_items), device)
        sync(device)
        start = time.perf_counter()
        trainer._train_epoch(everything, 2)
        sync(device)
        result["epoch_s"] = time.perf_counter() - start
    # One full-sort evaluation of every user: the trainer's own batch evaluation.
    users = 1024 if on_cpu else len(eval_rows)
    eval_batch = config["eval_batch_size"]
    model.eval()
    sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, users, eval_batch):
            rows = eval_rows[lo:min(lo + eval_batch, users)]
            trainer.full_sort.ranked_batch((rows, None, torch.arange(len(rows)), rows[config["ITEM_ID_FIELD"]]))
    sync(device)
    result["eval_s"] = time.perf_counter() - start
    result["eval_users"] = users
    trainer.eval_collector.get_data_struct()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="l2,l12,l24,l48", help="comma-separated scale presets")
    parser.add_argument("--model", default="LSRM", choices=["LSRM", "HSTU", "Llama"])
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per scale (GPU)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (GPU)")
    parser.add_argument("--batch", type=int, default=None, help="global batch (default: the scale preset's)")
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--full-epoch", default="", help="scales to also time one whole epoch (GPU)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak bf16 TFLOPS")
    args = parser.parse_args()
    args.full_epoch = [s for s in args.full_epoch.split(",") if s]
    scales = [s for s in args.scales.split(",") if s]
    unknown = [s for s in scales if s not in available_scales()]
    if unknown:
        parser.error(f"unknown scale(s) {unknown}: choose from {available_scales()}")

    register_metrics()
    init_logging("WARNING")
    on_cpu = not torch.cuda.is_available()
    device = torch.device("cuda" if not on_cpu else "cpu")
    peak, peak_text = peak_flops(device, args.peak_tflops)
    if on_cpu:
        skipped = [s for s in scales if s not in CPU_SCALES]
        scales = [s for s in scales if s in CPU_SCALES] or ["l2"]
        print(f"CPU run (no GPU here): small size: batch 32, 3 timed steps, 1,024 users evaluated; "
              f"scales {scales}" + (f", skipped {skipped}" if skipped else "") + ". GPU figures need a GPU.")
    print(f"device: {torch.cuda.get_device_name() if not on_cpu else 'CPU'}; peak: {peak_text}; torch {torch.__version__}")
    print(f"{'scale':>5} {'layers':>6} {'d':>5} {'batch':>5} {'tokens/s':>11} {'step ms':>8} {'MFU':>6} "
          f"{'peak GiB':>8} {'epoch s':>8} {'eval s':>7}")
    rows = []
    for scale in scales:
        r = bench_scale(args, scale, on_cpu)
        r["mfu"] = r["tokens_per_s"] * r["flops_per_position"] / peak if peak else None
        rows.append(r)
        epoch = f"{r['epoch_s']:.1f}" if "epoch_s" in r else f"~{r['projected_epoch_s']:.0f}"
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        memory = f"{r['peak_memory_gib']:.1f}" if r["peak_memory_gib"] is not None else "n/a"
        print(f"{scale:>5} {r['n_layers']:>6} {r['d_model']:>5} {r['batch']:>5} {r['tokens_per_s']:>11,.0f} "
              f"{r['step_ms']:>8.1f} {mfu:>6} {memory:>8} "
              f"{epoch:>8} {r['eval_s']:>7.2f}", flush=True)
    print("epoch s: measured with --full-epoch, else ~ projected from tokens/s over "
          f"{rows[0]['epoch_positions']:,} positions; eval s: {rows[0]['eval_users']:,} users, top 50")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
