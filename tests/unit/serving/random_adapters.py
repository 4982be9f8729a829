"""Random LoRA adapters in the blob format, for the serving tests and benchmarks (no training involved).

Test scaffolding, so it lives beside the tests: pytest puts this folder on ``sys.path`` (import it by name), and
``benchmarks/serving.py`` and ``benchmarks/agents.py`` add it to theirs.
"""

from __future__ import annotations

import torch
from torch import nn

from attribution_oracle.models import pack_adapter

__all__ = ["random_adapter_blob", "random_lora_state_dict"]


def random_lora_state_dict(
    model: nn.Module, rank: int, target_modules: list[str], seed: int, scale: float = 0.05
) -> dict[str, torch.Tensor]:
    """A peft-style LoRA state dict (``base_model.model.<module>.lora_A/B.weight``) with random A and B.

    Every ``nn.Linear`` whose last name component is in ``target_modules`` gets a pair; B is random too (peft
    initialises it to zero), so the adapter changes the model's outputs.
    """
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in target_modules:
            base_name = name.removesuffix(".base")
            key = f"base_model.model.{base_name}"
            state[f"{key}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) * scale
            state[f"{key}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator) * scale
    return state


def random_adapter_blob(
    model: nn.Module,
    base_hash: str,
    rank: int = 4,
    target_modules: tuple[str, ...] = ("q_proj", "v_proj"),
    seed: int = 0,
    alpha: int | None = None,
) -> bytes:
    """The bytes of a random adapter blob for ``model`` (see ``random_lora_state_dict``)."""
    state = random_lora_state_dict(model, rank, list(target_modules), seed)
    config = {
        "r": rank,
        "lora_alpha": alpha if alpha is not None else 2 * rank,
        "target_modules": sorted(target_modules),
        "lora_dropout": 0.0,
        "bias": "none",
    }
    return pack_adapter(state, config, base_hash)
