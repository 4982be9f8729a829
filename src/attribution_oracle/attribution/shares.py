"""Scores to money: split an integer amount among contributors in proportion to positive influence.

The rule (exact, deterministic, documented because independent oracle nodes must agree byte for byte):

1. Only positive scores earn; zero, negative and NaN scores get nothing.
2. Scores are quantised relative to the largest positive score: ``w_i = round(s_i / s_max * 2**bits)`` computed
   with exact rational arithmetic (``fractions.Fraction`` of the IEEE doubles), so float noise below
   ``2**-bits`` of the top score cannot change the result and no platform-dependent rounding occurs.
3. Weights are summed per contributor (a contributor with many helpful contributions earns for all of them).
4. Each contributor gets ``floor(amount * w / W)``; the leftover wei (fewer than the number of contributors)
   go one each to the largest remainders, ties broken by contributor id in ascending order
   (largest-remainder / Hamilton rounding). The shares always sum to ``amount`` exactly.
5. If no score is positive, ``fallback="equal"`` splits the amount equally among all contributors named in
   ``owners`` (same rounding); ``fallback="none"`` returns ``{}`` and leaves the decision to the caller.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from fractions import Fraction

DEFAULT_BITS = 32


def quantise(scores: Mapping[str, float], bits: int = DEFAULT_BITS) -> dict[str, int]:
    """Integer weights of the positive scores, relative to the largest (see rule 2)."""
    positive = {k: float(v) for k, v in scores.items() if isinstance(v, int | float) and v > 0 and math.isfinite(v)}
    if not positive:
        return {}
    top = Fraction(max(positive.values()))
    scale = 2**bits
    weights = {k: round(Fraction(v) / top * scale) for k, v in positive.items()}
    return {k: w for k, w in weights.items() if w > 0}


def split_by_weight(amount: int, weights: Mapping[str, int]) -> dict[str, int]:
    """Split ``amount`` in proportion to integer ``weights`` with largest-remainder rounding (rule 4)."""
    if amount < 0:
        raise ValueError("amount must be non-negative")
    weights = {k: int(w) for k, w in weights.items() if w > 0}
    total = sum(weights.values())
    if total == 0:
        return {}
    base = {k: amount * w // total for k, w in weights.items()}
    leftover = amount - sum(base.values())
    order = sorted(weights, key=lambda k: (-(amount * weights[k] % total), k))
    for k in order[:leftover]:
        base[k] += 1
    return {k: base[k] for k in sorted(base)}


def contributor_shares(
    amount: int,
    scores: Mapping[str, float],
    owners: Mapping[str, str],
    *,
    bits: int = DEFAULT_BITS,
    fallback: str = "equal",
) -> dict[str, int]:
    """Split ``amount`` (wei) among contributors by the positive scores of their contributions.

    ``scores`` maps contribution id to score; ``owners`` maps every contribution id to its contributor.
    Returns ``{contributor: wei}`` sorted by contributor, summing exactly to ``amount`` (unless
    ``fallback="none"`` and nothing scored positive).
    """
    missing = [c for c in scores if c not in owners]
    if missing:
        raise KeyError(f"no contributor for contribution {missing[0]!r}")
    grouped: dict[str, int] = {}
    for contribution, weight in quantise(scores, bits).items():
        owner = owners[contribution]
        grouped[owner] = grouped.get(owner, 0) + weight
    if grouped:
        return split_by_weight(amount, grouped)
    if fallback == "none":
        return {}
    if fallback != "equal":
        raise ValueError("fallback must be 'equal' or 'none'")
    return split_by_weight(amount, {o: 1 for o in set(owners.values())})


def canonical_bytes(shares: Mapping[str, int]) -> bytes:
    """Canonical JSON of a share map (sorted keys, integers as decimal strings): what nodes compare and sign."""
    return json.dumps({k: str(v) for k, v in sorted(shares.items())}, separators=(",", ":")).encode()
