"""Time of the full-softmax training loss (forward and backward) against PyTorch's plain cross-entropy.

    python benchmarks/loss_speed.py [--positions=4000] [--d=64] [--items=3706,100000]
                                    [--chunks=0,1000] [--reps=3]

For each catalogue size and chunk size (0: the default chunk, ``loss_chunk`` in model/next_item.py), the
plugin's ``softmax_ce`` (model/next_item.py) and ``F.cross_entropy`` over the whole
(positions, items) score matrix run side by side on random fp32 inputs: the best of
``--reps`` forward + backward times, their ratio, the plugin loss's FLOP rate (its three
products, 6 x positions x items x d) as a share of a 2048^3 fp32 ``torch.mm`` timed in the
same run, the memory the plain loss needs for its scores and their gradient, and the
largest gradient difference; then, per catalogue size, the rate of each of the three
products of one default chunk run alone (the ceiling of the loss's products). To compare two versions of the plugin, run this
file with ``PYTHONPATH`` set to each checkout.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from timing import best_time, matmul_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=4000, help="trained positions in the batch")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--items", default="3706,100000", help="catalogue sizes (ML-1M; a large catalogue)")
    parser.add_argument("--chunks", default="0,1000", help="positions per chunk of the loss (0: its default)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()

    import recbole_lsrm
    from recbole_lsrm.cpu_allocator import keep_freed_memory
    from recbole_lsrm.model.next_item import loss_chunk, softmax_ce, tied_item_logits

    keep_freed_memory()  # as pipeline.run does on a CPU
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"plugin at {recbole_lsrm.__file__}; {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    rate = matmul_rate(device=device)
    print(f"2048^3 fp32 matmul: {rate / 1e9:.1f} GFLOP/s")
    print(f"{'items':>8} {'chunk':>6} {'plugin ms':>10} {'plain ms':>9} {'plugin/plain':>12} {'GFLOP/s':>8} {'of mm':>6} "
          f"{'plain scores MB':>15} {'max grad diff':>13}")
    g = torch.Generator().manual_seed(0)
    for n in (int(x) for x in args.items.split(",")):
        hidden = torch.randn(args.positions, args.d, generator=g).to(device).requires_grad_()
        weight = (0.1 * torch.randn(n, args.d, generator=g)).to(device).requires_grad_()
        targets = torch.randint(1, n, (args.positions,), generator=g).to(device)

        def run(loss_fn):
            hidden.grad = weight.grad = None
            loss_fn().backward()
            return hidden.grad.clone(), weight.grad.clone()

        def plain():
            return F.cross_entropy(tied_item_logits(hidden, weight), targets, ignore_index=0)

        plain_s = best_time(lambda: run(plain), args.reps)
        reference = run(plain)
        for chunk in (int(x) for x in args.chunks.split(",")):
            def chunked():
                return softmax_ce(hidden, targets, weight, chunk or None)

            plugin_s = best_time(lambda: run(chunked), args.reps)
            grads = run(chunked)
            diff = max((a - b).abs().max().item() for a, b in zip(grads, reference))
            flops = 6 * args.positions * n * args.d / plugin_s
            print(f"{n:>8,} {chunk or 'auto':>6} {1000 * plugin_s:>10.0f} {1000 * plain_s:>9.0f} "
                  f"{plugin_s / plain_s:>12.2f} {flops / 1e9:>8.1f} {100 * flops / rate:>5.0f}% "
                  f"{8 * args.positions * n / 2**20:>15,.0f} {diff:>13.1e}", flush=True)
        rows = min(args.positions, loss_chunk(n, None, hidden.device))
        products = products_alone(hidden.detach()[:rows], weight.detach(), args.reps)
        print(f"{n:>8,} {rows:>6} the three products of one default chunk alone (scores, d hidden, d items): "
              + ", ".join(f"{100 * r / rate:.0f}%" for r in products) + " of the 2048^3 rate", flush=True)
    return 0


def products_alone(hidden: torch.Tensor, weight: torch.Tensor, reps: int) -> list[float]:
    """FLOP/s of each of a chunk's three products run alone: the ceiling of the loss's products."""
    rows, d = hidden.shape
    grad = torch.softmax(hidden @ weight.T, dim=1)
    products = (lambda: hidden @ weight.T, lambda: grad @ weight, lambda: grad.T @ hidden)
    return [2 * rows * weight.size(0) * d / best_time(product, reps) for product in products]


if __name__ == "__main__":
    sys.exit(main())
