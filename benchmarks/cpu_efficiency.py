"""How much of a CPU's matrix-product rate LSRM training uses on ML-1M, in fp32 and bf16, and what a validation pass costs.

    python benchmarks/cpu_efficiency.py [--scales=l2,l4,l12] [--models=LSRM,Llama] [--precisions=fp32,bf16]
                                        [--steps=6] [--max-len=50] [--epoch-len=200] [--compile] [--profile]
                                        [--datasets=../shared/datasets]

Each scale and model runs once per precision (``--precisions``: fp32 is ``bf16: False``, bf16 is
``bf16: True``, which needs a CPU with AMX or AVX-512 BF16), one after the other in one run, and
the bf16 / fp32 ratios of the step, the epoch and the validation pass are printed at the end.

Reads ``ml-1m/ml-1m.inter.xz`` from the shared datasets folder (skips, saying so, when it is
absent; the file is never copied into the project) and builds the plugin's own data path,
model and ``LSRMTrainer`` for each scale preset (Table IV sizes, batch 256), so the shapes
are ML-1M's: 3,706 items, windows of ``--max-len`` items, padding dropped before the loss.

Per scale it runs ``--steps`` training steps of the trainer's own loop (AdamW, gradient
clipping, layer-wise dropout) after two untimed ones, and after each step times a 2048^3 fp32
and a 2048^3 bf16 ``torch.mm`` (best of two each): a virtual machine's rate moves from second
to second, so each step is set against the rates measured next to it. It prints the medians
over the steps of

- the step time and tokens/s (trained positions per second);
- model FLOP/s: tokens/s x (6 (N + n_items d) + 6 n_layers T d), the count of
  ``benchmarks/gpu_throughput.py``, and the fp32 and bf16 matrix-product rates;
- share: model FLOP/s over the fp32 rate, with its range over the steps, and over the bf16
  rate (the CPU's ceiling where it multiplies bf16 in hardware);
- own shapes: the rate of the step's own matrix products run alone, in the step's precision
  (its ceiling: with d = 64 they run far below the 2048^3 rate), and the step's model FLOP/s
  as a share of it;
- stolen: the share of the machine's CPU time its host gave to other machines meanwhile
  (``steal`` in /proc/stat); figures taken while it is high are noisy.

With ``--profile``, torch.profiler then follows three more steps per scale and splits their
time between the full-softmax loss and the rest (layers, embedding, optimizer), each with its
FLOPs as a share of the matmul rate measured right after.

Then, for the first scale at ``--epoch-len`` (default 200, the published protocol's length),
one whole training epoch and one validation pass (full ranking of all 6,040 users, as the
trainer's early stopping runs it), and their ratio, in each precision.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from ml1m_data import DEFAULT_DATASETS, ml1m_source, unpacked_ml1m
from timing import best_time, cpu_name, matmul_rate


def shape_rate(n_layers: int, d: int, positions: int, n_items: int, reps: int = 2,
               dtype: torch.dtype = torch.float32) -> float:
    """FLOP/s of the step's own matrix products alone in ``dtype`` (forward and both backward products).

    Per layer: the (P, d) x (d, 3d) attention projection, (d, d) output projection, and the
    (d, 4d), (4d, d) feed-forward; then the (P, d) x (d, n_items) scores of the loss. Matrix
    products with an inner size of 64 run far below a 2048^3 product on a CPU, so this is the
    ceiling for a model of these shapes.
    """
    shapes = [(positions, d, 3 * d), (positions, d, d), (positions, d, 4 * d), (positions, 4 * d, d)] * n_layers
    shapes.append((positions, d, n_items))
    tensors = [(torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype), torch.randn(m, n, dtype=dtype))
               for m, k, n in shapes]

    def products() -> None:
        for x, w, g in tensors:
            x @ w, g @ w.T, x.T @ g

    return sum(6 * m * k * n for m, k, n in shapes) / best_time(products, reps)


PRECISIONS = {"fp32": False, "bf16": True}  # --precisions name -> the bf16 option


def build(scale: str, max_len: int, data_path: Path, work: Path, compile_model: bool = False, model: str = "LSRM",
          precision: str = "fp32"):
    from recbole.utils import init_seed

    from recbole_lsrm.config import LSRMConfig
    from recbole_lsrm.data import create_dataset, prepare_dataloaders
    from recbole_lsrm.trainer import LSRMTrainer

    try:  # the model lookup moved to recbole_lsrm.model: the benchmark also measures older code
        from recbole_lsrm.model import get_model_class
    except ImportError:
        from recbole_lsrm.compat import get_model_class
    try:  # absent before the CPU speed-ups: the benchmark also measures older code (PYTHONPATH)
        from recbole_lsrm.cpu_allocator import keep_freed_memory
    except ImportError:
        keep_freed_memory = None
    model_class = get_model_class(model)
    if keep_freed_memory is not None:
        keep_freed_memory()  # as pipeline.run does on a CPU
    config = LSRMConfig(model_class, "ml-1m", None, {
        "scale": scale, "MAX_ITEM_LIST_LENGTH": max_len, "state": "WARNING", "show_progress": False,
        "data_path": str(data_path), "checkpoint_dir": str(work / "saved"),
        **({"compile": True} if compile_model else {}), "bf16": PRECISIONS[precision],
    })
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config, model_class)
    train, valid, _ = prepare_dataloaders(config, dataset, model_class)
    model = model_class(config, train.dataset).to(config["device"])
    trainer = LSRMTrainer(config, model, work / "run", run_info={})
    # Older code (measured through PYTHONPATH) named it _build_scheduler.
    build_scheduler = getattr(trainer, "build_scheduler", None) or trainer._build_scheduler
    trainer.scheduler = build_scheduler(len(train))
    return config, model_class, trainer, train, valid


def flops_per_position(model, config, n_items: int) -> float:
    """The model's training FLOPs per position: 6 (N + n_items d) + 6 n_layers T d (older code lacks the method)."""
    if hasattr(model, "flops_per_position"):
        return model.flops_per_position()
    L, d, T = config["n_layers"], config["d_model"], config["MAX_ITEM_LIST_LENGTH"]
    return 6.0 * (12 * L * d * d + n_items * d) + 6.0 * L * T * d


