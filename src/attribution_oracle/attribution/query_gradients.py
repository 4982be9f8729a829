"""Fast query-side gradient features of a LoRA language model (what ``ModelScorer`` computes per inference).

The features are the ones ``Attributor.query_features`` defines for ``LanguageModelTask`` (the gradient of the
output tokens' total log-likelihood given the prompt, over the LoRA parameters, optionally scaled elementwise by the
preconditioner, randomly projected, optionally unit-normalised per checkpoint, averaged over checkpoints), computed
the cheap way and with a documented rule that makes them reproducible:

1. **Gradient.** One forward, in the model's dtype (float64 in ``load_model_scorer`` by default), of the prompt
   and output, and one backward of the summed log-likelihood through the attributed LoRA parameters only
   (``torch.autograd.grad``: no per-example ``vmap``, no gradient for the base weights). The log-softmax runs in the
   model's dtype too (a float32 step would put float32 rounding, ~1e-7, into a float64 gradient). For a decoder
   stack (``decoder_stack``: Llama-type models) the model is driven layer by layer: the layers below the lowest
   layer holding an attributed parameter (``lowest_layer``; 0 unless the index covers only the last layers,
   ``TrainConfig.attribution_layers``) run without an autograd graph, and for a prompt that starts with the
   featurizer's ``prefix`` (the chat template's opening, ``scorer.chat_prefix``) their states at the prefix
   positions are computed once per checkpoint and reused (causal attention: the prefix's states do not depend on
   what follows); the final norm and the vocabulary head run only at the positions that predict output tokens. The
   math is the gradient of the same log-likelihood as the whole-model call; the bits are those of this fixed
   schedule (the tests check them against the whole model's float64 autograd gradient to 1e-12). The gradient is
   computed with one intra-op thread (``single_thread``), so its bits do not depend on the caller's thread count:
   float sums in BLAS and reductions are split by thread.
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
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attribution_oracle.attribution.fixed_point import _int_mm_trusted, quantise
from attribution_oracle.attribution.projection import BLOCK_ROWS, Projector, _block_seed

__all__ = ["LoraQueryFeaturizer", "decoder_stack", "lowest_layer", "single_thread"]

#: model types whose causal LM is ``model.embed_tokens -> model.layers -> model.norm -> lm_head`` with rotary
#: positions (``model.rotary_emb``), the structure ``decoder_stack`` drives layer by layer
STACKED_MODEL_TYPES = frozenset({"llama"})


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
        prefix: Sequence[int] = (),
        workers: int = 2,
    ) -> None:
        """``names`` and ``projector`` as in the ``Attributor`` that built the index (``attributor.names``,
        ``attributor.projector``); ``checkpoints``: LoRA state dicts loaded in turn (``None``: the model as is);
        ``prefix``: token ids most prompts start with (the chat template's opening), whose states below the lowest
        attributed layer are computed once and reused (see the module docstring, step 1); ``workers``: threads that
        compute a batch's items concurrently (``features``)."""
        self.model = model
        self.names = list(names)
        self.projector = projector
        self.checkpoints = list(checkpoints) or [None]
        self.preconditioner = preconditioner
        self.normalize = normalize
        self.workers = max(1, int(workers))
        params = dict(model.named_parameters())
        self._params = [params[n] for n in self.names]
        dtype = self._params[0].dtype
        self._precondition = (
            [preconditioner[n].to(dtype) for n in self.names] if preconditioner is not None else None
        )  # fmt: skip
        self._signs = None if projector.dim is None else [projector_signs(projector, n) for n in self.names]
        self._stack = decoder_stack(model)
        self.lowest_layer = lowest_layer(self.names) if self._stack is not None else 0
        self.prefix = tuple(int(t) for t in prefix) if self.lowest_layer > 0 else ()
        self._prefix_states_at: dict[int, _PrefixState] = {}  # checkpoint number -> the prefix's states

    @property
    def dim(self) -> int:
        """Feature dimension: ``projector.out_dim`` per checkpoint."""
        return self.projector.out_dim * len(self.checkpoints)

    def features(self, items: Sequence[tuple[Sequence[int], Sequence[int]]], max_len: int = 0) -> Tensor:
        """Features ``[len(items), dim]`` (float64) of ``(prompt, output)`` pairs with non-empty outputs; a pair
        longer than ``max_len`` (when > 0) keeps its last ``max_len`` tokens (its output must fit).

        With ``workers > 1`` the items of a batch are computed concurrently by that many threads, each item's
        gradient by one thread with one intra-op thread as alone: the same bits as one at a time."""
        rows = [torch.zeros(self.dim, dtype=torch.float64) for _ in items]
        was_training = self.model.training
        self.model.eval()
        try:
            with single_thread():
                for c, checkpoint in enumerate(self.checkpoints):
                    if checkpoint is not None:
                        self.model.load_state_dict(checkpoint, strict=False)
                    if self.prefix:
                        self._prefix_states(c)  # once, before any worker needs it
                    width = self.projector.out_dim

                    def one(item: tuple[Sequence[int], Sequence[int]], c: int = c) -> Tensor:
                        part = self._project(self._gradient(item[0], item[1], max_len, c))
                        return _unit(part) if self.normalize else part

                    for i, part in enumerate(self._map(one, items)):
                        rows[i][c * width : (c + 1) * width] = part
        finally:
            self.model.train(was_training)
        return torch.stack(rows) / len(self.checkpoints) if rows else torch.zeros(0, self.dim, dtype=torch.float64)

    def _map(self, fn, items: Sequence) -> list:  # noqa: ANN001
        workers = min(self.workers, len(items))
        if workers <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="query-gradient") as pool:
            return list(pool.map(fn, items))

    def _gradient(
        self, prompt: Sequence[int], output: Sequence[int], max_len: int, checkpoint: int = 0
    ) -> list[Tensor]:
        ids = [int(t) for t in prompt] + [int(t) for t in output]
        if max_len and len(ids) > max_len:
            ids = ids[-max_len:]
        n = len(output)
        if n == 0 or n >= len(ids) + 1:
            raise ValueError("the output must be non-empty and fit in the context")
        targets = torch.tensor([int(t) for t in output], dtype=torch.long).unsqueeze(-1)
        if len(ids) == n:  # no prompt token left: the first output token has no prediction
            rows, targets = torch.arange(0, n - 1), targets[1:]
        else:
            rows = torch.arange(len(ids) - n - 1, len(ids) - 1)
        if self._stack is None:  # the model in eval mode (``features`` sets it)
            with torch.enable_grad():
                logits = self.model(input_ids=torch.tensor([ids]), logits_to_keep=rows).logits[0]
        else:
            logits = self._stack_logits(ids, rows, checkpoint)
        with torch.enable_grad():
            log_probs = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
            total = log_probs.gather(-1, targets).sum()
            grads = torch.autograd.grad(total, self._params, allow_unused=True)
        out = [torch.zeros_like(p) if g is None else g for p, g in zip(self._params, grads, strict=True)]
        if self._precondition is not None:
            out = [g * f for g, f in zip(out, self._precondition, strict=True)]
        return out

    def _stack_logits(self, ids: list[int], rows: Tensor, checkpoint: int) -> Tensor:
        """Logits at ``rows`` of a decoder-stack model: the layers below ``lowest_layer`` without a graph (their
        prefix states reused), the layers from it with one, the final norm and head on ``rows`` only."""
        stack = self._stack
        low = self.lowest_layer
        p = len(self.prefix)
        if not (0 < p < len(ids) and tuple(ids[:p]) == self.prefix):
            p = 0  # a prompt that does not start with the prefix (or was cut from the left) is computed whole
        with torch.no_grad():
            state = self._prefix_states(checkpoint) if p else None
            hidden = stack.embed(torch.tensor([ids[p:]]))
            if low > 0:
                hidden = stack.run(hidden, range(low), p, state)
                if state is not None:
                    hidden = torch.cat([state.hidden, hidden], dim=1)
        with torch.enable_grad():
            hidden = stack.run(hidden, range(low, stack.depth), 0, None)
            return stack.head(stack.norm(hidden[0, rows]))

    def _prefix_states(self, checkpoint: int) -> _PrefixState:
        """The prefix's keys and values in the layers below ``lowest_layer`` and its hidden states entering it, at
        ``checkpoint`` (computed once per checkpoint, without a graph)."""
        if checkpoint not in self._prefix_states_at:
            state = _PrefixState({}, {}, torch.empty(0))
            with torch.no_grad():
                hidden = self._stack.embed(torch.tensor([list(self.prefix)]))
                state.hidden = self._stack.run(hidden, range(self.lowest_layer), 0, state)
            self._prefix_states_at[checkpoint] = state
        return self._prefix_states_at[checkpoint]

    def _project(self, grads: list[Tensor]) -> Tensor:
        if self._signs is None:
            return torch.cat([g.reshape(-1).to(torch.float64) for g in grads])
        total = torch.zeros(self.projector.dim, dtype=torch.float64)
        for g, signs in zip(grads, self._signs, strict=True):
            total += _exact_projection(g, signs)  # elementwise float64 adds in the parameters' fixed order
        return total / math.sqrt(self.projector.dim)


