"""One oracle node: follow the chain, attribute, build, sign, exchange and submit epoch reports, in a loop.

Each loop pass runs the steps in order, each step its own transaction, so a crash at any point loses at most
the step in progress and a restart redoes it. RPC, source and peer failures are logged and retried with
exponential backoff; SIGTERM/SIGINT end the loop after the current step and stop the HTTP server.

Overlap (``NodeConfig.overlap``, the default): the model compute of an attribution step (``RecordAttributor.score``,
one batched pass per model) runs on a worker thread while the loop thread goes on following the chain, exchanging
signatures and submitting reports; report transactions are sent without waiting for their receipt
(``Consensus(async_submit=True)``). Everything that writes state stays on the loop thread: the step is read and
checked there (``prepare``) and stored there (``finish``) in one transaction, after every rollback that happened
while it was scored (a job from before a rollback is dropped; a request whose payment changed is left pending).
At most one job is in flight, and the next one starts only after the previous one is stored, so a request is
never scored twice at once, and every request is stored once (``INSERT OR IGNORE`` on its id).
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from pathlib import Path

from eth_account.signers.local import LocalAccount

from attribution_oracle.chain.deployments import Deployment
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.errors import UserError
from attribution_oracle.oracle.consensus import Consensus
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.epochs import BlockEpochs, EpochBuilder, EpochClock, TimeEpochs
from attribution_oracle.oracle.follower import ChainFollower
from attribution_oracle.oracle.logs import log, warn
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.node_server import HttpServer
from attribution_oracle.oracle.peers import Peers
from attribution_oracle.oracle.record_attribution import (
    DEFAULT_RECORD_GRACE_BLOCKS,
    AttributionJob,
    RecordAttributor,
)
from attribution_oracle.oracle.scoring import ScorerContext, ScorerProvider
from attribution_oracle.oracle.served_sources import ServedRecords
from attribution_oracle.store.blobs import BlobStore

BACKOFF_START_S = 0.25
BACKOFF_MAX_S = 8.0


@dataclass
class NodeConfig:
    """How a node runs (see ``attribution-oracle oracle run --help``)."""

    state_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    peers: list[str] = field(default_factory=list)
    epoch_blocks: int | None = None  # None: the InferenceMarket's epochBlocks
    epoch_seconds: int | None = None  # time epochs (by block timestamps) instead of block epochs
    confirmations: int = 2
    poll_interval_s: float = 0.25
    submit_delay_s: float = 1.0
    record_grace_blocks: int = DEFAULT_RECORD_GRACE_BLOCKS  # served but no record after this: equal fallback
    overlap: bool = True  # score on a worker thread and send reports without waiting (see ``OracleNode``)
    busy_poll_interval_s: float = 1.0  # between passes while a job is scored (its end starts a pass at once)


class Backoff:
    """Exponential backoff: 0.25 s doubling up to 8 s, reset after a success."""

    def __init__(self, start: float = BACKOFF_START_S, cap: float = BACKOFF_MAX_S) -> None:
        """Start at ``start`` seconds, never wait longer than ``cap``."""
        self.start, self.cap, self.current = start, cap, start

    def next(self) -> float:
        """The next wait, doubling the one after."""
        wait, self.current = self.current, min(self.cap, self.current * 2)
        return wait

    def reset(self) -> None:
        """After a success."""
        self.current = self.start


class OracleNode:
    """A running oracle node (construct, then ``run()`` or ``run_once()``)."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: BlobStore,
        signer: LocalAccount,
        source: ServedRecords,
        provider: ScorerProvider,
        context: ScorerContext,
        config: NodeConfig,
    ) -> None:
        """Wire the parts; nothing runs until ``run``."""
        self.client = client
        self.deployment = deployment
        self.store = store
        self.signer = signer
        self.config = config
        self.metrics = Metrics()
        self.db = OracleDB(Path(config.state_dir) / "oracle.sqlite")
        self.db.bind(deployment.key, signer.address)
        self.peers = Peers(config.peers, signer=signer, chain_id=client.chain_id)
        self.follower = ChainFollower(client, deployment, self.db, config.confirmations)
        self.attributor = RecordAttributor(self.db, source, provider, context, self.metrics, config.record_grace_blocks)
        self.builder = EpochBuilder(client, deployment, self.db, store, self._clock(), self.peers.report)
        self.consensus = Consensus(
            client, deployment, self.db, signer, self.peers, self.builder, self.metrics, config.submit_delay_s,
            async_submit=config.overlap,
        )  # fmt: skip
        self._scoring: ThreadPoolExecutor | None = None  # the worker thread of overlapped attribution
        self._job: Future | None = None  # the attribution job being scored (at most one)
        self._after = -1  # overlapped attribution walks the pending requests from here
        self.follower.on_rollback += [self.attributor.forget, self.builder.forget, self.consensus.forget]
        self.stop_event = threading.Event()
        self.last_error: str | None = None
        self._progress = time.monotonic()
        self.server: HttpServer | None = None

    def _clock(self) -> EpochClock:
        if self.config.epoch_seconds:
            return TimeEpochs(self.config.epoch_seconds, lambda block: int(self.client.block(block)["timestamp"]))
        blocks = self.config.epoch_blocks
        if blocks is None:
            market = self.client.contract(self.deployment, "InferenceMarket")
            blocks = int(self.client.call(market.functions.epochBlocks()))
        if blocks < 1:
            raise UserError("--epoch-blocks must be at least 1")
        return BlockEpochs(blocks)

    # ------------------------------------------------------------------ loop

    def seconds_since_progress(self) -> float:
        """Seconds since the last loop pass that completed without error."""
        return time.monotonic() - self._progress

    def run_once(self, overlap: bool | None = None) -> dict:
        """One pass: follow (until caught up), attribute, then advance the open epoch.

        Sequential (``overlap`` False): attribute every pending request before going on. Overlapped (the
        config's default): store the job scored meanwhile, start the next one on the worker thread and go on."""
        overlap = self.config.overlap if overlap is None else overlap
        self.consensus.async_submit = overlap  # a sequential pass (and --once) waits for its report's receipt
        summary = {"events": 0, "attributed": 0, "epoch": None, "action": None}
        while not self.stop_event.is_set():
            step = self.follower.step()
            if step.reorg_to is not None:
                self.metrics.reorgs.inc()
            summary["events"] += step.events
            self.metrics.head.set(step.head)
            self.metrics.cursor.set(step.cursor)
            self.metrics.lag.set(step.head - step.cursor)
            if step.head - self.config.confirmations <= step.cursor:
                break
        if overlap:
            summary["attributed"] += self._attribute_overlapped()
        else:
            summary["attributed"] += self._attribute_all()
        if not self.stop_event.is_set():
            self.consensus.refresh_config()  # a rotation or a veto moved the digest: resume under the new one
            self.consensus.audit_accepted()
        draft = None if self.stop_event.is_set() else self.builder.current()
        if draft is not None:
            summary["epoch"] = draft.epoch
            summary["action"] = self.consensus.step(draft)
        self._gauges()
        return summary

    def _attribute_all(self) -> int:
        """Attribute every pending request on this thread (requests waiting for a record do not hold back the
        ones after them)."""
        self._drain()
        attributed, after = 0, -1
        while not self.stop_event.is_set():
            done = self.attributor.step(after)
            attributed += done.attributed
            if done.attributed + done.waiting == 0:
                break
            after = done.last
        return attributed

    def _attribute_overlapped(self) -> int:
        """Store the job scored since the last pass (if it is done) and start the next one; returns how many
        requests were stored. Jobs that need no model compute (only fallbacks or waiting) are done right here."""
        attributed = 0
        if self._job is not None:
            if not self._job.done():
                return 0
            future, self._job = self._job, None
            attributed += self._finish(future.result())  # a scorer error propagates: the loop retries the step
        wrapped = False
        while not self.stop_event.is_set():
            job = self.attributor.prepare(self._after)
            if job is None:
                if self._after == -1 or wrapped:
                    self._after = -1
                    break
                self._after, wrapped = -1, True  # back to the requests still waiting for their record
                continue
            if job.needs_scoring:
                if self._scoring is None:
                    self._scoring = ThreadPoolExecutor(1, thread_name_prefix="oracle-scoring")
                self._job = self._scoring.submit(self.attributor.score, job)
                break
            attributed += self._finish(job)
        return attributed

    def _finish(self, job: AttributionJob) -> int:
        done = self.attributor.finish(job)
        self._after = done.last
        return done.attributed

    def _drain(self) -> int:
        """Wait for and store the job in flight, if any (before a sequential pass)."""
        if self._job is None:
            return 0
        future, self._job = self._job, None
        return self._finish(future.result())

    def wait_for_work(self, timeout_s: float) -> None:
        """Sleep until the next pass: ``timeout_s``; while a job is scored, until it ends or at most
        ``busy_poll_interval_s`` (a pass costs chain reads and CPU the scoring thread needs more; the signature
        pushes of peers are taken by the HTTP server meanwhile)."""
        if self._job is not None:
            wait_for([self._job], timeout=max(timeout_s, self.config.busy_poll_interval_s))
        else:
            self.stop_event.wait(timeout_s)

    def _gauges(self) -> None:
        settled_to = self.db.scalar("SELECT COALESCE(MAX(to_block), -1) FROM submissions WHERE vetoed = 0")
        self.metrics.pending.set(
            self.db.scalar("SELECT COUNT(*) FROM served WHERE block_number > ?", (settled_to,)) or 0
        )
        self.metrics.unattributed.set(
            self.db.scalar("SELECT COUNT(*) FROM served WHERE request_id NOT IN (SELECT request_id FROM attributions)")
            or 0
        )
        self.metrics.latest_epoch.set(self.db.scalar("SELECT COALESCE(MAX(epoch), 0) FROM submissions") or 0)

    def run(self, once: bool = False, handle_signals: bool = True) -> None:
        """Serve HTTP and loop until SIGTERM/SIGINT (or one pass with ``once``)."""
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        self.server = HttpServer(self, self.config.host, self.config.port)
        self.server.start()
        log("node started", signer=self.signer.address, port=self.config.port, peers=self.config.peers,
            state=str(self.config.state_dir), confirmations=self.config.confirmations)  # fmt: skip
        backoff = Backoff()
        try:
            while not self.stop_event.is_set():
                try:
                    summary = self.run_once(overlap=self.config.overlap and not once)
                    self._progress = time.monotonic()
                    self.last_error = None
                    backoff.reset()
                    if summary["attributed"] or summary["action"] in ("submitted",):
                        log("progress", **summary)
                    if once:
                        break
                    self.wait_for_work(self.config.poll_interval_s)
                except Exception as exc:  # noqa: BLE001 - a daemon retries every failure with backoff
                    wait = backoff.next()
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self.metrics.rpc_errors.inc()
                    warn("step failed, retrying", error=self.last_error.splitlines()[0][:300], retry_in_s=wait)
                    if once:
                        raise
                    self.stop_event.wait(wait)
        finally:
            if self._scoring is not None:
                self._scoring.shutdown(wait=True, cancel_futures=True)  # the job in flight ends; it is not stored
            self.server.stop()
            self.peers.close()
            log("node stopped", signer=self.signer.address)

    # ---------------------------------------------------------------- status

    def status(self) -> dict:
        """What ``oracle status`` shows."""
        return node_status(self.db)


