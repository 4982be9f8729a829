"""Lexical attribution: Okapi BM25 over the words of the training contributions (pure Python, deterministic).

FTRACE (Akyurek et al. 2022) found that a plain BM25 search over the question and the answer finds the training
document that taught a fact more often than gradient methods do; OLMoTrace reranks its spans with BM25. This
index is that signal: built once at training time from the same verified contribution texts, queried with the
inference's prompt and output.

The rule (one, documented, because independent oracle nodes must agree byte for byte):

- *Words*: the text is case-folded (``str.casefold``) and cut into the maximal runs of Unicode word characters
  (``re.findall(r"\\w+")``), so any script works; a query with no word scores nothing.
- *Score* of document ``d`` for a query with distinct words ``Q``:
  ``sum_{w in Q} idf(w) * tf(w, d) / (tf(w, d) + k1 * (1 - b + b * len(d) / avgdl))`` with
  ``idf(w) = ln(1 + (N - df(w) + 0.5) / (df(w) + 0.5))`` (always positive), ``k1 = 1.2``, ``b = 0.75``: Lucene's
  BM25 (the constant ``k1 + 1`` of the textbook form dropped), the ``bm25s`` default.
  A word repeated in the query counts once. Each document's terms are summed with ``math.fsum`` in sorted word
  order, so the float is correctly rounded and does not depend on dict order.
- Only documents with a positive score are returned, keyed by contribution id, sorted.

Layout on disk: one canonical JSON file ``lexical.json`` (``format``, ``k1``, ``b``, ``ids``, ``lengths``,
``postings``: word -> ``[[document index, term frequency], ...]``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from attribution_oracle.errors import UserError
from attribution_oracle.files import atomic_write

FORMAT = "attribution-oracle/lexical-index@1"
FILE = "lexical.json"
K1 = 1.2
B = 0.75
_WORD = re.compile(r"\w+")

__all__ = ["FORMAT", "LexicalIndex", "LexicalIndexError", "words"]


class LexicalIndexError(UserError):
    """A lexical index that cannot be built or read."""


def words(text: str) -> list[str]:
    """The case-folded Unicode word runs of ``text`` (the index's tokenisation)."""
    return _WORD.findall(text.casefold())


class LexicalIndex:
    """BM25 over contribution texts (see the module docstring)."""

    def __init__(self, ids: Sequence[str], lengths: Sequence[int], postings: dict[str, list[list[int]]],
                 k1: float = K1, b: float = B) -> None:  # fmt: skip
        """Use ``build`` or ``open``."""
        if len(ids) != len(lengths):
            raise LexicalIndexError("one length per document is needed")
        self.ids = list(ids)
        self.lengths = [int(n) for n in lengths]
        self.postings = postings
        self.k1, self.b = float(k1), float(b)
        self.n = len(self.ids)
        self.avgdl = (math.fsum(self.lengths) / self.n) if self.n else 0.0

    @classmethod
    def from_texts(cls, documents: Sequence[tuple[str, str]]) -> LexicalIndex:
        """Index ``(contribution id, text)`` pairs (ids unique)."""
        ids = [str(d) for d, _ in documents]
        if len(set(ids)) != len(ids):
            raise LexicalIndexError("contribution ids must be unique")
        postings: dict[str, list[list[int]]] = {}
        lengths = []
        for i, (_, text) in enumerate(documents):
            counts = Counter(words(text))
            lengths.append(sum(counts.values()))
            for word in sorted(counts):
                postings.setdefault(word, []).append([i, counts[word]])
        return cls(ids, lengths, {w: postings[w] for w in sorted(postings)})

    @classmethod
    def build(cls, path: Path, documents: Sequence[tuple[str, str]]) -> LexicalIndex:
        """Index the documents and write ``path / lexical.json`` atomically."""
        index = cls.from_texts(documents)
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        body = {"format": FORMAT, "k1": index.k1, "b": index.b, "ids": index.ids, "lengths": index.lengths,
                "postings": index.postings}  # fmt: skip
        data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
        atomic_write(path / FILE, lambda handle: handle.write(data))
        return index

    @classmethod
    def open(cls, path: Path) -> LexicalIndex:
        """Read an index directory written by ``build``."""
        file = Path(path) / FILE
        try:
            body = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise LexicalIndexError(f"unreadable lexical index at {file}: {exc}") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise LexicalIndexError(f"{file} is not a {FORMAT} index")
        return cls(body["ids"], body["lengths"], body["postings"], body["k1"], body["b"])

    def idf(self, word: str) -> float:
        """``ln(1 + (N - df + 0.5) / (df + 0.5))`` (0 for a word no document holds)."""
        df = len(self.postings.get(word, ()))
        return math.log1p((self.n - df + 0.5) / (df + 0.5)) if df else 0.0

    def scores(self, text: str) -> dict[str, float]:
        """BM25 score of every document sharing a word with ``text`` (positive only, sorted ids)."""
        terms: dict[int, list[float]] = {}
        for word in sorted(set(words(text))):
            posting = self.postings.get(word)
            if not posting:
                continue
            idf = self.idf(word)
            for doc, tf in posting:
                norm = self.k1 * (1.0 - self.b + self.b * self.lengths[doc] / self.avgdl)
                terms.setdefault(doc, []).append(idf * tf / (tf + norm))
        out = {self.ids[d]: math.fsum(parts) for d, parts in terms.items()}
        return {k: out[k] for k in sorted(out) if out[k] > 0}
