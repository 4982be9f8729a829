"""EIP-712 messages of the AgentVault: a session key's ``Payment`` authorization and validators' ``Validation``.

The domain is ``AgentVault`` / ``1`` on the vault's chain and address, so a signature is good for one vault on
one chain; a ``Payment`` also names the server allowed to submit it and carries a nonce and a deadline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from attribution_oracle.settlement.report_typed_data import SECP256K1_HALF_N, Signature

__all__ = ["PaymentAuthorization", "sign_payment", "recover_payment_signer", "sign_validation", "payment_digest"]

DOMAIN_NAME = "AgentVault"
DOMAIN_VERSION = "1"
_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
PAYMENT_TYPES = {
    "Payment": [
        {"name": "sessionKey", "type": "address"},
        {"name": "server", "type": "address"},
        {"name": "modelId", "type": "uint256"},
        {"name": "inputHash", "type": "bytes32"},
        {"name": "maxFee", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}
VALIDATION_TYPES = {
    "Validation": [
        {"name": "configDigest", "type": "bytes32"},
        {"name": "agentId", "type": "uint256"},
        {"name": "round", "type": "uint64"},
        {"name": "score", "type": "uint256"},
        {"name": "workHash", "type": "bytes32"},
    ]
}


def _domain(chain_id: int, vault: str) -> dict:
    return {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": vault}


@dataclass(frozen=True)
class PaymentAuthorization:
    """What a session key signs to let ``server`` pay one call of ``model_id`` on ``input_hash``."""

    sessionKey: str  # noqa: N815 - the EIP-712 / contract field names
    server: str
    modelId: int  # noqa: N815
    inputHash: bytes  # noqa: N815
    maxFee: int  # noqa: N815
    nonce: int
    deadline: int

    def typed_data(self, chain_id: int, vault: str) -> dict:
        """The full EIP-712 structure."""
        return {
            "types": {"EIP712Domain": _DOMAIN_TYPE, **PAYMENT_TYPES},
            "primaryType": "Payment",
            "domain": _domain(chain_id, vault),
            "message": asdict(self),
        }

    def as_tuple(self) -> tuple:
        """The contract's ``Payment`` struct."""
        return (self.sessionKey, self.server, self.modelId, self.inputHash, self.maxFee, self.nonce, self.deadline)

    def to_json(self) -> dict:
        """JSON-safe form (for the x402 payload)."""
        out = asdict(self)
        out["inputHash"] = "0x" + self.inputHash.hex()
        out["maxFee"] = str(self.maxFee)
        out["nonce"] = str(self.nonce)
        return out

    @classmethod
    def from_json(cls, data: dict) -> PaymentAuthorization:
        """Parse :meth:`to_json` output; raises ``ValueError``/``KeyError``/``TypeError`` on malformed input."""
        input_hash = bytes.fromhex(str(data["inputHash"]).removeprefix("0x"))
        if len(input_hash) != 32:
            raise ValueError("inputHash must be 32 bytes")
        return cls(
            sessionKey=str(data["sessionKey"]),
            server=str(data["server"]),
            modelId=int(data["modelId"]),
            inputHash=input_hash,
            maxFee=int(data["maxFee"]),
            nonce=int(data["nonce"]),
            deadline=int(data["deadline"]),
        )


def _split(signed, address: str) -> Signature:
    assert signed.s <= SECP256K1_HALF_N  # eth-account signs canonically (low s, v 27/28)
    return Signature(address, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def sign_payment(auth: PaymentAuthorization, chain_id: int, vault: str, key: LocalAccount) -> Signature:
    """The session key's signature over ``auth``."""
    return _split(key.sign_message(encode_typed_data(full_message=auth.typed_data(chain_id, vault))), key.address)


def payment_digest(auth: PaymentAuthorization, chain_id: int, vault: str) -> bytes:
    """The EIP-712 digest of ``auth`` (what ``AgentVault.paymentDigest`` returns)."""
    signable = encode_typed_data(full_message=auth.typed_data(chain_id, vault))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def recover_payment_signer(auth: PaymentAuthorization, chain_id: int, vault: str, sig: Signature) -> str:
    """The address that signed ``auth`` (raises on a malformed signature)."""
    if not 0 < int.from_bytes(sig.s, "big") <= SECP256K1_HALF_N or sig.v not in (27, 28):
        raise ValueError("non-canonical signature (high s or v not 27/28)")
    encoded = encode_typed_data(full_message=auth.typed_data(chain_id, vault))
    return Account.recover_message(encoded, vrs=(sig.v, sig.r, sig.s))


def sign_validation(
    config_digest: bytes, agent_id: int, round_: int, score: int, work_hash: bytes, chain_id: int, vault: str,
    validator: LocalAccount,
) -> Signature:  # fmt: skip
    """A validator's signature over a ``Validation`` report."""
    data = {
        "types": {"EIP712Domain": _DOMAIN_TYPE, **VALIDATION_TYPES},
        "primaryType": "Validation",
        "domain": _domain(chain_id, vault),
        "message": {
            "configDigest": config_digest,
            "agentId": agent_id,
            "round": round_,
            "score": score,
            "workHash": work_hash,
        },
    }
    return _split(validator.sign_message(encode_typed_data(full_message=data)), validator.address)
