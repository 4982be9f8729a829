"""Batched multi-adapter LoRA over one base model.

The base model's targeted ``nn.Linear`` modules are replaced by ``MultiLoraLinear`` wrappers that share one
``LoraPool``. The pool keeps the adapters of the current batches in *slots*: per wrapped module one stacked
tensor ``A`` of shape ``[capacity, r_max, in]`` and one ``B`` of shape ``[capacity, out, r_max]`` (``B`` is
pre-multiplied by the adapter's ``lora_alpha / r``). Slot 0 is all zeros (a row without an adapter).
Adapters of a smaller rank are zero-padded to ``r_max`` and an adapter that does not target a module has
zeros in that module's slot, so both contribute exactly nothing there.

Before each forward the caller sets the per-row slot indices (``LoraPool.batch``); every wrapped module then
adds the LoRA delta of each row's adapter to the base output, in one of two ways:

- ``gather``: gather each row's ``A`` and ``B`` by slot (``index_select``) and apply them with two ``bmm``;
  a fixed number of kernels per module whatever the number of adapters (Punica's BGMV idea). The gathered
  (transposed, contiguous) copies are kept while the batch composition (row slots, slot contents) is unchanged,
  so a run of decode steps gathers once: ``rows * r_max * (in + out)`` floats per wrapped module (SmolLM2,
  q/v rank 8, 64 rows: ~120 MB); on the tiny model this is ~20% of a decode step, on SmolLM2 within noise.
- ``segment``: one pair of matmuls per distinct adapter on its rows (S-LoRA/Punica SGMV idea, without
  custom kernels), which avoids the per-row copies but costs a Python-level loop over adapters.

``auto`` uses ``segment`` only when the batch has a single adapter (``segment_max_adapters=1``: one matmul
pair on all rows, no gathered copies) and ``gather`` otherwise. Measured on SmolLM2-135M (batch of 64, one
decode step, 1 thread): the LoRA part is small next to the base forward in both modes, and ``segment``'s
per-adapter Python loop (60 target modules x adapters) stops paying off as adapters multiply; the numbers
per adapter count are in BENCHMARKS.md (``benchmarks/serving.py`` prints ``ours gather``/``ours segment``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from attribution_oracle.errors import UserError
from attribution_oracle.models import AdapterBlob
from attribution_oracle.serving.quantised import Int8Linear, LowPrecisionLinear

__all__ = ["LoraPool", "LoraWeights", "MultiLoraLinear", "UnsupportedAdapterError"]

_PREFIX = "base_model.model."
_A_SUFFIX = ".lora_A.weight"
_B_SUFFIX = ".lora_B.weight"
MODES = ("auto", "gather", "segment")


class UnsupportedAdapterError(UserError):
    """An adapter this server cannot apply (unknown module, non-linear target, LoRA bias)."""


@dataclass(frozen=True)
class LoraWeights:
    """One adapter ready to serve: per module name ``(A [r, in], B * scaling [out, r])``."""

    adapter_hash: str
    rank: int
    modules: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def nbytes(self) -> int:
        """Bytes held by the adapter's tensors."""
        return sum(a.numel() * a.element_size() + b.numel() * b.element_size() for a, b in self.modules.values())

    @classmethod
    def from_blob(cls, adapter_hash: str, blob: AdapterBlob, dtype: torch.dtype = torch.float32) -> LoraWeights:
        """Convert an unpacked adapter blob (peft state-dict keys) into per-module ``(A, scaled B)`` pairs."""
        if blob.lora_config.get("bias", "none") != "none":
            raise UnsupportedAdapterError(f"adapter {adapter_hash[:12]} trains biases (bias != 'none'): unsupported")
        scaling = blob.scaling
        pairs: dict[str, dict[str, torch.Tensor]] = {}
        for key, tensor in blob.state_dict.items():
            if key.endswith(_A_SUFFIX):
                name, part = key[: -len(_A_SUFFIX)], "A"
            elif key.endswith(_B_SUFFIX):
                name, part = key[: -len(_B_SUFFIX)], "B"
            else:
                raise UnsupportedAdapterError(f"adapter {adapter_hash[:12]} has an unsupported tensor {key!r}")
            pairs.setdefault(name.removeprefix(_PREFIX), {})[part] = tensor
        modules: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        rank = 0
        for name, pair in sorted(pairs.items()):
            if set(pair) != {"A", "B"}:
                raise UnsupportedAdapterError(f"adapter {adapter_hash[:12]}: module {name} lacks lora_A or lora_B")
            a, b = pair["A"], pair["B"]
            if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[1]:
                raise UnsupportedAdapterError(f"adapter {adapter_hash[:12]}: bad LoRA shapes at {name}")
            rank = max(rank, a.shape[0])
            modules[name] = (a.to(dtype).contiguous(), (b.to(torch.float64) * scaling).to(dtype).contiguous())
        if not modules:
            raise UnsupportedAdapterError(f"adapter {adapter_hash[:12]} has no LoRA modules")
        return cls(adapter_hash=adapter_hash, rank=rank, modules=modules)


