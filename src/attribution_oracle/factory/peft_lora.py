"""LoRA on a base model with peft, and moving adapter weights between peft's forms.

Three forms of the same weights: the *trainable parameters* (``model.named_parameters()`` names, with the
adapter name, e.g. ``...q_proj.lora_A.default.weight``: what ``Attributor`` checkpoints use), and the
*adapter state dict* (``get_peft_model_state_dict`` keys, without it: what adapter blobs hold).
"""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from torch import nn

__all__ = ["adapter_state", "attach_lora", "load_adapter_state", "trainable_params"]


def attach_lora(model: nn.Module, lora_config: dict, seed: int) -> nn.Module:
    """Wrap ``model`` with fresh LoRA adapters, initialised from ``seed`` (the global RNG is restored after)."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        config = LoraConfig(task_type="CAUSAL_LM", **lora_config)
        return get_peft_model(model, config)
    finally:
        torch.random.set_rng_state(state)


def trainable_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable (LoRA) parameters, by parameter name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter state dict in peft's saved form (the tensors of an adapter blob)."""
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Load an adapter state dict into ``model`` and return it as trainable parameters."""
    result = set_peft_model_state_dict(model, state)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise ValueError(f"adapter keys do not fit the model: {unexpected[:3]}")
    return trainable_params(model)
