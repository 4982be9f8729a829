"""Prometheus metrics of one server (own registry, so several servers can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServingMetrics"]


class ServingMetrics:
    """Counters, gauges and histograms exposed at ``GET /metrics``."""

    def __init__(self) -> None:
        """Create the metrics in a fresh registry."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("openlora_requests", "Completion requests by outcome", ["outcome"], registry=r)
        self.tokens = Counter("openlora_generated_tokens", "Generated tokens", registry=r)
        self.adapter_events = Counter(
            "openlora_adapter_cache", "Adapter cache hits, misses, evictions", ["event"], registry=r
        )
        self.adapter_bytes = Gauge("openlora_adapter_cache_bytes", "Bytes of cached adapters", registry=r)
        self.batch_rows = Gauge("openlora_batch_rows", "Rows in the running batch", registry=r)
        self.waiting = Gauge("openlora_waiting_requests", "Requests queued for the batch", registry=r)
        self.mark_served = Counter("openlora_mark_served", "markServed outcomes (receipts)", ["event"], registry=r)
        self.mark_pending = Gauge("openlora_mark_served_pending", "Receipts waiting for markServed", registry=r)
        self.latency = Histogram("openlora_request_seconds", "Completion latency", registry=r)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
