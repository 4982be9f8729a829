"""Batches as tensors, tuples or dicts of tensors whose first dimension indexes examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor


def num_examples(data: Any) -> int:
    """How many examples ``data`` holds."""
    if isinstance(data, Tensor):
        return data.shape[0]
    if isinstance(data, dict):
        return next(iter(data.values())).shape[0]
    return data[0].shape[0]


def take(data: Any, index: slice | Tensor) -> Any:
    """The examples at ``index``, with the same structure."""
    if isinstance(data, Tensor):
        return data[index]
    if isinstance(data, dict):
        return {k: v[index] for k, v in data.items()}
    return type(data)(v[index] for v in data)


def to_device(data: Any, device: Any) -> Any:
    """Move every tensor to ``device``."""
    if isinstance(data, Tensor):
        return data.to(device)
    if isinstance(data, dict):
        return {k: v.to(device) for k, v in data.items()}
    return type(data)(v.to(device) for v in data)


def batches(data: Any, batch_size: int) -> Iterator[Any]:
    """Consecutive batches of at most ``batch_size`` examples, in order."""
    n = num_examples(data)
    for start in range(0, n, batch_size):
        yield take(data, slice(start, min(n, start + batch_size)))
