"""Sharded featurization on torch.distributed: each rank computes the per-example gradients of its shard.

    torchrun --nproc-per-node 2 my_build.py          # gloo on CPU; NCCL on GPUs (one rank per GPU)

    with sharded(attributor):                        # inside the script, after init_process_group()
        attributor.featurize(train_data)
    if dist.get_rank() == 0:
        attributor.build_index(path, ids)

Featurization spends nearly all its time in per-example gradients (``Attributor._project`` over the training
data). Under ``sharded``, the data's batches (``attributor.batch_size`` examples each, the same batches a single
process makes) are dealt out in contiguous runs, one run per rank; each rank projects its batches and
``all_gather_object`` collects the results on every rank in batch order. Everything after (curvature,
finalisation, the index) then runs on the gathered matrix exactly as in one process. A batch is computed with the
same shapes and values whatever rank computes it, so with the same torch thread count per process the features,
and the index rank 0 writes, are byte-identical to a single process's (``tests/unit/attribution`` checks a
2-process gloo run against 1 process). Query-side features (``query_features``, e.g. the oracle's batches) are
sharded the same way inside the block. Not sharded: the exact GGN curvature pass of tasks with ``outputs``
(classification), which every rank computes whole (identically).

Scaling: featurization is compute-bound, so N ranks on N free cores (or GPUs) approach N x; on this 2-core shared
machine expect about 1x. The gather moves ``n x k`` float64s (k = projection dim), small next to the gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from attribution_oracle.attribution.data import num_examples, take


def shard_bounds(n_batches: int, world: int, rank: int) -> tuple[int, int]:
    """The contiguous run of batch indices ``[start, stop)`` of ``rank`` (sizes differ by at most one)."""
    base, extra = divmod(n_batches, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def _sharded_project(attributor: Any, original: Callable) -> Callable:
    def project(fn: Callable[[nn.Module, Any], torch.Tensor], data: Any) -> torch.Tensor:
        size = attributor.batch_size
        n = num_examples(data)
        n_batches = (n + size - 1) // size
        start, stop = shard_bounds(n_batches, dist.get_world_size(), dist.get_rank())
        local = take(data, slice(start * size, min(n, stop * size)))
        mine = original(fn, local) if stop > start else None
        parts: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, None if mine is None else mine.cpu())
        return torch.cat([p for p in parts if p is not None])

    return project


@contextmanager
def sharded(attributor: Any) -> Iterator[Any]:
    """Within the block, ``attributor``'s per-example gradient passes are sharded over the process group.

    Without an initialised process group (or with one rank) it changes nothing.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        yield attributor
        return
    original = attributor._project
    attributor._project = _sharded_project(attributor, original)
    try:
        yield attributor
    finally:
        attributor._project = original
