"""Training on several processes (``torchrun``): DistributedDataParallel over shards of the
in-memory tensors.

``torchrun --nproc_per_node N -m unsir_core train ...`` starts N processes and gives each its
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` joins them into one process group
(nccl on CUDA, each process on its own GPU; gloo on the CPU). The one training loop
(``train.fit``) then wraps the model in DistributedDataParallel: every process draws the same
seeded permutation of the training set each epoch and takes its own share of it
(:func:`shard`), batches of ``batch_size / N`` samples, so that the global batch, the number of
steps and hence the recipe are those of a single-process run; DDP averages the gradients. Only
rank 0 writes the checkpoint (to the same cache key as a single-process run) and reports
progress. Unlearning stays on one device.

Without torchrun (``WORLD_SIZE`` unset or 1) nothing here changes anything: :func:`world_size`
is 1 and the training loop is the single-process one, bit for bit.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .errors import InvalidConfigError


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (once) and return this process's device: its
    own GPU (``cuda:LOCAL_RANK``) on CUDA, else ``device``. A no-op outside torchrun."""
    if not launched():
        return device
    if device.type not in ("cuda", "cpu"):
        raise InvalidConfigError(f"distributed training runs on CUDA (nccl) or the CPU (gloo), not on {device.type}")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def close() -> None:
    """Leave the process group (after the last collective call)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0, the process that writes files and reports progress (any process outside torchrun)."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shard(n: int, generator: torch.Generator) -> torch.Tensor:
    """This process's sample indices for one epoch: a permutation of ``n`` drawn from
    ``generator`` (seeded alike in every process, so all draw the same one), padded with its
    first indices to a multiple of the world size (as torch's DistributedSampler does), every
    world-size-th element from this process's rank. The shards are equally long and together
    hold every sample."""
    order = torch.randperm(n, generator=generator)
    world = world_size()
    padded = torch.cat([order, order[: (-n) % world]])
    return padded[rank() :: world].contiguous()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """The sums over all processes of ``values`` (each process passes its own)."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def shard_check(indices: torch.Tensor, n: int, device: torch.device) -> dict:
    """What the processes trained on in one epoch, gathered from all of them: samples per
    process, whether the shards together cover all ``n`` training samples, and how many
    samples more than one process saw (the padding, at most world size - 1)."""
    gathered = [torch.empty_like(indices, device=device) for _ in range(world_size())]
    dist.all_gather(gathered, indices.contiguous().to(device))
    shards = [g.cpu() for g in gathered]
    union = torch.unique(torch.cat(shards))
    return {
        "samples_per_process": [len(s) for s in shards],
        "covers_training_set": len(union) == n and bool((union == torch.arange(n)).all()),
        "seen_twice": sum(len(s) for s in shards) - len(union),
    }
