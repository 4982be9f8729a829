"""The one parser of ``ID`` / ``ID@VERSION`` Datanet specs (``--datanet`` options, model sources)."""

from __future__ import annotations

import re

from attribution_oracle.errors import UserError

__all__ = ["DatanetSpecError", "parse_spec"]

UINT256_MAX = 2**256 - 1
_SPEC = re.compile(r"(\d+)(?:@(\d+))?")


class DatanetSpecError(UserError):
    """A ``--datanet`` value that is not ``ID`` or ``ID@VERSION`` with ids in range."""


def parse_spec(spec: str) -> tuple[int, int | None]:
    """Parse ``ID`` or ``ID@VERSION`` into ``(id, version or None)``; ids are whole numbers >= 1 below 2**256."""
    match = _SPEC.fullmatch(spec.strip())
    if not match:
        raise DatanetSpecError(f"--datanet {spec!r}: use ID or ID@VERSION (whole numbers, e.g. 1 or 1@2)")
    datanet_id = int(match.group(1))
    version = int(match.group(2)) if match.group(2) else None
    if not 1 <= datanet_id <= UINT256_MAX or (version is not None and not 1 <= version <= UINT256_MAX):
        raise DatanetSpecError(f"--datanet {spec!r}: ids and versions are whole numbers from 1 to 2**256 - 1")
    return datanet_id, version
