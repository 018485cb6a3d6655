"""Which arithmetic a run computes in: bf16 where the device multiplies it fast, fp32 elsewhere.

``bf16: auto`` (the default) turns bf16 autocast on where the hardware has bf16 matrix units:

- a CUDA GPU that supports bf16 (Ampere and later);
- a CPU with AMX (``amx_bf16``: Intel Sapphire Rapids and later) or AVX-512 BF16
  (``avx512_bf16``: Intel Cooper Lake, AMD Zen 4 and later), read once from ``/proc/cpuinfo``.

Elsewhere it stays fp32. ``bf16: True`` asks for bf16 and is refused where the hardware lacks
it: without those units oneDNN emulates bf16 products, 2.3x slower than fp32 with plain AVX-512
and about 500x slower with AVX2 (``benchmarks/bf16_products.py``), so a bf16 run there would only be slow.
``bf16: False`` is fp32 everywhere.

Under bf16 the weights, their gradients and the optimizer's state stay fp32 (autocast casts a
weight once per step); the softmax, the losses and the metrics are computed in fp32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch

from recbole_lsrm.errors import ConfigError

# CPU flags (Linux /proc/cpuinfo names) whose units multiply bf16 matrices, best first.
CPU_BF16_FLAGS = {"amx_bf16": "AMX", "avx512_bf16": "AVX-512 BF16"}
BF16_SETTINGS = (True, False, "auto")


@lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's feature flags (empty where the file is absent: not Linux)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_bf16_unit(flags: frozenset[str] | None = None) -> str | None:
    """The CPU's bf16 matrix unit ("AMX (amx_bf16)"), or None where it has none."""
    flags = cpu_flags() if flags is None else flags
    if not torch.backends.mkldnn.is_available():  # the bf16 products go through oneDNN
        return None
    for flag, name in CPU_BF16_FLAGS.items():
        if flag in flags:
            return f"{name} ({flag})"
    return None


@dataclass(frozen=True)
class Precision:
    """The resolved ``bf16`` setting of one run on one device, with the reason for it."""

    bf16: bool
    device_type: str
    reason: str

    def autocast(self):
        """bf16 autocast on this device when bf16 is on; otherwise nothing."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=torch.bfloat16)

    def describe(self) -> str:
        return f"{'bf16' if self.bf16 else 'fp32'} ({self.reason})"

    def for_model(self, plugin_model: bool) -> "Precision":
        """What a model trains in: RecBole's own models stay fp32 on a CPU (their layers and
        losses are RecBole's, run as RecBole runs them); on a GPU they keep autocast."""
        if not self.bf16 or plugin_model or self.device_type != "cpu":
            return self
        return Precision(False, self.device_type, "RecBole's own models train in fp32 on a CPU")


def check_bf16_setting(value) -> None:
    if value not in BF16_SETTINGS or isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ConfigError(f"bf16 must be true, false or auto, got {value!r}")


def resolve(setting, device: torch.device | str, flags: frozenset[str] | None = None) -> Precision:
    """``bf16`` (True, False or "auto") on ``device`` -> :class:`Precision`; True where the
    hardware lacks bf16 units is refused by name."""
    check_bf16_setting(setting)
    device = torch.device(device)
    if setting is False:
        return Precision(False, device.type, "bf16: False")
    if device.type == "cuda":
        supported = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        unit, missing = "this GPU's bf16 tensor cores", "this GPU has no bf16 support (Ampere or later has it)"
    elif device.type == "cpu":
        unit = cpu_bf16_unit(flags)
        supported = unit is not None
        unit = f"this CPU's {unit}" if supported else None
        missing = ("this CPU has neither amx_bf16 nor avx512_bf16, so its bf16 products would be emulated "
                   "(2.3x to 500x slower than fp32)")
    else:
        supported, unit, missing = False, None, f"bf16 is not used on {device.type} devices"
    if supported:
        return Precision(True, device.type, f"bf16: {setting}, {unit} multiplies bf16 matrices")
    if setting == "auto":
        return Precision(False, device.type, f"bf16: auto, {missing}")
    raise ConfigError(f"bf16: True, but {missing}: use bf16: auto (fp32 here) or bf16: False")
