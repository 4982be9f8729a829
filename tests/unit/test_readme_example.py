"""The README's Python examples run as written, and give what the README says they give."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _run_block(section: str, replacements: dict[str, str]) -> dict:
    block = re.search(rf"## {section}.*?```python\n(.*?)```", README, re.S).group(1)
    for old, new in replacements.items():
        assert old in block, old
        block = block.replace(old, new)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    return namespace


def test_readme_attribution_example_runs(tmp_path):
    ns = _run_block("Attribution API", {"/tmp/readme-index": str(tmp_path / "index")})
    assert tuple(ns["scores"].shape) == (4, 200)
    best = ns["best"]
    assert len(best.ids) == len(best.scores) == 5
    assert list(best.scores) == sorted(best.scores, reverse=True)  # top_k is best first
    assert set(best.ids) <= set(ns["ids"])
    assert (tmp_path / "index" / "manifest.json").is_file()
    shares = ns["shares"]
    assert sum(shares.values()) == 10**18 and all(v >= 0 for v in shares.values())
    assert set(shares) <= set(ns["owners"].values())
    # the memory-mapped index answers like the attributor that built it
    again = ns["index"].scores_by_id(ns["attributor"].query_features((ns["x"][:1], ns["y"][:1])))
    assert max(again, key=again.get) == best.ids[0]


def test_readme_span_example_runs(tmp_path):
    ns = _run_block("Span attribution", {"/tmp/readme-spans": str(tmp_path / "spans")})
    index = ns["index"]
    assert index.count("the guard bees") == 1 and index.count("varroa") == 0
    spans = index.maximal_spans("Use smoke: it masks the alarm pheromone.", min_len=12)
    assert spans and all(s.documents == ("1",) and s.end - s.start >= 12 for s in spans)
    assert set(ns["span_scores"]) == {"1"} and ns["span_scores"]["1"] > 0
    scores = ns["scores"]
    assert scores["1"] > scores["2"] > 0  # the span signal backs document 1; the gradient signal favours 2
