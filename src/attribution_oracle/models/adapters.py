"""One LoRA adapter as one safetensors blob: the weights plus the config needed to apply them.

The tensors are the adapter's state dict as ``peft.get_peft_model_state_dict`` returns it (keys such as
``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``). The safetensors header metadata
carries ``format`` (``attribution-oracle/lora@1``), ``base_model`` (the sha256 the adapter was trained
on) and ``lora_config`` (canonical JSON: ``r``, ``lora_alpha``, ``target_modules``, ``lora_dropout``,
``bias``). The blob's sha256 is what ModelRegistry stores as ``adapterHash``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from attribution_oracle.errors import UserError

__all__ = ["ADAPTER_FORMAT", "AdapterBlob", "AdapterFormatError", "pack_adapter", "unpack_adapter"]

#: Value of the ``format`` metadata key of every adapter blob this package writes.
ADAPTER_FORMAT = "attribution-oracle/lora@1"
_CONFIG_KEYS = ("r", "lora_alpha", "target_modules", "lora_dropout", "bias")


class AdapterFormatError(UserError):
    """The bytes are not an adapter blob this package can read."""


@dataclass(frozen=True)
class AdapterBlob:
    """A LoRA adapter read from its blob."""

    state_dict: dict[str, torch.Tensor]
    lora_config: dict
    base_model_hash: str

    @property
    def scaling(self) -> float:
        """``lora_alpha / r``: the factor peft applies to ``B @ A``."""
        return float(self.lora_config["lora_alpha"]) / float(self.lora_config["r"])


def _canonical_config(lora_config: dict) -> dict:
    missing = [key for key in _CONFIG_KEYS if key not in lora_config]
    if missing:
        raise AdapterFormatError(f"LoRA config lacks {', '.join(missing)}")
    config = {key: lora_config[key] for key in _CONFIG_KEYS}
    targets = config["target_modules"]
    config["target_modules"] = sorted(targets) if isinstance(targets, list | set | tuple) else targets
    return config


def pack_adapter(state_dict: dict[str, torch.Tensor], lora_config: dict, base_model_hash: str) -> bytes:
    """Serialise an adapter to the bytes of one safetensors blob (deterministic for equal inputs)."""
    if not state_dict:
        raise AdapterFormatError("an adapter needs at least one tensor")
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in sorted(state_dict.items())}
    metadata = {
        "format": ADAPTER_FORMAT,
        "base_model": base_model_hash,
        "lora_config": json.dumps(_canonical_config(lora_config), sort_keys=True, separators=(",", ":")),
    }
    return _canonical_header(save_safetensors(tensors, metadata=metadata))


def _canonical_header(data: bytes) -> bytes:
    """Rewrite the safetensors header as sorted, compact JSON: safetensors writes its metadata map in hash
    order, which varies between processes, and the blob's sha256 must not."""
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + header_len :]


def _read_metadata(data: bytes) -> dict:
    if len(data) < 8:
        raise AdapterFormatError("not a safetensors file (too short)")
    header_len = int.from_bytes(data[:8], "little")
    if header_len <= 0 or 8 + header_len > len(data):
        raise AdapterFormatError("not a safetensors file (bad header length)")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AdapterFormatError("not a safetensors file (unreadable header)") from None
    return header.get("__metadata__") or {}


def unpack_adapter(data: bytes) -> AdapterBlob:
    """Read an adapter blob written by ``pack_adapter``; raises ``AdapterFormatError`` on anything else."""
    metadata = _read_metadata(data)
    if metadata.get("format") != ADAPTER_FORMAT:
        raise AdapterFormatError(f"not an adapter blob (format {metadata.get('format')!r}, want {ADAPTER_FORMAT!r})")
    try:
        config = json.loads(metadata["lora_config"])
        base_hash = metadata["base_model"]
        tensors = load_safetensors(data)
    except (KeyError, json.JSONDecodeError, SafetensorError) as exc:
        raise AdapterFormatError(f"damaged adapter blob: {exc}") from None
    return AdapterBlob(state_dict=tensors, lora_config=_canonical_config(config), base_model_hash=base_hash)
