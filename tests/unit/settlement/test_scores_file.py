"""`report build --scores` file: the plain and the retrieval form, and clear errors for every malformed shape."""

from __future__ import annotations

import json

import pytest

from attribution_oracle.serving.rag_retriever import MAX_TOP_K
from attribution_oracle.settlement.scores_file import ScoresFileError, read_scores_file


def _write(tmp_path, value) -> object:
    path = tmp_path / "scores.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def test_plain_and_retrieval_forms_mix_in_one_file(tmp_path):
    parsed = read_scores_file(
        _write(tmp_path, {"1": {"3": 2, "4": -1.5}, "2": {"scores": {"5": 1.0}, "retrieved": ["7", 8, "7"]}})
    )
    assert parsed.scores == {1: {"3": 2.0, "4": -1.5}, 2: {"5": 1.0}}
    assert parsed.retrieved == {2: ("7", "8")}  # duplicates dropped, rank order kept, ids as strings


def test_retrieval_without_scores_is_allowed(tmp_path):
    parsed = read_scores_file(_write(tmp_path, {"9": {"retrieved": ["1"]}}))
    assert parsed.scores == {9: {}} and parsed.retrieved == {9: ("1",)}


def test_a_contribution_named_scores_is_still_a_plain_score(tmp_path):
    # without a "retrieved" key the entry is the plain form, whatever its keys are called
    assert read_scores_file(_write(tmp_path, {"1": {"scores": 1.0}})).scores == {1: {"scores": 1.0}}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[1, 2", "Expecting"),
        ([1, 2], "expected a JSON object"),
        ({"x": {}}, "not a positive integer"),
        ({"0": {}}, "not a positive integer"),
        ({"-3": {}}, "not a positive integer"),
        ({"1": [1, 2]}, "must be an object"),
        ({"1": {"2": "high"}}, "finite number"),
        ({"1": {"2": True}}, "finite number"),
        ('{"1": {"2": NaN}}', "finite number"),
        ('{"1": {"2": Infinity}}', "finite number"),
        ({"1": {"retrieved": "7"}}, "list of contribution ids"),
        ({"1": {"retrieved": [None]}}, "list of contribution ids"),
        ({"1": {"retrieved": [str(i) for i in range(MAX_TOP_K + 1)]}}, f"at most {MAX_TOP_K}"),
        ({"1": {"scores": [], "retrieved": []}}, "must be an object"),
    ],
)
def test_malformed_files_raise_a_clear_error(tmp_path, content, says):
    with pytest.raises(ScoresFileError, match=says):
        read_scores_file(_write(tmp_path, content))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ScoresFileError, match="No such file"):
        read_scores_file(tmp_path / "absent.json")
