"""The batch's key/value cache: per-layer buffers with room to grow, and the padding and row selection that
merge newly prefilled rows into it and drop finished ones (used by ``engine.BatchGenerator``).

Keys and values are ``[batch, heads, seq, dim]``; rows are left-padded, so padding sits at the start of the
sequence and is masked out by the batch's attention mask.
"""

from __future__ import annotations

import torch
from transformers import Cache
from transformers.cache_utils import DynamicLayer

__all__ = [
    "PreallocatedLayer",
    "left_pad",
    "left_pad_mask",
    "merged_cache",
    "preallocated_cache",
    "selected_rows_cache",
    "with_room",
]


class PreallocatedLayer(DynamicLayer):
    """A layer's keys and values inside a buffer with room to grow along the sequence (doubling when full)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int) -> None:
        super().__init__()
        self.dtype, self.device = keys.dtype, keys.device
        self.length = keys.shape[2]
        self._keys = with_room(keys, room)
        self._values = with_room(values, room)
        self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, cache_kwargs=None):
        """Write the new states after the current ones (in place) and return views of all of them."""
        end = self.length + key_states.shape[2]
        if end > self._keys.shape[2]:
            self._keys = with_room(self.keys, max(end, 2 * self._keys.shape[2]) - self.length)
            self._values = with_room(self.values, self._keys.shape[2] - self.length)
        self._keys[:, :, self.length : end] = key_states
        self._values[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


def with_room(tensor: torch.Tensor, room: int) -> torch.Tensor:
    """A copy of ``[batch, heads, seq, dim]`` keys or values with ``room`` (at least 1) unused positions after them."""
    out = tensor.new_empty(tensor.shape[0], tensor.shape[1], tensor.shape[2] + max(room, 1), tensor.shape[3])
    out[:, :, : tensor.shape[2]] = tensor
    return out


def preallocated_cache(layers: list[tuple[torch.Tensor, torch.Tensor]], room: int) -> Cache:
    """A cache of ``(keys, values)`` per layer, each in a buffer with ``room`` positions to grow into."""
    return Cache(layers=[PreallocatedLayer(keys, values, room) for keys, values in layers])


def left_pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Keys or values left-padded with zeros along the sequence to ``width`` positions."""
    missing = width - tensor.shape[2]
    if missing == 0:
        return tensor
    pad = torch.zeros(*tensor.shape[:2], missing, tensor.shape[3], dtype=tensor.dtype, device=tensor.device)
    return torch.cat([pad, tensor], dim=2)


def left_pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    """A ``[batch, seq]`` attention mask left-padded with zeros (masked) to ``width`` columns."""
    missing = width - mask.shape[1]
    if missing == 0:
        return mask
    return torch.cat([torch.zeros(mask.shape[0], missing, dtype=mask.dtype, device=mask.device), mask], dim=1)


def merged_cache(running: Cache, prefilled: Cache, width: int, room: int) -> Cache:
    """The running rows' cache with the newly ``prefilled`` rows appended below, both left-padded to ``width``."""
    layers = []
    for old, new in zip(running.layers, prefilled.layers, strict=True):
        keys = torch.cat([left_pad(old.keys, width), left_pad(new.keys, width)])
        values = torch.cat([left_pad(old.values, width), left_pad(new.values, width)])
        layers.append((keys, values))
    return preallocated_cache(layers, room)


def selected_rows_cache(cache: Cache, rows: torch.Tensor, start: int, room: int) -> Cache:
    """The cache of the kept ``rows`` only, from sequence position ``start`` on (columns before it are padding)."""
    layers = [
        (layer.keys.index_select(0, rows)[:, :, start:], layer.values.index_select(0, rows)[:, :, start:])
        for layer in cache.layers
    ]
    return preallocated_cache(layers, room)
