"""RAG attribution rule: retrieved contributions earn a fixed part of the pool, split exactly in integers."""

from __future__ import annotations

import pytest

from attribution_oracle.attribution import contributor_shares
from attribution_oracle.attribution.rag_shares import rag_scores

OWNERS = {"1": "0xa", "2": "0xb", "3": "0xc"}


def test_retrieved_items_take_their_documented_part_and_the_split_stays_exact() -> None:
    mixed = rag_scores({"1": 3.0, "2": 1.0, "3": -5.0}, ["3"], share_bps=2_000)
    assert mixed == pytest.approx({"1": 0.6, "2": 0.2, "3": 0.2})
    shares = contributor_shares(10**18 + 7, mixed, OWNERS)
    assert sum(shares.values()) == 10**18 + 7
    assert shares["0xc"] == pytest.approx(0.2 * 10**18, rel=1e-9)


def test_without_attribution_the_retrieved_take_all_and_without_retrieval_nothing_changes() -> None:
    assert rag_scores({}, ["2", "1", "2"]) == {"1": 0.5, "2": 0.5}
    assert rag_scores({"1": 2.0, "2": 0.0}, []) == {"1": 2.0}
    assert rag_scores({"1": 1.0}, ["1"], share_bps=10_000) == {"1": 1.0}


def test_an_invalid_share_is_refused() -> None:
    for bad in (-1, 10_001, 0.5, True):
        with pytest.raises(ValueError, match="share_bps"):
            rag_scores({"1": 1.0}, ["1"], share_bps=bad)
