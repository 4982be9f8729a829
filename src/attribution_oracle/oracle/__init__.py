"""The attribution oracle daemon: from every paid, served inference to claimable rewards, m-of-n.

Construct an ``OracleNode`` (``node.py``) and ``run()`` it, or use ``attribution-oracle oracle run``.
"""

from attribution_oracle.oracle.oracle_node import NodeConfig, OracleNode, node_status
from attribution_oracle.oracle.scoring import Scorer, ScorerContext, load_provider
from attribution_oracle.oracle.served_sources import HttpServedRecords, StoreServedRecords, open_source

__all__ = [
    "HttpServedRecords",
    "NodeConfig",
    "OracleNode",
    "Scorer",
    "ScorerContext",
    "StoreServedRecords",
    "load_provider",
    "node_status",
    "open_source",
]
