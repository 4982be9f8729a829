"""Copy groups: verbatim and near-duplicate contributions, and the rule that folds their credit onto the original.

The copies rule of the ledger: *the earliest approved contribution earns for copied text, and a copy takes
nothing*. The span side enforces it token by token (``spans_query``), but a gradient index or a lexical index
scores a verbatim copy exactly like its original. So the factory groups the contributions at index time and every
signal's scores are folded onto each group's earliest member (``fold``).

Grouping rule (``copy_groups``), over the contributions in approval (training) order:

- a contribution's *shingles* are the distinct 4-word windows of its case-folded Unicode words (``lexical.words``;
  a text of fewer than 4 words is one shingle of all its words);
- a later contribution ``L`` is a copy of an earlier one ``E`` when they share at least ``threshold`` (0.7) of the
  smaller shingle set: ``|S_L & S_E| / min(|S_L|, |S_E|) >= 0.7`` (a verbatim copy shares all; a near copy that adds,
  drops or edits a few words shares most);
- ``L`` joins the group of the earliest such ``E`` (so two originals are never merged by a third text that copies
  both: it joins the first one's group). Contributions with the same bytes are always one group.

Folding (``fold``): each copy's score moves to its group's earliest member (``how="sum"`` adds them, used for the
gradient and span sides, whose credit duplicates split; ``how="max"`` keeps the largest, used for the lexical
side, where every duplicate matches in full); copies are then absent from the result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from attribution_oracle.attribution.lexical import words

SHINGLE = 4
THRESHOLD = 0.7
RULE = (
    "4-word shingles of casefolded \\w+ words; a later contribution joins the group of the earliest one sharing "
    ">= 0.7 of the smaller shingle set; credit of every signal folds onto the group's earliest member"
)

__all__ = ["RULE", "copy_groups", "fold", "shingles"]


def shingles(text: str, size: int = SHINGLE) -> frozenset[tuple[str, ...]]:
    """Distinct ``size``-word windows of ``text`` (one window of all words for a shorter text, none for no words)."""
    ws = words(text)
    if not ws:
        return frozenset()
    if len(ws) < size:
        return frozenset([tuple(ws)])
    return frozenset(tuple(ws[i : i + size]) for i in range(len(ws) - size + 1))


def copy_groups(documents: Sequence[tuple[str, str]], threshold: float = THRESHOLD) -> dict[str, str]:
    """``{copy id: original id}`` for every contribution that copies an earlier one (documents in approval order)."""
    if not 0 < threshold <= 1:
        raise ValueError("threshold must lie in (0, 1]")
    canonical: dict[str, str] = {}
    seen_text: dict[str, str] = {}
    sets: list[frozenset] = []
    holders: dict[tuple[str, ...], list[int]] = {}
    ids = [str(d) for d, _ in documents]
    for i, (doc_id, text) in enumerate(documents):
        doc_id = str(doc_id)
        mine = shingles(text)
        source: str | None = seen_text.get(text)
        if source is None and mine:
            shared: dict[int, int] = {}
            for shingle in mine:
                for j in holders.get(shingle, ()):
                    shared[j] = shared.get(j, 0) + 1
            for j in sorted(shared):
                if shared[j] / min(len(mine), len(sets[j])) >= threshold:
                    source = ids[j]
                    break
        if source is not None:
            canonical[doc_id] = canonical.get(source, source)
        seen_text.setdefault(text, doc_id)
        sets.append(mine)
        for shingle in mine:
            holders.setdefault(shingle, []).append(i)
    return {k: canonical[k] for k in sorted(canonical)}


def fold(scores: Mapping[str, float], copies: Mapping[str, str], how: str = "sum") -> dict[str, float]:
    """Move each copy's score onto its original (see the module docstring); sorted keys."""
    if how not in ("sum", "max"):
        raise ValueError("how must be 'sum' or 'max'")
    parts: dict[str, list[float]] = {}
    for key in sorted(scores):
        parts.setdefault(copies.get(key, key), []).append(float(scores[key]))
    out = {}
    for key in sorted(parts):
        values = parts[key]
        out[key] = max(values) if how == "max" else math.fsum(values)
    return out
