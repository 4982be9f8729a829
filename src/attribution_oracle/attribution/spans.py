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

from attribution_oracle.attribution.spans_index import SpanIndex, SpanIndexError
from attribution_oracle.attribution.spans_query import (
    DEFAULT_COMMON_P,
    DEFAULT_MAX_COUNT,
    DEFAULT_MAX_DOCUMENTS,
    DEFAULT_MIN_LEN,
    Span,
    attribute,
    maximal_spans,
)

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
