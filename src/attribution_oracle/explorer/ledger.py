"""The explorer's in-memory ledger: inferences, epochs and earnings folded from chain events and reports.

Everything here is derived from decoded contract events (``chain.event_decoding.fetch_events`` dicts), the epoch
reports they point to and the served records; the ledger never talks to the chain itself, so the benchmark
and the live poller feed it the same way. Amounts are integers in wei. ``version`` grows with every change,
so views can cache what they derive from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from attribution_oracle.settlement.epoch_report import Report


@dataclass
class Inference:
    """One paid inference and everything known about it so far."""

    request_id: int
    model_id: int
    payer: str
    fee: int
    input_hash: str
    paid_block: int
    tx_hash: str
    model_owner: str = ""
    split: dict[str, int] = field(default_factory=dict)
    status: str = "paid"  # paid | served | refunded
    operator: str = ""
    epoch: int | None = None
    shares: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    prompt: str | None = None
    output: str | None = None
    output_token_ids: tuple[int, ...] = ()
    prompt_token_ids: tuple[int, ...] = ()
    citations: tuple[str, ...] = ()

    @property
    def data_pool(self) -> int:
        """The contributors pool plus the Datanet owners pool (what the report splits)."""
        return self.split.get("contributors", 0) + self.split.get("datanetOwners", 0)

    def positive_scores(self) -> dict[str, float]:
        """Contribution id -> positive score, L1-normalised (the inference's influence, summing to 1).

        Cached until ``scores`` is replaced (the ledger replaces it, never mutates it)."""
        cached = self.__dict__.get("_positive")
        if cached is not None and cached[0] is self.scores:
            return cached[1]
        positive = {c: s for c, s in self.scores.items() if s > 0}
        total = sum(positive.values())
        result = {c: s / total for c, s in positive.items()} if total > 0 else {}
        self.__dict__["_positive"] = (self.scores, result)
        return result


@dataclass
class Epoch:
    """An accepted (or vetoed) report and where it came from."""

    epoch: int
    uri: str
    rewards_root: str
    attribution_root: str
    total_cumulative: int
    block_number: int
    tx_hash: str
    transmitter: str
    vetoed: bool = False
    report: Report | None = None
    error: str = ""

    @property
    def inference_count(self) -> int:
        """How many inferences the report settles (0 when the report is unavailable)."""
        return len(self.report.inferences) if self.report else 0


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if hasattr(value, "to_0x_hex"):
        return value.to_0x_hex()
    return str(value)


class Ledger:
    """Inferences, epochs and who earned what, folded from events (see the module docstring)."""

    def __init__(self) -> None:
        """An empty ledger."""
        self.inferences: dict[int, Inference] = {}
        self.epochs: dict[int, Epoch] = {}
        self.version = 0
        self.head_block = 0
        self.claimed: dict[str, int] = {}
        #: account (checksummed) -> {epoch: wei earned in that epoch's inferences}
        self.earnings: dict[str, dict[int, int]] = {}
        #: contribution id -> request ids whose scores gave it positive influence
        self.used_by: dict[str, list[int]] = {}
        #: contribution id -> summed normalised influence
        self.influence: dict[str, float] = {}
        #: contribution id -> wei of the data pools weighted by its influence (floored per inference)
        self.attributed: dict[str, int] = {}
        #: model id -> [fees of paid, not refunded inferences, their count, settled count]
        self.models: dict[int, list[int]] = {}

    # ------------------------------------------------------------------ events

    def apply_events(self, events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Fold InferenceMarket and RewardDistributor events; returns the ReportSubmitted events seen."""
        submitted = []
        for event in events:
            name, args = event["event"], event["args"]
            block = int(event.get("blockNumber", 0))
            self.head_block = max(self.head_block, block)
            if name == "InferencePaid":
                rid = int(args["requestId"])
                totals = self.models.setdefault(int(args["modelId"]), [0, 0, 0])
                totals[0] += int(args["fee"])
                totals[1] += 1
                self.inferences[rid] = Inference(
                    request_id=rid,
                    model_id=int(args["modelId"]),
                    payer=args["payer"],
                    fee=int(args["fee"]),
                    input_hash=_hex(args.get("inputHash", b"")),
                    paid_block=block,
                    tx_hash=_hex(event.get("transactionHash", "")),
                )
            elif name == "FeeSplit" and int(args["requestId"]) in self.inferences:
                item = self.inferences[int(args["requestId"])]
                item.model_owner = args["modelOwner"]
                item.split = {
                    "protocol": int(args["protocolFee"]),
                    "owner": int(args["ownerAmount"]),
                    "datanetOwners": int(args["datanetOwnersAmount"]),
                    "contributors": int(args["contributorsAmount"]),
                }
            elif name == "InferenceServed" and int(args["requestId"]) in self.inferences:
                item = self.inferences[int(args["requestId"])]
                item.status, item.operator = "served", args.get("operator", "")
            elif name == "InferenceRefunded" and int(args["requestId"]) in self.inferences:
                item = self.inferences[int(args["requestId"])]
                if item.status != "refunded":
                    self.models[item.model_id][0] -= item.fee
                    self.models[item.model_id][1] -= 1
                item.status = "refunded"
            elif name == "ReportSubmitted":
                epoch = int(args["epoch"])
                self.epochs[epoch] = Epoch(
                    epoch=epoch,
                    uri=str(args["reportURI"]),
                    rewards_root=_hex(args["rewardsRoot"]),
                    attribution_root=_hex(args["attributionRoot"]),
                    total_cumulative=int(args["totalCumulative"]),
                    block_number=block,
                    tx_hash=_hex(event.get("transactionHash", "")),
                    transmitter=args.get("transmitter", ""),
                )
                submitted.append(event)
            elif name == "ReportVetoed" and int(args["epoch"]) in self.epochs:
                self._unsettle(self.epochs[int(args["epoch"])])
                self.epochs[int(args["epoch"])].vetoed = True
            elif name == "Claimed":
                self.claimed[args["account"]] = int(args["cumulativeAmount"])
            else:
                continue
            self.version += 1
        return submitted

    def add_report(self, epoch: int, report: Report | None, error: str = "") -> None:
        """Attach an accepted epoch's report (or why it could not be read) and credit its inferences."""
        item = self.epochs[epoch]
        item.report, item.error = report, error
        if report is None or item.vetoed:
            self.version += 1
            return
        for shares in report.inferences:
            inference = self.inferences.get(shares.request_id)
            if inference is None:  # a report about a request this ledger never saw paid
                continue
            inference.epoch, inference.shares, inference.scores = epoch, dict(shares.shares), dict(shares.scores)
            for account, amount in shares.shares.items():
                per_epoch = self.earnings.setdefault(account, {})
                per_epoch[epoch] = per_epoch.get(epoch, 0) + amount
            pool = inference.data_pool
            for cid, weight in inference.positive_scores().items():
                self.used_by.setdefault(cid, []).append(shares.request_id)
                self.influence[cid] = self.influence.get(cid, 0.0) + weight
                self.attributed[cid] = self.attributed.get(cid, 0) + int(pool * weight)
            self.models.setdefault(inference.model_id, [0, 0, 0])[2] += 1
        self.version += 1

    def _unsettle(self, item: Epoch) -> None:
        if item.report is None or item.vetoed:
            return
        for shares in item.report.inferences:
            inference = self.inferences.get(shares.request_id)
            if inference is None or inference.epoch != item.epoch:
                continue
            for account, amount in shares.shares.items():
                self.earnings[account][item.epoch] -= amount
            pool = inference.data_pool
            for cid, weight in inference.positive_scores().items():
                self.used_by[cid].remove(shares.request_id)
                self.influence[cid] -= weight
                self.attributed[cid] -= int(pool * weight)
            self.models[inference.model_id][2] -= 1
            inference.epoch, inference.shares, inference.scores = None, {}, {}

    def add_records(self, records: Iterable[Any]) -> int:
        """Attach served records (prompt, output, token ids, RAG citations when the record has them)."""
        added = 0
        for record in records:
            inference = self.inferences.get(int(record.request_id))
            if inference is None:
                continue
            inference.prompt = record.prompt
            inference.output = record.output_text
            inference.prompt_token_ids = tuple(record.prompt_token_ids)
            inference.output_token_ids = tuple(record.output_token_ids)
            inference.citations = citations_of(record)
            added += 1
        if added:
            self.version += 1
        return added

    # ---------------------------------------------------------------- queries

    def latest_epoch(self) -> Epoch | None:
        """The newest accepted, not vetoed epoch with a readable report."""
        live = [e for e in self.epochs.values() if not e.vetoed]
        return max(live, key=lambda e: e.epoch) if live else None

    def cumulative(self, account: str) -> int:
        """What ``account`` has earned over every accepted report (the latest report's cumulative leaf)."""
        latest = self.latest_epoch()
        if latest is not None and latest.report is not None:
            return latest.report.rewards.get(account, 0)
        return sum(self.earnings.get(account, {}).values())


def citations_of(record: Any) -> tuple[str, ...]:
    """The RAG citations of a served record, if its format has them (read defensively: the field is new)."""
    for name in ("retrieved_ids", "citations", "retrieved"):
        value = getattr(record, name, None)
        if value is None and isinstance(record, Mapping):
            value = record.get(name)
        if value:
            return tuple(str(v) for v in value)
    return ()
