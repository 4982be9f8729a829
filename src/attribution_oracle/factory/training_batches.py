"""Which packed rows each training step reads, and the loss of a packed batch: shared by the training loop
(``factory.trainer``) and the index capture (``factory.index_capture``), which replays the same steps."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from attribution_oracle.factory.chunking import IGNORE

__all__ = ["DataOrder", "packed_loss_sum"]


class DataOrder:
    """Which packed rows each step trains on: epochs of seeded permutations, consumed ``batch_size`` at a time."""

    def __init__(self, n_rows: int, batch_size: int, seed: int) -> None:
        """Bind to ``n_rows`` packed rows."""
        self.n_rows, self.batch_size, self.seed = n_rows, batch_size, seed
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            digest = hashlib.sha256(f"data-order:{self.seed}:{epoch}".encode()).digest()
            gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
            self._perms[epoch] = torch.randperm(self.n_rows, generator=gen).tolist()
        return self._perms[epoch]

    def rows(self, step: int) -> list[int]:
        """Row indices of 0-based ``step``."""
        positions = range(step * self.batch_size, (step + 1) * self.batch_size)
        return [self._perm(p // self.n_rows)[p % self.n_rows] for p in positions]


def packed_loss_sum(model: nn.Module, batch: dict) -> tuple[torch.Tensor, int]:
    """The summed next-token loss of a packed batch (``chunking.packed_batch``) and its count of target tokens."""
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
    ).logits
    targets = batch["targets"]
    loss = nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=IGNORE, reduction="sum"
    )
    return loss, int((targets != IGNORE).sum())
