# pragma version ~=0.4.3
"""
@title OPEN token
@custom:contract-name OpenToken
@license AGPL-3.0-only
@author attribution-ledger contributors
@notice The ERC-20 token that pays for inference and rewards data contributors.
        18 decimals, EIP-2612 permit, a hard supply cap fixed at deployment, and
        minter roles that governance (the owner) grants and revokes with
        `set_minter`. Holders can burn their own tokens (`burn`) or, with an
        allowance, someone else's (`burn_from`). Burning frees room under the cap.
        Everything except the capped `mint` is snekmate's audited `erc20` module.
"""

from snekmate.auth import ownable
from snekmate.tokens import erc20

initializes: ownable
initializes: erc20[ownable := ownable]

exports: (
    erc20.transfer,
    erc20.approve,
    erc20.transferFrom,
    erc20.burn,
    erc20.burn_from,
    erc20.set_minter,
    erc20.permit,
    erc20.DOMAIN_SEPARATOR,
    erc20.transfer_ownership,
    erc20.renounce_ownership,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.is_minter,
    erc20.nonces,
    erc20.owner,
    erc20.eip712Domain,
)


# @dev The most OPEN (in wei) that can ever be in circulation at once.
cap: public(immutable(uint256))


@deploy
def __init__(supply_cap: uint256):
    """
    @notice Deploys OPEN; the deployer becomes governance (owner) and the first minter.
    @param supply_cap The hard cap on `totalSupply`, in wei (18 decimals).
    """
    assert supply_cap > 0, "OpenToken: zero cap"
    cap = supply_cap
    ownable.__init__()
    erc20.__init__("OPEN", "OPEN", 18, "OPEN", "1")


@external
def mint(owner: address, amount: uint256):
    """
    @notice Creates `amount` OPEN for `owner`; only accounts holding the minter role.
    @dev Reverts with "OpenToken: cap exceeded" when the mint would push
         `totalSupply` above `cap`.
    @param owner The receiver of the new tokens (not the zero address).
    @param amount The amount in wei.
    """
    assert erc20.is_minter[msg.sender], "OpenToken: caller is not a minter"
    assert erc20.totalSupply + amount <= cap, "OpenToken: cap exceeded"
    erc20._mint(owner, amount)
