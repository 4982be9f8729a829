"""find_copies against a brute-force reference, and its verdicts on copies, near copies and original text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attribution_oracle.attribution.copies import find_copies
from attribution_oracle.attribution.spans import SpanIndex
from attribution_oracle.errors import UserError

POEM = (
    "Bees that have been hatched in the spring must learn the flowers of the valley before the heather blooms, "
    "or the colony starves in the long autumn when the nectar flow stops."
)
OTHER = "Smoke calms the guard bees because it masks the alarm pheromone they release when the hive is opened."


def _brute(docs: list[list[int]], candidate: list[int], k: int) -> tuple[int, dict[int, int]]:
    owner: dict[int, int] = {}
    for a in range(len(candidate) - k + 1):
        window = candidate[a : a + k]
        holders = [d for d, doc in enumerate(docs) if any(doc[i : i + k] == window for i in range(len(doc) - k + 1))]
        if holders:
            for j in range(a, a + k):
                owner[j] = min(owner.get(j, holders[0]), holders[0])
    per_doc: dict[int, int] = {}
    for d in owner.values():
        per_doc[d] = per_doc.get(d, 0) + 1
    return len(owner), per_doc


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.lists(st.integers(0, 2), max_size=25), min_size=1, max_size=4),
    candidate=st.lists(st.integers(0, 2), max_size=25),
    k=st.integers(1, 4),
)
def test_coverage_matches_brute_force(docs, candidate, k):
    report = find_copies([(f"d{i}", d) for i, d in enumerate(docs)], candidate, min_len=k, vocab_size=3)
    copied, per_doc = _brute(docs, candidate, k)
    assert report.copied_tokens == copied and report.total_tokens == len(candidate)
    assert dict(report.sources) == {f"d{d}": n for d, n in per_doc.items()}


def test_verdicts():
    approved = [("1", POEM), ("2", OTHER)]
    exact = find_copies(approved, POEM)
    assert exact.verdict == "copy" and exact.coverage == 1.0 and exact.sources == (("1", len(POEM)),)
    near = find_copies(approved, "My own notes: " + POEM[:90] + " And then I add a lot of new text of my own here.")
    assert near.verdict == "near-copy" and near.longest_run == 90 and near.sources[0][0] == "1"
    own = find_copies(approved, "Queen cells are built on the lower edge of the comb when a colony will swarm.")
    assert own.verdict == "ok" and own.copied_tokens == 0 and own.sources == ()
    mixed = find_copies(approved, POEM[:60] + " | " + OTHER[:40], min_len=20)
    assert [s for s, _ in mixed.sources] == ["1", "2"] and mixed.to_dict()["sources"][0] == {"id": "1", "tokens": 60}
    assert find_copies(approved, "").verdict == "ok"


def test_before_limits_the_sources(tmp_path):
    index = SpanIndex.build_text(tmp_path / "v", [("1", POEM), ("2", OTHER), ("3", POEM + " (again)")])
    assert find_copies(index, POEM + " (again)", before="3").verdict == "copy"
    assert find_copies(index, POEM, before="1").copied_tokens == 0  # nothing before the first
    with pytest.raises(UserError):
        find_copies(index, POEM, before="9")
    with pytest.raises(UserError):
        find_copies(index, POEM, min_len=0)
    with pytest.raises(UserError):
        find_copies([("a", [1, 2])], [1, 2])  # token documents need vocab_size
