"""ape script: `ape run deploy --network ethereum:local:foundry`.

Deploys and wires OpenToken, DatanetRegistry and ModelRegistry with the package's own deploy code and
writes ``deployments/<chain_id>.json`` (or ``$ATTRIBUTION_HOME/deployments`` when that is set). On a local
network the deployer is ape's first test account (Anvil's first funded key); elsewhere set
``DEPLOYER_WALLET`` to a keystore wallet name and ``ATTRIBUTION_PASSWORD`` to its password.
"""

import os
from pathlib import Path

from ape import accounts, chain

from attribution_oracle.chain.contract_deploy import deploy_all
from attribution_oracle.chain.wallets import Wallets
from attribution_oracle.chain.web3_client import ChainClient


def _deployer():
    if alias := os.environ.get("DEPLOYER_WALLET"):
        return Wallets().unlock(alias, os.environ["ATTRIBUTION_PASSWORD"])
    from eth_account import Account

    return Account.from_key(accounts.test_accounts[0].private_key)


def main() -> None:
    """Deploy everything and write the deployment file."""
    client = ChainClient(chain.provider.uri)
    deployment = deploy_all(client, _deployer(), on_step=print)
    home = os.environ.get("ATTRIBUTION_HOME")
    directory = Path(home) / "deployments" if home else Path("deployments")
    path = deployment.save(directory)
    for name, record in deployment.contracts.items():
        print(f"{name:16} {record.address}")
    print(f"wrote {path}")
