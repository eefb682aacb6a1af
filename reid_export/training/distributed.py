"""Multi-GPU and multi-node training with `torchrun` and DistributedDataParallel (DDP).

    torchrun --nproc_per_node=4 -m reid_export.cli train --data data/market --out runs/ddp.pt

Every process runs the same `train(...)`; this module holds the few pieces that differ:

    with process_group(device.type) as env:          # reads RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*
        device = env.device(device)                   # cuda:LOCAL_RANK under torchrun on GPUs
        model = wrap_model(model.to(device), env)     # DDP; the plain model when single-process
        sampler = DistributedBatchSampler(PKSampler(...), env.rank, env.world_size)
        ...
        stats = all_reduce_mean({"loss": loss, "id_acc": acc}, env)   # for logging only
        if env.is_main:                               # rank 0 alone writes checkpoints and prints
            save_checkpoint(out, unwrap(model), ...)

Without torchrun (no WORLD_SIZE, or WORLD_SIZE=1) every function here is a no-op and
torch.distributed is never touched, so single-process training runs exactly as before.

Batches. Every rank builds the same batch sampler with the same seed, so every rank sees the same
sequence of *global* batches; `DistributedBatchSampler` hands rank r the r-th of `world_size`
contiguous, equal slices of each. A P x K batch lists its identities as runs of K images, so with P
divisible by the world size each rank gets P / world_size whole identities of K images: P x K
semantics hold per rank, the global batch (and so the learning rate and the number of steps per
epoch) is the single-process one, and DDP's gradient average is the mean over the global batch.
The batch-hard triplet loss mines within each rank's slice, and BatchNorm normalises over it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import DataError, ReidExportError, RuntimeUnavailable

__all__ = ["DistEnv", "init_distributed", "process_group", "DistributedBatchSampler", "wrap_model", "unwrap",
           "barrier", "all_reduce_mean", "cleanup"]


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0  # global rank of this process, 0..world_size-1
    local_rank: int = 0  # rank on this node; the CUDA device index on GPUs
    world_size: int = 1  # processes in the job; 1 = plain single-process training
    is_main: bool = True  # rank 0: the one process that writes checkpoints and prints
    backend: str | None = None  # "nccl" or "gloo" once the process group is up; None single-process

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, device: torch.device | str) -> torch.device:
        """`device` made specific to this process: cuda:LOCAL_RANK for a distributed CUDA run."""
        device = torch.device(device)
        if self.distributed and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device


def init_distributed(device_type: str) -> DistEnv:
    """Join the torchrun job described by the environment, or return a single-process `DistEnv`.

    With WORLD_SIZE absent or 1 nothing is initialised. Otherwise the process group starts with
    the nccl backend on "cuda" (after selecting GPU LOCAL_RANK) and gloo on "cpu"."""
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistEnv()
    rank, local_rank = _env_int("RANK", None), _env_int("LOCAL_RANK", 0)
    if rank is None or not 0 <= rank < world_size:
        raise ReidExportError(f"distributed training: WORLD_SIZE={world_size} but RANK={os.environ.get('RANK')!r}; "
                              f"expected RANK in 0..{world_size - 1}. Launch with torchrun, which sets both")
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ReidExportError(f"distributed training: WORLD_SIZE={world_size} but {' and '.join(missing)} "
                              "not set; launch with torchrun (it sets them) or export them yourself")
    backend = _backend(device_type, local_rank)
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world_size, is_main=rank == 0, backend=backend)


@contextlib.contextmanager
def process_group(device_type: str) -> Iterator[DistEnv]:
    """`init_distributed` for the duration of a `with` block. A block that ends normally waits
    for every rank (rank 0 may still be evaluating) before the group is torn down; one that
    raises tears down at once, so a failing rank never waits on the others."""
    env = init_distributed(device_type)
    try:
        yield env
        barrier(env)
    finally:
        cleanup(env)


class DistributedBatchSampler:
    """This rank's slice of every batch of `batch_sampler`; see the module docstring.

    Each global batch is cut into `world_size` contiguous slices of len(batch) // world_size
    (a remainder, only possible in a split smaller than one batch, is dropped on every rank), so
    all ranks take the same number of steps, len(batch_sampler). The slices are disjoint and,
    for a `PKSampler` with p divisible by world_size, hold whole identities. The batches depend
    only on the wrapped sampler's (seed, epoch); `set_epoch` is forwarded to it."""

    def __init__(self, batch_sampler, rank: int, world_size: int):
        if world_size < 1 or not 0 <= rank < world_size:
            raise DataError(f"DistributedBatchSampler needs 0 <= rank < world_size, found rank {rank} and "
                            f"world_size {world_size}")
        p, k = getattr(batch_sampler, "p", None), getattr(batch_sampler, "k", None)
        if p is not None and k is not None and p % world_size:
            raise DataError(f"P x K batches with p = {p} identities cannot be split into {world_size} ranks of "
                            f"whole identities; choose p divisible by {world_size} (e.g. p = "
                            f"{max(world_size, p // world_size * world_size)}, batch_size = p * k)")
        size = getattr(batch_sampler, "batch_size", None)
        if p is None and size is not None and size % world_size:
            raise DataError(f"batch_size {size} cannot be split evenly over {world_size} ranks; choose a multiple "
                            f"of {world_size} (the batch size is the global one, summed over all ranks)")
        self.batch_sampler, self.rank, self.world_size = batch_sampler, rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.batch_sampler.epoch

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list]:
        for batch in self.batch_sampler:
            share = len(batch) // self.world_size
            if share == 0:
                raise DataError(f"a batch of {len(batch)} images cannot give each of {self.world_size} ranks an "
                                "image; use a larger training split or fewer processes")
            yield list(batch[self.rank * share:(self.rank + 1) * share])