class FirstBatches:
    """The first ``n`` batches of a training loader, as an epoch of its own."""

    def __init__(self, loader, first: int, n: int) -> None:
        self.loader, self.first, self.n = loader, first, n

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i >= self.first + self.n:
                return
            if i >= self.first:
                yield batch

    def __len__(self) -> int:
        return self.n


def stolen_share(before: list[int], after: list[int]) -> float:
    """Share of this machine's CPU time that its host gave to others (/proc/stat steal)."""
    delta = [b - a for a, b in zip(before, after)]
    return delta[7] / max(sum(delta[:8]), 1)


def cpu_times() -> list[int]:
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return [0] * 8


def bench_steps(scale: str, args, data_path: Path, work: Path, model: str = "LSRM", precision: str = "fp32") -> dict:
    """Median over steps of (model FLOP/s in the step) / (matmul rates measured right after it)."""
    config, _, trainer, train, _ = build(scale, args.max_len, data_path, work, args.compile, model, precision)
    per_position = flops_per_position(trainer.model, config, train.dataset.item_num)
    trainer._train_epoch(FirstBatches(train, 0, 2), 0)  # warm-up
    steps, shares, rates, bf16_rates, positions_per_s = [], [], [], [], []
    times = cpu_times()
    for i in range(args.steps):
        start = time.perf_counter()
        _, positions = trainer._train_epoch(FirstBatches(train, 2 + i, 1), 1)
        elapsed = time.perf_counter() - start
        rate = matmul_rate(reps=2)
        bf16_rates.append(matmul_rate(reps=2, dtype=torch.bfloat16))
        steps.append(elapsed)
        rates.append(rate)
        positions_per_s.append(positions / elapsed)
        shares.append(positions / elapsed * per_position / rate)
    steal = stolen_share(times, cpu_times())
    tokens = statistics.median(positions_per_s)
    own_shapes = shape_rate(config["n_layers"], config["d_model"], int(statistics.median(positions_per_s) * statistics.median(steps)),
                            train.dataset.item_num, dtype=torch.bfloat16 if trainer.precision.bf16 else torch.float32)
    return {
        "model": model, "precision": precision, "runs_in": trainer.precision.describe(),
        "flops_per_position": per_position,
        "scale": scale, "n_layers": config["n_layers"], "d_model": config["d_model"], "max_len": args.max_len,
        "batch": config["train_batch_size"], "step_ms": 1000 * statistics.median(steps),
        "tokens_per_s": tokens, "model_gflops": tokens * per_position / 1e9,
        "matmul_gflops": statistics.median(rates) / 1e9, "share": statistics.median(shares),
        "bf16_matmul_gflops": statistics.median(bf16_rates) / 1e9,
        "share_of_bf16": tokens * per_position / statistics.median(bf16_rates),
        "share_range": [min(shares), max(shares)], "stolen": steal,
        "own_shapes_gflops": own_shapes / 1e9, "share_of_own_shapes": tokens * per_position / own_shapes,
    }


