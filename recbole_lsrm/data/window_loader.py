"""Training batches of windows, cut by indexing tensors that can live on the GPU.

RecBole's TrainDataLoader builds every batch on the CPU through a torch DataLoader and copies
it to the device. Windows are small (ML-20M's are about 100 MB), so :class:`WindowBatches`
can keep them on the training device and build a batch with one gather per field: the data
path costs no host work and no host-to-device copy per step.

It is also what splits the data between data-parallel processes: every process draws the
same permutation of the windows (one seeded generator each, saved with checkpoints), cuts it
into global batches of ``train_batch_size`` windows, and takes its own contiguous part of
each batch. One process with batch B and K processes with B/K each see the same batches
(except that K processes drop a last global batch of fewer than K windows).
"""

from __future__ import annotations

from logging import getLogger

import torch

from recbole.data.interaction import Interaction

from recbole_lsrm.distributed import ProcessGroup
from recbole_lsrm.errors import ConfigError

# Automatic placement: on the GPU when the windows take at most this share of its free memory.
DEVICE_SHARE = 1 / 8


def tensors_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def place_on_device(setting, interaction: Interaction, device: torch.device) -> bool:
    """Resolve ``windows_on_device`` (True, False or ~ for automatic) for this device."""
    if device.type == "cpu":
        return False
    if setting is not None:
        return setting
    free, _ = torch.cuda.mem_get_info(device)
    return tensors_bytes(interaction.interaction.values()) <= DEVICE_SHARE * free


def _stored(tensor: torch.Tensor, compact: bool) -> torch.Tensor:
    """int64 values that fit in int32 as int32 when ``compact``; anything else unchanged."""
    if not compact or tensor.dtype != torch.int64 or tensor.numel() == 0:
        return tensor
    if tensor.min() >= torch.iinfo(torch.int32).min and tensor.max() <= torch.iinfo(torch.int32).max:
        return tensor.to(torch.int32)
    return tensor


class WindowBatches:
    """An epoch's shuffled batches of training windows, for this process's share of each.

    Offers what RecBole's trainer and collector use of a TrainDataLoader: ``len()``, iteration
    over Interactions, ``dataset`` and the shuffling ``generator``.
    """

    def __init__(self, config, dataset, device: torch.device, group: ProcessGroup | None = None) -> None:
        self.config = config
        self.dataset = self._dataset = dataset
        self.group = group or ProcessGroup()
        self.batch_size = config["train_batch_size"]
        if self.batch_size < self.group.world_size:
            raise ConfigError(
                f"train_batch_size={self.batch_size} is the global batch: it must be at least the "
                f"number of processes ({self.group.world_size})"
            )
        self.shuffle = bool(config["shuffle"])
        self.generator = torch.Generator()
        self.generator.manual_seed(config["seed"])
        windows = dataset.inter_feat
        self.on_device = place_on_device(config["windows_on_device"], windows, device)
        where = device if self.on_device else torch.device("cpu")
        # On the GPU, int64 ids are kept as int32 (half the memory) and widened per batch.
        self.fields = {name: _stored(tensor, self.on_device).to(where) for name, tensor in windows.interaction.items()}
        self.dtypes = {name: tensor.dtype for name, tensor in windows.interaction.items()}
        self.index_device = where
        self.n_windows = len(windows)
        if self.on_device:
            getLogger().info(f"training windows on {device}: {tensors_bytes(self.fields.values()) / 2**20:.1f} MiB")

    def __len__(self) -> int:
        batches = -(-self.n_windows // self.batch_size)
        if 0 < self.n_windows % self.batch_size < self.group.world_size:
            batches -= 1  # too few windows for every process: dropped
        return batches

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self.n_windows, generator=self.generator)
        else:
            order = torch.arange(self.n_windows)
        order = order.to(self.index_device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            index = order[start : start + self.batch_size]
            if self.group.enabled:
                index = index.tensor_split(self.group.world_size)[self.group.rank]
            yield Interaction({name: tensor[index].to(self.dtypes[name]) for name, tensor in self.fields.items()})
