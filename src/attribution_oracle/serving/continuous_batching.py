"""Continuous batching of generation over one base model, each request with its own LoRA adapter.

The batch is a left-padded block: one key/value cache for all running rows (``kv_cache``: each layer a
preallocated buffer with room for the rows' remaining tokens: a decode step writes in place instead of
concatenating), a 2-D attention mask marking real tokens, per-row position ids (the count of real tokens
before each one). Every ``step`` (run under ``torch.inference_mode``):

1. requests waiting in the queue are admitted (up to ``max_batch`` rows): their prompts are prefilled in
   groups of similar length (one left-padded forward per group, each row with its adapter) and their
   key/value blocks are merged into the running cache (the shorter block is left-padded with masked zeros);
2. one decode forward runs for every row (its last token, its own position, its adapter);
3. rows that hit ``max_tokens`` or an end-of-sequence token leave the batch; columns that are padding for
   every remaining row are trimmed.

Greedy decoding by default (reproducible); ``temperature > 0`` samples with a generator seeded by the
request's ``seed``.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from transformers import Cache, DynamicCache

from attribution_oracle.serving.gqa_attention import use_folded_gqa
from attribution_oracle.serving.kv_cache import left_pad_mask, merged_cache, preallocated_cache, selected_rows_cache
from attribution_oracle.serving.multi_lora import LoraPool, LoraWeights

__all__ = ["BatchGenerator", "GenerationRequest", "stop_token_ids_of"]


def stop_token_ids_of(model: torch.nn.Module, tokenizer) -> frozenset[int]:
    """The end-of-sequence ids a generation stops at: the model's generation config's, plus the tokenizer's.

    They can differ: SmolLM2 converted from GGUF has ``eos_token_id = 2`` (``<|im_end|>``) in its generation
    config while its tokenizer names ``<|im_start|>`` (1); Hugging Face's ``generate`` stops at the former.
    """
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        eos = getattr(source, "eos_token_id", None) if source is not None else None
        if eos is not None:
            ids.update([eos] if isinstance(eos, int) else eos)
            break
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(int(i) for i in ids)


@dataclass(eq=False)
class GenerationRequest:
    """One generation: the prompt's token ids, its adapter and limits; filled in as it runs.

    ``max_tokens`` counts every generated token, a final stop token included (as Hugging Face's
    ``max_new_tokens`` does). Until ``min_tokens`` tokens were generated, the stop tokens cannot be chosen
    (their logits are set to -inf, Hugging Face's ``min_new_tokens`` rule).
    """

    prompt_ids: list[int]
    adapter_hash: str | None
    max_tokens: int = 16
    temperature: float = 0.0
    seed: int = 0
    stop_token_ids: frozenset[int] = frozenset()
    min_tokens: int = 0
    keep_logits: bool = False
    on_token: Callable[[int], None] | None = None
    on_finish: Callable[[], None] | None = None
    cancelled: bool = False
    output_ids: list[int] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    finish_reason: str | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)
    queued_at: float = field(default_factory=time.monotonic)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the request finished (or failed); returns False on timeout."""
        return self.done.wait(timeout)


class BatchGenerator:
    """Runs the batch; ``step`` is called by one thread (``Scheduler``) or directly by tests and benchmarks."""

    def __init__(
        self,
        model: torch.nn.Module,
        pool: LoraPool,
        adapters: Callable[[str], LoraWeights],
        pad_token_id: int,
        max_batch: int = 64,
        prefill_waste: float = 0.1,
        fold_gqa: bool = True,
    ) -> None:
        """``adapters`` returns the weights of an adapter hash (blocking until loaded).

        Admitted prompts are prefilled in groups of similar length, each group padding at most ``prefill_waste``
        of its tokens (1.0: one group); the prefill's cost grows with the padded tokens. ``fold_gqa`` switches
        an ``sdpa`` model to ``attention.folded_gqa_sdpa`` (no per-step copy of the cache for grouped heads).
        """
        if fold_gqa:
            use_folded_gqa(model)
        self.model = model
        self.pool = pool
        self.adapters = adapters
        self.pad_token_id = pad_token_id
        self.max_batch = max_batch
        self.prefill_waste = prefill_waste
        self.device = next(model.parameters()).device
        self.waiting: collections.deque[GenerationRequest] = collections.deque()
        self.rows: list[GenerationRequest] = []
        self._slots: list[int] = []
        self._cache: Cache | None = None
        self._mask: torch.Tensor | None = None  # [B, L]
        self._next_pos: torch.Tensor | None = None  # [B]
        self._last: torch.Tensor | None = None  # [B]
        self._generators: dict[int, torch.Generator] = {}
        self._lock = threading.Lock()
        self.tokens_generated = 0

    # --------------------------------------------------------------- queue

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Queue a request; it joins the batch at the next step."""
        if not request.prompt_ids:
            raise ValueError("a prompt needs at least one token")
        with self._lock:
            self.waiting.append(request)
        return request

    @property
    def busy(self) -> bool:
        """Whether anything is running or waiting."""
        return bool(self.rows or self.waiting)

    def step(self) -> None:
        """Admit waiting requests, then decode one token for every running row."""
        with torch.inference_mode():
            self._step()

    def _step(self) -> None:
        admitted = self._admit()
        for group in _length_groups(admitted, self.prefill_waste):
            self._prefill(group)
        self._retire()
        if self.rows:
            self._decode()
            self._retire()

    def run_until_idle(self) -> None:
        """Step until nothing is running or waiting (tests, benchmarks)."""
        while self.busy:
            self.step()

    # ----------------------------------------------------------- admission

    def _admit(self) -> list[tuple[GenerationRequest, int]]:
        admitted: list[tuple[GenerationRequest, int]] = []
        self.pool.pin(self._slots)
        while len(self.rows) + len(admitted) < self.max_batch:
            with self._lock:
                if not self.waiting:
                    break
                request = self.waiting.popleft()
            try:
                slot = 0
                if request.adapter_hash is not None:
                    slot = self.pool.load(self.adapters(request.adapter_hash))
                    self.pool.pin(self._slots + [s for _, s in admitted] + [slot])
            except Exception as exc:  # noqa: BLE001 - the request fails, the batch goes on
                self._finish(request, "error", exc)
                continue
            admitted.append((request, slot))
        return admitted

    def _forward(self, slots: list[int], **kwargs) -> torch.Tensor:
        with self.pool.batch(slots):
            out = self.model(use_cache=True, logits_to_keep=1, **kwargs)
        return out.logits[:, -1, :].float()

    def _prefill(self, admitted: list[tuple[GenerationRequest, int]]) -> None:
        width = max(len(r.prompt_ids) for r, _ in admitted)
        ids = torch.full((len(admitted), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(admitted), width), dtype=torch.long)
        for i, (request, _) in enumerate(admitted):
            n = len(request.prompt_ids)
            ids[i, width - n :] = torch.tensor(request.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        slots = [s for _, s in admitted]
        logits = self._forward(slots, input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
        requests = [r for r, _ in admitted]
        tokens = self._choose(requests, logits)
        self._merge(requests, slots, cache, mask, mask.sum(-1), tokens)
        self._emit(requests, tokens, logits)

    def _merge(
        self,
        requests: list[GenerationRequest],
        slots: list[int],
        cache: DynamicCache,
        mask: torch.Tensor,
        next_pos: torch.Tensor,
        last: torch.Tensor,
    ) -> None:
        room = max(r.max_tokens - len(r.output_ids) for r in self.rows + requests)
        if self._cache is None:
            self._cache = preallocated_cache([(x.keys, x.values) for x in cache.layers], room)
            self._mask, self._next_pos, self._last = mask, next_pos, last
        else:
            width = max(self._mask.shape[1], mask.shape[1])
            self._cache = merged_cache(self._cache, cache, width, room)
            self._mask = torch.cat([left_pad_mask(self._mask, width), left_pad_mask(mask, width)])
            self._next_pos = torch.cat([self._next_pos, next_pos])
            self._last = torch.cat([self._last, last])
        self.rows += requests
        self._slots += slots

    # --------------------------------------------------------------- decode

    def _decode(self) -> None:
        ones = torch.ones((len(self.rows), 1), dtype=self._mask.dtype, device=self.device)
        mask = torch.cat([self._mask, ones], dim=1)
        logits = self._forward(
            self._slots,
            input_ids=self._last[:, None],
            # the 4-D boolean mask HF would build from the 2-D one (one query per row): built here in one op,
            # which spares HF's per-step mask construction (vmap over positions)
            attention_mask=mask.bool()[:, None, None, :],
            position_ids=self._next_pos[:, None],
            past_key_values=self._cache,
        )
        tokens = self._choose(self.rows, logits)
        self._mask, self._next_pos, self._last = mask, self._next_pos + 1, tokens
        self._emit(self.rows, tokens, logits)

    def _choose(self, requests: list[GenerationRequest], logits: torch.Tensor) -> torch.Tensor:
        """The next token of each row (stop tokens masked in place below ``min_tokens``)."""
        for i, request in enumerate(requests):
            if request.stop_token_ids and len(request.output_ids) < request.min_tokens:
                logits[i, sorted(request.stop_token_ids)] = float("-inf")
        tokens = logits.argmax(-1)
        for i, request in enumerate(requests):
            if request.temperature > 0:
                generator = self._generators.get(id(request))
                if generator is None:
                    generator = self._generators[id(request)] = torch.Generator().manual_seed(request.seed)
                probs = torch.softmax(logits[i].cpu() / request.temperature, -1)
                tokens[i] = torch.multinomial(probs, 1, generator=generator)[0]
        return tokens

    def _emit(self, requests: list[GenerationRequest], tokens: torch.Tensor, logits: torch.Tensor) -> None:
        for i, (request, token) in enumerate(zip(requests, tokens.tolist(), strict=True)):
            request.output_ids.append(token)
            self.tokens_generated += 1
            if request.keep_logits:
                request.logits.append(logits[i].cpu())
            if request.on_token is not None:
                request.on_token(token)
            if request.cancelled:
                request.finish_reason = "cancelled"
            elif token in request.stop_token_ids:
                request.finish_reason = "stop"
            elif len(request.output_ids) >= request.max_tokens:
                request.finish_reason = "length"

    def _retire(self) -> None:
        keep = [i for i, r in enumerate(self.rows) if r.finish_reason is None]
        if len(keep) == len(self.rows):
            return
        for request in self.rows:
            if request.finish_reason is not None:
                self._finish(request, request.finish_reason)
        if not keep:
            self.rows, self._slots = [], []
            self._cache = self._mask = self._next_pos = self._last = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        mask = self._mask.index_select(0, index)
        used = mask.any(0).nonzero()
        start = int(used[0]) if len(used) else mask.shape[1]
        room = max(r.max_tokens - len(r.output_ids) for r in self.rows if r.finish_reason is None)
        self._cache = selected_rows_cache(self._cache, index, start, room)
        self._mask = mask[:, start:]
        self._next_pos = self._next_pos.index_select(0, index)
        self._last = self._last.index_select(0, index)
        self.rows = [self.rows[i] for i in keep]
        self._slots = [self._slots[i] for i in keep]

    def _finish(self, request: GenerationRequest, reason: str, error: BaseException | None = None) -> None:
        request.finish_reason = reason
        request.error = error
        self._generators.pop(id(request), None)
        request.done.set()
        if request.on_finish is not None:
            request.on_finish()

    def fail_all(self, error: BaseException) -> None:
        """Fail every running and waiting request (after an unexpected error in a step) and reset the batch."""
        with self._lock:
            waiting, self.waiting = list(self.waiting), collections.deque()
        for request in self.rows + waiting:
            self._finish(request, "error", error)
        self.rows, self._slots = [], []
        self._cache = self._mask = self._next_pos = self._last = None


def _length_groups(admitted: list[tuple[GenerationRequest, int]], waste: float, min_rows: int = 8) -> list[list]:
    """Split ``admitted`` (longest prompts first) so each group pads at most ``waste`` of its tokens.

    A group shorter than ``min_rows`` rows joins the previous one (each extra forward has a fixed cost).
    """
    ordered = sorted(admitted, key=lambda item: -len(item[0].prompt_ids))
    groups: list[list] = []
    for item in ordered:
        n = len(item[0].prompt_ids)
        if groups:
            group = groups[-1]
            width = len(group[0][0].prompt_ids)
            real = sum(len(r.prompt_ids) for r, _ in group) + n
            if len(group) < min_rows or (len(group) + 1) * width - real <= waste * (len(group) + 1) * width:
                group.append(item)
                continue
        groups.append([item])
    if len(groups) > 1 and len(groups[-1]) < min_rows:
        tail = groups.pop()
        groups[-1] += tail
    return groups
