"""Distributed data parallel training under ``torchrun`` (gloo on CPU, NCCL on GPU).

``torchrun --nproc-per-node N -m radiolens.cli.main train ...`` starts N processes; each
reads the data, trains on its share of every global batch (``--batch-size`` is the
global batch, split evenly) and PyTorch averages the gradients, so the run follows the
same loss curve as one process with the same global batch. On GPUs BatchNorm is
synchronised (SyncBatchNorm); on CPUs, where PyTorch cannot, each process normalises its
share of the batch, so the curves agree closely, not exactly. Only rank 0 writes the run
directory.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from radiolens.errors import ConfigError

__all__ = ["Distributed", "join_distributed", "leave_distributed"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """Where this process stands: rank ``rank`` of ``world`` (``active``: under torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    active: bool = False

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory (rank 0)."""
        return self.rank == 0

    def local_batch(self, global_batch: int) -> int:
        """This process's share of ``global_batch``.

        Raises:
            ConfigError: the global batch does not split evenly.
        """
        if global_batch % self.world:
            raise ConfigError(f"--batch-size {global_batch} does not split evenly over "
                              f"{self.world} processes; use a multiple of {self.world}")
        return global_batch // self.world

    def mean(self, total: float, count: int) -> float:
        """``sum(total) / sum(count)`` over all processes."""
        if not self.active:
            return total / max(count, 1)
        t = torch.tensor([total, float(count)], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t[0] / max(float(t[1]), 1.0))

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def join_distributed(device: torch.device) -> Distributed:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE`` is set)."""
    if "WORLD_SIZE" not in os.environ:
        return Distributed()
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if rank == 0:
        logger.info("distributed data parallel: %d processes (%s)", world, backend)
    return Distributed(rank, world, local, True)


def leave_distributed(d: Distributed) -> None:
    if d.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def wrap_model(model: torch.nn.Module, d: Distributed, device: torch.device) -> Any:
    """``model`` in DistributedDataParallel when distributed, else itself."""
    if not d.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type != "cuda":
        return DistributedDataParallel(model)
    # on GPUs, BatchNorm over the global batch as one process would compute it (PyTorch's
    # SyncBatchNorm needs CUDA; on CPUs each process normalises its share of the batch)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(synced, device_ids=[device.index])
