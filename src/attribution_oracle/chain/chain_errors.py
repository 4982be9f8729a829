"""Errors raised by the chain client, each with a message a user can act on."""

from attribution_oracle.errors import UserError


class ChainError(UserError):
    """Base class of chain-side errors."""


class RpcUnavailableError(ChainError):
    """The RPC endpoint does not answer."""


class TransactionError(ChainError):
    """A transaction could not be sent or was reverted."""


class DeploymentNotFoundError(ChainError):
    """No deployment file for the connected chain."""


class WalletError(ChainError):
    """A wallet is unknown, exists already, or its password is wrong."""
