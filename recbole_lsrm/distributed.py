"""Data-parallel training under torchrun: which process this is, and the few collectives used.

``torchrun --nproc_per_node=K run_recbole_lsrm.py ...`` starts K copies of the command and sets
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (and ``MASTER_ADDR``/``MASTER_PORT``) in each; with
several nodes, torchrun's ``--nnodes``, ``--node_rank`` and ``--rdzv_*`` flags do the same.
Every process loads the data and builds the model; then

- the model is wrapped in DistributedDataParallel: gradients are averaged across processes;
- each global batch of ``train_batch_size`` windows is split between the processes;
- evaluation splits each batch of users likewise and gathers what the metrics need, so every
  process computes the same metrics (and takes the same early-stopping decisions);
- process 0 alone logs, writes checkpoints and the summary; weights it loads from disk
  (the best model) are broadcast to the others.

The backend is NCCL on GPUs (one GPU per process, ``cuda:LOCAL_RANK``) and gloo on CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from recbole_lsrm.errors import ConfigError

_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the data-parallel processes (one process: rank 0 of 1)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun: joins a process group even when alone

    @property
    def enabled(self) -> bool:
        # torchrun with one process still runs the data-parallel path (NCCL or gloo, DDP), so
        # that path can be checked on a machine with one GPU.
        return self.world_size > 1 or self.launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env(environ: dict | None = None) -> ProcessGroup:
    """The process group torchrun describes in the environment; one process without it."""
    env = os.environ if environ is None else environ
    present = [key for key in _ENV if key in env]
    if not present:
        return ProcessGroup()
    if len(present) != len(_ENV):
        missing = sorted(set(_ENV) - set(present))
        raise ConfigError(f"incomplete distributed environment: {', '.join(missing)} not set (start with torchrun)")
    try:
        group = ProcessGroup(int(env["RANK"]), int(env["LOCAL_RANK"]), int(env["WORLD_SIZE"]), launched=True)
    except ValueError as err:
        raise ConfigError(f"RANK, LOCAL_RANK and WORLD_SIZE must be integers: {err}") from err
    if not 0 <= group.rank < group.world_size or group.local_rank < 0:
        raise ConfigError(f"RANK={group.rank} is not within WORLD_SIZE={group.world_size}")
    return group


def device_for(group: ProcessGroup, use_gpu: bool) -> torch.device:
    """cuda:LOCAL_RANK when GPUs are used, else the CPU."""
    if not (use_gpu and torch.cuda.is_available()):
        return torch.device("cpu")
    if group.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"LOCAL_RANK={group.local_rank} but this node has {torch.cuda.device_count()} GPUs: "
            "start at most one process per GPU (torchrun --nproc_per_node)"
        )
    return torch.device("cuda", group.local_rank)


def init(group: ProcessGroup, device: torch.device) -> None:
    """Join the process group (NCCL for GPUs, gloo for CPUs); nothing to do for one process."""
    if not group.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, rank=group.rank, world_size=group.world_size, timeout=timedelta(minutes=60),
        device_id=device if device.type == "cuda" else None,
    )


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast_text(text: str | None) -> str:
    """Process 0's string on every process (a run folder's name)."""
    if not active():
        return text
    box = [text]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy process 0's parameters and buffers to every process."""
    if not active():
        return
    for tensor in module.state_dict().values():
        dist.broadcast(tensor, src=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum over processes (in place; returned for chaining)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_rows(parts: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate each process's tensors (row counts may differ) on every process.

    ``parts`` are CPU tensors (the evaluation collector's); process order is kept.
    """
    if not active():
        return parts
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, parts)  # objects between this run's own processes
    keys = set().union(*(g.keys() for g in gathered))
    return {key: torch.cat([g[key] for g in gathered if key in g]) for key in keys}
