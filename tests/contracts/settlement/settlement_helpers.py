"""Constants and helpers of the settlement tests (InferenceMarket + RewardDistributor).

Imported by name (pytest puts this folder on sys.path). Reports are built with the package's own
``RewardsTree`` and signed with its ``sign_report`` / ``order_for_contract``, so every test that passes is also
a check that the Python settlement code and the Vyper contracts agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from attribution_oracle.settlement.trees import RewardsTree, attribution_root
from attribution_oracle.settlement.report_typed_data import ReportMessage, Signature, order_for_contract, sign_report

ONE = 10**18
PRICE = 10 * ONE
# owner / contributors / Datanet owners basis points of the model used throughout
SPLIT = (5_000, 4_000, 1_000)
PROTOCOL_FEE_BPS = 500
BPS = 10_000
SERVICE_WINDOW = 3_600
EPOCH_BLOCKS = 10
CLAIM_DELAY = 86_400
MAX_CLAIM_DELAY = 30 * 86_400
THRESHOLD = 2
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
RECEIPT_ABI = "(uint256,address,uint256,address,uint256,uint256,(uint256,uint256,uint256,uint256))"

STATUS_NONE, STATUS_PAID, STATUS_SERVED, STATUS_REFUNDED = 0, 1, 2, 3
NOT_OWNER = "ownable: caller is not the owner"
NOT_AWAITING = "InferenceMarket: not a request awaiting service"


def split_fee(fee: int, owner_bps: int, contributors_bps: int, datanets_bps: int, protocol_bps: int):
    """The split rule of the InferenceMarket notice, in Python: (protocol, owner, datanets, contributors)."""
    del contributors_bps  # contributors receive whatever is left (the dust included)
    protocol = fee * protocol_bps // BPS
    rest = fee - protocol
    owner = rest * owner_bps // BPS
    datanets = rest * datanets_bps // BPS
    return (protocol, owner, datanets, rest - owner - datanets)


POOL_PER_INFERENCE = sum(split_fee(PRICE, *SPLIT, PROTOCOL_FEE_BPS)[2:])


class Receipt(NamedTuple):
    """InferenceMarket's ``Receipt`` (split = (protocol, owner, datanetOwners, contributors))."""

    requestId: int
    payer: str
    modelId: int
    modelOwner: str
    fee: int
    paidAt: int
    split: tuple[int, int, int, int]

    def arg(self) -> tuple:
        """The struct as the contract takes it."""
        return (*self[:6], tuple(self.split))

    def commitment(self) -> bytes:
        """keccak256(abi_encode(receipt)): what the market stores per request."""
        return keccak(encode([RECEIPT_ABI], [self.arg()]))


def receipts_of(market, tx) -> list[Receipt]:
    """Rebuild the receipts of every payment in a transaction from its two events (as a server would)."""
    splits = {log.requestId: log for log in tx.decode_logs(market.FeeSplit)}
    out = []
    for paid in tx.decode_logs(market.InferencePaid):
        s = splits[paid.requestId]
        out.append(
            Receipt(
                requestId=paid.requestId,
                payer=paid.payer,
                modelId=paid.modelId,
                modelOwner=s.modelOwner,
                fee=paid.fee,
                paidAt=s.paidAt,
                split=(s.protocolFee, s.ownerAmount, s.datanetOwnersAmount, s.contributorsAmount),
            )
        )
    return out


def pay(market, payer, model_id: int, max_fee: int = PRICE, label: str = "prompt") -> Receipt:
    """Pay for one inference and return its receipt."""
    tx = market.payForInference(model_id, keccak(text=label), max_fee, sender=payer)
    return receipts_of(market, tx)[0]


def fund_pool(market, payer, operator, model_id: int, count: int = 1) -> int:
    """Pay for and serve ``count`` inferences (one batch); returns the OPEN sent to the distributor."""
    tx = market.payForInferenceBatch(
        [model_id] * count, [keccak(text=f"p{i}") for i in range(count)], [PRICE] * count, sender=payer
    )
    receipts = receipts_of(market, tx)
    market.markServed([r.arg() for r in receipts], sender=operator)
    return sum(r.split[2] + r.split[3] for r in receipts)


def address_of(label: str) -> str:
    """A deterministic fresh address (holds nothing, never sent a transaction)."""
    return Account.from_key(keccak(text=f"settlement-test:{label}")).address


@dataclass
class Report:
    """A report as the oracles build it: the rewards tree and the EIP-712 message."""

    tree: RewardsTree
    message: ReportMessage

    def args(self, signatures: Sequence[tuple]) -> tuple:
        m = self.message
        return (m.epoch, m.rewards_root, m.total_cumulative, m.attribution_root, m.report_uri, list(signatures))

    def proof(self, account: str) -> tuple[int, list[bytes]]:
        return self.tree.proof(account)


