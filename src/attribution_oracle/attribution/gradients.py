"""Per-example gradients with ``torch.func`` (vmap over grad), restricted to a parameter subset."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap


def select_parameters(model: nn.Module, names: Iterable[str] | Callable[[str], bool] | None = None) -> list[str]:
    """Names of the parameters to attribute through, in the model's order.

    ``None`` means the trainable ones (``requires_grad``), i.e. the LoRA adapters of a peft model; a
    callable filters by name; an iterable lists names exactly (unknown names are an error).
    """
    all_params = dict(model.named_parameters())
    if names is None:
        chosen = [n for n, p in all_params.items() if p.requires_grad]
    elif callable(names):
        chosen = [n for n in all_params if names(n)]
    else:
        wanted = list(names)
        unknown = [n for n in wanted if n not in all_params]
        if unknown:
            raise ValueError(f"unknown parameter names: {unknown[:3]}")
        chosen = [n for n in all_params if n in set(wanted)]
    if not chosen:
        raise ValueError("no parameters selected for attribution")
    return chosen


class _Bound(nn.Module):
    """Wraps ``fn(model, batch)`` as a module so ``functional_call`` can swap the model's parameters."""

    def __init__(self, model: nn.Module, fn: Callable[[nn.Module, Any], Tensor]) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, batch: Any) -> Tensor:
        return self.fn(self.model, batch)


def _map(data: Any, f: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(data, Tensor):
        return f(data)
    if isinstance(data, dict):
        return {k: f(v) for k, v in data.items()}
    return type(data)(f(v) for v in data)


def parameter_values(model: nn.Module, names: list[str]) -> dict[str, Tensor]:
    """Detached current values of the named parameters."""
    all_params = dict(model.named_parameters())
    return {n: all_params[n].detach() for n in names}


def per_example_grads(
    model: nn.Module, fn: Callable[[nn.Module, Any], Tensor], names: list[str], batch: Any
) -> dict[str, Tensor]:
    """Gradient of ``fn`` (a per-example scalar) for every example of ``batch``: ``{name: [B, *shape]}``."""
    bound = _Bound(model, fn)
    params = {f"model.{n}": v for n, v in parameter_values(model, names).items()}

    def single(p: dict[str, Tensor], example: Any) -> Tensor:
        return functional_call(bound, p, (_map(example, lambda t: t.unsqueeze(0)),)).sum()

    grads = vmap(grad(single), in_dims=(None, 0), randomness="same")(params, batch)
    return {n: grads[f"model.{n}"] for n in names}


def per_example_output_jacobians(
    model: nn.Module, fn: Callable[[nn.Module, Any], Tensor], names: list[str], batch: Any
) -> dict[str, Tensor]:
    """Jacobian of the outputs ``fn`` (``[C]`` per example) for every example: ``{name: [B, C, *shape]}``."""
    bound = _Bound(model, fn)
    params = {f"model.{n}": v for n, v in parameter_values(model, names).items()}

    def single(p: dict[str, Tensor], example: Any) -> Tensor:
        return functional_call(bound, p, (_map(example, lambda t: t.unsqueeze(0)),)).squeeze(0)

    jac = vmap(jacrev(single), in_dims=(None, 0), randomness="same")(params, batch)
    return {n: jac[f"model.{n}"] for n in names}


def flatten(grads: dict[str, Tensor], names: list[str], lead: int = 1) -> Tensor:
    """Concatenate per-example gradients into ``[..., p]`` (the first ``lead`` dims kept)."""
    parts = [grads[n].reshape(*grads[n].shape[:lead], -1) for n in names]
    return torch.cat(parts, dim=-1)
