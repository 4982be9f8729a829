"""Attribute served inferences: scores from the model's scorer, exact integer shares from the allocation rule.

Only requests that are both paid and marked served on-chain (confirmed) and present in the served log are
attributed; a request whose record has not reached the log yet waits. Each batch is one transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.logs import warn
from attribution_oracle.oracle.metrics import Metrics
from attribution_oracle.oracle.scoring import ScorerContext, ScorerProvider
from attribution_oracle.oracle.sources import ServedRecords, records_for
from attribution_oracle.settlement.allocation import ServedInference, allocate

BATCH = 512


@dataclass
class Attributed:
    """What one attribution step did."""

    attributed: int
    waiting: int


class Attributor:
    """Turns confirmed served requests into stored per-account shares."""

    def __init__(
        self, db: OracleDB, source: ServedRecords, provider: ScorerProvider, context: ScorerContext, metrics: Metrics
    ) -> None:
        """Attribute with ``provider``'s scorers; records come from ``source``."""
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

    def pending(self, limit: int = BATCH) -> list[tuple]:
        """Served and paid requests without an attribution, oldest first."""
        return self.db.query(
            "SELECT s.request_id, p.model_id, s.block_number, p.contributors_amount, p.datanet_owners_amount, "
            "s.seen_at FROM served s JOIN payments p USING (request_id) "
            "WHERE s.request_id NOT IN (SELECT request_id FROM attributions) ORDER BY s.request_id LIMIT ?",
            (limit,),
        )

    def step(self) -> Attributed:
        """Attribute up to ``BATCH`` pending requests whose records are available."""
        rows = self.pending()
        if not rows:
            return Attributed(0, 0)
        records = records_for(self.source, [r[0] for r in rows])
        done: list[tuple] = []
        delays: list[float] = []
        for request_id, model_id, block, contributors, datanets, seen_at in rows:
            record = records.get(request_id)
            if record is None:
                if request_id not in self._warned:
                    self._warned.add(request_id)
                    warn("waiting for served record", request_id=request_id)
                continue
            if record.model_id != model_id:
                warn("served record names another model", request_id=request_id, record_model=record.model_id,
                     paid_model=model_id)  # fmt: skip
            started = time.perf_counter()
            scorer = self._scorers.get(model_id)
            if scorer is None:
                scorer = self._scorers[model_id] = self.provider(model_id)
            scores = {
                str(k): float(v) for k, v in scorer.scores(record.prompt_token_ids, record.output_token_ids).items()
            }
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
        return Attributed(len(done), len(rows) - len(done))


def _dumps(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load_shares(text: str) -> dict[str, int]:
    """Stored shares back to integers."""
    return {a: int(v) for a, v in json.loads(text).items()}


def load_scores(text: str) -> dict[str, float]:
    """Stored scores back to floats (JSON round-trips IEEE doubles exactly)."""
    return {c: float(v) for c, v in json.loads(text).items()}
