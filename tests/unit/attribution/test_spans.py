"""SpanIndex against a brute-force reference on small random corpora, plus the copies rule and persistence."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution_oracle.attribution.shares import contributor_shares
from attribution_oracle.attribution.spans import Span, SpanIndex, SpanIndexError
from attribution_oracle.errors import UserError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _occurrences(docs: list[list[int]], pattern: list[int]) -> list[int]:
    """Brute force: document index of every occurrence of ``pattern``."""
    m = len(pattern)
    return [d for d, doc in enumerate(docs) for i in range(len(doc) - m + 1) if doc[i : i + m] == pattern]


def _brute_maximal(docs: list[list[int]], out: list[int], min_len: int) -> list[tuple[int, int, int]]:
    def occurs(i: int, j: int) -> bool:
        return 0 <= i < j <= len(out) and bool(_occurrences(docs, out[i:j]))

    spans = []
    for i in range(len(out)):
        for j in range(i + min_len, len(out) + 1):
            if occurs(i, j) and not occurs(i - 1, j) and not occurs(i, j + 1):
                spans.append((i, j, len(_occurrences(docs, out[i:j]))))
    return spans


corpora = st.lists(st.lists(st.integers(0, 3), max_size=30), min_size=1, max_size=5)
outputs = st.lists(st.integers(0, 3), max_size=25)


@SETTINGS
@given(docs=corpora, out=outputs, min_len=st.integers(1, 4), vocab=st.sampled_from([4, 300, 70_000]))
def test_maximal_spans_and_counts_match_brute_force(tmp_path, docs, out, min_len, vocab):
    ids = [f"c{i}" for i in range(len(docs))]
    index = SpanIndex.build(tmp_path / "idx", list(zip(ids, docs, strict=True)), vocab)
    spans = index.maximal_spans(out, min_len, max_documents=100)
    expected = _brute_maximal(docs, out, min_len)
    assert [(s.start, s.end, s.count) for s in spans] == expected
    for span in spans:
        docs_with = sorted(set(_occurrences(docs, out[span.start : span.end])))
        assert span.documents == tuple(ids[d] for d in docs_with)
    for i in range(len(out)):
        for j in range(i + 1, min(len(out), i + 5) + 1):
            assert index.count(out[i:j]) == len(_occurrences(docs, out[i:j]))


@SETTINGS
@given(docs=corpora, out=outputs)
def test_spans_never_cross_document_boundaries(tmp_path, docs, out):
    index = SpanIndex.build(tmp_path / "idx", [(str(i), d) for i, d in enumerate(docs)], 4)
    for span in index.maximal_spans(out, 1):
        piece = out[span.start : span.end]
        assert any(_occurrences([d], piece) for d in docs)
    joined = [t for d in docs for t in d]
    # a pattern straddling two documents is not counted unless it occurs inside one
    for i in range(len(joined) - 1):
        piece = joined[i : i + 4]
        assert index.count(piece) == len(_occurrences(docs, piece))


def test_text_mode_unicode_and_empty(tmp_path):
    index = SpanIndex.build_text(
        tmp_path / "t", [("a", "héllo wörld ünïcode 🐝 bees"), ("b", ""), ("c", "日本語のテキスト")]
    )
    assert index.count("ö") == 1
    assert index.count("🐝 bees") == 1
    assert index.count("テキスト") == 1
    assert index.count("bees日本") == 0  # across the boundary
    total = len("héllo wörld ünïcode 🐝 bees".encode()) + len("日本語のテキスト".encode())
    assert index.count("") == index.n_tokens == total
    assert index.maximal_spans("", 1) == []
    assert index.attribute("") == {}
    assert index.attribute("zzzzzzzzzzzz") == {}
    spans = index.maximal_spans("xx日本語のテxx", 3)
    assert spans == [Span(2, 2 + len("日本語のテ".encode()), 1, ("c",))]
    with pytest.raises(SpanIndexError):
        index.count([255])  # the separator
    empty = SpanIndex.build_text(tmp_path / "e", [])
    assert empty.count("a") == 0 and empty.attribute("anything at all") == {}


def test_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        SpanIndex.build(tmp_path / "x", [("a", [1, 5])], 5)
    with pytest.raises(UserError):
        SpanIndex.build(tmp_path / "x", [("a", [1]), ("a", [2])], 5)
    with pytest.raises(UserError):
        SpanIndex.open(tmp_path / "missing")
    index = SpanIndex.build(tmp_path / "ok", [("a", [1, 2, 3])], 5)
    with pytest.raises(UserError):
        index.count([7])
    with pytest.raises(UserError):
        index.attribute([1, 2, 3], min_len=0)
    with pytest.raises(UserError):
        index.attribute([1, 2, 3], split="random")
    assert not list(tmp_path.glob(".x.*")), "a failed build leaves no temporary directory"


ORIGINAL = "the queen bee lays up to two thousand eggs a day in early summer"
OTHER = "varroa mites are treated with oxalic acid in the broodless period"


def test_copies_do_not_dilute_the_original(tmp_path):
    docs = [("orig", ORIGINAL), ("other", OTHER), ("copy", "Copied: " + ORIGINAL + " (reposted)")]
    index = SpanIndex.build_text(tmp_path / "c", docs)
    output = "Did you know " + ORIGINAL[4:50] + "? Also " + OTHER[:30]
    scores = index.attribute(output, min_len=12)
    assert set(scores) == {"orig", "other"}  # the later copy earns nothing for the copied text
    equal = index.attribute(output, min_len=12, split="equal")
    assert math.isclose(equal["orig"], equal["copy"])  # an equal split would halve the original's credit
    assert math.isclose(equal["orig"] + equal["copy"], scores["orig"])  # earliest-wins keeps all of it
    assert scores["other"] == equal["other"]
    without_copy = SpanIndex.build_text(tmp_path / "n", docs[:2]).attribute(output, min_len=12)
    assert set(without_copy) == set(scores)


def test_a_near_copy_earns_only_for_what_it_added(tmp_path):
    added = " and drones are evicted in autumn by the workers"
    docs = [("orig", ORIGINAL), ("near", ORIGINAL + added)]
    index = SpanIndex.build_text(tmp_path / "c", docs)
    assert set(index.attribute(ORIGINAL, min_len=12)) == {"orig"}
    both = index.attribute(ORIGINAL + added, min_len=12)
    # one maximal span, found only in the near copy: its original part still goes to the original
    assert set(both) == {"orig", "near"}
    only_original = index.attribute(ORIGINAL, min_len=12)["orig"]
    assert math.isclose(both["orig"], only_original) and both["near"] < both["orig"]
    assert set(index.attribute("so " + added + " ok", min_len=12)) == {"near"}


def test_common_token_spans_are_dropped(tmp_path):
    index = SpanIndex.build(tmp_path / "u", [("a", [0] * 50 + [1, 2, 3, 4]), ("b", [0] * 50)], 5)
    assert index.attribute([0] * 10, min_len=4) == {}  # token 0 is > 90% of the corpus
    assert set(index.attribute([1, 2, 3, 4], min_len=4)) == {"a"}
    assert set(index.attribute([0] * 10, min_len=4, common_p=1.0)) == {"a"}


def test_scores_feed_the_shares_function(tmp_path):
    docs = [("orig", ORIGINAL), ("other", OTHER)]
    scores = SpanIndex.build_text(tmp_path / "s", docs).attribute(ORIGINAL[:40] + " / " + OTHER[:20], min_len=10)
    shares = contributor_shares(10**18, scores, {"orig": "alice", "other": "bob"})
    assert sum(shares.values()) == 10**18 and shares["alice"] > shares["bob"] > 0


def test_deterministic_and_reloadable(tmp_path):
    rng = np.random.default_rng(0)
    docs = [(f"d{i}", rng.integers(0, 50, size=200)) for i in range(20)]
    a = SpanIndex.build(tmp_path / "a", docs, 50)
    b = SpanIndex.build(tmp_path / "b", docs, 50)
    for name in ("tokens.bin", "sa.bin", "buckets.bin", "ids.txt", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    output = np.concatenate([docs[3][1][10:40], docs[7][1][100:130]])
    first = a.attribute(output, min_len=5)
    reopened = SpanIndex.open(tmp_path / "a")
    assert reopened.attribute(output, min_len=5) == first == b.attribute(output, min_len=5)
    assert list(first) == sorted(first) and {"d3", "d7"} <= set(first)
    assert reopened.maximal_spans(output, 5) == a.maximal_spans(output, 5)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["n_documents"] == 20 and manifest["pointer_width"] == 2
    # rebuilding in place replaces the index atomically
    SpanIndex.build(tmp_path / "a", docs[:2], 50)
    assert SpanIndex.open(tmp_path / "a").documents == ["d0", "d1"]


def _sliding_count(docs: list[np.ndarray], piece: np.ndarray) -> int:
    total = 0
    for doc in docs:
        if doc.size >= piece.size:
            windows = np.lib.stride_tricks.sliding_window_view(doc, piece.size)
            total += int((windows == piece).all(axis=1).sum())
    return total


@pytest.mark.parametrize(("vocab", "size", "depth", "width"), [(20, 1_000_000, 2, 3), (256, 1_000_000, 1, 3)])
def test_bucket_tables_and_pointer_widths(tmp_path, vocab, size, depth, width):
    rng = np.random.default_rng(1)
    corpus = rng.integers(0, min(vocab, 4), size=size)
    docs = [corpus[: size // 2], corpus[size // 2 :]]
    index = SpanIndex.build(tmp_path / "big", [("a", docs[0]), ("b", docs[1])], vocab - 1 if vocab == 256 else vocab)
    assert (index.depth, index.width) == (depth, width)
    for n in (1, 2, 3, 7):
        piece = corpus[1000 : 1000 + n]
        assert index.count(piece) == _sliding_count(docs, piece)
    assert index.count([vocab - 2]) == 0
    assert index.nbytes() < (1 + width) * (size + 2) + 4 * (index.alphabet**depth + 1) + 1024
    expected = np.bincount(corpus, minlength=index.vocab_size)
    assert index.unigrams.tolist() == expected.tolist()


def test_readme_span_example_runs(tmp_path):
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = re.search(r"## Span attribution.*?```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(block.replace("/tmp/readme-spans", str(tmp_path / "spans")), "README.md", "exec"), {})
