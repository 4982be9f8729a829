"""Attribute served inferences: scores from the model's scorer, exact integer shares from the allocation rule.

Only requests that are both paid and marked served on-chain (confirmed) and present in the served log are
attributed; a request whose record has not reached the log yet waits. Each batch is one transaction. A step
scores all of its pending inferences of one model in one batched pass (``scores_many``, when the scorer has it).

Missing records (the grace rule): a request marked served in block ``b`` whose record the source still does
not hold once this node's confirmed cursor reaches ``b + record_grace_blocks`` is attributed with no scores,
so ``settlement.allocation.allocate`` splits its pools by the equal fallback (the contributors pool equally
among the model's contributors, the Datanet-owners pool equally among its Datanets), exactly as for an output
with no positive score. Its report entry has empty scores, so anyone can recompute it. Every honest node
applies the same rule with the same grace to the same chain; a source that cannot be read (an error, not an
answer without the record) never triggers it. A record that appears only after some nodes' grace ran out can
make their reports differ from late nodes'; m-of-n then settles with the majority.

Record checks (the log and the link to it are not trusted): a record is scored only if it names the paid model
and that model's on-chain adapter, the sha256 of its prompt is the payment's ``inputHash`` and, when the scorer
exposes its ``tokenizer``, its prompt token ids are the tokenization of its prompt. A record failing any check
is attributed by the same equal fallback, and the report entry says why (``fallback``).

Retrieval (``serve --rag``): a record listing ``retrieved`` contribution ids is checked further, from public
inputs only: there are at most ``serving.rag_retriever.MAX_TOP_K`` distinct ids, they are exactly what the model's own
retriever (rebuilt from the manifest its ``metadataURI`` names) returns for the record's prompt with that many
results, and the prompt token ids are the tokenization of the augmented prompt (``serving.rag_retriever.augment``). A
server cannot name contributions it did not retrieve. A passing record's scores are the model's scores of what was
served, and its shares follow ``allocate(..., retrieved)`` (``attribution.rag_shares.rag_scores``: the retrieved ids
share the documented part of the contributor pool). The ids are stored with the attribution and go into the
report, whose attribution leaf commits them. A record failing a check takes the equal split with no retrieval part.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from attribution_oracle.errors import UserError
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.logs import warn
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.scoring import ScorerContext, ScorerProvider
from attribution_oracle.oracle.served_sources import ServedRecords, records_for
from attribution_oracle.serving.rag_retriever import MAX_TOP_K, RetrievalError, augment, retriever_for_model
from attribution_oracle.settlement.allocation import ServedInference, allocate

BATCH = 512
DEFAULT_RECORD_GRACE_BLOCKS = 100


@dataclass
class Attributed:
    """What one attribution step did."""

    attributed: int
    waiting: int
    last: int = -1  # the highest request id looked at (the next step starts after it)


@dataclass
class AttributionJob:
    """One attribution step in flight: read by ``prepare``, scored by ``score``, stored by ``finish``."""

    rows: list[tuple]
    records: dict
    confirmed: int  # the node's confirmed cursor when the rows were read (the grace rule)
    fallbacks: dict[int, str]
    scorers: dict[int, object]
    generation: int
    scored: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: dict[int, float] = field(default_factory=dict)

    @property
    def needs_scoring(self) -> bool:
        """Whether any request of the job has a record that passed its checks (model compute to do)."""
        return any(self.records.get(r[0]) is not None and r[0] not in self.fallbacks for r in self.rows)


class RecordAttributor:
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
        self._retrievers: dict[int, object] = {}  # model id -> Retriever, or why the model has none (str)
        self._warned: set[int] = set()
        self.generation = 0  # bumped by ``forget``: a job prepared before it stores nothing

    def forget(self, _ancestor: int | None = None) -> None:
        """Drop cached scorers and training data (after a reorg a model id may mean another model)."""
        self.generation += 1
        self._scorers.clear()
        self._retrievers.clear()
        self.context._adapters.clear()
        self.context._training.clear()

    def pending(self, limit: int = BATCH, after: int = -1) -> list[tuple]:
        """Served and paid requests without an attribution with a request id above ``after``, oldest first."""
        return self.db.query(
            "SELECT s.request_id, p.model_id, s.block_number, p.contributors_amount, p.datanet_owners_amount, "
            "s.seen_at, i.input_hash FROM served s JOIN payments p USING (request_id) LEFT JOIN payment_inputs i "
            "USING (request_id) WHERE s.request_id > ? "
            "AND s.request_id NOT IN (SELECT request_id FROM attributions) ORDER BY s.request_id LIMIT ?",
            (after, limit),
        )

    def step(self, after: int = -1) -> Attributed:
        """Attribute up to ``BATCH`` pending requests (ids above ``after``) whose records are available."""
        job = self.prepare(after)
        if job is None:
            return Attributed(0, 0, after)
        self.score(job)
        return self.finish(job)

    def prepare(self, after: int = -1) -> AttributionJob | None:
        """Read up to ``BATCH`` pending requests (ids above ``after``), their records and checks (None if none).

        Runs on the node's loop thread: it resolves every scorer the job needs, so ``score`` (which may run on
        another thread) never touches this attributor's caches."""
        rows = self.pending(after=after)
        if not rows:
            return None
        records = records_for(self.source, [r[0] for r in rows])
        cursor = self.db.cursor()
        fallbacks = self._checks(rows, records)
        scorers = {model_id: self._scorer(model_id) for _, model_id, *_ in rows if model_id in self._scorers}
        return AttributionJob(rows, records, cursor[0] if cursor else -1, fallbacks, scorers, self.generation)

    def score(self, job: AttributionJob) -> AttributionJob:
        """Score ``job`` (the model compute, one batched pass per model); safe on a worker thread."""
        job.scored, job.seconds = self._score_batches(job.rows, job.records, job.fallbacks, job.scorers)
        return job

    def finish(self, job: AttributionJob) -> Attributed:
        """Allocate and store ``job``'s attributions in one transaction (on the node's loop thread).

        A job prepared before a rollback (``forget``) stores nothing; a request whose payment or served mark
        changed or went while it was scored (a reorg) is left pending, so it is attributed again from what the
        chain now says, never from what it said before."""
        if job.generation != self.generation:
            return Attributed(0, len(job.rows), job.rows[-1][0])
        rows, records, confirmed, fallbacks = job.rows, job.records, job.confirmed, job.fallbacks
        scored, seconds = job.scored, job.seconds
        done: list[tuple] = []
        retrieved_rows: list[tuple[int, str]] = []
        delays: list[float] = []
        for request_id, model_id, block, contributors, datanets, seen_at, _input_hash in rows:
            record = records.get(request_id)
            started = time.perf_counter()
            fallback: str | None = None
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
                fallback = "no served record within the grace period"
            else:
                fallback = fallbacks.get(request_id)
                if fallback is not None:
                    warn("served record fails a check: equal fallback", request_id=request_id, reason=fallback)
                    scores = {}
                else:
                    scores = scored[request_id]
            retrieved = tuple(record.retrieved) if record is not None and fallback is None else ()
            contributions, owners = self.context.training_data(model_id)
            inference = ServedInference(request_id, model_id, int(contributors), int(datanets))
            shares = allocate(inference, scores, contributions, owners, retrieved)
            if retrieved:
                retrieved_rows.append((request_id, json.dumps(list(retrieved), separators=(",", ":"))))
            self.metrics.attribution_seconds.observe(time.perf_counter() - started + seconds.get(request_id, 0.0))
            done.append((request_id, model_id, block, _dumps(scores), _dumps({a: str(v) for a, v in shares.items()}),
                         fallback))  # fmt: skip
            delays.append(time.time() - seen_at)
        if done:
            now = time.time()
            with self.db.transaction() as db:
                # the rows as the chain says now: a request whose payment or served mark moved is not stored
                current = {
                    row[0]: row[1:5]
                    for row in db.execute(
                        "SELECT s.request_id, p.model_id, s.block_number, p.contributors_amount, "
                        "p.datanet_owners_amount FROM served s JOIN payments p USING (request_id) "
                        f"WHERE s.request_id IN ({','.join('?' * len(done))})",
                        [row[0] for row in done],
                    )
                }
                used = {row[0]: tuple(row[1:5]) for row in rows}
                kept = [row for row in done if current.get(row[0]) == used[row[0]]]
                done = kept
                kept_ids = {row[0] for row in kept}
                db.executemany(
                    "INSERT OR IGNORE INTO attributions VALUES (?, ?, ?, ?, ?, ?)", [(*row[:5], now) for row in done]
                )
                db.executemany(
                    "INSERT OR IGNORE INTO attribution_fallbacks VALUES (?, ?)",
                    [(row[0], row[5]) for row in done if row[5] is not None],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO attribution_retrieved VALUES (?, ?)",
                    [row for row in retrieved_rows if row[0] in kept_ids],
                )
            self.metrics.attributed.inc(len(done))
            for delay in delays:
                self.metrics.attribution_delay.observe(delay)
        return Attributed(len(done), len(rows) - len(done), rows[-1][0])

    def _scorer(self, model_id: int) -> object:
        scorer = self._scorers.get(model_id)
        if scorer is None:
            scorer = self._scorers[model_id] = self.provider(model_id)
        return scorer

    def _checks(self, rows: list[tuple], records: dict) -> dict[int, str]:
        """Why each pending request's record cannot be trusted (only the requests that fail a check)."""
        failed: dict[int, str] = {}
        for request_id, model_id, *_, input_hash in rows:
            record = records.get(request_id)
            if record is not None:
                reason = self._check(record, model_id, input_hash, self._scorer(model_id))
                if reason is not None:
                    failed[request_id] = reason
        return failed

    def _check(self, record, model_id: int, input_hash: str | None, scorer: object) -> str | None:
        """Why ``record`` cannot be trusted for the payment (None if it passes every check)."""
        if record.model_id != model_id:
            return f"the record names model {record.model_id}, the payment model {model_id}"
        adapter = self.context.adapter_hash(model_id)
        if record.adapter_hash != adapter:
            return f"the record names adapter {record.adapter_hash[:16]}, model {model_id} has {adapter[:16]}"
        if input_hash and "0x" + hashlib.sha256(record.prompt.encode("utf-8")).hexdigest() != input_hash.lower():
            return "the record's prompt does not hash to the payment's inputHash"
        read = record.prompt
        retrieved = tuple(getattr(record, "retrieved", ()) or ())
        if retrieved:
            reason, read = self._check_retrieved(record, model_id, retrieved)
            if reason is not None:
                return reason
        tokenizer = getattr(scorer, "tokenizer", None)
        if tokenizer is not None:
            ids = tuple(tokenizer(read, add_special_tokens=False).input_ids)
            if ids != tuple(record.prompt_token_ids):
                what = "prompt with its retrieved passages" if retrieved else "prompt"
                return f"the record's prompt token ids are not the tokenization of its {what}"
        return None

    def _retriever(self, model_id: int) -> object:
        """The model's retriever (rebuilt from its manifest once), or why it has none."""
        found = self._retrievers.get(model_id)
        if found is None:
            try:
                cache = None if self.context.cache_dir is None else self.context.cache_dir / "retrievers"
                found = retriever_for_model(self.context.client, self.context.deployment, self.context.store,
                                            model_id, cache)  # fmt: skip
            except RetrievalError as exc:  # a fact of the public inputs; anything else (store, RPC) is retried
                found = str(exc)
            self._retrievers[model_id] = found
        return found

    def _check_retrieved(self, record, model_id: int, retrieved: tuple[str, ...]) -> tuple[str | None, str]:
        """``(why the record's retrieved ids cannot be trusted or None, the augmented prompt the model read)``."""
        if len(retrieved) > MAX_TOP_K or len(set(retrieved)) != len(retrieved):
            return f"the record lists {len(retrieved)} retrieved ids (at most {MAX_TOP_K} distinct)", record.prompt
        retriever = self._retriever(model_id)
        if isinstance(retriever, str):
            return f"the record claims retrieval but the model has no retriever: {retriever}", record.prompt
        expected = retriever.retrieve(record.prompt, len(retrieved))
        if tuple(r.contribution_id for r in expected) != retrieved:
            return "the record's retrieved ids are not what the model's retriever returns for its prompt", record.prompt
        return None, augment(record.prompt, expected)

    def _score_batches(
        self, rows: list[tuple], records: dict, skip: dict[int, str], scorers: dict[int, object]
    ) -> tuple[dict[int, dict[str, float]], dict[int, float]]:
        """Scores of every pending request whose record is here and passed its checks: one batched pass per model.

        A scorer with ``scores_many`` (the factory's) computes a model's pending inferences together; any other
        scorer is called once per inference. A record that cannot be scored gets its reason added to ``skip`` (it
        then takes the equal split). Returns the scores and each request's share of the scoring time.
        """
        by_model: dict[int, list[int]] = {}
        for request_id, model_id, *_ in rows:
            if records.get(request_id) is not None and request_id not in skip:
                by_model.setdefault(model_id, []).append(request_id)
        scored: dict[int, dict[str, float]] = {}
        seconds: dict[int, float] = {}
        for model_id, request_ids in by_model.items():
            started = time.perf_counter()
            scorer = scorers[model_id]
            items = [(records[r].prompt_token_ids, records[r].output_token_ids) for r in request_ids]
            many = getattr(scorer, "scores_many", None)
            try:
                results = many(items) if many is not None else [scorer.scores(p, o) for p, o in items]
            except UserError:  # one unscorable record fails the batch: score them one by one to find it
                results = [_score_or_reason(scorer, p, o) for p, o in items]
            share = (time.perf_counter() - started) / len(request_ids)
            for request_id, result in zip(request_ids, results, strict=True):
                if isinstance(result, str):  # e.g. token ids outside the vocabulary: the equal split, said why
                    skip[request_id] = f"the record cannot be scored: {result}"
                    result = {}
                scored[request_id] = {str(k): float(v) for k, v in result.items()}
                seconds[request_id] = share
        return scored, seconds


def _score_or_reason(scorer, prompt, output) -> dict | str:
    """The record's scores, or why it cannot be scored (a ``UserError`` such as ``ScoringError``)."""
    try:
        return scorer.scores(prompt, output)
    except UserError as exc:
        return str(exc)


def _dumps(value: dict) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load_shares(text: str) -> dict[str, int]:
    """Stored shares back to integers."""
    return {a: int(v) for a, v in json.loads(text).items()}


def load_retrieved(text: str | None) -> tuple[str, ...]:
    """Stored retrieved ids back to a tuple (empty when the request had no retrieval)."""
    return tuple(json.loads(text)) if text else ()


def load_scores(text: str) -> dict[str, float]:
    """Stored scores back to floats (JSON round-trips IEEE doubles exactly)."""
    return {c: float(v) for c, v in json.loads(text).items()}
