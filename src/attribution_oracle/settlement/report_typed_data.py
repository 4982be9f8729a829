"""EIP-712 typed data of an epoch report, and signing/recovery with eth-account."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

DOMAIN_NAME = "AttributionRewards"
DOMAIN_VERSION = "1"
SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0

REPORT_TYPES = {
    "Report": [
        {"name": "configDigest", "type": "bytes32"},
        {"name": "epoch", "type": "uint64"},
        {"name": "rewardsRoot", "type": "bytes32"},
        {"name": "totalCumulative", "type": "uint256"},
        {"name": "attributionRoot", "type": "bytes32"},
        {"name": "reportURI", "type": "string"},
    ]
}


@dataclass(frozen=True)
class ReportMessage:
    """The fields oracles sign."""

    config_digest: bytes
    epoch: int
    rewards_root: bytes
    total_cumulative: int
    attribution_root: bytes
    report_uri: str

    def typed_data(self, chain_id: int, distributor: str) -> dict:
        """The full EIP-712 structure (domain binds chain id and the distributor contract)."""
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                **REPORT_TYPES,
            },
            "primaryType": "Report",
            "domain": {
                "name": DOMAIN_NAME,
                "version": DOMAIN_VERSION,
                "chainId": chain_id,
                "verifyingContract": distributor,
            },
            "message": {
                "configDigest": self.config_digest,
                "epoch": self.epoch,
                "rewardsRoot": self.rewards_root,
                "totalCumulative": self.total_cumulative,
                "attributionRoot": self.attribution_root,
                "reportURI": self.report_uri,
            },
        }


@dataclass(frozen=True)
class Signature:
    """A secp256k1 signature split for the contract (low-s)."""

    signer: str
    v: int
    r: bytes
    s: bytes

    def as_tuple(self) -> tuple[int, bytes, bytes]:
        """``(v, r, s)`` as the contract's ``Signature`` struct."""
        return (self.v, self.r, self.s)


def sign_report(message: ReportMessage, chain_id: int, distributor: str, signer: LocalAccount) -> Signature:
    """Sign a report; eth-account produces canonical low-s signatures."""
    signed = signer.sign_message(encode_typed_data(full_message=message.typed_data(chain_id, distributor)))
    assert signed.s <= SECP256K1_HALF_N
    return Signature(signer.address, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def recover_signer(message: ReportMessage, chain_id: int, distributor: str, signature: Signature) -> str:
    """The address that made ``signature`` over this report (for verification off-chain)."""
    encoded = encode_typed_data(full_message=message.typed_data(chain_id, distributor))
    return Account.recover_message(encoded, vrs=(signature.v, signature.r, signature.s))


def order_for_contract(signatures: list[Signature]) -> list[Signature]:
    """Signatures sorted by signer address ascending, duplicates dropped (the contract requires this)."""
    unique = {s.signer.lower(): s for s in signatures}
    return [unique[k] for k in sorted(unique, key=lambda a: int(a, 16))]
