"""Copy audit: how much of a candidate contribution is verbatim text from earlier contributions.

A candidate token ``j`` is *copied* if some window of ``min_len`` consecutive candidate tokens covering ``j``
occurs in an earlier contribution (any window of a longer copied passage does, so this is exactly the union of
all copied passages of at least ``min_len`` tokens). The *source* of a copied token is the earliest
contribution (index order = approval order) holding such a window. The report gives the copied fraction
(``coverage``), the longest copied run, and the sources with how many tokens each supplied.

Verdicts used by ``datanet audit``: ``copy`` if coverage >= 0.95, ``near-copy`` if coverage >= ``threshold``
(default 0.5), else ``ok``. Defaults for ``min_len``: 32 bytes in text mode, 12 tokens otherwise (short
enough to catch edited copies, long enough that stock phrases do not count).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attribution_oracle.attribution.spans_index import SpanIndexError, StoredSpanIndex

TEXT_MIN_LEN = 32
TOKEN_MIN_LEN = 12
COPY_COVERAGE = 0.95
DEFAULT_THRESHOLD = 0.5

Tokens = Sequence[int] | np.ndarray | str


@dataclass(frozen=True)
class CopyReport:
    """How much of a candidate is found verbatim (windows of ``min_len``) in earlier contributions."""

    total_tokens: int
    copied_tokens: int
    longest_run: int
    min_len: int
    threshold: float
    sources: tuple[tuple[str, int], ...] = field(default_factory=tuple)

    @property
    def coverage(self) -> float:
        """Copied fraction of the candidate (0 for an empty candidate)."""
        return self.copied_tokens / self.total_tokens if self.total_tokens else 0.0

    @property
    def verdict(self) -> str:
        """``copy``, ``near-copy`` or ``ok`` (see the module docstring)."""
        if self.total_tokens and self.coverage >= COPY_COVERAGE:
            return "copy"
        if self.total_tokens and self.coverage >= self.threshold:
            return "near-copy"
        return "ok"

    @property
    def suspected(self) -> bool:
        """True for a copy or a near copy."""
        return self.verdict != "ok"

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "totalTokens": self.total_tokens,
            "copiedTokens": self.copied_tokens,
            "coverage": self.coverage,
            "longestRun": self.longest_run,
            "minLen": self.min_len,
            "verdict": self.verdict,
            "sources": [{"id": i, "tokens": n} for i, n in self.sources],
        }


def find_copies(
    index_or_documents: StoredSpanIndex | Sequence[tuple[str, Tokens]],
    candidate: Tokens,
    *,
    min_len: int | None = None,
    before: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    vocab_size: int | None = None,
) -> CopyReport:
    """Report how much of ``candidate`` is copied from the indexed contributions.

    ``index_or_documents`` is a ``StoredSpanIndex`` or the earlier contributions as ``(id, text)`` (text mode) or
    ``(id, token ids)`` (then ``vocab_size`` is needed), in approval order. ``before`` names a contribution in
    the index: only contributions before it count as sources (to audit an indexed contribution against the ones
    approved earlier).
    """
    if not 0 < threshold <= 1:
        raise SpanIndexError(f"threshold must lie in (0, 1], got {threshold!r}")
    if isinstance(index_or_documents, StoredSpanIndex):
        return _find(index_or_documents, candidate, min_len, before, threshold)
    documents = list(index_or_documents)
    with tempfile.TemporaryDirectory(prefix="copies-") as tmp:
        if all(isinstance(doc, str) for _, doc in documents):
            index = StoredSpanIndex.build_text(Path(tmp) / "index", documents)  # type: ignore[arg-type]
        else:
            if vocab_size is None:
                raise SpanIndexError("token documents need vocab_size")
            index = StoredSpanIndex.build(Path(tmp) / "index", documents, vocab_size)  # type: ignore[arg-type]
        return _find(index, candidate, min_len, before, threshold)


def _find(
    index: StoredSpanIndex, candidate: Tokens, min_len: int | None, before: str | None, threshold: float
) -> CopyReport:
    if min_len is None:
        min_len = TEXT_MIN_LEN if index.mode == "text" else TOKEN_MIN_LEN
    if isinstance(min_len, bool) or not isinstance(min_len, int) or min_len < 1:
        raise SpanIndexError(f"min_len must be a positive integer, got {min_len!r}")
    pattern = index.encode(candidate)
    step = index.dtype.itemsize
    n = len(pattern) // step
    ids = index.documents
    limit = index.n_positions
    if before is not None:
        if before not in ids:
            raise SpanIndexError(f"contribution {before!r} is not in the index")
        limit = int(index.offsets[ids.index(before)])
    owner = np.full(n, len(ids), dtype=np.int64)  # len(ids) = not copied
    for start in range(n - min_len + 1):
        lo, hi = index.range(pattern[start * step : (start + min_len) * step])
        if lo == hi:
            continue
        first = int(index.pointers(lo, hi).min())
        if first < limit:
            doc = int(index.documents_of(np.array([first]))[0])
            window = owner[start : start + min_len]
            np.minimum(window, doc, out=window)
    copied = owner < len(ids)
    docs, counts = np.unique(owner[copied], return_counts=True)
    sources = sorted(((ids[d], int(c)) for d, c in zip(docs.tolist(), counts.tolist(), strict=True)), key=_by_count)
    return CopyReport(n, int(copied.sum()), _longest_run(copied), min_len, float(threshold), tuple(sources))


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _longest_run(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    padded = np.concatenate([[0], mask.astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[::2]).max())
