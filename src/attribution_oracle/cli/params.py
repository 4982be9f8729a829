"""Parameter types for the command line: on-chain ids, bounded integers and finite numbers.

Each refuses bad values (non-numeric, negative, non-finite, above what the chain can hold) while parsing,
so the command never starts and the user reads one line saying what the valid values are.
"""

from __future__ import annotations

import math
import re
from typing import Any

import click

UINT256_MAX = 2**256 - 1
PORT_MAX = 65535
_WHOLE = re.compile(r"\s*\+?\d+\s*")


class ChainIdType(click.ParamType):
    """An on-chain id (datanet, contribution, model, request, version): a whole number from 0 to 2**256 - 1."""

    name = "id"

    def get_metavar(self, param: click.Parameter, *args: Any) -> str | None:
        """``ID`` for an option in --help (an argument keeps its own name, e.g. DATANET_ID)."""
        return None if isinstance(param, click.Argument) else "ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parse ``value`` as a uint256; fail with the valid range otherwise."""
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _WHOLE.fullmatch(value):
            number = int(value)
        else:
            self.fail(f"{value!r} is not an id: ids are whole numbers from 0 to 2**256 - 1", param, ctx)
        if not 0 <= number <= UINT256_MAX:
            self.fail(f"{value!r} is out of range: ids are whole numbers from 0 to 2**256 - 1", param, ctx)
        return number


INT64_MAX = 2**63 - 1


class BoundedIntType(click.ParamType):
    """A whole number within ``[low, high]`` (``high`` defaults to 2**63 - 1); the error states the range."""

    name = "integer"

    def __init__(self, low: int = 0, high: int = INT64_MAX) -> None:
        self.low, self.high = low, high

    def _rule(self) -> str:
        return f">= {self.low}" if self.high == INT64_MAX else f"between {self.low} and {self.high}"

    def get_metavar(self, param: click.Parameter, *args: Any) -> str:
        """``N>=1`` or ``N:1..65535`` in --help: the valid values at a glance."""
        return f"N>={self.low}" if self.high == INT64_MAX else f"N:{self.low}..{self.high}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parse ``value``; fail with ``must be >= low`` (or the range) otherwise."""
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            number = int(value)
        else:
            self.fail(f"{value!r} is not a whole number; it must be {self._rule()}", param, ctx)
        if number < self.low:
            self.fail(f"must be {self._rule()} (got {number})", param, ctx)
        if number > self.high:
            self.fail(f"must be between {self.low} and {self.high} (got {value})", param, ctx)
        return number


class FiniteFloatType(click.ParamType):
    """A finite real number within bounds (NaN and infinities are refused); the error states the range."""

    name = "number"

    def __init__(
        self, low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False
    ) -> None:
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def _rule(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return "a finite number" + (" " + " and ".join(parts) if parts else "")

    def get_metavar(self, param: click.Parameter, *args: Any) -> str:
        """``X>0``, ``X:0..1`` and the like in --help."""
        low = "" if self.low is None else f"{self.low:g}" + ("<" if self.low_open else "<=")
        high = "" if self.high is None else ("<" if self.high_open else "<=") + f"{self.high:g}"
        return f"{low}X{high}"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        """Parse ``value``; fail with the valid range for non-numbers, NaN, infinities or out-of-range values."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number; it must be {self._rule()}", param, ctx)
        bad = not math.isfinite(number)
        if self.low is not None:
            bad = bad or number < self.low or (self.low_open and number == self.low)
        if self.high is not None:
            bad = bad or number > self.high or (self.high_open and number == self.high)
        if bad:
            self.fail(f"must be {self._rule()} (got {value})", param, ctx)
        return number


CHAIN_ID = ChainIdType()
POSITIVE = BoundedIntType(1)
NON_NEGATIVE = BoundedIntType(0)
PORT = BoundedIntType(1, PORT_MAX)
