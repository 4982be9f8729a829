"""Epochs: which inferences a report settles, decided from chain data only, and building that report.

Rule (every node derives the same report from the same chain and records):

- The previous report is the last one accepted on-chain (not vetoed); it covered blocks up to its ``toBlock``.
- The next epoch ``e`` is ``max(previous epoch + 1, index(first block after previous.toBlock with a served
  inference), index(S) - 1)``, where ``index`` is ``block // epoch_blocks`` (the contract's
  ``InferencePaid.epoch`` rule) or, for time epochs, ``timestamp // epoch_seconds`` of that block, and ``S`` is
  the block in which the previous report was accepted (its ``ReportSubmitted`` event). The last term is the
  catch-up rule: a report covers every epoch that had closed when the previous report landed, so when payments
  outpace the report cycle the reports grow instead of the backlog; it depends on chain data only.
- Epoch ``e`` ends at the last block of index ``e`` (for time epochs: the last block with a timestamp below
  ``(e + 1) * epoch_seconds``); it is closed once a confirmed block lies past that end.
- After a veto the epoch is also above every epoch the distributor has seen (vetoed ones included), while
  ``previous`` stays the last report standing, so the vetoed inferences are covered again.
- Its report covers ``[previous.toBlock + 1, end]``: every inference marked served in those blocks, built with
  ``settlement.epoch_report.build_report`` on top of the previous report's cumulative amounts.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.logs import log, warn
from attribution_oracle.oracle.record_attribution import load_retrieved, load_scores, load_shares
from attribution_oracle.settlement.epoch_report import InferenceShares, Report, build_report
from attribution_oracle.settlement.report_service import URI_PREFIX, report_uri
from attribution_oracle.settlement.report_typed_data import ReportMessage
from attribution_oracle.store.blobs import BlobStore


class EpochClock(Protocol):
    """Maps blocks to epoch indices and finds where an epoch ends."""

    def index(self, block: int) -> int:
        """The epoch index of a block."""
        ...

    def end(self, epoch: int, confirmed: int) -> int | None:
        """The last block of ``epoch`` if a confirmed block (``<= confirmed``) lies past it, else None."""
        ...


@dataclass(frozen=True)
class BlockEpochs:
    """Epochs of ``blocks`` blocks: index ``block // blocks`` (as ``InferenceMarket`` tags payments)."""

    blocks: int

    def index(self, block: int) -> int:
        """The epoch of ``block``: ``block // blocks``."""
        return block // self.blocks

    def end(self, epoch: int, confirmed: int) -> int | None:
        """The epoch's last block, once a confirmed block lies past it; else None."""
        last = (epoch + 1) * self.blocks - 1
        return last if confirmed > last else None


class TimeEpochs:
    """Epochs of ``seconds`` of block time: index ``timestamp // seconds`` (block timestamps, not local clocks)."""

    def __init__(self, seconds: int, timestamp: Callable[[int], int]) -> None:
        """``timestamp(block)`` reads a block's timestamp from the chain (cached here)."""
        if seconds < 1:
            raise ValueError("epoch seconds must be >= 1")
        self.seconds = seconds
        self.timestamp = timestamp
        self._stamps: dict[int, int] = {}

    def _stamp(self, block: int) -> int:
        if block not in self._stamps:
            if len(self._stamps) > 100_000:
                self._stamps.clear()
            self._stamps[block] = int(self.timestamp(block))
        return self._stamps[block]

    def index(self, block: int) -> int:
        """The epoch of ``block``: its timestamp ``// seconds``."""
        return self._stamp(block) // self.seconds

    def end(self, epoch: int, confirmed: int) -> int | None:
        """The last block stamped inside ``epoch``, once a confirmed block is stamped past it; else None."""
        limit = (epoch + 1) * self.seconds
        if self._stamp(confirmed) < limit:
            return None
        low, high = 0, confirmed  # the first block with a timestamp >= limit lies in (low, high]
        while high - low > 1:
            mid = (low + high) // 2
            if self._stamp(mid) >= limit:
                high = mid
            else:
                low = mid
        return high - 1


REPORT_CACHE = 16


def next_epoch(clock: EpochClock, previous_epoch: int, first_served: int, accepted_at: int | None) -> int:
    """The epoch of the next report (the rule in the module docstring), from chain data only.

    ``previous_epoch`` is the last accepted report's epoch (0 if none), ``first_served`` the first block after
    its range holding an ``InferenceServed``, ``accepted_at`` the block of its ``ReportSubmitted`` (None if none).
    """
    epoch = max(previous_epoch + 1, clock.index(first_served))
    if accepted_at is not None:
        epoch = max(epoch, clock.index(accepted_at) - 1)
    return epoch


@dataclass
class Draft:
    """This node's report for an epoch, with the message it signs (roots computed once)."""

    epoch: int
    uri: str
    report: Report
    message: ReportMessage = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.message = self.report.message(self.uri)


