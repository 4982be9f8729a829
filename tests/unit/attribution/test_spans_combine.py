"""The combine rule: validation, round trip and properties of ``combine``."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attribution_oracle.attribution.combine import CombineRule, combine
from attribution_oracle.attribution.shares import contributor_shares
from attribution_oracle.errors import UserError

keys = st.sampled_from([f"c{i}" for i in range(8)])
values = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.integers(-5, 5)
score_maps = st.dictionaries(keys, values, max_size=8)
weights = st.floats(0, 10, allow_nan=False)


@given(score_maps, score_maps, weights, weights)
def test_combine_properties(gradient, span, wg, ws):
    if wg + ws == 0:
        with pytest.raises(UserError):
            CombineRule(wg, ws)
        return
    rule = CombineRule(wg, ws)
    out = combine(gradient, span, rule)
    assert list(out) == sorted(out)
    assert all(isinstance(v, float) and v > 0 and math.isfinite(v) for v in out.values())
    positive = {k for m in (gradient, span) for k, v in m.items() if isinstance(v, int | float) and 0 < v < math.inf}
    assert set(out) <= positive
    g_pos = any(isinstance(v, int | float) and 0 < v < math.inf for v in gradient.values())
    s_pos = any(isinstance(v, int | float) and 0 < v < math.inf for v in span.values())
    expected_total = wg * g_pos + ws * s_pos
    assert math.isclose(math.fsum(out.values()), expected_total, rel_tol=1e-9, abs_tol=1e-12)
    # deterministic and independent of insertion order
    assert combine(dict(reversed(list(gradient.items()))), dict(reversed(list(span.items()))), rule) == out
    # swapping the roles swaps the weights
    assert combine(span, gradient, CombineRule(ws, wg)).keys() == out.keys()


def test_known_answer_and_scale_invariance():
    gradient = {"a": 3.0, "b": 1.0, "c": -2.0}
    span = {"b": 10.0, "d": 10.0}
    out = combine(gradient, span)
    assert out == {"a": 0.375, "b": 0.125 + 0.25, "d": 0.25}
    assert combine({k: 7 * v for k, v in gradient.items()}, {k: v / 3 for k, v in span.items()}) == out
    assert combine(gradient, span, CombineRule(1, 0)) == {"a": 0.75, "b": 0.25}
    assert combine({}, {}) == {}
    assert combine({"a": 1e308, "b": 1e308}, {}) == {"a": 0.25, "b": 0.25}


def test_a_side_without_signal_leaves_the_other_sides_shares_unchanged():
    gradient = {"a": 0.3, "b": 0.1}
    owners = {"a": "alice", "b": "bob"}
    alone = contributor_shares(10**18, gradient, owners)
    assert contributor_shares(10**18, combine(gradient, {}), owners) == alone


def test_round_trip_and_validation():
    rule = CombineRule(0.7, 0.3)
    data = json.loads(json.dumps(rule.to_dict()))
    assert CombineRule.from_dict(data) == rule
    assert CombineRule.from_dict({}) == CombineRule()
    for bad in ({"gradient_weight": -1}, {"span_weight": float("nan")}, {"weight": 1}, {"format": "x@9"}):
        with pytest.raises(UserError):
            CombineRule.from_dict(bad)
    with pytest.raises(UserError):
        CombineRule(0, 0)
    with pytest.raises(UserError):
        CombineRule(True, 1)
    with pytest.raises(UserError):
        CombineRule.from_dict([1, 2])


def test_gradient_power_keeps_the_gradient_side_linear_while_the_others_are_sharpened():
    gradient = {"a": 2.0, "b": 1.0, "c": -1.0}
    lexical = {"a": 1.0, "b": 0.5}
    rule = CombineRule(0.5, 0.0, 0.5, power=2, gradient_power=1)
    out = combine(gradient, {}, rule, lexical)
    # gradient linear: 2/3, 1/3; lexical squared: 1, 0.25 -> 0.8, 0.2
    assert out == pytest.approx({"a": 0.5 * 2 / 3 + 0.5 * 0.8, "b": 0.5 / 3 + 0.5 * 0.2}, rel=1e-15)
    # without gradient_power the gradient side takes ``power`` too (the rule of older manifests)
    sharp = combine(gradient, {}, CombineRule(0.5, 0.0, 0.5, power=2), lexical)
    assert sharp == pytest.approx({"a": 0.5 * 0.8 + 0.5 * 0.8, "b": 0.5 * 0.2 + 0.5 * 0.2}, rel=1e-15)
    assert CombineRule(0.5, 0.0, 0.5, power=2).gradient_exponent == 2 and rule.gradient_exponent == 1


def test_gradient_power_round_trip_and_older_rules_keep_their_bytes():
    rule = CombineRule(0.2, 0.2, 0.6, power=16, gradient_power=1)
    data = json.loads(json.dumps(rule.to_dict()))
    assert data["gradient_power"] == 1 and CombineRule.from_dict(data) == rule
    old = CombineRule(0.2, 0.2, 0.6, power=8)
    assert "gradient_power" not in old.to_dict()  # a manifest written before the field has the same bytes
    assert CombineRule.from_dict(old.to_dict()) == old
    for bad in (0, 65, 1.5, True, "1"):
        with pytest.raises(UserError):
            CombineRule(0.5, 0.5, gradient_power=bad)


def test_factory_rule_pays_the_clear_source_and_keeps_the_gradient_graded():
    from attribution_oracle.attribution.combine import FACTORY_RULE

    assert FACTORY_RULE.gradient_exponent == 1 and FACTORY_RULE.power > 1
    gradient = {f"c{i}": float(10 - i) for i in range(10)}
    lexical = {"c5": 3.0, "c6": 1.0}
    out = combine(gradient, {}, FACTORY_RULE, lexical)
    # the gradient side's ordering survives among the contributions the lexical side does not name
    rest = [out[f"c{i}"] for i in range(5)]
    assert rest == sorted(rest, reverse=True) and len(set(rest)) == 5
    # the lexical side's clear source (c5) gets the largest score
    assert max(out, key=out.get) == "c5"
