"""Shared fixture of the benchmark-helper tests: ``benchmarks/lm_attribution.py`` imported as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture(scope="module")
def lm():
    """``benchmarks/lm_attribution.py`` as a module (its folder on ``sys.path`` while it is in use)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("lm_attribution_under_test", BENCHMARKS / "lm_attribution.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("lm_attribution_under_test", None)
        sys.path.remove(str(BENCHMARKS))
