"""A synthetic ledger for the explorer's benchmark and unit tests, fed through the product's own ingestion.

Registry events go through ``Catalog.apply`` (the catalog's own API), market and distributor events through
``Explorer.ingest``, reports are real ``settlement.epoch_report`` documents (shares from ``settlement.allocation``)
stored in a ``BlobStore``, and served records through ``Explorer.ingest_records``. Nothing is mocked but the
chain: the events are the dicts ``chain.event_decoding.fetch_events`` returns.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attribution_oracle.explorer.explorer_state import Explorer
from attribution_oracle.serving.served_log import ServedRecord
from attribution_oracle.settlement.allocation import AttributedContribution as Allocated
from attribution_oracle.settlement.allocation import ServedInference, allocate
from attribution_oracle.settlement.epoch_report import InferenceShares, build_report
from attribution_oracle.settlement.report_service import report_uri
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.merkle import MerkleTree

OPEN = 10**18
DISTRIBUTOR = "0x" + "d1" * 20
KEY = "31337:synthetic"


@dataclass(frozen=True)
class Sizes:
    """How big the synthetic world is."""

    inferences: int = 10_000
    contributions: int = 2_000
    epochs: int = 100
    datanets: int = 10
    contributors: int = 200
    models: int = 5


def _address(kind: int, n: int) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address(f"0x{kind:02x}{n:038x}")


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class _Events:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.block = 1

    def add(self, event: str, /, **args: Any) -> None:
        tx = "0x" + hashlib.sha256(f"tx {len(self.items)}".encode()).hexdigest()
        self.items.append(
            {
                "event": event,
                "args": args,
                "blockNumber": self.block,
                "logIndex": len(self.items),
                "transactionHash": tx,
            }
        )

    def next_block(self) -> None:
        self.block += 1


def build_explorer(root: Path, sizes: Sizes = Sizes(), *, seed: int = 0, markup: str = "") -> Explorer:
    """An ``Explorer`` over a synthetic world of ``sizes`` in ``root`` (see the module docstring).

    ``markup`` is put into Datanet names, contribution texts, prompts and outputs (escaping tests)."""
    rng = random.Random(seed)
    store = BlobStore(root / "blobs")
    catalog = Catalog(root / "catalog.sqlite", KEY)
    ev = _Events()
    owners = [_address(1, d) for d in range(1, sizes.datanets + 1)]
    people = [_address(2, p) for p in range(1, sizes.contributors + 1)]
    per_datanet: dict[int, list[int]] = {}
    contributions: dict[int, Allocated] = {}
    for d in range(1, sizes.datanets + 1):
        ev.add("DatanetCreated", datanetId=d, owner=owners[d - 1], name=f"Datanet {d} {markup}",
               metadataURI="", minStake=OPEN, feePaid=10 * OPEN)  # fmt: skip
    for cid in range(1, sizes.contributions + 1):
        d = (cid - 1) % sizes.datanets + 1
        who = people[rng.randrange(len(people))]
        text = f"Contribution {cid} to Datanet {d} by {who}. {markup} Bees keep warm in a cluster number {cid}.\n"
        digest = store.put_bytes(text.encode())
        ev.add("ContributionSubmitted", contributionId=cid, datanetId=d, contributor=who,
               contentHash=bytes.fromhex(digest), uri=f"sha256://{digest}", size=len(text), stake=2 * OPEN)  # fmt: skip
        per_datanet.setdefault(d, []).append(cid)
        contributions[cid] = Allocated(str(cid), who, d)
    ev.next_block()
    for d, ids in per_datanet.items():
        for index, cid in enumerate(ids):
            ev.add("ContributionApproved", contributionId=cid, datanetId=d, curator=owners[d - 1],
                   approvalIndex=index, stakeReturned=2 * OPEN)  # fmt: skip
        hashes = [bytes.fromhex(catalog_digest) for catalog_digest in _hashes(ev, ids)]
        ev.add("VersionPublished", datanetId=d, version=1, merkleRoot=MerkleTree(hashes).root, count=len(ids),
               manifestURI="")  # fmt: skip
    ev.next_block()
    model_sources: dict[int, list[int]] = {}
    for m in range(1, sizes.models + 1):
        sources = sorted(rng.sample(range(1, sizes.datanets + 1), k=min(2, sizes.datanets)))
        model_sources[m] = sources
        ev.add("ModelRegistered", modelId=m, owner=_address(3, m), adapterHash=_digest(f"adapter {m}"),
               baseModelHash=_digest("base"), price=OPEN,
               split={"ownerBps": 5000, "contributorsBps": 4000, "datanetOwnersBps": 1000},
               sources=[{"datanetId": d, "version": 1} for d in sources],
               metadataURI="sha256://" + "0" * 64)  # fmt: skip
    ev.next_block()
    explorer = Explorer(catalog, store, cache_dir=root / "cache")
    explorer.ingest(ev.items, ev.block, "0x" + "00" * 32)
    _market(explorer, ev, rng, sizes, contributions, per_datanet, model_sources, owners, markup)
    return explorer


def _hashes(ev: _Events, ids: list[int]) -> list[str]:
    wanted = set(ids)
    found = {
        e["args"]["contributionId"]: e["args"]["contentHash"].hex()
        for e in ev.items
        if e["event"] == "ContributionSubmitted" and e["args"]["contributionId"] in wanted
    }
    return [found[c] for c in ids]


def _market(explorer, ev, rng, sizes, contributions, per_datanet, model_sources, owners, markup) -> None:
    store = explorer.store
    per_epoch = -(-sizes.inferences // sizes.epochs)
    previous = None
    request = 0
    records = []
    for epoch in range(1, sizes.epochs + 1):
        start = len(ev.items)
        ev.next_block()
        items = []
        for _ in range(min(per_epoch, sizes.inferences - request)):
            request += 1
            model = rng.randrange(1, sizes.models + 1)
            fee = OPEN
            protocol = fee * 500 // 10_000
            rest = fee - protocol
            owner_amount, datanets_amount = rest * 5000 // 10_000, rest * 1000 // 10_000
            contributors_amount = rest - owner_amount - datanets_amount
            ev.add("InferencePaid", requestId=request, payer=_address(4, 1), modelId=model,
                   inputHash=_digest(f"prompt {request}"), fee=fee, epoch=epoch)  # fmt: skip
            ev.add("FeeSplit", requestId=request, modelOwner=_address(3, model), paidAt=request,
                   protocolFee=protocol, ownerAmount=owner_amount, datanetOwnersAmount=datanets_amount,
                   contributorsAmount=contributors_amount)  # fmt: skip
            ev.add("InferenceServed", requestId=request, operator=_address(5, 1))
            pool = [c for d in model_sources[model] for c in per_datanet[d]]
            scores = {str(c): rng.random() for c in rng.sample(pool, k=min(6, len(pool)))}
            training = [contributions[c] for c in pool]
            datanet_owners = {d: owners[d - 1] for d in model_sources[model]}
            served = ServedInference(request, model, contributors_amount, datanets_amount)
            shares = allocate(served, scores, training, datanet_owners)
            items.append(InferenceShares(request, model, shares, scores))
            prompt = f"{markup} How do bees keep warm? ({request})"
            output = f"In a cluster. {markup} Contribution {next(iter(scores))} says so."
            records.append(ServedRecord(request, model, "00" * 32, prompt, tuple(prompt.encode()),
                                        tuple(output.encode()), output, float(request)))  # fmt: skip
        report = build_report(chain_id=31337, distributor=DISTRIBUTOR, config_digest=b"\1" * 32, epoch=epoch,
                              from_block=ev.block, to_block=ev.block, inferences=items, previous=previous)  # fmt: skip
        uri = report_uri(store.put_bytes(report.canonical_json()))
        ev.add("ReportSubmitted", epoch=epoch, rewardsRoot=report.rewards_root,
               totalCumulative=report.total_cumulative, attributionRoot=report.attribution_root, reportURI=uri,
               claimableAt=0, transmitter=_address(5, 1))  # fmt: skip
        previous = report
        explorer.ingest(ev.items[start:], ev.block, "0x" + "00" * 32)
    explorer.ingest_records(records)


def catalog_for(path: Path) -> Catalog:
    """Open a synthetic world's catalog again (same deployment key)."""
    return Catalog(path, KEY)
