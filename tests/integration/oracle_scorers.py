"""TEST-ONLY scorers for oracle nodes, until the factory's real scorer is wired in by the lead.

``ContentHashScorer`` derives each contribution's score from the sha256 of the served record's token ids, so
scores are deterministic in the record content (every node computes the same), vary per inference and include
negative ones. ``wrong_provider`` salts the hash: a node using it computes a different (wrong) report.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from attribution_oracle.oracle.scoring import ScorerContext


class ContentHashScorer:
    """Test-only: scores from a hash of the prompt and output token ids (not an attribution method)."""

    def __init__(self, contribution_ids: list[str], salt: bytes = b"") -> None:
        self.ids = contribution_ids
        self.salt = salt

    def scores(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        digest = hashlib.sha256(self.salt + repr((tuple(prompt_token_ids), tuple(output_token_ids))).encode()).digest()
        return {cid: (digest[i % 32] - 80) / 64.0 for i, cid in enumerate(self.ids)}


def content_provider(context: ScorerContext):
    """scorer_for(model_id) with the test-only content-hash scorer."""
    return lambda model_id: ContentHashScorer([c.id for c in context.training_data(model_id)[0]])


def wrong_provider(context: ScorerContext):
    """A faulty node's scorer: salted, so its reports differ from the others'."""
    return lambda model_id: ContentHashScorer([c.id for c in context.training_data(model_id)[0]], salt=b"wrong")