def profile_steps(scale: str, args, data_path: Path, work: Path, steps: int = 3, precision: str = "fp32") -> dict:
    """torch.profiler over training steps: the loss's time against the rest's, and their FLOP rates
    (against the product rate of the step's precision)."""
    from torch.profiler import ProfilerActivity, profile

    config, _, trainer, train, _ = build(scale, args.max_len, data_path, work, args.compile, precision=precision)
    trainer._train_epoch(FirstBatches(train, 0, 2), 0)  # warm-up
    positions = 0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(steps):
            positions += trainer._train_epoch(FirstBatches(train, 2 + i, 1), 1)[1]
    rate = matmul_rate(reps=2, dtype=torch.bfloat16 if precision == "bf16" else torch.float32)
    events = prof.key_averages()
    total_s = sum(e.self_cpu_time_total for e in events) / 1e6
    loss_s = sum(e.cpu_time_total for e in events if e.key == "_ChunkedSoftmaxCE") / 1e6
    loss_flops = 6 * train.dataset.item_num * config["d_model"] * positions
    all_flops = flops_per_position(trainer.model, config, train.dataset.item_num) * positions
    return {
        "scale": scale, "precision": precision, "steps": steps, "step_ms": 1000 * total_s / steps, "loss_ms": 1000 * loss_s / steps,
        "rest_ms": 1000 * (total_s - loss_s) / steps, "loss_flop_share": loss_flops / all_flops,
        "loss_share": loss_flops / loss_s / rate, "rest_share": (all_flops - loss_flops) / (total_s - loss_s) / rate,
    }


