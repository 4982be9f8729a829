"""An oracle step scores all pending inferences of a model in one batched call when the scorer offers it."""

from __future__ import annotations

from pathlib import Path

from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.record_attribution import RecordAttributor, load_scores, load_shares
from attribution_oracle.oracle.scoring import ScorerContext
from attribution_oracle.oracle.served_sources import StoreServedRecords
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.settlement.allocation import AttributedContribution, ServedInference, allocate
from attribution_oracle.store.blobs import BlobStore

ALICE, BOB, OWNER = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20
CONTRIBUTIONS = [AttributedContribution("1", ALICE, 1), AttributedContribution("2", BOB, 1)]


class Context(ScorerContext):
    def training_data(self, model_id: int) -> tuple[list[AttributedContribution], dict[int, str]]:
        return CONTRIBUTIONS, {1: OWNER}

    def adapter_hash(self, model_id: int) -> str:
        return "22" * 32  # what the records name, so every record passes the oracle's record checks


class BatchScorer:
    """Scores depend on the output tokens; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def scores(self, prompt_token_ids, output_token_ids) -> dict[str, float]:
        self.calls.append(("one", 1))
        return {"1": float(sum(output_token_ids)), "2": float(len(prompt_token_ids))}

    def scores_many(self, items) -> list[dict[str, float]]:
        self.calls.append(("many", len(items)))
        return [{"1": float(sum(o)), "2": float(len(p))} for p, o in items]


def test_a_step_scores_each_models_pending_inferences_in_one_call(tmp_path: Path, deployment) -> None:
    db = OracleDB(tmp_path / "o.sqlite")
    log = ServedRecordStore(tmp_path / "served.sqlite")
    scorers = {1: BatchScorer(), 2: BatchScorer()}
    context = Context(ChainClient("http://127.0.0.1:9"), deployment, BlobStore(tmp_path / "blobs"))
    attributor = RecordAttributor(db, StoreServedRecords(log.path), scorers.__getitem__, context, Metrics(), 5)
    plan = {1: (1, (3, 4)), 2: (2, (9,)), 3: (1, (1,)), 4: (1, (2, 2, 2)), 5: (2, (5, 6))}
    with db.transaction() as c:
        for request_id, (model_id, _) in plan.items():
            c.execute("INSERT INTO payments VALUES (?, ?, 10, '1000', '100')", (request_id, model_id))
            c.execute("INSERT INTO served VALUES (?, 11, 0)", (request_id,))
        OracleDB.set_meta(c, "cursor_number", "12")
        OracleDB.set_meta(c, "cursor_hash", "h12")
    for request_id, (model_id, output) in plan.items():
        log.add(ServedRecord(request_id, model_id, "22" * 32, "p", (7,) * request_id, output, "o", 0.0))
    done = attributor.step()
    assert (done.attributed, done.waiting) == (5, 0)
    assert scorers[1].calls == [("many", 3)] and scorers[2].calls == [("many", 2)]
    stored = db.query("SELECT request_id, scores, shares FROM attributions")
    rows = {r: (load_scores(sc), load_shares(sh)) for r, sc, sh in stored}
    for request_id, (model_id, output) in plan.items():
        scores = {"1": float(sum(output)), "2": float(request_id)}
        assert rows[request_id][0] == scores
        inference = ServedInference(request_id, model_id, 1000, 100)
        assert rows[request_id][1] == allocate(inference, scores, CONTRIBUTIONS, {1: OWNER})
