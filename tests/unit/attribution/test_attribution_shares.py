"""Scores to integer shares: exact, deterministic, only positive influence earns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribution_oracle.attribution import canonical_bytes, contributor_shares, split_by_weight

scores_st = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=3),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10).map(float)),
    max_size=12,
)


@given(scores_st, st.integers(0, 10**27), st.data())
def test_shares_sum_exactly_and_only_positive_contributions_earn(scores, amount, data):
    owners = {c: data.draw(st.sampled_from(["0xA", "0xB", "0xC"])) for c in scores}
    if not owners:
        owners = {"x": "0xA"}
    shares = contributor_shares(amount, scores, owners)
    assert sum(shares.values()) == amount
    assert all(v >= 0 for v in shares.values())
    positive_owners = {owners[c] for c, s in scores.items() if s > 0 and s != float("inf")}
    if positive_owners and any(0 < s < float("inf") for s in scores.values()):
        assert set(shares) <= positive_owners
    assert list(shares) == sorted(shares)


@given(
    st.dictionaries(st.text("xyz", min_size=1, max_size=2), st.integers(1, 10**6), min_size=1), st.integers(0, 10**24)
)
def test_split_by_weight_is_within_one_wei_of_proportional(weights, amount):
    shares = split_by_weight(amount, weights)
    total = sum(weights.values())
    assert sum(shares.values()) == amount
    for k, w in weights.items():
        assert abs(shares[k] * total - amount * w) < total


def test_grouping_by_contributor_and_documented_ties():
    scores = {"c1": 1.0, "c2": 1.0, "c3": 2.0, "c4": -5.0}
    owners = {"c1": "0xA", "c2": "0xA", "c3": "0xB", "c4": "0xC"}
    assert contributor_shares(10, scores, owners) == {"0xA": 5, "0xB": 5}
    # 1 wei among two equal weights: the lower id wins the tie
    assert contributor_shares(1, {"c1": 1.0, "c3": 1.0}, owners) == {"0xA": 1, "0xB": 0}


def test_no_positive_score_falls_back_as_documented():
    owners = {"c1": "0xA", "c2": "0xB"}
    assert contributor_shares(7, {"c1": -1.0, "c2": 0.0}, owners) == {"0xA": 4, "0xB": 3}
    assert contributor_shares(7, {"c1": -1.0}, owners, fallback="none") == {}
    with pytest.raises(KeyError):
        contributor_shares(7, {"zz": 1.0}, owners)


def test_quantisation_absorbs_float_noise_below_the_resolution():
    owners = {"a": "0xA", "b": "0xB"}
    base = contributor_shares(10**18, {"a": 0.3, "b": 0.6}, owners)
    noisy = contributor_shares(10**18, {"a": 0.3 + 1e-17, "b": 0.6}, owners)
    assert canonical_bytes(base) == canonical_bytes(noisy)
    assert canonical_bytes(base) == b'{"0xA":"333333333333333333","0xB":"666666666666666667"}'