def bench_epoch_and_validation(scale: str, max_len: int, data_path: Path, work: Path, precision: str = "fp32") -> dict:
    config, _, trainer, train, valid = build(scale, max_len, data_path, work, precision=precision)
    trainer.eval_collector.data_collect(train)  # as fit() does: item counts for the metrics
    start = time.perf_counter()
    trainer._train_epoch(train, 0)
    epoch_s = time.perf_counter() - start
    start = time.perf_counter()
    trainer.evaluate(valid, load_best_model=False)
    valid_s = time.perf_counter() - start
    return {"scale": scale, "precision": precision, "max_len": max_len, "epoch_s": epoch_s, "validation_s": valid_s,
            "validation_per_epoch": valid_s / epoch_s, "users": len(valid.dataset)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding ml-1m/")
    parser.add_argument("--scales", default="l2,l4,l12")
    parser.add_argument("--models", default="LSRM", help="models to time at each scale, side by side (LSRM,Llama,HSTU)")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32 (bf16: False), bf16 (bf16: True), or both")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per scale")
    parser.add_argument("--max-len", type=int, default=50, help="window length of the timed steps")
    parser.add_argument("--epoch-len", type=int, default=200, help="window length of the epoch and validation timing (0: skip)")
    parser.add_argument("--compile", action="store_true", help="time the steps with compile: True (torch.compile)")
    parser.add_argument("--profile", action="store_true", help="also profile 3 steps per scale: the loss against the rest")
    args = parser.parse_args()
    precisions = [p for p in args.precisions.split(",") if p]
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown or not precisions:
        parser.error(f"--precisions takes fp32 and/or bf16, got {args.precisions!r}")
    source = ml1m_source(args.datasets)
    if source is None:
        return 0

    from recbole_lsrm.evaluation import register_metrics
    from recbole_lsrm.logging_setup import init_logging

    register_metrics()
    init_logging("WARNING")
    with unpacked_ml1m(source, "cpu-efficiency-") as (work, data_path):
        device = cpu_name() if not torch.cuda.is_available() else torch.cuda.get_device_name()
        models = [m for m in args.models.split(",") if m]
        print(f"ML-1M, {', '.join(models)}, device {device}, torch {torch.__version__}")
        print(f"{'model':>6} {'scale':>5} {'prec':>4} {'layers':>6} {'d':>4} {'T':>4} {'batch':>5} {'step ms':>8} "
              f"{'tokens/s':>9} {'model GFLOP/s':>13} {'fp32 mm':>8} {'share':>6} {'(range)':>11} {'bf16 mm':>8} "
              f"{'share':>6} {'stolen':>6} {'own shapes':>10} {'share':>6}")
        rows, profiled = [], []
        for scale, model, precision in [(s, m, p) for s in args.scales.split(",") if s for m in models for p in precisions]:
            r = bench_steps(scale, args, data_path, work / f"{model}-{scale}-{precision}", model, precision)
            rows.append(r)
            print(f"{r['model']:>6} {r['scale']:>5} {r['precision']:>4} {r['n_layers']:>6} {r['d_model']:>4} {r['max_len']:>4} "
                  f"{r['batch']:>5} {r['step_ms']:>8.0f} {r['tokens_per_s']:>9,.0f} {r['model_gflops']:>13.1f} "
                  f"{r['matmul_gflops']:>8.1f} {100 * r['share']:>5.1f}% "
                  f"{'({:.0f}-{:.0f}%)'.format(*(100 * x for x in r['share_range'])):>11} "
                  f"{r['bf16_matmul_gflops']:>8.1f} {100 * r['share_of_bf16']:>5.1f}% "
                  f"{100 * r['stolen']:>5.0f}% {r['own_shapes_gflops']:>10.1f} {100 * r['share_of_own_shapes']:>5.1f}%",
                  flush=True)
            if args.profile:
                profiled.append(profile_steps(scale, args, data_path, work / f"{scale}-{precision}-profile",
                                              precision=precision))
        if rows:
            print(f"(ran in: {'; '.join(sorted({r['runs_in'] for r in rows}))})")
        for r in rows:
            base = next(b for b in rows if b["scale"] == r["scale"] and b["model"] == models[0]
                        and b["precision"] == r["precision"])
            if r is not base:
                print(f"{r['model']} / {base['model']} at {r['scale']} ({r['precision']}): step time "
                      f"{r['step_ms'] / base['step_ms']:.2f}x, FLOPs per position "
                      f"{r['flops_per_position'] / base['flops_per_position']:.3f}x")
            fp32 = next((b for b in rows if b["scale"] == r["scale"] and b["model"] == r["model"]
                         and b["precision"] == "fp32"), None)
            if r["precision"] == "bf16" and fp32 is not None:
                print(f"bf16 against fp32, {r['model']} {r['scale']}: the step {fp32['step_ms'] / r['step_ms']:.2f}x faster")
        for p in profiled:
            print(f"{p['scale']} {p['precision']} profiled ({p['steps']} steps): {p['step_ms']:.0f} ms a step; the loss "
                  f"{p['loss_ms']:.0f} ms for {100 * p['loss_flop_share']:.0f}% of the FLOPs ({100 * p['loss_share']:.0f}% "
                  f"of the {p['precision']} matmul rate), the rest {p['rest_ms']:.0f} ms for "
                  f"{100 * (1 - p['loss_flop_share']):.0f}% ({100 * p['rest_share']:.0f}%)")
        record = {"device": device, "steps": rows, **({"profiles": profiled} if profiled else {})}
        if args.epoch_len:
            epochs = []
            for precision in precisions:
                e = bench_epoch_and_validation(rows[0]["scale"], args.epoch_len, data_path, work / f"epoch-{precision}",
                                               precision)
                epochs.append(e)
                print(f"\n{e['scale']} {precision} at length {e['max_len']}: one training epoch {e['epoch_s']:.1f} s, one "
                      f"validation pass ({e['users']:,} users, full ranking) {e['validation_s']:.1f} s = "
                      f"{e['validation_per_epoch']:.2f} of an epoch", flush=True)
            if len(epochs) == 2:
                print(f"bf16 against fp32 at length {args.epoch_len}: the epoch {epochs[0]['epoch_s'] / epochs[1]['epoch_s']:.2f}x "
                      f"faster, the validation pass {epochs[0]['validation_s'] / epochs[1]['validation_s']:.2f}x faster")
            record["epochs"] = epochs
        print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
