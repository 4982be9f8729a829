"""RAG attribution: how retrieved contributions share an inference's contributor pool with the attributed ones.

OpenLedger's RAG attribution: retrieve, log every retrieved item, reward it per use. When a model serves with
retrieval, the contributions placed in its context are recorded with the inference, and each earns a fixed part of
the inference's contributor pool whatever the model did with it. The rule (``rag_scores``, one documented rule so
independent oracle nodes agree byte for byte):

1. ``retrieved`` is the ordered list of contribution ids the server placed in the context (duplicates ignored).
2. The attribution scores keep their positive, finite values and are L1-normalised (``math.fsum`` in sorted key
   order); call the result ``a`` (empty when nothing scored positive).
3. The retrieval part ``r = share_bps / 10_000`` (default 2_000, i.e. 20%) is split equally among the retrieved ids;
   the rest ``1 - r`` follows ``a``. If ``a`` is empty the retrieved ids take everything; if nothing was retrieved
   ``a`` is returned unchanged.
4. The result (sorted keys, float64) goes to ``shares.contributor_shares`` like any score map, so the pool is still
   split exactly in integers (largest remainders).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

DEFAULT_SHARE_BPS = 2_000

__all__ = ["DEFAULT_SHARE_BPS", "rag_scores"]


def rag_scores(
    scores: Mapping[str, float], retrieved: Sequence[str], share_bps: int = DEFAULT_SHARE_BPS
) -> dict[str, float]:
    """Attribution scores with the retrieved contributions' fixed part mixed in (see the module docstring)."""
    if isinstance(share_bps, bool) or not isinstance(share_bps, int) or not 0 <= share_bps <= 10_000:
        raise ValueError(f"share_bps must be an integer in 0..10000, got {share_bps!r}")
    kept = {k: float(v) for k, v in sorted(scores.items()) if isinstance(v, int | float) and math.isfinite(v) and v > 0}
    ids = list(dict.fromkeys(str(r) for r in retrieved))
    if not ids:
        return kept
    total = math.fsum(kept.values())
    attributed = {k: v / total for k, v in kept.items()} if kept else {}
    part = share_bps / 10_000 if attributed else 1.0
    out = {k: (1.0 - part) * v for k, v in attributed.items()}
    for key in ids:
        out[key] = out.get(key, 0.0) + part / len(ids)
    return {k: out[k] for k in sorted(out) if out[k] > 0}
