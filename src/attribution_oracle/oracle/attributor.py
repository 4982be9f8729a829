"""Attribute served inferences: scores from the model's scorer, exact integer shares from the allocation rule.

Only requests that are both paid and marked served on-chain (confirmed) and present in the served log are
attributed; a request whose record has not reached the log yet waits. Each batch is one transaction.

Missing records (the grace rule): a request marked served in block ``b`` whose record the source still does
not hold once this node's confirmed cursor reaches ``b + record_grace_blocks`` is attributed with no scores,
so ``settlement.allocation.allocate`` splits its pools by the equal fallback (the contributors pool equally
among the model's contributors, the Datanet-owners pool equally among its Datanets), exactly as for an output
with no positive score. Its report entry has empty scores, so anyone can recompute it. Every honest node
applies the same rule with the same grace to the same chain; a source that cannot be read (an error, not an
answer without the record) never triggers it. A record that appears only after some nodes' grace ran out can
make their reports differ from late nodes'; m-of-n then settles with the majority.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from attribution_oracle.errors import UserError
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.logs import warn
from attribution_oracle.oracle.metrics import Metrics
from attribution_oracle.oracle.scoring import ScorerContext, ScorerProvider
from attribution_oracle.oracle.sources import ServedRecords, records_for
from attribution_oracle.settlement.allocation import ServedInference, allocate

BATCH = 512
DEFAULT_RECORD_GRACE_BLOCKS = 100


@dataclass
class Attributed:
    """What one attribution step did."""

    attributed: int
    waiting: int
    last: int = -1  # the highest request id looked at (the next step starts after it)


class Attributor:
    """Turns confirmed served requests into stored per-account shares."""

    def __init__(
        self,
        db: OracleDB,
        source: ServedRecords,
        provider: ScorerProvider,
        context: ScorerContext,
        metrics: Metrics,
        record_grace_blocks: int = DEFAULT_RECORD_GRACE_BLOCKS,
    ) -> None:
        """Attribute with ``provider``'s scorers; records come from ``source``; see the grace rule above."""
        if record_grace_blocks < 0:
            raise ValueError("record_grace_blocks must be >= 0")
        self.record_grace_blocks = record_grace_blocks
        self.db = db
        self.source = source
        self.provider = provider
        self.context = context
        self.metrics = metrics
        self._scorers: dict[int, object] = {}
        self._warned: set[int] = set()

    def forget(self, _ancestor: int | None = None) -> None:
        """Drop cached scorers and training data (after a reorg a model id may mean another model)."""
        self._scorers.clear()
        self.context._training.clear()

    def pending(self, limit: int = BATCH, after: int = -1) -> list[tuple]:
        """Served and paid requests without an attribution with a request id above ``after``, oldest first."""
        return self.db.query(
            "SELECT s.request_id, p.model_id, s.block_number, p.contributors_amount, p.datanet_owners_amount, "
            "s.seen_at FROM served s JOIN payments p USING (request_id) WHERE s.request_id > ? "
            "AND s.request_id NOT IN (SELECT request_id FROM attributions) ORDER BY s.request_id LIMIT ?",
            (after, limit),
        )

    def step(self, after: int = -1) -> Attributed:
        """Attribute up to ``BATCH`` pending requests (ids above ``after``) whose records are available."""
        rows = self.pending(after=after)
        if not rows:
            return Attributed(0, 0, after)
        records = records_for(self.source, [r[0] for r in rows])
        cursor = self.db.cursor()
        confirmed = cursor[0] if cursor else -1
        done: list[tuple] = []
        delays: list[float] = []
        for request_id, model_id, block, contributors, datanets, seen_at in rows:
            record = records.get(request_id)
            started = time.perf_counter()
            if record is None:
                if confirmed < block + self.record_grace_blocks:
                    if request_id not in self._warned:
                        self._warned.add(request_id)
                        warn("waiting for served record", request_id=request_id,
                             fallback_at_block=block + self.record_grace_blocks)  # fmt: skip
                    continue
                warn("served record missing after the grace period: equal fallback", request_id=request_id,
                     served_block=block, grace_blocks=self.record_grace_blocks)  # fmt: skip
                self.metrics.missing_records.inc()
                scores: dict[str, float] = {}
            else:
                if record.model_id != model_id:
                    warn("served record names another model", request_id=request_id, record_model=record.model_id,
                         paid_model=model_id)  # fmt: skip
                scorer = self._scorers.get(model_id)
                if scorer is None:
                    scorer = self._scorers[model_id] = self.provider(model_id)
                try:
                    raw = scorer.scores(record.prompt_token_ids, record.output_token_ids)
                except UserError as exc:  # an unscorable record (e.g. token ids outside the vocabulary): equal split
                    warn("served record cannot be scored: equal fallback", request_id=request_id, error=str(exc))
                    raw = {}
                scores = {str(k): float(v) for k, v in raw.items()}
            contributions, owners = self.context.training_data(model_id)
            inference = ServedInference(request_id, model_id, int(contributors), int(datanets))
            shares = allocate(inference, scores, contributions, owners)
            self.metrics.attribution_seconds.observe(time.perf_counter() - started)
            done.append((request_id, model_id, block, _dumps(scores), _dumps({a: str(v) for a, v in shares.items()})))
            delays.append(time.time() - seen_at)
        if done:
            now = time.time()
            with self.db.transaction() as db:
                db.executemany(
                    "INSERT OR IGNORE INTO attributions VALUES (?, ?, ?, ?, ?, ?)", [(*row, now) for row in done]
                )
            self.metrics.attributed.inc(len(done))
            for delay in delays:
                self.metrics.attribution_delay.observe(delay)
        return Attributed(len(done), len(rows) - len(done), rows[-1][0])


def _dumps(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load_shares(text: str) -> dict[str, int]:
    """Stored shares back to integers."""
    return {a: int(v) for a, v in json.loads(text).items()}


def load_scores(text: str) -> dict[str, float]:
    """Stored scores back to floats (JSON round-trips IEEE doubles exactly)."""
    return {c: float(v) for c, v in json.loads(text).items()}
