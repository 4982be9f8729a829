"""Turn one served inference's attribution scores into exact per-account amounts.

Each paid inference sets aside two pools (amounts fixed on-chain by the `FeeSplit` event):

- the **contributors pool** is split among contributors by the positive scores of their contributions
  (``attribution.shares.contributor_shares``: quantised, grouped per contributor, largest remainder);
- the **Datanet-owners pool** is split among the model's Datanets by the summed quantised positive scores of
  each Datanet's contributions, then paid to each Datanet's owner; with no positive score it is split
  equally among the model's source Datanets.

If no contribution scored positive, the contributors pool is split equally among all contributors of the
model's training data (the ``equal`` fallback of ``contributor_shares``). Every amount is an integer and the
result sums exactly to the two pools.

An inference served with retrieval (``serve --rag``) passes its ``retrieved`` contribution ids: the scores are
first mixed by ``attribution.rag_shares.rag_scores`` (the retrieved ids share a documented part of the pool), and
both pools then follow the mixed scores exactly as above.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attribution_oracle.attribution.rag_shares import rag_scores
from attribution_oracle.attribution.shares import contributor_shares, quantise, split_by_weight


@dataclass(frozen=True)
class AttributedContribution:
    """What the allocation needs to know about one training contribution."""

    id: str
    contributor: str
    datanet_id: int


@dataclass(frozen=True)
class ServedInference:
    """A served, paid inference with its two data pools (wei) from the FeeSplit event."""

    request_id: int
    model_id: int
    contributors_amount: int
    datanet_owners_amount: int


def merge(*parts: Mapping[str, int]) -> dict[str, int]:
    """Sum per-account amounts, sorted by account."""
    total: dict[str, int] = {}
    for part in parts:
        for account, amount in part.items():
            total[account] = total.get(account, 0) + int(amount)
    return {a: total[a] for a in sorted(total) if total[a]}


def allocate(
    inference: ServedInference,
    scores: Mapping[str, float],
    contributions: Sequence[AttributedContribution],
    datanet_owners: Mapping[int, str],
    retrieved: Sequence[str] = (),
) -> dict[str, int]:
    """Per-account amounts of one inference (contributors and Datanet owners), summing to both pools.

    ``retrieved`` (the served record's retrieved ids) mixes the scores with ``rag_scores`` first."""
    by_id = {c.id: c for c in contributions}
    unknown = [c for c in [*scores, *retrieved] if c not in by_id]
    if unknown:
        raise KeyError(f"request {inference.request_id}: scores name unknown contribution {unknown[0]!r}")
    if retrieved:
        scores = rag_scores(scores, retrieved)
    owners = {c.id: c.contributor for c in contributions}
    to_contributors = contributor_shares(inference.contributors_amount, scores, owners)

    weights: dict[str, int] = {}
    for contribution_id, weight in quantise(scores).items():
        key = str(by_id[contribution_id].datanet_id)
        weights[key] = weights.get(key, 0) + weight
    if not weights:
        weights = {str(d): 1 for d in sorted({c.datanet_id for c in contributions})}
    per_datanet = split_by_weight(inference.datanet_owners_amount, weights)
    to_datanet_owners = merge(*({datanet_owners[int(d)]: amount} for d, amount in per_datanet.items()))
    return merge(to_contributors, to_datanet_owners)
