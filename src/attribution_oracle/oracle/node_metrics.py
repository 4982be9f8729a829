"""Prometheus metrics of one node (its own registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """Lag, pending inferences, attribution latency, epochs, disagreements, RPC errors."""

    def __init__(self) -> None:
        """Create the metrics in a fresh registry."""
        self.registry = CollectorRegistry()
        r = self.registry
        self.head = Gauge("oracle_chain_head_block", "Latest chain block seen", registry=r)
        self.cursor = Gauge("oracle_cursor_block", "Last confirmed block processed", registry=r)
        self.lag = Gauge("oracle_lag_blocks", "Chain head minus the last processed block", registry=r)
        self.pending = Gauge("oracle_inferences_pending", "Served on-chain, not yet in an accepted report", registry=r)
        self.unattributed = Gauge("oracle_inferences_unattributed", "Served on-chain, not yet attributed", registry=r)
        self.attributed = Counter("oracle_inferences_attributed", "Inferences attributed by this node", registry=r)
        self.attribution_seconds = Histogram(
            "oracle_attribution_seconds",
            "Scoring and allocation time per inference",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
            registry=r,
        )
        self.attribution_delay = Histogram(
            "oracle_attribution_delay_seconds",
            "From seeing a confirmed InferenceServed to its attribution",
            buckets=(0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.latest_epoch = Gauge("oracle_latest_epoch", "Latest epoch accepted on-chain", registry=r)
        self.epochs_built = Counter("oracle_epochs_built", "Epoch reports built and signed by this node", registry=r)
        self.epochs_submitted = Counter("oracle_epochs_submitted", "Epoch reports this node submitted", registry=r)
        self.submit_retries = Counter(
            "oracle_submit_retries", "Report transactions sent again after a revert or loss", registry=r
        )
        self.disagreements = Counter("oracle_disagreements", "Peer signatures over a different report", registry=r)
        self.rpc_errors = Counter("oracle_rpc_errors", "Failed steps (RPC or source errors), retried", registry=r)
        self.missing_records = Counter(
            "oracle_missing_served_records", "Served inferences settled by the equal fallback (no record)", registry=r
        )
        self.reorgs = Counter("oracle_reorgs", "Reorgs detected and rolled back", registry=r)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
