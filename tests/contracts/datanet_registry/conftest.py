"""Fixtures of the DatanetRegistry unit tests: the funded registry, Alice's Datanet, and one with a curator."""

from __future__ import annotations

import pytest
from datanet_registry_helpers import MIN_STAKE


@pytest.fixture
def registry(datanet_registry, funded):
    return datanet_registry


@pytest.fixture
def datanet(create_datanet, alice):
    """Datanet 1, owned by Alice, min stake 1 OPEN."""
    return create_datanet(alice, MIN_STAKE)


@pytest.fixture
def curated(registry, datanet, alice, bob):
    """Datanet 1 with Bob appointed curator."""
    registry.setCurator(datanet, bob, True, sender=alice)
    return datanet
