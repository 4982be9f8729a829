"""The registries every contract test folder deploys: OPEN, a DatanetRegistry, a ModelRegistry, a published version.

A conftest imports the fixtures it needs from here (``from registry_fixtures import token, ...``); each conftest
that imports them gets its own session-scoped deployment, so a folder's setup (the market system of ``agents/``
and ``settlement/``) never changes what another folder's tests see.
"""

from __future__ import annotations

import pytest
from contract_helpers import CAP, CREATION_FEE, PROTOCOL_FEE_BPS, content_hash

from attribution_oracle.store.merkle import MerkleTree


@pytest.fixture(scope="session")
def token(project, governance):
    return project.OpenToken.deploy(CAP, sender=governance)


@pytest.fixture(scope="session")
def datanet_registry(project, token, treasury, governance):
    return project.DatanetRegistry.deploy(token, treasury, CREATION_FEE, sender=governance)


@pytest.fixture(scope="session")
def model_registry(project, datanet_registry, governance):
    return project.ModelRegistry.deploy(datanet_registry, PROTOCOL_FEE_BPS, sender=governance)


@pytest.fixture(scope="session")
def datanet_version(datanet_registry, token, governance, datanet_owner):
    """(datanetId, version) of a published version with two approved contributions (owned by datanet_owner)."""
    token.mint(datanet_owner, CREATION_FEE, sender=governance)
    token.approve(datanet_registry, CREATION_FEE, sender=datanet_owner)
    datanet_id = datanet_registry.createDatanet("medical-qa", "ipfs://meta", 0, sender=datanet_owner).return_value
    hashes = [content_hash("version-a"), content_hash("version-b")]
    for h in hashes:
        cid = datanet_registry.contribute(datanet_id, h, "blob://x", 1, 0, sender=datanet_owner).return_value
        datanet_registry.approve(cid, sender=datanet_owner)
    root = MerkleTree(hashes).root
    version = datanet_registry.publishVersion(datanet_id, root, 2, "ipfs://v1", sender=datanet_owner).return_value
    return datanet_id, version
