"""The adapter blob format: round trip, determinism, and refusal of anything else."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import save as save_safetensors

from attribution_oracle.errors import UserError
from attribution_oracle.models import ADAPTER_FORMAT, AdapterFormatError, pack_adapter, unpack_adapter

CONFIG = {"r": 4, "lora_alpha": 8, "target_modules": ["v_proj", "q_proj"], "lora_dropout": 0.0, "bias": "none"}


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    return {
        f"{prefix}.lora_A.weight": torch.randn(4, 16, generator=generator),
        f"{prefix}.lora_B.weight": torch.randn(16, 4, generator=generator),
    }


def test_round_trip_keeps_weights_config_and_base_hash():
    weights = _weights()
    blob = unpack_adapter(pack_adapter(weights, {**CONFIG, "extra": 1}, "ab" * 32))
    assert blob.base_model_hash == "ab" * 32
    assert blob.lora_config == {**CONFIG, "target_modules": ["q_proj", "v_proj"]}
    assert blob.scaling == 2.0
    assert set(blob.state_dict) == set(weights)
    for name, tensor in weights.items():
        assert torch.equal(blob.state_dict[name], tensor)


def test_packing_is_deterministic_whatever_the_dict_order():
    weights = _weights()
    reordered = dict(reversed(list(weights.items())))
    config = {**CONFIG, "target_modules": ["q_proj", "v_proj"]}
    first = pack_adapter(weights, CONFIG, "00" * 32)
    assert hashlib.sha256(first).digest() == hashlib.sha256(pack_adapter(reordered, config, "00" * 32)).digest()
    assert first != pack_adapter(_weights(seed=1), CONFIG, "00" * 32)


@pytest.mark.parametrize(
    "data",
    [b"", b"short", b"\xff" * 8 + b"{}", (2).to_bytes(8, "little") + b"{x"],
    ids=["empty", "short", "bad-length", "bad-json"],
)
def test_garbage_is_refused_with_a_user_error(data):
    with pytest.raises(AdapterFormatError):
        unpack_adapter(data)


def test_a_plain_safetensors_file_is_not_an_adapter():
    data = save_safetensors({"x": torch.zeros(2)}, metadata={"format": "pt"})
    with pytest.raises(AdapterFormatError, match=ADAPTER_FORMAT):
        unpack_adapter(data)


def test_missing_config_keys_and_empty_adapters_are_refused():
    with pytest.raises(AdapterFormatError, match="lora_alpha"):
        pack_adapter(_weights(), {"r": 4}, "00" * 32)
    with pytest.raises(AdapterFormatError):
        pack_adapter({}, CONFIG, "00" * 32)
    assert issubclass(AdapterFormatError, UserError)
