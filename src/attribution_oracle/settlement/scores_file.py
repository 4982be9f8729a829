"""The scores file of ``report build --scores``: what an operator (or a test) hands in instead of an oracle node.

Two per-request forms, mixable in one file (request ids are JSON object keys):

- ``{"<request id>": {"<contribution id>": score, ...}}``: the model's attribution scores;
- ``{"<request id>": {"scores": {"<contribution id>": score, ...}, "retrieved": ["<contribution id>", ...]}}``:
  the same, for an inference served with retrieval (``serve --rag``), with the retrieved ids in rank order. The
  report then splits the pool with ``rag_scores`` and commits the ids in the attribution leaf, as a node does.

A request missing from the file takes the documented equal split.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from attribution_oracle.serving.rag_retriever import MAX_TOP_K as MAX_RETRIEVED

__all__ = ["ScoresFile", "ScoresFileError", "read_scores_file"]


class ScoresFileError(ValueError):
    """The scores file cannot be read or does not have the documented shape."""


@dataclass(frozen=True)
class ScoresFile:
    """Scores and retrieved ids per request id."""

    scores: dict[int, dict[str, float]] = field(default_factory=dict)
    retrieved: dict[int, tuple[str, ...]] = field(default_factory=dict)


def _request_id(key: str) -> int:
    if not key.isdigit() or int(key) <= 0:
        raise ScoresFileError(f"request id {key!r} is not a positive integer")
    return int(key)


def _score_map(request: int, raw: object) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ScoresFileError(f"request {request}: scores must be an object {{contribution id: score}}")
    out = {}
    for cid, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ScoresFileError(f"request {request}: score of contribution {cid} must be a finite number")
        out[str(cid)] = float(value)
    return out


def _retrieved(request: int, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in raw):
        raise ScoresFileError(f"request {request}: retrieved must be a list of contribution ids")
    ids = tuple(dict.fromkeys(str(c) for c in raw))
    if len(ids) > MAX_RETRIEVED:
        raise ScoresFileError(f"request {request}: at most {MAX_RETRIEVED} retrieved ids, got {len(ids)}")
    return ids


def read_scores_file(path: Path) -> ScoresFile:
    """Parse a scores file (see the module docstring); ``ScoresFileError`` says what is wrong and where."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ScoresFileError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ScoresFileError(f"{path}: expected a JSON object {{request id: {{contribution id: score}}}}")
    parsed = ScoresFile()
    for key, entry in raw.items():
        request = _request_id(str(key))
        if isinstance(entry, dict) and set(entry) <= {"scores", "retrieved"} and "retrieved" in entry:
            parsed.scores[request] = _score_map(request, entry.get("scores", {}))
            parsed.retrieved[request] = _retrieved(request, entry["retrieved"])
        else:
            parsed.scores[request] = _score_map(request, entry)
    return parsed
