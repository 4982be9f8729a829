"""Every contract carries ``@author``, and every event and function carries a NatSpec block.

A function's NatSpec is its docstring (``@notice`` or ``@dev``, ``@return`` when it returns); an event's is the
``# @notice`` / ``# @dev`` comment block right above it (snekmate's layout). Read as text, so the test needs no
compiler and names the exact line that lacks it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[3] / "contracts"
SOURCES = sorted([*CONTRACTS.glob("*.vy"), *CONTRACTS.glob("interfaces/*.vyi")])
NATSPEC_TAG = re.compile(r"@(notice|dev)\b")
DEF_LINE = re.compile(r"^def (\w+)\(")
EVENT_LINE = re.compile(r"^event (\w+):")


def _signature_end(lines: list[str], start: int) -> int:
    """Index of the line that closes the ``def`` starting at ``start`` (the one ending in ``:``)."""
    index = start
    while not lines[index].rstrip().endswith(":"):
        index += 1
    return index


def _docstring(lines: list[str], start: int) -> str:
    """The docstring opening right after the signature ending at ``start``, or ``""``."""
    index = start + 1
    if index >= len(lines) or not lines[index].strip().startswith('"""'):
        return ""
    block = [lines[index]]
    if lines[index].strip().count('"""') >= 2:
        return lines[index]
    for line in lines[index + 1 :]:
        block.append(line)
        if '"""' in line:
            break
    return "\n".join(block)


def _comment_block_above(lines: list[str], index: int) -> str:
    """The run of ``#`` comment lines directly above line ``index``."""
    block: list[str] = []
    cursor = index - 1
    while cursor >= 0 and lines[cursor].lstrip().startswith("#"):
        block.append(lines[cursor])
        cursor -= 1
    return "\n".join(reversed(block))


def natspec_gaps(path: Path) -> list[str]:
    """Every missing ``@author``, event NatSpec or function NatSpec in one contract source, as ``file:line name``."""
    lines = path.read_text().splitlines()
    gaps: list[str] = []
    if path.suffix == ".vy" and not any(line.strip().startswith("@author") for line in lines):
        gaps.append(f"{path.name}: no @author")
    for number, line in enumerate(lines):
        if match := EVENT_LINE.match(line):
            if not NATSPEC_TAG.search(_comment_block_above(lines, number)):
                gaps.append(f"{path.name}:{number + 1} event {match.group(1)}")
        elif match := DEF_LINE.match(line):
            end = _signature_end(lines, number)
            doc = _docstring(lines, end)
            signature = " ".join(lines[number : end + 1])
            if not NATSPEC_TAG.search(doc):
                gaps.append(f"{path.name}:{number + 1} def {match.group(1)}")
            elif "->" in signature and "@return" not in doc:
                gaps.append(f"{path.name}:{number + 1} def {match.group(1)} (no @return)")
    return gaps


def test_contract_sources_found():
    assert {path.name for path in SOURCES} >= {"DatanetRegistry.vy", "RewardDistributor.vy", "IModelRegistry.vyi"}


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_every_event_and_function_has_natspec_and_every_contract_an_author(path: Path):
    assert natspec_gaps(path) == []


def test_checker_flags_a_bare_event_and_a_bare_internal(tmp_path: Path):
    source = tmp_path / "Bare.vy"
    source.write_text(
        '"""\n@title Bare\n"""\n\nevent Ping:\n    x: uint256\n\n\n@internal\ndef _f(x: uint256) -> uint256:\n'
        "    return x\n"
    )
    assert natspec_gaps(source) == ["Bare.vy: no @author", "Bare.vy:5 event Ping", "Bare.vy:10 def _f"]
