"""The thread that drives the batch: requests are admitted between decode steps (continuous batching)."""

from __future__ import annotations

import logging
import threading

from attribution_oracle.serving.adapter_cache import AdapterCache
from attribution_oracle.serving.continuous_batching import BatchGenerator, GenerationRequest

__all__ = ["Scheduler"]

log = logging.getLogger("attribution_oracle.serving")


class Scheduler:
    """Runs ``BatchGenerator.step`` on a thread while there is work; prefetches adapters as requests queue."""

    def __init__(self, engine: BatchGenerator, cache: AdapterCache | None = None) -> None:
        """Drive ``engine``; ``cache`` (optional) is asked to prefetch each queued request's adapter."""
        self.engine = engine
        self.cache = cache
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Queue a request (its adapter starts loading now); it joins the batch at the next step."""
        if self.cache is not None and request.adapter_hash is not None:
            self.cache.prefetch(request.adapter_hash)
        self.engine.submit(request)
        self._wake.set()
        return request

    def start(self) -> None:
        """Start the batch thread."""
        self._thread = threading.Thread(target=self._run, name="batch", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the current step; running and waiting requests fail with a shutdown error."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.engine.fail_all(RuntimeError("the server is shutting down"))

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self.engine.busy:
                self._wake.wait(0.1)
                self._wake.clear()
                continue
            try:
                self.engine.step()
            except Exception as exc:  # noqa: BLE001 - fail the batch, keep serving
                log.exception("batch step failed")
                self.engine.fail_all(exc)
