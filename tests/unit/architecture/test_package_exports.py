"""The lazy packages' ``__all__`` is their lazy table, and every name in it loads."""

from __future__ import annotations

import importlib

import pytest

LAZY_PACKAGES = ["attribution_oracle.attribution", "attribution_oracle.factory"]


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_all_is_the_lazy_table_and_every_name_loads(name: str):
    package = importlib.import_module(name)
    assert package.__all__ == sorted(package._LAZY)
    for public in package.__all__:
        value = getattr(package, public)
        assert getattr(importlib.import_module(f"{name}.{package._LAZY[public]}"), public) is value
    assert set(package.__all__) <= set(dir(package))