def build_report(
    distributor,
    epoch: int,
    amounts: Mapping[str, int],
    *,
    total: int | None = None,
    uri: str | None = None,
    config_digest: bytes | None = None,
) -> Report:
    """Build the epoch report of cumulative ``amounts`` against the distributor's current config digest."""
    tree = RewardsTree(dict(amounts))
    leaves = [(i + 1, 1, keccak(text=f"shares:{epoch}:{a}")) for i, a in enumerate(tree.accounts)]
    message = ReportMessage(
        config_digest=bytes(config_digest if config_digest is not None else distributor.configDigest()),
        epoch=epoch,
        rewards_root=tree.root,
        total_cumulative=tree.total if total is None else total,
        attribution_root=attribution_root(leaves),
        report_uri=uri if uri is not None else f"blob://reports/epoch-{epoch}.json",
    )
    return Report(tree, message)


class Oracles:
    """The oracle signer keys (LocalAccounts) and how they sign for a given distributor."""

    def __init__(self, keys: Sequence[LocalAccount], chain_id: int) -> None:
        self.keys = list(keys)
        self.chain_id = chain_id

    @property
    def addresses(self) -> list[str]:
        return [k.address for k in self.keys]

    def signatures(
        self,
        report: Report,
        distributor,
        which: Iterable[int] = (0, 1),
        *,
        chain_id: int | None = None,
        verifying_contract: str | None = None,
        keys: Sequence[LocalAccount] | None = None,
    ) -> list[Signature]:
        """Signature objects of the chosen signers (unordered)."""
        pool = self.keys if keys is None else list(keys)
        return [
            sign_report(
                report.message,
                self.chain_id if chain_id is None else chain_id,
                to_checksum_address(verifying_contract or distributor.address),
                pool[i],
            )
            for i in which
        ]

    def sign(self, report: Report, distributor, which: Iterable[int] = (0, 1), **kwargs) -> list[tuple]:
        """Contract-ready signatures: ascending signer order, as ``(v, r, s)`` tuples."""
        return [s.as_tuple() for s in order_for_contract(self.signatures(report, distributor, which, **kwargs))]

    def submit(self, report: Report, distributor, sender, which: Iterable[int] = (0, 1)):
        """Sign with ``which`` and submit; returns the transaction."""
        return distributor.submitReport(*report.args(self.sign(report, distributor, which)), sender=sender)


def typed_digest(message: ReportMessage, chain_id: int, distributor: str) -> bytes:
    """The EIP-712 digest eth-account signs (what the contract's ``reportDigest`` must return)."""
    signable = encode_typed_data(full_message=message.typed_data(chain_id, distributor))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def config_digest(chain_id: int, distributor: str, version: int, signers: Sequence[str], threshold: int) -> bytes:
    """keccak256(abi_encode(chain.id, self, version, signers, threshold)) as the contract computes it."""
    return keccak(
        encode(
            ["uint256", "address", "uint256", "address[]", "uint256"],
            [chain_id, to_checksum_address(distributor), version, [to_checksum_address(s) for s in signers], threshold],
        )
    )


def permit_signature(token, owner_key: LocalAccount, spender: str, value: int, nonce: int, deadline: int, chain_id):
    """An EIP-2612 permit for OPEN signed by ``owner_key``: (v, r, s)."""
    data = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {"name": "OPEN", "version": "1", "chainId": chain_id, "verifyingContract": token.address},
        "message": {
            "owner": owner_key.address,
            "spender": to_checksum_address(spender),
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    signed = owner_key.sign_message(encode_typed_data(full_message=data))
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def apply_claim_delay(distributor, governance, chain, delay: int):
    """Queue ``delay`` as the claim delay, wait out the governance timelock and apply it; returns the apply tx."""
    distributor.proposeClaimDelay(delay, sender=governance)
    chain.pending_timestamp = max(chain.pending_timestamp, distributor.queuedClaimDelayAt())
    return distributor.applyClaimDelay(sender=governance)


def apply_oracle_config(distributor, governance, chain, signers: Sequence[str], threshold: int):
    """Queue a new oracle set, wait out the governance timelock and apply it; returns the apply tx."""
    distributor.proposeOracleConfig(list(signers), threshold, sender=governance)
    chain.pending_timestamp = max(chain.pending_timestamp, distributor.queuedConfigAt())
    return distributor.applyOracleConfig(sender=governance)