class _BatchState:
    """The per-row adapter slots of the forward in progress, shared by every wrapped module."""

    def __init__(self) -> None:
        self.row_slots: torch.Tensor | None = None  # set inside ``LoraPool.batch`` only
        self.composition: torch.Tensor | None = None
        self.segments: list[tuple[int, torch.Tensor]] = []
        self.use_gather = True
        self.key: tuple | None = None  # (row slots, pool generation, mode) of the current batch composition
        self.epoch = 0  # bumped when ``key`` changes: the wrappers' gathered weights are then stale


class MultiLoraLinear(nn.Module):
    """A base ``nn.Linear`` plus the LoRA deltas of each batch row's adapter."""

    def __init__(self, base: nn.Linear, state: _BatchState) -> None:
        """Wrap ``base``; ``state`` is the pool's shared batch state."""
        super().__init__()
        self.base = base
        self._state = state
        self.lora_a: torch.Tensor | None = None  # [capacity, r_max, in]
        self.lora_b: torch.Tensor | None = None  # [capacity, out, r_max]
        self._gathered: tuple[torch.Tensor, torch.Tensor] | None = None  # per row: A.T [in, r], B.T [r, out]
        self._gathered_epoch = -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``base(x)`` plus, for each row ``i`` with slot ``s``, ``x_i @ A_s.T @ B_s.T``."""
        out = self.base(x)
        state = self._state
        if self.lora_a is None or state.row_slots is None:
            return out
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        if state.use_gather:
            if self._gathered_epoch != state.epoch:  # once per batch composition, not once per step
                a = self.lora_a.index_select(0, state.row_slots).transpose(1, 2).contiguous()
                b = self.lora_b.index_select(0, state.row_slots).transpose(1, 2).contiguous()
                self._gathered, self._gathered_epoch = (a, b), state.epoch
            a, b = self._gathered
            delta = torch.bmm(torch.bmm(flat, a), b)
            return out + delta.reshape(out.shape)
        delta = torch.zeros(flat.shape[0], flat.shape[1], out.shape[-1], dtype=out.dtype, device=out.device)
        for slot, rows in state.segments:
            part = flat.index_select(0, rows)
            delta.index_copy_(0, rows, (part @ self.lora_a[slot].T) @ self.lora_b[slot].T)
        return out + delta.reshape(out.shape)


class LoraPool:
    """Wraps a model's targeted linears and holds the slots of the adapters being served."""

    def __init__(self, model: nn.Module, capacity: int = 8, mode: str = "auto", segment_max_adapters: int = 1):
        """Serve adapters over ``model`` (modified in place); ``capacity`` slots to start with (grows as needed).

        A model has one live pool: a new pool over the same model takes over the modules it wraps.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.model = model
        self.mode = mode
        self.segment_max_adapters = segment_max_adapters
        self.capacity = max(2, capacity)
        self.state = _BatchState()
        self.wrapped: dict[str, MultiLoraLinear] = {}
        self.slot_of: dict[str, int] = {}
        self._owner: list[str | None] = [None] * self.capacity
        self._clock = 0
        self._last_used: list[int] = [0] * self.capacity
        self._pinned: set[int] = set()
        self._generation = 0  # bumped whenever slot contents change
        param = next(model.parameters())
        self.dtype, self.device = param.dtype, param.device

    # ------------------------------------------------------------- modules

    def _wrap(self, name: str) -> MultiLoraLinear:
        if name in self.wrapped:
            return self.wrapped[name]
        try:
            module = self.model.get_submodule(name)
        except AttributeError:
            raise UnsupportedAdapterError(f"the base model has no module {name!r}") from None
        if isinstance(module, MultiLoraLinear):  # wrapped by an earlier pool: this pool takes the model over
            module = module.base
        if not isinstance(module, nn.Linear | LowPrecisionLinear | Int8Linear):
            raise UnsupportedAdapterError(f"LoRA on {name!r} ({type(module).__name__}) is unsupported: linears only")
        parent_name, _, child = name.rpartition(".")
        wrapper = MultiLoraLinear(module, self.state)
        setattr(self.model.get_submodule(parent_name) if parent_name else self.model, child, wrapper)
        self.wrapped[name] = wrapper
        return wrapper

    def _ensure_tensors(self, wrapper: MultiLoraLinear, rank: int) -> None:
        base = wrapper.base
        if wrapper.lora_a is not None and wrapper.lora_a.shape[0] == self.capacity and wrapper.lora_a.shape[1] >= rank:
            return
        old_a, old_b = wrapper.lora_a, wrapper.lora_b
        r = max(rank, old_a.shape[1] if old_a is not None else 0)
        kw = {"dtype": self.dtype, "device": self.device}
        wrapper.lora_a = torch.zeros(self.capacity, r, base.in_features, **kw)
        wrapper.lora_b = torch.zeros(self.capacity, base.out_features, r, **kw)
        if old_a is not None:
            wrapper.lora_a[: old_a.shape[0], : old_a.shape[1]] = old_a
            wrapper.lora_b[: old_b.shape[0], :, : old_b.shape[2]] = old_b

    # --------------------------------------------------------------- slots

    def _grow(self) -> None:
        self.capacity *= 2
        self._owner += [None] * (len(self._owner))
        self._last_used += [0] * (len(self._last_used))
        for wrapper in self.wrapped.values():
            self._ensure_tensors(wrapper, 0)

    def _free_slot(self) -> int:
        free = [s for s in range(1, self.capacity) if self._owner[s] is None]
        if free:
            return free[0]
        idle = [s for s in range(1, self.capacity) if s not in self._pinned]
        if not idle:
            self._grow()
            return self._free_slot()
        slot = min(idle, key=lambda s: self._last_used[s])
        del self.slot_of[self._owner[slot]]
        self._owner[slot] = None
        return slot

    def load(self, weights: LoraWeights) -> int:
        """Put ``weights`` in a slot (reusing the least recently used idle slot) and return the slot."""
        self._clock += 1
        if weights.adapter_hash in self.slot_of:
            slot = self.slot_of[weights.adapter_hash]
            self._last_used[slot] = self._clock
            return slot
        for name in weights.modules:  # validate every module before changing anything
            if name not in self.wrapped:
                self._check_module(name)
        slot = self._free_slot()
        for name in weights.modules:
            self._wrap(name)
        for name, wrapper in self.wrapped.items():
            pair = weights.modules.get(name)
            self._ensure_tensors(wrapper, pair[0].shape[0] if pair else 0)
            wrapper.lora_a[slot].zero_()
            wrapper.lora_b[slot].zero_()
            if pair is not None:
                a, b = pair
                if a.shape[1] != wrapper.base.in_features or b.shape[0] != wrapper.base.out_features:
                    raise UnsupportedAdapterError(f"adapter {weights.adapter_hash[:12]}: {name} shape mismatch")
                wrapper.lora_a[slot, : a.shape[0]] = a.to(self.device, self.dtype)
                wrapper.lora_b[slot, :, : b.shape[1]] = b.to(self.device, self.dtype)
        self._generation += 1
        self._owner[slot] = weights.adapter_hash
        self.slot_of[weights.adapter_hash] = slot
        self._last_used[slot] = self._clock
        return slot

    def _check_module(self, name: str) -> None:
        try:
            module = self.model.get_submodule(name)
        except AttributeError:
            raise UnsupportedAdapterError(f"the base model has no module {name!r}") from None
        if not isinstance(module, nn.Linear | LowPrecisionLinear | Int8Linear | MultiLoraLinear):
            raise UnsupportedAdapterError(f"LoRA on {name!r} ({type(module).__name__}) is unsupported: linears only")

    def pin(self, slots: Sequence[int]) -> None:
        """Mark ``slots`` as in use by the running batch (they will not be recycled)."""
        self._pinned = {s for s in slots if s > 0}

    @property
    def slot_bytes(self) -> int:
        """Bytes held by the slot tensors of every wrapped module."""
        return sum(w.lora_a.nbytes + w.lora_b.nbytes for w in self.wrapped.values() if w.lora_a is not None)

    # -------------------------------------------------------------- batches

    @contextmanager
    def batch(self, row_slots: Sequence[int]) -> Iterator[None]:
        """Within the block, row ``i`` of every forward uses the adapter in slot ``row_slots[i]`` (0: none)."""
        state = self.state
        key = (tuple(row_slots), self._generation, self.mode)
        if key != state.key:  # a new composition: recompute the row slots and segments (reused while unchanged)
            slots = torch.tensor(key[0], dtype=torch.long, device=self.device)
            distinct = sorted({s for s in key[0] if s > 0})
            if self.mode == "gather":
                use_gather = True
            elif self.mode == "segment":
                use_gather = False
            else:
                use_gather = len(distinct) > self.segment_max_adapters
            state.composition = slots if distinct else None
            state.use_gather = use_gather
            state.segments = [] if use_gather else [(s, (slots == s).nonzero().flatten()) for s in distinct]
            state.key, state.epoch = key, state.epoch + 1
        state.row_slots = state.composition
        try:
            yield
        finally:
            state.row_slots = None  # no LoRA outside the block
