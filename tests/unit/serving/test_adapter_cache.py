"""Adapter cache: integrity, base model check, LRU eviction under a byte budget, prefetch."""

from __future__ import annotations

import os

import pytest
import torch
from random_adapters import random_adapter_blob

from attribution_oracle.models import load_base_model
from attribution_oracle.serving.adapter_cache import AdapterCache, AdapterError
from attribution_oracle.store.blobs import BlobStore


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(1)
    return load_base_model("tiny:0")


@pytest.fixture
def store(tmp_path):
    return BlobStore(tmp_path / "blobs")


def test_lru_eviction_under_a_small_budget(base, store):
    hashes = [store.put_bytes(random_adapter_blob(base.model, base.sha256, 4, seed=i)) for i in range(4)]
    events: list[str] = []
    one = AdapterCache(store, base.sha256, memory_budget=1 << 40).get(hashes[0]).nbytes
    cache = AdapterCache(store, base.sha256, memory_budget=2 * one + one // 2, on_event=events.append)
    cache.get(hashes[0])
    cache.get(hashes[1])
    cache.get(hashes[0])  # hit: hashes[0] becomes the most recently used
    cache.get(hashes[2])  # evicts hashes[1], the least recently used
    assert cache.cached() == [hashes[0], hashes[2]]
    assert cache.bytes == 2 * one <= cache.memory_budget
    assert events == ["miss", "miss", "hit", "miss", "evict"]
    cache.get(hashes[1])  # loads again, evicts hashes[0]
    assert cache.cached() == [hashes[2], hashes[1]]
    cache.close()


def test_prefetch_loads_in_the_background(base, store):
    digest = store.put_bytes(random_adapter_blob(base.model, base.sha256, 4, seed=1))
    cache = AdapterCache(store, base.sha256)
    weights = cache.prefetch(digest).result(timeout=30)
    assert digest in cache and cache.get(digest) is weights
    cache.close()


def test_tampered_adapter_is_refused(base, store):
    digest = store.put_bytes(random_adapter_blob(base.model, base.sha256, 4, seed=2))
    path = store.path_of(digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    cache = AdapterCache(store, base.sha256)
    with pytest.raises(AdapterError, match="tampered"):
        cache.get(digest)
    with pytest.raises(AdapterError, match="tampered"):
        cache.prefetch(digest).result(timeout=30)
    assert digest not in cache
    cache.close()


def test_missing_other_base_and_oversized_adapters_are_refused(base, store):
    cache = AdapterCache(store, base.sha256, memory_budget=100)
    with pytest.raises(AdapterError, match="not in the blob store"):
        cache.get("ab" * 32)
    other = store.put_bytes(random_adapter_blob(base.model, "cd" * 32, 4, seed=3))
    with pytest.raises(AdapterError, match="trained on base model cdcdcdcd"):
        cache.get(other)
    mine = store.put_bytes(random_adapter_blob(base.model, base.sha256, 4, seed=3))
    with pytest.raises(AdapterError, match="more than the memory budget"):
        cache.get(mine)
    cache.close()
