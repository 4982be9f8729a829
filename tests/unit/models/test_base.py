"""Base models load offline: the tiny test model is reproducible and its tokenizer is byte-level."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.models import BaseModelError, load_base_model, tiny_base_spec
from attribution_oracle.models.base import byte_level_tokenizer, directory_sha256


def test_tiny_model_is_reproducible_from_its_seed_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    first, again, other = (load_base_model(tiny_base_spec(s)) for s in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert first.sha256 == again.sha256 != other.sha256
    assert first.describe()["config"]["vocab_size"] == 258
    ids = torch.tensor([[104, 105, 256]])
    with torch.no_grad():
        assert torch.equal(first.model(ids).logits, again.model(ids).logits)


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=40))
def test_byte_level_tokenizer_maps_text_to_its_utf8_bytes_and_back(text):
    tokenizer = _TOKENIZER
    ids = tokenizer(text)["input_ids"]
    assert ids == list(text.encode("utf-8"))
    assert tokenizer.decode(ids) == text


_TOKENIZER = byte_level_tokenizer()


def test_special_tokens_sit_after_the_bytes():
    assert _TOKENIZER.eos_token_id == 256
    assert _TOKENIZER.pad_token_id == 257


def test_a_local_directory_round_trips_with_a_content_hash(tmp_path):
    tiny = load_base_model("tiny:7")
    tiny.model.save_pretrained(tmp_path / "m")
    tiny.tokenizer.save_pretrained(tmp_path / "m")
    loaded = load_base_model(str(tmp_path / "m"))
    assert loaded.sha256 == directory_sha256(tmp_path / "m")
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.allclose(loaded.model(ids).logits, tiny.model(ids).logits)
    (tmp_path / "m" / "config.json").write_text((tmp_path / "m" / "config.json").read_text() + " ")
    assert directory_sha256(tmp_path / "m") != loaded.sha256


@pytest.mark.parametrize("spec", ["tiny:x", "/nonexistent/model", "gpt-5"])
def test_unknown_specs_are_user_errors(spec):
    with pytest.raises(BaseModelError):
        load_base_model(spec)