def lowest_layer(names: Sequence[str]) -> int:
    """The lowest decoder layer (``...layers.<i>....``) holding one of ``names``; 0 if a name is in no layer."""
    found = [re.search(r"(?:^|\.)layers\.(\d+)\.", name) for name in names]
    return min((int(m.group(1)) if m else 0 for m in found), default=0)


@dataclass
class _PrefixState:
    """The prefix's keys and values of the layers below the lowest attributed one, and its hidden states there."""

    keys: dict[int, Tensor]
    values: dict[int, Tensor]
    hidden: Tensor


class _PrefixCache:
    """What a Hugging Face attention layer calls as ``past_key_values.update``: records the prefix's keys and
    values (``record``) or prepends them to the suffix's."""

    def __init__(self, state: _PrefixState, record: bool) -> None:
        self.state, self.record = state, record

    def update(self, keys: Tensor, values: Tensor, layer_idx: int, cache_kwargs: dict | None = None) -> tuple:
        """The keys and values attention uses at ``layer_idx`` (``[batch, heads, positions, head_dim]``)."""
        if self.record:
            self.state.keys[layer_idx], self.state.values[layer_idx] = keys, values
            return keys, values
        before_k, before_v = self.state.keys[layer_idx], self.state.values[layer_idx]
        return torch.cat([before_k, keys], dim=-2), torch.cat([before_v, values], dim=-2)


