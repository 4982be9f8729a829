"""Maximal matching spans of an output against a ``StoredSpanIndex``, and span scores per contribution.

**Maximal spans** (as in OLMoTrace): a span ``output[i:j]`` is maximal if it occurs in the corpus and
neither ``output[i-1:j]`` nor ``output[i:j+1]`` does. With ``L[i]`` the length of the longest prefix of
``output[i:]`` found in the corpus (one binary search per position: the longest match sits next to the
insertion point in the suffix array), the maximal spans are exactly ``output[i:i+L[i]]`` for the ``i`` with
``L[i] > 0`` and ``i == 0 or L[i-1] <= L[i]``.

**Scores** (``attribute``), one documented rule, in float64, in a fixed order:

1. Keep the maximal spans of at least ``min_len`` tokens that occur at most ``max_count`` times (a span seen
   everywhere is no evidence of any one contribution).
2. Drop a span if every one of its tokens is *common*: unigram probability in the corpus >= ``common_p``
   (OLMoTrace's filter of spans made of frequent tokens such as " the", ",").
3. A span's weight is its unigram self-information ``sum(-log p(t))`` over its tokens (nats): longer and
   rarer spans weigh more.
4. **Copies rule** (``split="earliest"``, the default): first to contribute a passage owns it. Each token
   of the span carries its own self-information, and goes to the *earliest* contribution in index order (the
   approval order) that contains some ``min_len``-token window of the span covering that token. A
   contribution that copies text from an earlier one (verbatim, or with additions, i.e. a near copy) therefore
   never takes credit for the copied text and the original's credit is not diluted; the text the later
   contribution added itself still earns for it. ``min_len`` must thus be long enough to be distinctive
   (e.g. 8+ model tokens, 24+ bytes in text mode). ``split="equal"`` instead splits the weight
   equally among all distinct contributions containing the span (for corpora known to be free of copies).
5. A contribution's score is the sum of the credit it received (only positive scores are returned).
   The scores feed ``attribution.shares.contributor_shares`` unchanged.

**Prompt-aware split** (``attribute_ranked``, OLMoTrace's BM25 rerank of span documents): a short span such as a
person's name may occur in many contributions, most of them about something else. Given a ranking of the
contributions for the whole inference (e.g. the lexical BM25 scores of the prompt and output), each kept span's
whole weight goes to the contribution holding it that ranks highest, ties and unranked holders broken by index
(approval) order, so with no ranking the earliest holder takes it. Copies are left to the caller's copy groups.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from attribution_oracle.attribution.spans_index import SpanIndexError, StoredSpanIndex

DEFAULT_MIN_LEN = 8
#: Distinct documents listed per span (earliest first); ``Span.count`` is always exact.
DEFAULT_MAX_DOCUMENTS = 10
DEFAULT_MAX_COUNT = 10_000
DEFAULT_COMMON_P = 0.05
SPLITS = ("earliest", "equal")


@dataclass(frozen=True)
class Span:
    """A maximal span ``output[start:end]`` found ``count`` times in the corpus.

    ``documents`` lists the contribution ids containing it, distinct, in index (approval) order, capped at
    ``max_documents`` (default 10) so a very common span stays cheap; ``count`` is exact.
    """

    start: int
    end: int
    count: int
    documents: tuple[str, ...]

    @property
    def length(self) -> int:
        """Number of tokens in the span."""
        return self.end - self.start


def _check_len(min_len: int) -> None:
    if isinstance(min_len, bool) or not isinstance(min_len, int) or min_len < 1:
        raise SpanIndexError(f"min_len must be a positive integer, got {min_len!r}")


def longest_matches(index: StoredSpanIndex, tokens: Sequence[int] | np.ndarray | str) -> tuple[bytes, list[int]]:
    """The encoded output and ``L[i]``: the longest prefix of ``output[i:]`` occurring in the corpus."""
    pattern = index.encode(tokens)
    step = index.dtype.itemsize
    n = len(pattern) // step
    return pattern, [index.longest_prefix(pattern[i * step :]) for i in range(n)]


def _raw_spans(index: StoredSpanIndex, tokens, min_len: int) -> tuple[bytes, list[tuple[int, int]]]:
    pattern, longest = longest_matches(index, tokens)
    spans = []
    for i, length in enumerate(longest):
        if length >= min_len and (i == 0 or longest[i - 1] <= length):
            spans.append((i, i + length))
    return pattern, spans


def _occurring_documents(index: StoredSpanIndex, lo: int, hi: int) -> np.ndarray:
    """Distinct document indices (ascending) holding the suffixes ranked ``lo..hi-1``."""
    return np.unique(index.documents_of(index.pointers(lo, hi)))


def _earliest_document(index: StoredSpanIndex, pattern: bytes) -> int:
    lo, hi = index.range(pattern)
    return int(index.documents_of(index.pointers(lo, hi).min(keepdims=True))[0])


def _earliest_owners(
    index: StoredSpanIndex, pattern: bytes, start: int, end: int, min_len: int, info: np.ndarray
) -> list[tuple[int, float]]:
    """Rule 4: each token of the span goes to the earliest document holding a ``min_len`` window covering it."""
    step = index.dtype.itemsize
    owner = np.full(end - start, np.iinfo(np.int64).max, dtype=np.int64)
    for x in range(start, end - min_len + 1):
        first = _earliest_document(index, pattern[x * step : (x + min_len) * step])
        window = owner[x - start : x - start + min_len]
        np.minimum(window, first, out=window)
    credit = []
    for doc in np.unique(owner).tolist():
        credit.append((doc, math.fsum(info[start:end][owner == doc].tolist())))
    return credit


def maximal_spans(
    index: StoredSpanIndex,
    tokens: Sequence[int] | np.ndarray | str,
    min_len: int = 1,
    *,
    max_documents: int = DEFAULT_MAX_DOCUMENTS,
    max_count: int | None = None,
) -> list[Span]:
    """All maximal spans of ``tokens`` with at least ``min_len`` tokens, in output order.

    Documents are looked up among at most ``max_count`` occurrences (all if None); spans occurring more
    often than that list no documents. ``Span.count`` is always exact.
    """
    _check_len(min_len)
    index._load()
    pattern, raw = _raw_spans(index, tokens, min_len)
    step = index.dtype.itemsize
    spans = []
    for start, end in raw:
        lo, hi = index.range(pattern[start * step : end * step])
        docs: tuple[str, ...] = ()
        if max_count is None or hi - lo <= max_count:
            found = _occurring_documents(index, lo, hi)[:max_documents]
            docs = tuple(index.ids[int(d)] for d in found)
        spans.append(Span(start, end, hi - lo, docs))
    return spans


def _weighted_spans(
    index: StoredSpanIndex, tokens: Sequence[int] | np.ndarray | str, min_len: int, common_p: float
) -> tuple[bytes, list[tuple[int, int]], np.ndarray, np.ndarray] | None:
    """The output's pattern bytes, its raw maximal spans, each token's self-information and whether it is common
    (unigram probability >= ``common_p``); None when nothing spans or the corpus is empty."""
    index._load()
    pattern, raw = _raw_spans(index, tokens, min_len)
    if not raw or index.n_tokens == 0:
        return None
    output = np.frombuffer(pattern, dtype=index.dtype).astype(np.int64)
    probs = index.unigrams[output] / float(index.n_tokens)
    with np.errstate(divide="ignore"):
        info = -np.log(probs)  # tokens absent from the corpus (inf) are never inside a span
    return pattern, raw, info, probs >= common_p


def attribute(
    index: StoredSpanIndex,
    tokens: Sequence[int] | np.ndarray | str,
    *,
    min_len: int = DEFAULT_MIN_LEN,
    max_count: int = DEFAULT_MAX_COUNT,
    common_p: float = DEFAULT_COMMON_P,
    split: str = "earliest",
) -> dict[str, float]:
    """Per-contribution span scores of an output (see the module docstring for the rule); sorted keys."""
    _check_len(min_len)
    if split not in SPLITS:
        raise SpanIndexError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not (isinstance(max_count, int) and max_count >= 1):
        raise SpanIndexError(f"max_count must be a positive integer, got {max_count!r}")
    if not (isinstance(common_p, int | float) and 0 < common_p <= 1):
        raise SpanIndexError(f"common_p must lie in (0, 1], got {common_p!r}")
    scores: dict[int, float] = {}
    for pattern, info, start, end, lo, hi in _kept_spans(index, tokens, min_len, max_count, common_p):
        if split == "earliest":
            for doc, weight in _earliest_owners(index, pattern, start, end, min_len, info):
                scores[doc] = scores.get(doc, 0.0) + weight
        else:
            weight = math.fsum(info[start:end].tolist())
            docs = _occurring_documents(index, lo, hi)
            share = weight / len(docs)
            for d in docs.tolist():
                scores[d] = scores.get(d, 0.0) + share
    return _by_contribution_id(index, scores)


def attribute_ranked(
    index: StoredSpanIndex,
    tokens: Sequence[int] | np.ndarray | str,
    rank: dict[str, float],
    *,
    min_len: int = DEFAULT_MIN_LEN,
    max_count: int = DEFAULT_MAX_COUNT,
    common_p: float = DEFAULT_COMMON_P,
) -> dict[str, float]:
    """Per-contribution span scores with the prompt-aware split (see the module docstring); sorted keys."""
    _check_len(min_len)
    scores: dict[int, float] = {}
    for _, info, start, end, lo, hi in _kept_spans(index, tokens, min_len, max_count, common_p):
        docs = _occurring_documents(index, lo, hi).tolist()
        best = min(docs, key=lambda d: (-float(rank.get(index.ids[d], 0.0)), d))
        scores[best] = scores.get(best, 0.0) + math.fsum(info[start:end].tolist())
    return _by_contribution_id(index, scores)


def _kept_spans(
    index: StoredSpanIndex, tokens: Sequence[int] | np.ndarray | str, min_len: int, max_count: int, common_p: float
) -> Iterator[tuple[bytes, np.ndarray, int, int, int, int]]:
    """The maximal spans that count: ``(pattern, info, start, end, lo, hi)`` for each span of the output that is
    not all common tokens and occurs at most ``max_count`` times (``lo:hi`` its suffix-array range)."""
    found = _weighted_spans(index, tokens, min_len, common_p)
    if found is None:
        return
    pattern, raw, info, common = found
    step = index.dtype.itemsize
    for start, end in raw:
        if bool(common[start:end].all()):
            continue
        lo, hi = index.range(pattern[start * step : end * step])
        if hi - lo <= max_count:
            yield pattern, info, start, end, lo, hi


def _by_contribution_id(index: StoredSpanIndex, scores: dict[int, float]) -> dict[str, float]:
    """Document scores keyed by contribution id, sorted by id, positive ones only."""
    return {index.ids[d]: scores[d] for d in sorted(scores, key=lambda d: index.ids[d]) if scores[d] > 0}
