"""The training loop: packed rows, AdamW, a linear schedule, atomic checkpoints, exact resume.

The loop is deliberately small: per step it stacks ``batch_size`` pre-packed rows (no padding inside rows,
see ``chunking``), runs one forward and backward through the LoRA parameters only, clips, steps, and every
``checkpoint_every`` steps saves the run state. The data order is a function of the step (rows permuted per
epoch by a generator seeded from ``seed`` and the epoch), so the step alone is the data position and a
resumed run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from attribution_oracle.factory.chunking import Chunk, pack_rows, packed_batch
from attribution_oracle.factory.config import TrainConfig
from attribution_oracle.factory.eager_attention import eager_attention
from attribution_oracle.factory.index_capture import BackwardIndexCapture
from attribution_oracle.factory.run_state import RunState, load_state, save_state
from attribution_oracle.factory.training_batches import DataOrder, packed_loss_sum

__all__ = ["DataOrder", "TrainOutcome", "evaluate", "train_loop"]

Progress = Callable[[int, int, float], None]


@dataclass
class TrainOutcome:
    """What the loop produced: the per-step losses, the adapter snapshots (step -> params) and timings."""

    losses: list[float]
    snapshots: dict[int, dict[str, torch.Tensor]]
    tokens: int
    seconds: float
    resumed_from: int
    #: chunk gradients captured in the backward for the index (``index_capture``): step -> chunk -> flat grad
    captured: dict[int, dict[int, torch.Tensor]] | None = None


def _pad_id(tokenizer) -> int:
    return int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)


def train_loop(
    model: nn.Module,
    tokenizer,
    chunks: Sequence[Chunk],
    config: TrainConfig,
    run_dir: Path,
    progress: Progress | None = None,
) -> TrainOutcome:
    """Train the trainable parameters of ``model`` on ``chunks``; resumes from ``run_dir``'s checkpoint if any.

    Runs with eager attention (see ``factory.eager_attention``)."""
    with eager_attention(model):
        return _train_loop(model, tokenizer, chunks, config, run_dir, progress)


def _train_loop(
    model: nn.Module,
    tokenizer,
    chunks: Sequence[Chunk],
    config: TrainConfig,
    run_dir: Path,
    progress: Progress | None,
) -> TrainOutcome:
    if not chunks:
        raise ValueError("no training chunks")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    layout = pack_rows(chunks, config.seq_len)
    rows = [[chunks[i] for i in row] for row in layout]
    order = DataOrder(len(rows), config.batch_size, config.seed)
    pad = _pad_id(tokenizer)
    row_tokens = [sum(len(c.tokens) for c in row) for row in rows]
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(
        params.values(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=config.weight_decay
    )
    snapshot_steps = set(config.snapshot_steps())

    state = load_state(run_dir)
    start = 0
    losses: list[float] = []
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    if state is not None:
        with torch.no_grad():
            for name, value in state.params.items():
                params[name].copy_(value)
        optimizer.load_state_dict(state.optimizer)
        torch.random.set_rng_state(state.rng)
        start, losses, snapshots = state.step, list(state.losses), dict(state.snapshots)
    else:
        torch.manual_seed(config.seed)
    capture = None
    if config.index_capture == "backward":
        capture = BackwardIndexCapture(
            model, chunks, layout, config.snapshot_steps(), order, state.captured if state else None
        )

    def checkpoint(step: int) -> None:
        save_state(
            run_dir,
            RunState(
                step=step,
                params={n: p.detach().clone() for n, p in params.items()},
                optimizer=optimizer.state_dict(),
                rng=torch.random.get_rng_state(),
                losses=losses,
                snapshots=snapshots,
                captured=capture.captured if capture is not None else {},
            ),
        )

    model.train()
    tokens = 0
    began = time.perf_counter()
    if progress is not None:
        progress(start, config.steps, losses[-1] if losses else float("nan"))
    for step in range(start, config.steps):
        picked = order.rows(step)
        batch = packed_batch([rows[r] for r in picked], pad, dtype)
        batch = {k: v.to(device) for k, v in batch.items()}
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        with capture.step(step, picked, batch) if capture is not None else nullcontext():
            loss_sum, count = packed_loss_sum(model, batch)
            loss = loss_sum / max(count, 1)
            loss.backward()
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params.values(), config.max_grad_norm)
        optimizer.step()
        tokens += sum(row_tokens[r] for r in picked)
        losses.append(float(loss.detach()))
        done = step + 1
        if done in snapshot_steps:
            snapshots[done] = {n: p.detach().clone() for n, p in params.items()}
        if done % config.checkpoint_every == 0 or done == config.steps:
            checkpoint(done)
        if progress is not None:
            progress(done, config.steps, losses[-1])
    model.eval()
    captured = capture.captured if capture is not None else None
    return TrainOutcome(losses, snapshots, tokens, time.perf_counter() - began, start, captured)


def evaluate(model: nn.Module, tokenizer, chunks: Sequence[Chunk], seq_len: int, batch_size: int = 8) -> dict:
    """Held-out mean token loss and perplexity (float64 sum over packed rows in a fixed order, eager attention)."""
    with eager_attention(model):
        return _evaluate(model, tokenizer, chunks, seq_len, batch_size)


@torch.no_grad()
def _evaluate(model: nn.Module, tokenizer, chunks: Sequence[Chunk], seq_len: int, batch_size: int) -> dict:
    if not chunks:
        return {"loss": None, "perplexity": None, "tokens": 0, "chunks": 0}
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    rows = [[chunks[i] for i in row] for row in pack_rows(chunks, seq_len)]
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = {
            k: v.to(device)
            for k, v in packed_batch(rows[start : start + batch_size], _pad_id(tokenizer), dtype).items()
        }
        loss_sum, n = packed_loss_sum(model, batch)
        total += float(loss_sum.double())
        count += n
    if was_training:
        model.train()
    loss = total / max(count, 1)
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": count, "chunks": len(chunks)}
