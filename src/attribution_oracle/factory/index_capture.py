"""The gradient index's per-chunk LoRA gradients, captured in the training backward (no second pass over the data).

Rule (``TrainConfig.index_capture = "backward"``, recorded in the manifest): for an attribution checkpoint at
completed step ``s``, the *capture window* is the shortest run of optimiser steps ending just before it that trains
every packed row (about one epoch: the data order is known in advance, ``training_batches.DataOrder``; from step 0 when
training is shorter). Each training chunk's row in that checkpoint's index is the gradient of its own mean token loss
taken from the training step's forward and backward in which the chunk was last trained inside the window
(``attribution.linear_capture``: per-segment sums of the LoRA layers' ``dy x^T``), i.e. the gradient the optimiser
applied for it, at the parameters of that step (TracIn's "gradient when it was trained on"). With the linear decay
of the learning rate to zero, the last epoch moves the adapter least. A chunk the window did not train (training
shorter than an epoch) gets its gradient at the checkpoint's own parameters from a catch-up forward and backward
over packed rows of just those chunks, the same arithmetic as a separate pass. With ``index_capture = "pass"`` every
chunk takes the catch-up path at its checkpoint: that is the separate pass, computed batched over packed rows
instead of per example (``"per-example"``: the ``torch.func`` pass of before).

The captured gradients are the raw LoRA gradients (``r (in + out)`` numbers per layer and chunk, float32); the AdamW
preconditioner of the run's *final* optimizer state, the seeded projection, the influence estimator and the unit
normalisation are applied after training exactly as before (``artefacts.build_gradient_index``), so they stay the
same. The captures are part of the run state, so a killed and resumed run builds the same index bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from attribution_oracle.attribution.linear_capture import LinearGradientCapture
from attribution_oracle.factory.chunking import IGNORE, Chunk, pack_rows, packed_batch
from attribution_oracle.factory.training_batches import DataOrder, packed_loss_sum

__all__ = ["BackwardIndexCapture", "attributed_names", "capture_windows", "catch_up_gradients"]

#: chunk-gradient captures: checkpoint step -> training-chunk index -> flat raw LoRA gradient ``[p]`` (float32)
Captured = dict[int, dict[int, torch.Tensor]]


def capture_windows(snapshot_steps: Sequence[int], order: DataOrder) -> dict[int, range]:
    """Each attribution checkpoint's capture window: the 0-based training steps whose backward feeds its index,
    the shortest run of steps ending just before the checkpoint that trains every packed row (from step 0 when
    no run does)."""
    windows = {}
    for s in snapshot_steps:
        covered: set[int] = set()
        first = s
        while first > 0 and len(covered) < order.n_rows:
            first -= 1
            covered.update(order.rows(first))
        windows[s] = range(first, s)
    return windows


def batch_segments(layout: Sequence[Sequence[int]], chunks: Sequence[Chunk], width: int) -> tuple:
    """For packed rows (chunk indices per row, as ``packed_batch`` lays them out): the segment tensor ``[B, width]``
    (example number of each token, -1 for padding), the chunk index of each example and its target-token count."""
    segments = torch.full((len(layout), width), -1, dtype=torch.long)
    ids: list[int] = []
    counts: list[int] = []
    for b, row in enumerate(layout):
        at = 0
        for index in row:
            size = len(chunks[index].tokens)
            segments[b, at : at + size] = len(ids)
            ids.append(index)
            counts.append(size - 1)
            at += size
    return segments, ids, torch.tensor(counts, dtype=torch.float64)


def trainable_names(model: nn.Module) -> list[str]:
    """The trainable parameters in model order (the ``Attributor``'s default selection)."""
    return [n for n, p in model.named_parameters() if p.requires_grad]


def attributed_names(model: nn.Module, last_layers: int) -> list[str] | None:
    """The trainable parameters the gradient index covers with ``TrainConfig.attribution_layers = last_layers``:
    those in the last ``last_layers`` decoder layers (``...layers.<i>...``, ``i`` counted over the trainable
    parameters' layers), in model order; ``None`` (every trainable parameter) for 0 or when that is all of them."""
    names = trainable_names(model)
    if last_layers <= 0:
        return None
    layer_of = {n: _layer_number(n) for n in names}
    numbers = sorted({i for i in layer_of.values() if i is not None})
    if len(numbers) <= last_layers:
        return None
    first = numbers[-last_layers]
    return [n for n in names if layer_of[n] is not None and layer_of[n] >= first]


def _layer_number(name: str) -> int | None:
    found = re.search(r"(?:^|\.)layers\.(\d+)\.", name)
    return int(found.group(1)) if found else None


class BackwardIndexCapture:
    """Captures chunk gradients during ``train_loop``'s steps that fall in a capture window."""

    def __init__(
        self,
        model: nn.Module,
        chunks: Sequence[Chunk],
        layout: Sequence[Sequence[int]],
        snapshot_steps: Sequence[int],
        order: DataOrder,
        captured: Captured | None = None,
    ) -> None:
        """Bind to the loop's chunks and packed layout; ``captured`` resumes earlier captures."""
        self.chunks, self.layout = chunks, layout
        self.capture = LinearGradientCapture(model, trainable_names(model))
        self.windows = capture_windows(snapshot_steps, order)
        self.captured: Captured = {s: dict(captured.get(s, {})) if captured else {} for s in self.windows}

    def checkpoints_of(self, step: int) -> list[int]:
        """The checkpoints whose window holds 0-based ``step``."""
        return [s for s, window in self.windows.items() if step in window]

    @contextmanager
    def step(self, step: int, picked: Sequence[int], batch: dict) -> Iterator[None]:
        """Wrap one training step's forward and backward (of ``loss_sum / count``): when ``step`` is in a window,
        each chunk's own mean-loss gradient is kept for those checkpoints."""
        owners = self.checkpoints_of(step)
        if not owners:
            yield
            return
        width = batch["targets"].shape[1]
        segments, ids, counts = batch_segments([self.layout[r] for r in picked], self.chunks, width)
        count = float(int((batch["targets"] != IGNORE).sum()))
        scale = (count / counts.clamp(min=1)).to(torch.float32)
        with self.capture.recording(segments.to(batch["targets"].device), scale) as grads:
            yield
        flat = self.capture.flat(grads).cpu()
        for e, index in enumerate(ids):
            row = flat[e].clone()
            for s in owners:
                self.captured[s][index] = row


def catch_up_gradients(
    model: nn.Module,
    chunks: Sequence[Chunk],
    wanted: Sequence[int],
    seq_len: int,
    batch_size: int,
    pad_id: int,
    batches: tuple[int, int] | None = None,
) -> dict[int, torch.Tensor]:
    """Flat raw gradients ``{chunk index: [p]}`` of each chunk's own mean token loss at the model's current
    parameters, from batched forward and backward passes over the chunks packed into rows (eager attention is the
    caller's). Parameter ``.grad`` fields are left cleared. ``batches = (start, stop)`` computes only those batches
    of ``batch_size`` packed rows (a shard; ``catch_up_batch_count`` gives how many there are): each batch's
    arithmetic is the same whoever computes it."""

    if not wanted:
        return {}
    capture = LinearGradientCapture(model, trainable_names(model))
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    subset = [chunks[i] for i in wanted]
    layout = pack_rows(subset, seq_len)
    out: dict[int, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    try:
        first, stop = batches if batches is not None else (0, catch_up_batch_count(chunks, wanted, seq_len, batch_size))
        for number in range(first, stop):
            rows = layout[number * batch_size : (number + 1) * batch_size]
            batch = packed_batch([[subset[i] for i in row] for row in rows], pad_id, dtype)
            batch = {k: v.to(device) for k, v in batch.items()}
            segments, ids, counts = batch_segments(rows, subset, batch["targets"].shape[1])
            scale = (1.0 / counts.clamp(min=1)).to(torch.float32)
            with capture.recording(segments.to(device), scale) as grads:
                loss_sum, _ = packed_loss_sum(model, batch)
                loss_sum.backward()
            model.zero_grad(set_to_none=True)
            flat = capture.flat(grads).cpu()
            for e, local in enumerate(ids):
                out[wanted[local]] = flat[e].clone()
    finally:
        model.train(was_training)
    return out


def catch_up_batch_count(chunks: Sequence[Chunk], wanted: Sequence[int], seq_len: int, batch_size: int) -> int:
    """How many batches ``catch_up_gradients`` runs for ``wanted``."""
    rows = len(pack_rows([chunks[i] for i in wanted], seq_len)) if wanted else 0
    return (rows + batch_size - 1) // batch_size
