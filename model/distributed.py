"""Data-parallel training with ``torch.distributed``: one process per device, started by ``torchrun``.

    torchrun --standalone --nproc_per_node=2 -m model.train --model gcnn_c8_pose --epochs 10

:func:`start` reads the rendezvous that ``torchrun`` puts in the environment
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``PORT``) and joins the
process group: ``gloo`` on CPU, ``nccl`` on GPU (one GPU per process,
``cuda:<LOCAL_RANK>``). Without those variables it is a plain single process
(``world_size`` 1) and nothing here talks to another process.

The contract with :func:`model.train.train`: ``--batch-size`` is the **global**
batch, split evenly over the processes; every process sees a disjoint shard of
each epoch's permutation (``DistributedSampler``, seeded by the training seed),
gradients are averaged over the processes after every backward pass, so a step
of ``N`` processes is a step on the same global batch as one process would take,
with the same learning rate (nothing is scaled with ``N``). What differs:
batch normalisation normalises each process's share of the batch with that
share's statistics (as ``DistributedDataParallel`` does by default; ``gloo`` has
no synchronised batch norm, and one behaviour on CPU and GPU keeps runs
comparable), and sums are taken in another order. The running statistics are
averaged over the processes at the end (:func:`average_norm_statistics`).
"""

from __future__ import annotations

import inspect
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

__all__ = ["Workers", "average_norm_statistics", "data_parallel", "start", "stop", "sum_over_workers"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workers:
    """Where this process stands among the training processes."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """The process that logs, evaluates and writes the checkpoint (rank 0)."""
        return self.rank == 0


def start(device: str) -> Workers:
    """Join the process group that ``torchrun`` set up, or stay a single process.

    ``device`` is the single-process device; under ``torchrun`` a CUDA device becomes
    ``cuda:<LOCAL_RANK>``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Workers(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    on_gpu = device.startswith("cuda")
    if on_gpu:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    workers = Workers(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)
    logger.info("process %d of %d on %s (%s)", workers.rank, workers.world_size, device, dist.get_backend())
    return workers


def stop(workers: Workers) -> None:
    """Leave the process group (a no-op for a single process)."""
    if workers.distributed and dist.is_initialized():
        dist.destroy_process_group()


def data_parallel(module: nn.Module, workers: Workers) -> nn.Module:
    """``module`` wrapped so that backward averages its gradients over the processes (as it is, for one).

    Each process keeps its own batch-norm buffers during training (no broadcast from rank 0 at every
    forward): :func:`average_norm_statistics` reconciles them at the end."""
    if not workers.distributed:
        return module
    # torch 2.14 renamed broadcast_buffers (still accepted, with a FutureWarning) to forward_sync_buffers
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        return DistributedDataParallel(module, forward_sync_buffers=False)
    return DistributedDataParallel(module, broadcast_buffers=False)


def sum_over_workers(values: list[float], workers: Workers) -> list[float]:
    """``values`` summed element-wise over the processes (as they are, for a single process)."""
    if not workers.distributed:
        return values
    total = torch.tensor(values, dtype=torch.float64, device=workers.device)
    dist.all_reduce(total)
    return total.tolist()


def average_norm_statistics(model: nn.Module, workers: Workers) -> None:
    """Average the batch norms' running mean and variance over the processes, in place.

    Each process tracked them on its own share of the batches, so they differ; the
    average is what every process keeps (and what rank 0 saves). For the means it is
    exactly the running mean of the global batches' means; for the variances it
    leaves out the spread between the processes' means, which is small.
    """
    if not workers.distributed:
        return
    for module in model.modules():
        if isinstance(module, _BatchNorm) and module.running_mean is not None and module.running_var is not None:
            for statistic in (module.running_mean, module.running_var):
                dist.all_reduce(statistic)
                statistic.div_(workers.world_size)
