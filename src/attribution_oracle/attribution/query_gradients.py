"""Fast query-side gradient features of a LoRA language model (what ``ModelScorer`` computes per inference).

The features are the ones ``Attributor.query_features`` defines for ``LanguageModelTask`` (the gradient of the
output tokens' total log-likelihood given the prompt, over the LoRA parameters, optionally scaled elementwise by the
preconditioner, randomly projected, optionally unit-normalised per checkpoint, averaged over checkpoints), computed
the cheap way and with a documented rule that makes them reproducible:

1. **Gradient.** One forward, in the model's dtype (float64 in ``load_model_scorer`` by default), of the prompt
   and output, logits only at the positions that predict output tokens (``logits_to_keep``: the vocabulary
   projection of the prompt positions is skipped), one backward of the summed log-likelihood through the LoRA
   parameters only (``torch.autograd.grad``: no per-example ``vmap``, no gradient for the base weights). The
   gradient is computed with one intra-op thread (``single_thread``), so its bits do not depend on the caller's
   thread count: float sums in BLAS and reductions are split by thread.
2. **Projection, exact.** Each parameter's gradient (times its preconditioner) is quantised like an index row
   (``fixed_point.quantise``: 14 bits with one power-of-two scale per parameter tensor) and multiplied with the
   projector's own Rademacher signs (``projection.Projector``: the same seeded blocks, kept as int8 ``+-1``) in
   integers (``torch._int_mm``, exact), then scaled by ``2**-e / sqrt(k)`` and added over the parameters in their
   fixed order in float64. The projection therefore adds no rounding that depends on summation order, and it reads
   ``p x k`` bytes per query instead of ``4 p x k`` (SmolLM2's q/v LoRA: 236 MB instead of 943 MB of float32).
3. **Normalisation, correctly rounded.** ``|f| = sqrt(fsum(f_i ** 2))`` (``math.fsum``), order-independent.

The gradient of step 1 is the only part whose bits depend on the machine's floating-point kernels; the
scorer quantises the final features to 14 bits (``fixed_point``), so two processes on the same machine give
byte-identical scores, and machines whose kernels differ in the last bits agree unless a feature lies within that
difference of a 14-bit rounding boundary: about 1e-12 per feature in float64 (the default), about 1e-3 in float32,
which is why float32 is opt-in.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from attribution_oracle.attribution.fixed_point import _int_mm_trusted, quantise
from attribution_oracle.attribution.projection import BLOCK_ROWS, Projector, _block_seed

__all__ = ["LoraQueryFeaturizer", "single_thread"]


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with one intra-op thread (restored after), so float results do not depend on thread count."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def projector_signs(projector: Projector, name: str) -> Tensor:
    """The projector's Rademacher signs of one parameter as int8 ``+-1``, ``[dim, numel]`` (rows = output features);
    ``projector.project`` multiplies by the same signs divided by ``sqrt(dim)``."""
    numel = int(torch.Size(projector.shapes[name]).numel())
    blocks = []
    for block, start in enumerate(range(0, numel, BLOCK_ROWS)):
        rows = min(numel, start + BLOCK_ROWS) - start
        gen = torch.Generator(device="cpu").manual_seed(_block_seed(projector.seed, name, block))
        signs = torch.randint(0, 2, (rows, projector.dim), generator=gen, dtype=torch.int8)
        blocks.append((signs * 2 - 1).T)
    return torch.cat(blocks, dim=1).contiguous()


def _exact_projection(gradient: Tensor, signs: Tensor) -> Tensor:
    """``quantised(gradient) @ signs.T`` as exact float64 ``[dim]`` (before the ``1/sqrt(dim)`` scale)."""
    fixed = quantise(gradient.reshape(1, -1))
    if int(fixed.exponents[0]) == 0 and not bool(fixed.limbs.any()):
        return torch.zeros(signs.shape[0], dtype=torch.float64)
    hi = _int_product(fixed.hi, signs)
    lo = _int_product(fixed.lo, signs)
    total = (hi << 7) + lo  # the integer v = 128 * hi + lo, multiplied by +-1 and summed: exact
    return torch.ldexp(total.to(torch.float64), -fixed.exponents.to(torch.float64))


def _int_product(row: Tensor, signs: Tensor) -> Tensor:
    """Exact ``row [1, p] @ signs.T`` (int8 inputs) as int64 ``[dim]``: ``|sum| <= 128 p < 2**31`` for ``p < 2**24``."""
    if row.shape[1] >= 2 and row.shape[1] < (1 << 24) and _int_mm_trusted("cpu"):
        return torch._int_mm(row.contiguous(), signs.T).to(torch.int64).reshape(-1)
    return (signs.to(torch.float64) @ row.reshape(-1).to(torch.float64)).to(torch.int64)


class LoraQueryFeaturizer:
    """Query features of ``(prompt ids, output ids)`` pairs for an adapted causal LM (see the module docstring)."""

    def __init__(
        self,
        model: nn.Module,
        names: Sequence[str],
        projector: Projector,
        checkpoints: Sequence[dict[str, Tensor] | None],
        preconditioner: dict[str, Tensor] | None = None,
        normalize: bool = False,
    ) -> None:
        """``names`` and ``projector`` as in the ``Attributor`` that built the index (``attributor.names``,
        ``attributor.projector``); ``checkpoints``: LoRA state dicts loaded in turn (``None``: the model as is)."""
        self.model = model
        self.names = list(names)
        self.projector = projector
        self.checkpoints = list(checkpoints) or [None]
        self.preconditioner = preconditioner
        self.normalize = normalize
        params = dict(model.named_parameters())
        self._params = [params[n] for n in self.names]
        dtype = self._params[0].dtype
        self._precondition = (
            [preconditioner[n].to(dtype) for n in self.names] if preconditioner is not None else None
        )  # fmt: skip
        self._signs = None if projector.dim is None else [projector_signs(projector, n) for n in self.names]

    @property
    def dim(self) -> int:
        """Feature dimension: ``projector.out_dim`` per checkpoint."""
        return self.projector.out_dim * len(self.checkpoints)

    def features(self, items: Sequence[tuple[Sequence[int], Sequence[int]]], max_len: int = 0) -> Tensor:
        """Features ``[len(items), dim]`` (float64) of ``(prompt, output)`` pairs with non-empty outputs; a pair
        longer than ``max_len`` (when > 0) keeps its last ``max_len`` tokens (its output must fit)."""
        rows = [torch.zeros(self.dim, dtype=torch.float64) for _ in items]
        with single_thread():
            for c, checkpoint in enumerate(self.checkpoints):
                if checkpoint is not None:
                    self.model.load_state_dict(checkpoint, strict=False)
                width = self.projector.out_dim
                for i, (prompt, output) in enumerate(items):
                    part = self._project(self._gradient(prompt, output, max_len))
                    rows[i][c * width : (c + 1) * width] = _unit(part) if self.normalize else part
        return torch.stack(rows) / len(self.checkpoints) if rows else torch.zeros(0, self.dim, dtype=torch.float64)

    def _gradient(self, prompt: Sequence[int], output: Sequence[int], max_len: int) -> list[Tensor]:
        ids = [int(t) for t in prompt] + [int(t) for t in output]
        if max_len and len(ids) > max_len:
            ids = ids[-max_len:]
        n = len(output)
        if n == 0 or n >= len(ids) + 1:
            raise ValueError("the output must be non-empty and fit in the context")
        input_ids = torch.tensor([ids], dtype=torch.long)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.enable_grad():
                logits = self.model(input_ids=input_ids, logits_to_keep=n + 1).logits[0, :n]
                targets = torch.tensor([int(t) for t in output], dtype=torch.long).unsqueeze(-1)
                if len(ids) == n:  # no prompt token left: the first output token has no prediction
                    logits, targets = logits[: n - 1], targets[1:]
                total = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets).sum()
                grads = torch.autograd.grad(total, self._params, allow_unused=True)
        finally:
            self.model.train(was_training)
        out = [torch.zeros_like(p) if g is None else g for p, g in zip(self._params, grads, strict=True)]
        if self._precondition is not None:
            out = [g * f for g, f in zip(out, self._precondition, strict=True)]
        return out

    def _project(self, grads: list[Tensor]) -> Tensor:
        if self._signs is None:
            return torch.cat([g.reshape(-1).to(torch.float64) for g in grads])
        total = torch.zeros(self.projector.dim, dtype=torch.float64)
        for g, signs in zip(grads, self._signs, strict=True):
            total += _exact_projection(g, signs)  # elementwise float64 adds in the parameters' fixed order
        return total / math.sqrt(self.projector.dim)


def _unit(x: Tensor) -> Tensor:
    """``x / |x|`` with a correctly rounded norm (``math.fsum``), so it does not depend on summation order."""
    norm = math.sqrt(math.fsum(v * v for v in x.tolist()))
    return x / max(norm, torch.finfo(torch.float64).tiny)
