"""Proof of Attribution, gradient side: a pure torch library (no chain imports).

Public API::

    from attribution_oracle.attribution import Attributor, ClassificationTask, AttributionIndex, contributor_shares

    attributor = Attributor(model, ClassificationTask(), checkpoints=[...], estimator="influence", proj_dim=512)
    attributor.featurize(train)                 # per-example grads (torch.func), projected, finalised
    scores = attributor.score(queries)          # [n_query, n_train]
    index = attributor.build_index(path, ids)   # safetensors + manifest.json, memory-mapped
    top = index.top_k(attributor.query_features(queries), k=10)
    shares = contributor_shares(amount_wei, {id: score}, {id: contributor})
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attribution_oracle.lazy import lazy_exports

if TYPE_CHECKING:  # the ``X as X`` form marks a re-export for type checkers and linters
    from attribution_oracle.attribution.estimators import ESTIMATORS as ESTIMATORS
    from attribution_oracle.attribution.gradient_attributor import Attributor as Attributor
    from attribution_oracle.attribution.index import AttributionIndex as AttributionIndex
    from attribution_oracle.attribution.index import TopK as TopK
    from attribution_oracle.attribution.projection import Projector as Projector
    from attribution_oracle.attribution.shares import canonical_bytes as canonical_bytes
    from attribution_oracle.attribution.shares import contributor_shares as contributor_shares
    from attribution_oracle.attribution.shares import split_by_weight as split_by_weight
    from attribution_oracle.attribution.task import AttributionTask as AttributionTask
    from attribution_oracle.attribution.task import ClassificationTask as ClassificationTask
    from attribution_oracle.attribution.task import LanguageModelTask as LanguageModelTask
    from attribution_oracle.attribution.task import margin as margin

# Imported on first use (PEP 562): ``shares`` is pure Python, so the oracle and settlement code that only splits
# amounts does not pay for importing torch; ``from attribution_oracle.attribution import X`` works as before.
_LAZY = {
    "Attributor": "gradient_attributor",
    "ESTIMATORS": "estimators",
    "AttributionIndex": "index",
    "TopK": "index",
    "Projector": "projection",
    "canonical_bytes": "shares",
    "contributor_shares": "shares",
    "split_by_weight": "shares",
    "AttributionTask": "task",
    "ClassificationTask": "task",
    "LanguageModelTask": "task",
    "margin": "task",
}


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


# Every lazy name is public: the table above is the one list to keep up to date.
__all__ = sorted(_LAZY)
