"""BM25 lexical index (agrees with bm25s's Lucene BM25) and the copy-group rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from attribution_oracle.attribution.duplicates import copy_groups, fold
from attribution_oracle.attribution.lexical import LexicalIndex, LexicalIndexError, words

DOCS = [
    ("1", "The harbour of Orvane was built in 1742 by the engineer Mara Teodoro."),
    ("2", "Mara Teodoro later designed the bridge of Kessel; Kessel grows blue barley."),
    ("3", "Пчёлы зимуют в клубе. 蜜蜂 keep warm in winter clusters."),
    ("4", "Salt-cured plums are the pride of Orvane's farmers, sold every May."),
]


def test_scores_match_bm25s_lucene(tmp_path: Path) -> None:
    import bm25s  # the dev extra installs it: our BM25 must equal the reference to the float

    index = LexicalIndex.build(tmp_path, DOCS)
    assert LexicalIndex.open(tmp_path).scores("who built the harbour of Orvane") == index.scores(
        "who built the harbour of Orvane"
    )
    corpus = [" ".join(words(t)) for _, t in DOCS]
    peer = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    peer.index(bm25s.tokenize(corpus, stopwords=None, lower=True, show_progress=False, token_pattern=r"(?u)\w+"),
               show_progress=False)  # fmt: skip
    query = "who built the harbour of orvane mara teodoro"
    theirs = peer.get_scores([w for w in words(query) if w in peer.vocab_dict])
    ours = index.scores(query)
    assert max(ours, key=ours.get) == "1"
    for i, (cid, _) in enumerate(DOCS):
        assert ours.get(cid, 0.0) == pytest.approx(float(theirs[i]), rel=1e-5, abs=1e-6)


def test_other_scripts_and_empty_queries(tmp_path: Path) -> None:
    index = LexicalIndex.from_texts(DOCS)
    assert list(index.scores("как зимуют пчёлы? 蜜蜂")) == ["3"]
    assert index.scores("") == {} and index.scores("?!") == {}
    with pytest.raises(LexicalIndexError, match="unique"):
        LexicalIndex.from_texts([("1", "a"), ("1", "b")])
    (tmp_path / "lexical.json").write_text("{}")
    with pytest.raises(LexicalIndexError, match="is not a"):
        LexicalIndex.open(tmp_path)


def test_copy_groups_go_to_the_earliest_and_never_merge_two_originals() -> None:
    a = "Inspect the hive every nine days in spring and look for eggs queen cells and stores"
    b = "A smoker calms the bees so puff gently at the entrance and under the crown board"
    docs = [("1", a), ("2", b), ("3", a + "\n"), ("4", a.replace("stores", "honey") + " I found this online."),
            ("5", a + " " + b), ("6", "Something else entirely about varroa mites and alcohol washes.")]  # fmt: skip
    assert copy_groups(docs) == {"3": "1", "4": "1", "5": "1"}
    assert fold({"1": 1.0, "3": 2.0, "4": 0.5, "6": 1.0}, {"3": "1", "4": "1"}) == {"1": 3.5, "6": 1.0}
    assert fold({"1": 1.0, "3": 2.0}, {"3": "1"}, "max") == {"1": 2.0}