def wrap_model(model: nn.Module, env: DistEnv) -> nn.Module:
    """`model` in DistributedDataParallel for a distributed run (on GPU LOCAL_RANK for CUDA
    models), else `model` itself. Move the model to its device and load any checkpoint first:
    DDP copies rank 0's parameters and buffers to every rank here."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not env.distributed or not trainable:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device = trainable[0].device
    device_ids = [device.index if device.index is not None else env.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DDP wrapper (for `embed`, `config`, `state_dict` without `module.`)."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def barrier(env: DistEnv) -> None:
    """Wait until every rank gets here; a no-op single-process."""
    if not env.distributed:
        return
    import torch.distributed as dist

    if env.backend == "nccl":
        dist.barrier(device_ids=[env.local_rank])
    else:
        dist.barrier()


def all_reduce_mean(value, env: DistEnv):
    """The mean over ranks of a number, a tensor or a dict of numbers (one collective), for logging;
    returns the same kind as given. Every rank must call it. Single-process: `value` unchanged."""
    if not env.distributed:
        return value
    import torch.distributed as dist

    device = torch.device("cuda", env.local_rank) if env.backend == "nccl" else torch.device("cpu")
    if isinstance(value, dict):
        keys = list(value)
        means = all_reduce_mean(torch.tensor([float(value[k]) for k in keys], dtype=torch.float64), env)
        return {k: float(m) for k, m in zip(keys, means.tolist())}
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to(device, dtype=torch.float64 if not value.is_floating_point() else value.dtype,
                                   copy=True)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return (tensor / env.world_size).to(value.device)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / env.world_size


def cleanup(env: DistEnv) -> None:
    """Tear down the process group `init_distributed` started; a no-op single-process."""
    if not env.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


# -- helpers ---------------------------------------------------------------------------------------


def _env_int(name: str, default: int | None) -> int | None:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ReidExportError(f"distributed training: {name}={text!r} is not an integer; torchrun sets it, "
                              f"unset it to train in a single process") from None


def _backend(device_type: str, local_rank: int) -> str:
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeUnavailable("distributed training: this torch build has no torch.distributed; install a "
                                 "standard PyTorch wheel, or run a single process (no torchrun)")
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeUnavailable("distributed training on cuda: torch sees no CUDA GPU; pass --device cpu "
                                     "(gloo backend) or run on a machine with GPUs")
        if not dist.is_nccl_available():
            raise RuntimeUnavailable("distributed training on cuda needs the nccl backend, which this torch build "
                                     "lacks; install a CUDA build of PyTorch, or pass --device cpu for gloo")
        count = torch.cuda.device_count()
        if not 0 <= local_rank < count:
            raise RuntimeUnavailable(f"distributed training: LOCAL_RANK={local_rank} but this node has {count} "
                                     f"GPU(s); start at most {count} processes per node (--nproc_per_node)")
        torch.cuda.set_device(local_rank)
        return "nccl"
    if device_type == "cpu":
        if not dist.is_gloo_available():
            raise RuntimeUnavailable("distributed training on cpu needs the gloo backend, which this torch build "
                                     "lacks; install a standard PyTorch wheel, or run a single process")
        return "gloo"
    raise ReidExportError(f"distributed training: unknown device type {device_type!r}; choose cpu or cuda")
