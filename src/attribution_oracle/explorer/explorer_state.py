"""The explorer's state: a private catalog mirror and the ledger, kept current from the chain by polling.

The explorer never writes the user's catalog or the chain: it mirrors DatanetRegistry and ModelRegistry
events into its own catalog file (through ``Catalog.apply``, the catalog's own API) in a private cache folder,
folds InferenceMarket and RewardDistributor events into a ``Ledger``, loads each accepted report from the
content store, and reads served records (prompts and outputs) from the server's log or ``/v1/served``.
Without a chain client (the benchmark, unit tests) the same ingestion functions are fed directly.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.event_decoding import fetch_events
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError
from attribution_oracle.explorer.ledger import Ledger
from attribution_oracle.settlement.report_service import load_report
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.catalog_records import Contribution, Datanet, Model, Version
from attribution_oracle.store.store_errors import StoreError

log = logging.getLogger(__name__)

CONTRACTS = ("DatanetRegistry", "ModelRegistry", "InferenceMarket", "RewardDistributor")
RECORD_PAGE = 500


@dataclass
class CatalogView:
    """An in-memory snapshot of the catalog, with the indices the pages need."""

    datanets: dict[int, Datanet]
    contributions: dict[int, Contribution]
    versions: dict[int, list[Version]]
    models: dict[int, Model]
    by_contributor: dict[str, list[int]]

    @classmethod
    def load(cls, catalog: Catalog) -> CatalogView:
        """Read every Datanet, contribution, version and model from ``catalog``."""
        datanets = {d.id: d for d in catalog.list_datanets()}
        contributions: dict[int, Contribution] = {}
        versions: dict[int, list[Version]] = {}
        by_contributor: dict[str, list[int]] = {}
        for datanet_id in datanets:
            for c in catalog.list_contributions(datanet_id):
                contributions[c.id] = c
                by_contributor.setdefault(c.contributor.lower(), []).append(c.id)
            versions[datanet_id] = catalog.list_versions(datanet_id)
        models = {m.id: m for m in catalog.list_models()}
        return cls(datanets, contributions, versions, models, by_contributor)


class Explorer:
    """What the web app reads: catalog snapshot, ledger, content store, and (optionally) the chain."""

    def __init__(
        self,
        catalog: Catalog,
        store: BlobStore | None = None,
        *,
        client: ChainClient | None = None,
        deployment: Deployment | None = None,
        served: Any = None,
        cache_dir: Any = None,
    ) -> None:
        """``served`` is an ``oracle.served_sources`` served-record source (or None); ``cache_dir`` holds derived
        artefacts (restored span indices)."""
        self.catalog = catalog
        self._catalogs = threading.local()
        self._catalogs.catalog = catalog
        self.store = store
        self.client = client
        self.deployment = deployment
        self.served = served
        self.cache_dir = cache_dir
        self.ledger = Ledger()
        self.view = CatalogView.load(catalog)
        self.lock = threading.RLock()
        self._next_block = deployment.block_number if deployment is not None else 0
        self._last_record = 0
        self._unmatched: dict[int, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error = ""

    # -------------------------------------------------------------- ingestion

    def ingest(self, events: list[Mapping[str, Any]], to_block: int, to_block_hash: str) -> None:
        """Fold one batch of decoded events of the four contracts (what ``refresh`` reads from the chain)."""
        catalog = self._catalog()
        applied = catalog.apply(list(events), to_block, to_block_hash)
        with self.lock:
            if applied:
                self.view = CatalogView.load(catalog)
            for event in self.ledger.apply_events(events):
                self._load_report(int(event["args"]["epoch"]))
            self.ledger.head_block = max(self.ledger.head_block, to_block)

    def _catalog(self) -> Catalog:
        """This thread's connection to the private catalog (SQLite connections stay in their thread)."""
        catalog = getattr(self._catalogs, "catalog", None)
        if catalog is None:
            catalog = Catalog(self.catalog.path, self.catalog.deployment_key)
            self._catalogs.catalog = catalog
        return catalog

    def _load_report(self, epoch: int) -> None:
        uri = self.ledger.epochs[epoch].uri
        if self.store is None:
            self.ledger.add_report(epoch, None, "no content store")
            return
        try:
            self.ledger.add_report(epoch, load_report(self.store, uri))
        except (UserError, StoreError, OSError, ValueError) as exc:
            self.ledger.add_report(epoch, None, f"report {uri} cannot be read: {exc}")

    def ingest_records(self, records: Iterable[Any]) -> None:
        """Attach served records; records of requests not seen paid yet wait for their InferencePaid event."""
        with self.lock:
            for record in records:
                self._unmatched[int(record.request_id)] = record
                self._last_record = max(self._last_record, int(record.request_id))
            ready = [r for rid, r in self._unmatched.items() if rid in self.ledger.inferences]
            self.ledger.add_records(ready)
            for record in ready:
                self._unmatched.pop(int(record.request_id), None)

    def refresh(self) -> None:
        """Read new events up to the chain head and new served records (no-op without a chain)."""
        if self.client is not None and self.deployment is not None:
            head = self.client.block("latest")
            if head["number"] >= self._next_block:
                contracts = [self.client.contract(self.deployment, name) for name in CONTRACTS]
                events = fetch_events(self.client, contracts, self._next_block, head["number"])
                self.ingest(events, head["number"], head["hash"].to_0x_hex())
                self._next_block = head["number"] + 1
        if self.served is not None:
            while True:
                page = self.served.after(self._last_record, RECORD_PAGE)
                if not page:
                    break
                self.ingest_records(page)
                if len(page) < RECORD_PAGE:
                    break
        if self._unmatched:
            self.ingest_records([])

    # ---------------------------------------------------------------- polling

    def start(self, interval_s: float = 1.0) -> None:
        """Refresh in a background thread every ``interval_s`` seconds (errors are kept, not raised)."""

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                    self.last_error = ""
                except Exception as exc:  # noqa: BLE001 - the poller must survive a dead RPC and retry
                    self.last_error = str(exc)
                    log.warning("explorer refresh failed: %s", exc)

        self._thread = threading.Thread(target=loop, name="explorer-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background poller."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ------------------------------------------------------------ chain reads

    def claim_status(self, account: str) -> dict[str, Any]:
        """Cumulative, claimed and claimable wei of ``account``; from the chain when there is one.

        Claimable is the distributor's own ``claimable(account, cumulative, proof)`` with the proof from the
        report whose root is the distributor's current ``rewardsRoot``.
        """
        cumulative = self.ledger.cumulative(account)
        status = {"cumulative": cumulative, "claimed": self.ledger.claimed.get(account, 0), "source": "events"}
        status["claimable"] = max(0, cumulative - status["claimed"])
        if self.client is None or self.deployment is None:
            return status
        distributor = self.client.contract(self.deployment, "RewardDistributor")
        root = "0x" + bytes(self.client.call(distributor.functions.rewardsRoot())).hex()
        claimed = int(self.client.call(distributor.functions.claimed(account)))
        with self.lock:
            current = [e for e in self.ledger.epochs.values() if e.rewards_root == root and e.report is not None]
        status.update(claimed=claimed, claimable=0, cumulative=0, source="chain")
        if current:
            report = max(current, key=lambda e: e.epoch).report
            if account in report.rewards:
                amount, proof = report.rewards_tree.proof(account)
                status["cumulative"] = amount
                status["claimable"] = int(self.client.call(distributor.functions.claimable(account, amount, proof)))
            else:
                status["cumulative"] = claimed
        return status

    def report_signers(self, epoch: int) -> list[str]:
        """The oracle signers of an accepted report, recovered from the signatures in its submit transaction."""
        from attribution_oracle.settlement.report_typed_data import ReportMessage, Signature, recover_signer

        item = self.ledger.epochs.get(epoch)
        if item is None or self.client is None or self.deployment is None or not item.tx_hash.startswith("0x"):
            return []
        distributor = self.client.contract(self.deployment, "RewardDistributor")
        with contextlib.suppress(Exception):
            tx = self.client.w3.eth.get_transaction(item.tx_hash)
            _, params = distributor.decode_function_input(tx["input"])
            message = ReportMessage(
                bytes.fromhex(item.report.config_digest.hex()) if item.report else b"\0" * 32,
                int(params["epoch"]),
                bytes(params["rewardsRoot_"]),
                int(params["totalCumulative"]),
                bytes(params["attributionRoot"]),
                str(params["reportURI"]),
            )
            signers = []
            for sig in params["signatures"]:
                v, r, s = (sig["v"], sig["r"], sig["s"]) if isinstance(sig, Mapping) else sig
                signature = Signature("", int(v), bytes(r), bytes(s))
                signers.append(recover_signer(message, self.client.chain_id, distributor.address, signature))
            return signers
        return []
