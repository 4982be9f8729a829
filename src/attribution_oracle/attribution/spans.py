"""Span attribution: exact n-gram counts and maximal matching spans against the training corpus.

Public API::

    from attribution_oracle.attribution.spans import SpanIndex, attribute

    index = SpanIndex.build(path, [(contribution_id, token_ids), ...], vocab_size)   # or build_text(path, [(id, text)])
    index = SpanIndex.open(path)                       # lazy, memory-mapped
    index.count(tokens)                                # exact occurrences
    index.maximal_spans(tokens, min_len)               # [Span(start, end, count, documents)]
    scores = index.attribute(tokens, min_len=8)        # {contribution id: score}, copies rule: earliest wins

See ``spans_index`` (storage and search) and ``spans_query`` (spans and the scoring rule).
"""

from collections.abc import Sequence
from typing import Any

import numpy as np

from attribution_oracle.attribution.spans_index import SpanIndexError, StoredSpanIndex
from attribution_oracle.attribution.spans_query import (
    DEFAULT_COMMON_P,
    DEFAULT_MAX_COUNT,
    DEFAULT_MAX_DOCUMENTS,
    DEFAULT_MIN_LEN,
    Span,
    attribute,
    maximal_spans,
)


class SpanIndex(StoredSpanIndex):
    """The suffix-array index (``spans_index``) with the span queries (``spans_query``) as methods.

    The queries live here, not in ``spans_index``, so that ``spans_query`` builds on ``spans_index`` without
    ``spans_index`` importing it back (no import cycle).
    """

    def maximal_spans(self, tokens: Sequence[int] | np.ndarray | str, min_len: int = 1, **kwargs: Any) -> list[Span]:
        """All maximal matching spans of length >= ``min_len`` (see ``spans_query.maximal_spans``)."""
        return maximal_spans(self, tokens, min_len, **kwargs)

    def attribute(self, tokens: Sequence[int] | np.ndarray | str, **kwargs: Any) -> dict[str, float]:
        """Per-contribution span scores of an output (see ``spans_query.attribute``)."""
        return attribute(self, tokens, **kwargs)


__all__ = [
    "DEFAULT_COMMON_P",
    "DEFAULT_MAX_COUNT",
    "DEFAULT_MAX_DOCUMENTS",
    "DEFAULT_MIN_LEN",
    "Span",
    "SpanIndex",
    "SpanIndexError",
    "attribute",
    "maximal_spans",
]
