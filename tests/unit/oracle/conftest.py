"""Fixtures of the oracle unit tests."""

from __future__ import annotations

import pytest

from attribution_oracle.chain.compile import compile_contract
from attribution_oracle.chain.deployments import ContractRecord, Deployment


@pytest.fixture(scope="session")
def deployment() -> Deployment:
    """The real contracts' ABIs at made-up addresses (decoding tables and typed data need only those)."""
    names = ("InferenceMarket", "RewardDistributor")
    contracts = {
        n: ContractRecord(address="0x" + f"{i + 1:040x}", abi=compile_contract(n).abi) for i, n in enumerate(names)
    }
    return Deployment(chain_id=31337, block_number=1, block_hash="0x" + "00" * 32, deployer="0x" + "11" * 20,
                      contracts=contracts)  # fmt: skip
