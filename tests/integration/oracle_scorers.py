"""TEST-ONLY scorers for oracle nodes (the nodes' real scorer is the default `--scorer factory`).

``wrong_provider`` is the one fault the tests need: a node that signs a wrong report. It wraps the real factory
scorer and perturbs every score by a salted hash of the record's token ids, so its reports differ from the
honest nodes' while it still runs the real attribution.

``content_provider`` (``ContentHashScorer``) does no model compute at all: scores from a hash of the token ids.
It is kept only so ``benchmarks/oracle.py`` can measure the chain and bookkeeping path without attribution
(the "bookkeeping only" row next to the real scorer); no test uses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from attribution_oracle.oracle.scoring import Scorer, ScorerContext, factory_provider


def _salted(salt: bytes, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> bytes:
    return hashlib.sha256(salt + repr((tuple(prompt_token_ids), tuple(output_token_ids))).encode()).digest()


class ContentHashScorer:
    """Test-only: scores from a hash of the prompt and output token ids (not an attribution method)."""

    def __init__(self, contribution_ids: list[str], salt: bytes = b"") -> None:
        self.ids = contribution_ids
        self.salt = salt

    def scores(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        digest = _salted(self.salt, prompt_token_ids, output_token_ids)
        return {cid: (digest[i % 32] - 80) / 64.0 for i, cid in enumerate(self.ids)}


class PerturbedScorer:
    """Test-only faulty node: the real scorer's scores, each shifted by a salted hash (a wrong report)."""

    def __init__(self, inner: Scorer, contribution_ids: list[str], salt: bytes = b"wrong") -> None:
        self.inner = inner
        self.ids = contribution_ids
        self.salt = salt

    def scores(self, prompt_token_ids: Sequence[int], output_token_ids: Sequence[int]) -> dict[str, float]:
        real = self.inner.scores(prompt_token_ids, output_token_ids)
        digest = _salted(self.salt, prompt_token_ids, output_token_ids)
        return {cid: real.get(cid, 0.0) + (digest[i % 32] + 1) / 64.0 for i, cid in enumerate(self.ids)}


def content_provider(context: ScorerContext):
    """Benchmark-only ``scorer_for(model_id)``: the content-hash scorer (no attribution compute)."""
    return lambda model_id: ContentHashScorer([c.id for c in context.training_data(model_id)[0]])


def wrong_provider(context: ScorerContext):
    """A faulty node's ``scorer_for``: the real factory scorer, perturbed so its reports differ from the others'."""
    real = factory_provider(context)
    return lambda model_id: PerturbedScorer(real(model_id), [c.id for c in context.training_data(model_id)[0]])
