"""The gradient index captured in the training backward equals the separate pass it replaces.

Two claims, on tiny:SEED models:
- the hooks' per-chunk gradients (packed rows, several chunks per row, padding) equal ``torch.func`` per-example
  gradients of each chunk alone (``Attributor``'s separate pass) at the same parameters: the catch-up pass at a
  checkpoint, and the training steps' own backward at the parameters of each step;
- an index built from the captured gradients gives the same scores as one built by the separate pass, after the
  fixed-point quantisation of ``attribution.fixed_point``: equal up to the quantisation's documented error bound of
  each side plus the float difference of the features (float32 roundoff of summing the same products in another
  order: batch rows vs single examples), which the test measures and bounds at 1e-4 relative.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from attribution_oracle.attribution import Attributor, LanguageModelTask
from attribution_oracle.attribution.fixed_point import error_bound, quantise, scores_float
from attribution_oracle.attribution.gradients import per_example_grads
from attribution_oracle.factory.artefacts import adam_preconditioner, chunk_gradients
from attribution_oracle.factory.chunking import example_batch, pack_rows, tokenize_documents
from attribution_oracle.factory.config import TrainConfig
from attribution_oracle.factory.eager_attention import eager_attention
from attribution_oracle.factory.fetch import Document
from attribution_oracle.factory.index_capture import capture_windows, catch_up_gradients, trainable_names
from attribution_oracle.factory.peft_lora import attach_lora
from attribution_oracle.factory.run_state import load_state
from attribution_oracle.factory.trainer import train_loop
from attribution_oracle.factory.training_batches import DataOrder
from attribution_oracle.factory.version_sources import ApprovedContribution
from attribution_oracle.models import load_base_model

TEXTS = [
    "Inspect the hive every nine days in spring; look for eggs, queen cells and stores.",
    "A smoker calms the bees.",
    "Varroa mites are counted with an alcohol wash of three hundred bees in autumn, then treated.",
    "Honey is ready when most cells are capped.",
    "Bees forage up to three miles from the hive when the nectar flow is poor and the weather dry.",
    "The waggle dance tells other foragers the direction.",
    "Propolis seals small gaps; bees collect it from the resin of buds and bark in summer.",
    "Winter clusters keep the queen warm.",
]


def _setup(seed: int, config: TrainConfig):
    base = load_base_model(f"tiny:{seed}")
    docs = [
        Document(ApprovedContribution(1, i + 1, "0x" + "0" * 40, "0" * 64), t.encode()) for i, t in enumerate(TEXTS)
    ]
    chunks = tokenize_documents(docs, base.tokenizer, config.seq_len)
    model = attach_lora(base.model, config.lora_config(), config.seed)
    return base, model, chunks


def _reference_grads(model, chunks, pad_id: int, names: list[str]) -> torch.Tensor:
    """``torch.func`` per-example gradients of each chunk alone (the separate pass), flat ``[n, p]``."""
    with eager_attention(model):
        model.eval()
        grads = per_example_grads(model, LanguageModelTask().loss, names, example_batch(chunks, pad_id))
    return torch.cat([grads[n].reshape(len(chunks), -1) for n in names], dim=1)


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    scale = b.abs().max()
    assert scale > 0
    assert (a - b).abs().max() <= 1e-4 * scale


def _same_fixed_point_scores(x_capture: torch.Tensor, x_pass: torch.Tensor, queries: torch.Tensor) -> float:
    """Assert the documented tolerance; return the share of scores that are exactly equal after quantisation."""
    _close(x_capture, x_pass)
    s_capture = scores_float(quantise(queries), quantise(x_capture))
    s_pass = scores_float(quantise(queries), quantise(x_pass))
    q64, diff = queries.double(), (x_capture.double() - x_pass.double())
    allowed = error_bound(queries, x_capture) + error_bound(queries, x_pass) + (q64.abs() @ diff.abs().T)
    assert ((s_capture - s_pass).abs() <= allowed).all()
    return float((s_capture == s_pass).double().mean())


def test_catch_up_pass_gradients_equal_the_per_example_separate_pass() -> None:
    config = TrainConfig(steps=2, batch_size=2, seq_len=40, rank=4)
    base, model, chunks = _setup(5, config)
    assert len(pack_rows(chunks, config.seq_len)) < len(chunks)  # several chunks share packed rows
    with torch.no_grad():  # a non-zero B, so both LoRA factors get non-trivial gradients
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    names = trainable_names(model)
    pad = base.tokenizer.eos_token_id
    with eager_attention(model):
        got = catch_up_gradients(model, chunks, list(range(len(chunks))), config.seq_len, 3, pad)
    assert all(p.grad is None for p in model.parameters())
    _close(torch.stack([got[i] for i in range(len(chunks))]), _reference_grads(model, chunks, pad, names))


def test_training_backward_captures_each_chunk_at_the_parameters_of_its_step(tmp_path: Path) -> None:
    config = TrainConfig(steps=9, batch_size=2, seq_len=40, rank=4, attribution_checkpoints=2, proj_dim=16)
    base, model, chunks = _setup(6, config)
    names = trainable_names(model)
    pad = base.tokenizer.eos_token_id
    params_before: dict[int, dict[str, torch.Tensor]] = {}

    def record(done: int, total: int, loss: float) -> None:  # params after `done` steps = before step `done`
        params_before[done] = {n: p.detach().clone() for n, p in model.named_parameters() if n in names}

    outcome = train_loop(model, base.tokenizer, chunks, config, tmp_path, record)
    layout = pack_rows(chunks, config.seq_len)
    order = DataOrder(len(layout), config.batch_size, config.seed)
    windows = capture_windows(config.snapshot_steps(), order)
    assert sorted(outcome.captured) == config.snapshot_steps() == [4, 9]
    checked = 0
    for snapshot, window in windows.items():
        last_step = {}
        for step in window:
            for row in order.rows(step):
                for index in layout[row]:
                    last_step[index] = step
        assert sorted(outcome.captured[snapshot]) == sorted(last_step)  # what the window trained, nothing else
        for step in sorted(set(last_step.values())):
            mine = [i for i, s in last_step.items() if s == step]
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in names:
                        p.copy_(params_before[step][n])
            expected = _reference_grads(model, [chunks[i] for i in mine], pad, names)
            _close(torch.stack([outcome.captured[snapshot][i] for i in mine]), expected)
            checked += len(mine)
    assert checked >= len(chunks)

    # the whole index: captured rows (+ catch-up for the rest) vs the separate pass at the captured parameters
    optimizer = load_state(tmp_path).optimizer
    preconditioner = adam_preconditioner(model, optimizer)
    snapshots = outcome.snapshots
    with eager_attention(model):
        captured = chunk_gradients(model, snapshots, chunks, pad, config, outcome.captured)
    reference = []
    for snapshot in sorted(snapshots):
        rows = {}
        for index in range(len(chunks)):
            steps = [s for s in windows[snapshot] if any(index in layout[r] for r in order.rows(s))]
            source = params_before[steps[-1]] if steps else snapshots[snapshot]
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if n in names:
                        p.copy_(source[n])
            rows[index] = _reference_grads(model, [chunks[index]], pad, names)[0]
        flat = torch.stack([rows[i] for i in range(len(chunks))])
        reference.append({n: g for n, g in zip(names, _split(flat, model, names), strict=True)})

    def index_of(gradients):
        attributor = Attributor(
            model, LanguageModelTask(), checkpoints=[snapshots[s] for s in sorted(snapshots)], proj_dim=16, seed=0,
            batch_size=8, preconditioner=preconditioner, normalize=True,
        )  # fmt: skip
        return attributor.featurize_gradients(gradients)

    with eager_attention(model):
        ours, theirs = index_of(captured), index_of(reference)
        queries = theirs.query_features(example_batch(chunks[:3], pad)).to(torch.float32)
    equal = _same_fixed_point_scores(ours.train_matrix(), theirs.train_matrix(), queries)
    assert equal > 0.5  # most quantised scores are bit-equal; the rest within the documented bound


def _split(flat: torch.Tensor, model, names: list[str]) -> list[torch.Tensor]:
    shapes = dict(model.named_parameters())
    out, at = [], 0
    for n in names:
        size = shapes[n].numel()
        out.append(flat[:, at : at + size].reshape(flat.shape[0], *shapes[n].shape))
        at += size
    return out


@pytest.mark.parametrize("capture", ["backward", "pass"])
def test_pass_mode_index_equals_the_separate_per_example_pass(capture: str, tmp_path: Path) -> None:
    """``index_capture='pass'`` (and the catch-up rows of ``'backward'``) match today's ``Attributor.featurize``."""
    config = TrainConfig(steps=3, batch_size=2, seq_len=40, rank=4, proj_dim=16, index_capture=capture)
    base, model, chunks = _setup(7, config)
    pad = base.tokenizer.eos_token_id
    outcome = train_loop(model, base.tokenizer, chunks, config, tmp_path)
    snapshots = outcome.snapshots
    preconditioner = adam_preconditioner(model, load_state(tmp_path).optimizer)
    with eager_attention(model):
        gradients = chunk_gradients(model, snapshots, chunks, pad, config, outcome.captured or {})
        make = lambda: Attributor(  # noqa: E731
            model, LanguageModelTask(), checkpoints=[snapshots[3]], proj_dim=16, seed=0, batch_size=8,
            preconditioner=preconditioner, normalize=True,
        )  # fmt: skip
        ours = make().featurize_gradients(gradients)
        separate = make().featurize(example_batch(chunks, pad))
        queries = separate.query_features(example_batch(chunks[2:5], pad)).to(torch.float32)
    if capture == "pass":
        _same_fixed_point_scores(ours.train_matrix(), separate.train_matrix(), queries)
    else:  # 3 steps x 2 rows < one window's worth of distinct rows: some rows are from earlier steps
        assert len(outcome.captured[3]) < len(chunks)
