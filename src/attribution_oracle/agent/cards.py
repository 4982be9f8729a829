"""Agent cards (after ERC-8004's agent registration file): name, endpoints and models, content-addressed.

The card is canonical JSON stored in the blob store; the vault records its ``sha256://<hash>`` URI.
"""

from __future__ import annotations

import json

from attribution_oracle.errors import UserError
from attribution_oracle.store.blobs import BlobStore

__all__ = ["CARD_TYPE", "build_card", "store_card", "load_card"]

CARD_TYPE = "attribution-oracle/agent-card@1"


def build_card(name: str, description: str, endpoints: list[str], models: list[int]) -> dict:
    """The card of an agent called ``name`` that calls ``models`` (ids) and answers on ``endpoints``."""
    if not name.strip():
        raise UserError("an agent card needs a name")
    return {
        "type": CARD_TYPE,
        "name": name,
        "description": description,
        "endpoints": list(endpoints),
        "models": sorted({int(m) for m in models}),
    }


def store_card(store: BlobStore, card: dict) -> str:
    """Store ``card`` as canonical JSON; returns its ``sha256://`` URI."""
    data = json.dumps(card, sort_keys=True, separators=(",", ":")).encode()
    return "sha256://" + store.put_bytes(data)


def load_card(store: BlobStore, uri: str) -> dict | None:
    """The card behind a ``sha256://`` URI, or None when it is not in this store (or not ours)."""
    if not uri.startswith("sha256://"):
        return None
    digest = uri.removeprefix("sha256://")
    if not store.has(digest):
        return None
    return json.loads(store.get(digest))