def node_status(db: OracleDB) -> dict:
    """Status of a node from its database (usable without a running node)."""
    cursor = db.cursor()
    settled_to = db.scalar("SELECT COALESCE(MAX(to_block), -1) FROM submissions WHERE vetoed = 0")
    epochs = [
        {"epoch": e, "fromBlock": f, "toBlock": t, "uri": u, "inferences": n, "totalCumulative": tc, "status": s,
         "signatures": db.scalar("SELECT COUNT(*) FROM signatures WHERE epoch = ? AND report_uri = ?", (e, u))}
        for e, f, t, u, n, tc, s in db.query(
            "SELECT epoch, from_block, to_block, report_uri, inferences, total_cumulative, status FROM epochs "
            "ORDER BY epoch DESC LIMIT 20")
    ]  # fmt: skip
    return {
        "signer": db.get_meta("signer"),
        "cursor": cursor[0] if cursor else None,
        "paid": db.scalar("SELECT COUNT(*) FROM payments"),
        "served": db.scalar("SELECT COUNT(*) FROM served"),
        "attributed": db.scalar("SELECT COUNT(*) FROM attributions"),
        "pending": db.scalar("SELECT COUNT(*) FROM served WHERE block_number > ?", (settled_to,)),
        "latestEpoch": db.scalar("SELECT MAX(epoch) FROM submissions WHERE vetoed = 0"),
        "disagreements": db.scalar("SELECT COUNT(*) FROM disagreements"),
        "epochs": epochs,
    }
