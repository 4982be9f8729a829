"""OPEN token helpers shared by commands that spend OPEN through a contract."""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from web3.contract import Contract

from attribution_oracle.chain.chain_errors import TransactionError
from attribution_oracle.chain.web3_client import ChainClient, format_eth


def ensure_allowance(client: ChainClient, token: Contract, owner: LocalAccount, spender: str, amount: int) -> None:
    """Make sure ``spender`` may pull ``amount`` OPEN from ``owner``, who must hold it; approves if needed."""
    if amount == 0:
        return
    balance = client.call(token.functions.balanceOf(owner.address))
    if balance < amount:
        raise TransactionError(
            f"{owner.address} holds {format_eth(balance)} OPEN but {format_eth(amount)} OPEN is needed"
        )
    if client.call(token.functions.allowance(owner.address, spender)) < amount:
        client.send(token.functions.approve(spender, amount), owner, f"approve {format_eth(amount)} OPEN")


def events_of(contract: Contract, name: str, receipt) -> list[dict]:
    """Decode the events ``name`` that ``contract`` emitted in ``receipt``."""
    from web3.logs import DISCARD

    return [dict(e["args"]) for e in contract.events[name]().process_receipt(receipt, errors=DISCARD)]
