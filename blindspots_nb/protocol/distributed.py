"""Sharding across processes with torch.distributed, as torchrun launches them.

Under ``torchrun`` (WORLD_SIZE > 1) each process is one shard of the sources: it takes
rank/world as its shard (an explicit ``--shard`` is refused there: every process would do
that one shard) and, with CUDA, the GPU of its local rank. The process group
(NCCL on GPUs, gloo on CPUs) only synchronises: the shards share work through files.
"""

from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def world_size() -> int:
    """How many processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


@contextlib.contextmanager
def launch(device=None):
    """Yield (rank, world_size, device); joins torchrun's process group when there is one."""
    world = world_size()
    if world <= 1:
        yield 0, 1, device
        return
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    if use_cuda:
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    elif device is None:
        device = "cpu"
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        yield rank, world, device
    finally:
        dist.destroy_process_group()


def barrier():
    """Wait for every process of the group (a no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
