"""Adapters loaded just in time from the blob store, verified, and kept in an LRU bounded by bytes.

``get(adapter_hash)`` returns the adapter's ``LoraWeights``: from memory if cached, else it reads the blob
named by the on-chain ``adapterHash``, checks that the bytes hash to it (a tampered blob is refused), unpacks
it, refuses an adapter trained on another base model, and caches it, evicting least-recently-used adapters
until the cached tensors fit in ``memory_budget`` bytes. ``prefetch`` starts the same work on a background
thread when a request is queued, so the adapter is usually ready when the request joins the batch.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from attribution_oracle.errors import UserError
from attribution_oracle.models import unpack_adapter
from attribution_oracle.serving.multi_lora import LoraWeights
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.store_errors import BlobNotFoundError, CorruptBlobError

__all__ = ["AdapterCache", "AdapterError"]


class AdapterError(UserError):
    """An adapter that cannot be served: missing, tampered, for another base model, or too big."""


class AdapterCache:
    """LRU of unpacked adapters keyed by their sha256, bounded by ``memory_budget`` bytes of tensors."""

    def __init__(
        self,
        store: BlobStore,
        base_hash: str,
        memory_budget: int = 1 << 30,
        dtype: torch.dtype = torch.float32,
        on_event=None,
    ) -> None:
        """``on_event(name)`` is called with ``hit``, ``miss``, ``evict`` (metrics)."""
        self.store = store
        self.base_hash = base_hash
        self.memory_budget = memory_budget
        self.dtype = dtype
        self._entries: OrderedDict[str, LoraWeights] = OrderedDict()
        self._loading: dict[str, Future] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="adapter-prefetch")
        self._on_event = on_event or (lambda name: None)
        self.bytes = 0
        self.last_load_ms = 0.0

    def __contains__(self, adapter_hash: str) -> bool:
        with self._lock:
            return adapter_hash in self._entries

    def cached(self) -> list[str]:
        """Cached adapter hashes, least recently used first."""
        with self._lock:
            return list(self._entries)

    def prefetch(self, adapter_hash: str) -> Future:
        """Start loading ``adapter_hash`` in the background (no-op if cached or already loading)."""
        with self._lock:
            if adapter_hash in self._entries:
                done: Future = Future()
                done.set_result(self._entries[adapter_hash])
                return done
            future = self._loading.get(adapter_hash)
            if future is None:
                future = self._loading[adapter_hash] = self._pool.submit(self._load_and_insert, adapter_hash)
            return future

    def get(self, adapter_hash: str) -> LoraWeights:
        """The adapter's weights, loading (and verifying) it if needed; raises ``AdapterError``."""
        with self._lock:
            weights = self._entries.get(adapter_hash)
            if weights is not None:
                self._entries.move_to_end(adapter_hash)
                self._on_event("hit")
                return weights
            future = self._loading.get(adapter_hash)
        if future is not None:
            return future.result()
        return self._load_and_insert(adapter_hash)

    def close(self) -> None:
        """Stop the prefetch thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------ internals

    def _load_and_insert(self, adapter_hash: str) -> LoraWeights:
        try:
            started = time.perf_counter()
            weights = self.load(adapter_hash)
            self.last_load_ms = (time.perf_counter() - started) * 1000
            self._on_event("miss")
            self._insert(weights)
            return weights
        finally:
            with self._lock:
                self._loading.pop(adapter_hash, None)

    def load(self, adapter_hash: str) -> LoraWeights:
        """Read, verify and unpack one adapter without caching it."""
        try:
            data = self.store.get(adapter_hash)
        except BlobNotFoundError:
            raise AdapterError(f"adapter {adapter_hash} is not in the blob store {self.store.root}") from None
        except CorruptBlobError as exc:
            raise AdapterError(
                f"adapter blob {adapter_hash} is tampered: its bytes do not hash to the on-chain adapterHash ({exc})"
            ) from None
        blob = unpack_adapter(data)
        if blob.base_model_hash != self.base_hash:
            raise AdapterError(
                f"adapter {adapter_hash[:16]} was trained on base model {blob.base_model_hash[:16]}, "
                f"but this server runs base model {self.base_hash[:16]}"
            )
        return LoraWeights.from_blob(adapter_hash, blob, self.dtype)

    def _insert(self, weights: LoraWeights) -> None:
        size = weights.nbytes
        if size > self.memory_budget:
            raise AdapterError(
                f"adapter {weights.adapter_hash[:16]} needs {size} bytes, more than the memory budget "
                f"({self.memory_budget} bytes)"
            )
        with self._lock:
            if weights.adapter_hash in self._entries:
                return
            while self._entries and self.bytes + size > self.memory_budget:
                _, evicted = self._entries.popitem(last=False)
                self.bytes -= evicted.nbytes
                self._on_event("evict")
            self._entries[weights.adapter_hash] = weights
            self.bytes += size
