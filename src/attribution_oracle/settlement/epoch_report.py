"""Epoch reports: canonical, versioned JSON whose roots and total are what the oracles sign.

A report carries the cumulative amount of every account (previous report plus this epoch's inferences),
the per-inference shares of this epoch, both Merkle roots and the total. ``canonical_json`` is the byte-exact
form stored in the content store (its sha256 is the report URI) and compared between oracle nodes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils import to_checksum_address

from attribution_oracle.settlement.allocation import merge
from attribution_oracle.settlement.report_typed_data import ReportMessage
from attribution_oracle.settlement.trees import RewardsTree, attribution_root, retrieved_hash, shares_hash

FORMAT = "attribution-oracle/report@1"


@dataclass(frozen=True)
class InferenceShares:
    """One served inference in a report: who gets what from it."""

    request_id: int
    model_id: int
    shares: dict[str, int]
    scores: dict[str, float] = field(default_factory=dict)
    #: Why the equal split was used instead of scores (e.g. the served record failed a check); None if scored.
    fallback: str | None = None
    #: Contribution ids the server retrieved into the model's context (``serve --rag``), rank order; the shares
    #: follow ``rag_scores(scores, retrieved)`` and the attribution leaf commits them.
    retrieved: tuple[str, ...] = ()

    @property
    def shares_hash(self) -> bytes:
        """keccak256 of the canonical shares."""
        return shares_hash(self.shares)

    @property
    def leaf(self) -> tuple:
        """The attribution leaf's fields: ``(requestId, modelId, sharesHash)`` plus ``retrievedHash`` with retrieval."""
        base = (self.request_id, self.model_id, self.shares_hash)
        return (*base, retrieved_hash(self.retrieved)) if self.retrieved else base


@dataclass
class Report:
    """An epoch report (see module docstring). Each inference keeps the scores its shares came from, so anyone
    can recompute the shares from the chain's pools and training data."""

    chain_id: int
    distributor: str
    config_digest: bytes
    epoch: int
    from_block: int
    to_block: int
    inferences: list[InferenceShares]
    rewards: dict[str, int]
    previous_epoch: int = 0
    _tree: RewardsTree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._tree = RewardsTree(self.rewards)
        self.rewards = dict(self._tree.amounts)

    @property
    def rewards_tree(self) -> RewardsTree:
        """The cumulative rewards tree."""
        return self._tree

    @property
    def rewards_root(self) -> bytes:
        """Root of the rewards tree."""
        return self._tree.root

    @property
    def total_cumulative(self) -> int:
        """Sum of all cumulative rewards."""
        return self._tree.total

    @property
    def attribution_root(self) -> bytes:
        """Root of the per-inference attribution tree."""
        return attribution_root([i.leaf for i in self.inferences])

    def message(self, report_uri: str) -> ReportMessage:
        """The EIP-712 message for this report stored at ``report_uri``."""
        return ReportMessage(
            self.config_digest, self.epoch, self.rewards_root, self.total_cumulative, self.attribution_root, report_uri
        )

    def to_dict(self) -> dict:
        """The JSON-ready form (integers as decimal strings, bytes as 0x hex)."""
        return {
            "format": FORMAT,
            "chainId": self.chain_id,
            "distributor": to_checksum_address(self.distributor),
            "configDigest": "0x" + self.config_digest.hex(),
            "epoch": self.epoch,
            "previousEpoch": self.previous_epoch,
            "fromBlock": self.from_block,
            "toBlock": self.to_block,
            "inferences": [
                {
                    "requestId": i.request_id,
                    "modelId": i.model_id,
                    "shares": {a: str(v) for a, v in sorted(i.shares.items())},
                    "sharesHash": "0x" + i.shares_hash.hex(),
                    "scores": {c: repr(float(v)) for c, v in sorted(i.scores.items())},
                    **({"fallback": i.fallback} if i.fallback else {}),
                    **({"retrieved": list(i.retrieved)} if i.retrieved else {}),
                }
                for i in self.inferences
            ],
            "rewards": {a: str(v) for a, v in self.rewards.items()},
            "totalCumulative": str(self.total_cumulative),
            "rewardsRoot": "0x" + self.rewards_root.hex(),
            "attributionRoot": "0x" + self.attribution_root.hex(),
        }

    def canonical_json(self) -> bytes:
        """Byte-exact JSON: sorted keys, no whitespace."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Report:
        """Parse a stored report and check that its declared roots and total match its contents."""
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        report = cls(
            chain_id=int(raw["chainId"]),
            distributor=raw["distributor"],
            config_digest=bytes.fromhex(raw["configDigest"][2:]),
            epoch=int(raw["epoch"]),
            previous_epoch=int(raw["previousEpoch"]),
            from_block=int(raw["fromBlock"]),
            to_block=int(raw["toBlock"]),
            inferences=[
                InferenceShares(
                    int(i["requestId"]),
                    int(i["modelId"]),
                    {a: int(v) for a, v in i["shares"].items()},
                    {c: float(v) for c, v in i.get("scores", {}).items()},
                    i.get("fallback"),
                    tuple(str(c) for c in i.get("retrieved", ())),
                )
                for i in raw["inferences"]
            ],
            rewards={a: int(v) for a, v in raw["rewards"].items()},
        )
        for key, value in (
            ("rewardsRoot", "0x" + report.rewards_root.hex()),
            ("attributionRoot", "0x" + report.attribution_root.hex()),
            ("totalCumulative", str(report.total_cumulative)),
        ):
            if raw[key] != value:
                raise ValueError(f"report's {key} {raw[key]} does not match its contents ({value})")
        return report


def build_report(
    *,
    chain_id: int,
    distributor: str,
    config_digest: bytes,
    epoch: int,
    from_block: int,
    to_block: int,
    inferences: Sequence[InferenceShares],
    previous: Report | None = None,
) -> Report:
    """The next report: previous cumulative amounts plus this epoch's inference shares."""
    if previous is not None and epoch <= previous.epoch:
        raise ValueError(f"epoch {epoch} must be greater than the previous report's {previous.epoch}")
    seen = {i.request_id for i in (previous.inferences if previous else [])}
    repeated = [i.request_id for i in inferences if i.request_id in seen]
    if repeated or len({i.request_id for i in inferences}) != len(inferences):
        raise ValueError(f"request {repeated[0] if repeated else '?'} is settled twice")
    ordered = sorted(inferences, key=lambda i: i.request_id)
    base: Mapping[str, int] = previous.rewards if previous else {}
    cumulative = merge(base, *({to_checksum_address(a): v for a, v in i.shares.items()} for i in ordered))
    return Report(
        chain_id=chain_id,
        distributor=distributor,
        config_digest=config_digest,
        epoch=epoch,
        previous_epoch=previous.epoch if previous else 0,
        from_block=from_block,
        to_block=to_block,
        inferences=list(ordered),
        rewards=cumulative,
    )
