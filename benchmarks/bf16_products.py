"""The pieces behind bf16's speed on this CPU, fp32 and bf16 side by side: products, the loss, attention.

    python benchmarks/bf16_products.py [--positions=12800] [--items=3707]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bf16_products.py --products-only   # bf16 emulated

Prints, each the best of three after one untimed call, with the threads torch uses:

- a 2048^3 ``torch.mm`` in fp32 and in bf16 (GFLOP/s): the ceiling of a bf16 step's gain;
- the plugin's full-softmax loss (``softmax_ce``, forward and backward) over ``--positions``
  positions and ``--items`` items at d = 64, 128 and 256, in fp32 and under bf16 autocast (ms);
- ``scaled_dot_product_attention`` of a validation batch (512 users, 2 heads of 32, length
  200, causal) in fp32 and bf16 (ms).

``ONEDNN_MAX_CPU_ISA`` holds oneDNN (which runs the bf16 products) to an older instruction set:
``AVX512_CORE`` or ``AVX2`` show what bf16 costs on a CPU without bf16 units.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from timing import best_time, cpu_name, matmul_rate


def loss_ms(positions: int, items: int, d: int, bf16: bool) -> float:
    from recbole_lsrm.model.next_item import softmax_ce

    torch.manual_seed(0)
    hidden = torch.randn(positions, d, requires_grad=True)
    table = (0.1 * torch.randn(items, d)).requires_grad_()
    targets = torch.randint(1, items, (positions,))

    def step() -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            loss = softmax_ce(hidden, targets, table)
        loss.backward()

    return 1000 * best_time(step, 3)


def attention_ms(dtype: torch.dtype) -> float:
    q = torch.randn(512, 2, 200, 32, dtype=dtype)
    return 1000 * best_time(lambda: F.scaled_dot_product_attention(q, q, q, is_causal=True), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positions", type=int, default=12_800, help="trained positions of the loss (batch 256 x 50)")
    parser.add_argument("--items", type=int, default=3_707, help="items of the loss (ML-1M's 3,706 and padding)")
    parser.add_argument("--products-only", action="store_true", help="the 2048^3 products alone (emulated bf16 is slow)")
    args = parser.parse_args()
    print(f"{cpu_name()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")
    fp32, bf16 = matmul_rate(reps=3), matmul_rate(reps=3, dtype=torch.bfloat16)
    print(f"2048^3 product: fp32 {fp32 / 1e9:.1f} GFLOP/s, bf16 {bf16 / 1e9:.1f} GFLOP/s ({bf16 / fp32:.3f}x)")
    if args.products_only:
        return
    for d in (64, 128, 256):
        a, b = loss_ms(args.positions, args.items, d, False), loss_ms(args.positions, args.items, d, True)
        print(f"loss, {args.positions:,} positions x {args.items:,} items, d={d}: fp32 {a:.0f} ms, bf16 {b:.0f} ms "
              f"({a / b:.2f}x)")
    a, b = attention_ms(torch.float32), attention_ms(torch.bfloat16)
    print(f"attention, 512 users x 2 heads x length 200 x 32: fp32 {a:.1f} ms, bf16 {b:.1f} ms ({a / b:.2f}x)")


if __name__ == "__main__":
    main()
