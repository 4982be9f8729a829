"""The explorer: a read-only web app over the catalog, the content store, the epoch reports and the chain.

``Explorer`` (``explorer.explorer_state``) keeps an in-memory ledger of inferences, epochs and earnings, refreshed from
the chain's events by a background poller; ``create_app`` (``explorer.explorer_app``) serves it as server-rendered
pages (FastAPI + Jinja2) with vendored Chart.js. Nothing here sends a transaction or writes the catalog.
"""

from attribution_oracle.explorer.explorer_state import Explorer
from attribution_oracle.explorer.ledger import Ledger

__all__ = ["Explorer", "Ledger"]
