"""Citations: the retrieved contributions of an inference served with retrieval, as ``report show`` lists them.

A report entry served with ``serve --rag`` holds the retrieved contribution ids (rank order) next to the model's
scores. Each citation is the contribution, its contributor (from the chain's training data) and its share of the
inference's contributor pool: its weight in ``attribution.rag_shares.rag_scores(scores, retrieved)``, the same mixed
scores the exact integer split was made from (so it includes what the contribution also earned by attribution).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from attribution_oracle.attribution.rag_shares import rag_scores
from attribution_oracle.settlement.epoch_report import InferenceShares

__all__ = ["Citation", "citations"]


@dataclass(frozen=True)
class Citation:
    """One retrieved contribution of one inference."""

    rank: int
    contribution_id: str
    contributor: str | None
    share: float  # of the inference's contributor pool, in [0, 1]


def citations(inference: InferenceShares, contributors: Mapping[str, str]) -> list[Citation]:
    """The inference's citations in retrieval rank order (empty without retrieval).

    ``contributors`` maps contribution id to contributor address (None for an id the model does not have)."""
    if not inference.retrieved:
        return []
    mixed = rag_scores(inference.scores, inference.retrieved)
    total = math.fsum(mixed.values())
    return [
        Citation(rank, cid, contributors.get(cid), mixed.get(cid, 0.0) / total if total > 0 else 0.0)
        for rank, cid in enumerate(dict.fromkeys(inference.retrieved), start=1)
    ]