class DecoderStack:
    """A decoder-only causal LM driven layer by layer (``decoder_stack``)."""

    def __init__(self, inner: nn.Module, head: nn.Module, attention: str) -> None:
        self.inner, self.lm_head, self.attention = inner, head, attention
        self.layers = inner.layers
        self.depth = len(inner.layers)

    def embed(self, ids: Tensor) -> Tensor:
        """Token embeddings ``[1, T, d]``."""
        return self.inner.embed_tokens(ids)

    def run(self, hidden: Tensor, layers: range, offset: int, state: _PrefixState | None) -> Tensor:
        """``hidden`` (positions ``offset..``) through ``layers``, causally; with ``offset > 0`` the positions
        before attend through ``state``'s keys and values, with ``offset == 0`` and a ``state`` they are recorded."""
        if len(layers) == 0:
            return hidden
        length = hidden.shape[1]
        positions = torch.arange(offset, offset + length).unsqueeze(0)
        rotary = self.inner.rotary_emb(hidden, positions)
        cache = None if state is None else _PrefixCache(state, record=offset == 0)
        mask = None
        if offset > 0 or self.attention != "sdpa":  # sdpa alone is causal without a mask
            allowed = torch.ones(length, offset + length, dtype=torch.bool).tril(diagonal=offset)
            mask = torch.zeros(allowed.shape, dtype=hidden.dtype).masked_fill(~allowed, float("-inf"))[None, None]
        for i in layers:
            out = self.layers[i](
                hidden, attention_mask=mask, position_ids=positions, past_key_values=cache,
                cache_position=positions[0], position_embeddings=rotary,
            )  # fmt: skip
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def norm(self, hidden: Tensor) -> Tensor:
        """The final norm (per position)."""
        return self.inner.norm(hidden)

    def head(self, hidden: Tensor) -> Tensor:
        """Vocabulary logits of final-normed hidden states."""
        return self.lm_head(hidden)


def decoder_stack(model: nn.Module) -> DecoderStack | None:
    """The layer-by-layer view of a (LoRA-adapted) causal LM of a type in ``STACKED_MODEL_TYPES`` with sdpa or eager
    attention; ``None`` for any other model (the featurizer then calls the model whole)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    inner, head = getattr(base, "model", None), getattr(base, "lm_head", None)
    attention = getattr(config, "_attn_implementation", None)
    parts = ("embed_tokens", "layers", "norm", "rotary_emb")
    if getattr(config, "model_type", None) not in STACKED_MODEL_TYPES or attention not in ("sdpa", "eager"):
        return None
    if head is None or inner is None or not all(hasattr(inner, part) for part in parts):
        return None
    return DecoderStack(inner, head, attention)


def _unit(x: Tensor) -> Tensor:
    """``x / |x|`` with a correctly rounded norm (``math.fsum``), so it does not depend on summation order."""
    norm = math.sqrt(math.fsum(v * v for v in x.tolist()))
    return x / max(norm, torch.finfo(torch.float64).tiny)