class EpochBuilder:
    """Finds the next closed epoch and builds (once) its report."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        db: OracleDB,
        store: BlobStore,
        clock: EpochClock,
        fetch_report: Callable[[str], bytes | None],
    ) -> None:
        """``fetch_report(uri)`` asks peers for a report this node does not hold."""
        self.client = client
        self.deployment = deployment
        self.db = db
        self.store = store
        self.clock = clock
        self.fetch_report = fetch_report
        self._config_digest: bytes | None = None
        self._reports: OrderedDict[str, Report] = OrderedDict()  # by URI: content-addressed, so never stale
        self._drafts: dict[str, Draft] = {}

    def config_digest(self) -> bytes:
        """The distributor's config digest (asked again after a rollback or config change)."""
        if self._config_digest is None:
            distributor = self.client.contract(self.deployment, "RewardDistributor")
            self._config_digest = bytes(self.client.call(distributor.functions.configDigest()))
        return self._config_digest

    def forget(self, _ancestor: int | None = None) -> None:
        """Drop cached chain reads."""
        self._config_digest = None
        self._drafts = {}

    def load(self, uri: str) -> Report | None:
        """A report from the content store, else from a peer (checked against its digest); None if unavailable.

        Parsed reports are kept (the last ``REPORT_CACHE``): a URI names exactly one document."""
        cached = self._reports.get(uri)
        if cached is not None:
            self._reports.move_to_end(uri)
            return cached
        digest = uri.removeprefix(URI_PREFIX)
        if not self.store.has(digest):
            data = self.fetch_report(uri)
            if data is None:
                return None
            if self.store.put_bytes(data) != digest:
                warn("peer sent a report that does not match its digest", uri=uri)
                return None
        report = self._reports[uri] = Report.from_json(self.store.get(digest))
        if len(self._reports) > REPORT_CACHE:
            self._reports.popitem(last=False)
        return report

    def previous(self) -> tuple[Report | None, str, int] | None:
        """``(report, uri, toBlock)`` of the last accepted report (``None, "", deployment block - 1`` if none);
        None when that report cannot be loaded yet."""
        row = self.db.query(
            "SELECT epoch, report_uri, to_block FROM submissions WHERE vetoed = 0 ORDER BY epoch DESC LIMIT 1"
        )
        if not row:
            return None, "", self.deployment.block_number - 1
        epoch, uri, to_block = row[0]
        report = self.load(uri)
        if report is None:
            warn("cannot load the accepted report yet", epoch=epoch, uri=uri)
            return None
        if to_block is None:
            with self.db.transaction() as db:
                db.execute("UPDATE submissions SET to_block = ? WHERE epoch = ?", (report.to_block, epoch))
        return report, uri, report.to_block

    def current(self) -> Draft | None:
        """The draft of the next epoch to settle, built if it is closed and complete; None otherwise."""
        cursor = self.db.cursor()
        found = self.previous()
        if cursor is None or found is None:
            return None
        previous, previous_uri, settled_to = found
        first = self.db.scalar("SELECT MIN(block_number) FROM served WHERE block_number > ?", (settled_to,))
        if first is None:
            return None
        accepted_at = None
        if previous is not None:
            accepted_at = self.db.scalar("SELECT block_number FROM submissions WHERE report_uri = ? AND vetoed = 0 "
                                         "ORDER BY epoch DESC LIMIT 1", (previous_uri,))  # fmt: skip
        epoch = next_epoch(
            self.clock, previous.epoch if previous else 0, int(first), None if accepted_at is None else int(accepted_at)
        )
        # above every epoch the distributor has seen, vetoed ones included (a vetoed number is never reused; the
        # report still starts after the last report standing, so it covers the vetoed inferences again)
        seen = self.db.scalar("SELECT MAX(epoch) FROM submissions")
        epoch = max(epoch, int(seen or 0) + 1)
        end = self.clock.end(epoch, cursor[0])
        if end is None:
            return None
        existing = self.db.query(
            "SELECT report_uri FROM epochs WHERE epoch = ? AND previous_uri = ? AND to_block = ?",
            (epoch, previous_uri, end),
        )
        if existing:
            uri = existing[0][0]
            draft = self._drafts.get(uri)
            if draft is not None and draft.epoch == epoch:
                return draft
            report = self.load(uri)
            if report is not None:
                return self._draft(Draft(epoch, uri, report))
        served = self.db.scalar(
            "SELECT COUNT(*) FROM served s JOIN payments USING (request_id) WHERE s.block_number > ? "
            "AND s.block_number <= ?",
            (settled_to, end),
        )
        rows = self.db.query(
            "SELECT request_id, model_id, scores, shares, reason, ids FROM attributions LEFT JOIN "
            "attribution_fallbacks USING (request_id) LEFT JOIN attribution_retrieved USING (request_id) "
            "WHERE served_block > ? AND served_block <= ? ORDER BY request_id",
            (settled_to, end),
        )
        if len(rows) < int(served or 0):
            return None  # records still missing: wait (the set must not depend on local timing)
        inferences = [
            InferenceShares(r, m, load_shares(sh), load_scores(sc), fb, load_retrieved(ids))
            for r, m, sc, sh, fb, ids in rows
        ]
        started = time.perf_counter()
        report = build_report(
            chain_id=self.client.chain_id,
            distributor=self.deployment.contracts["RewardDistributor"].address,
            config_digest=self.config_digest(),
            epoch=epoch,
            from_block=settled_to + 1,
            to_block=end,
            inferences=inferences,
            previous=previous,
        )
        uri = report_uri(self.store.put_bytes(report.canonical_json()))
        with self.db.transaction() as db:
            db.execute("DELETE FROM signatures WHERE epoch = ? AND report_uri IN (SELECT report_uri FROM epochs "
                       "WHERE epoch = ? AND report_uri != ?)", (epoch, epoch, uri))  # fmt: skip
            db.execute(
                "INSERT OR REPLACE INTO epochs VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'built', NULL)",
                (epoch, previous_uri, settled_to + 1, end, uri, len(inferences), str(report.total_cumulative),
                 time.time()),
            )  # fmt: skip
        log("epoch built", epoch=epoch, uri=uri, inferences=len(inferences), from_block=settled_to + 1, to_block=end,
            total_cumulative=str(report.total_cumulative), seconds=round(time.perf_counter() - started, 4))  # fmt: skip
        return self._draft(Draft(epoch, uri, report))

    def _draft(self, draft: Draft) -> Draft:
        self._drafts = {draft.uri: draft}  # the open epoch's draft only
        return draft
