"""A served record the model cannot score (token ids outside its vocabulary) gets the equal split, not a crash."""

from __future__ import annotations

from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.factory.factory_errors import ScoringError
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.record_attribution import RecordAttributor, load_scores, load_shares
from attribution_oracle.oracle.scoring import ScorerContext
from attribution_oracle.oracle.served_sources import StoreServedRecords
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.settlement.allocation import AttributedContribution
from attribution_oracle.store.blobs import BlobStore

ALICE, BOB, OWNER = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20


class Training(ScorerContext):
    def training_data(self, model_id: int):
        return [AttributedContribution("1", ALICE, 1), AttributedContribution("2", BOB, 1)], {1: OWNER}

    def adapter_hash(self, model_id: int) -> str:
        return "22" * 32  # what the records name, so they pass the oracle's record checks


class VocabularyCheckingScorer:
    """Refuses ids past 255 the way ``ModelScorer`` does."""

    def scores(self, prompt_token_ids, output_token_ids) -> dict[str, float]:
        if any(t > 255 for t in [*prompt_token_ids, *output_token_ids]):
            raise ScoringError("output token id 999999 is not in the model's vocabulary (0..255)")
        return {"1": 1.0}


def test_an_unscorable_record_falls_back_to_the_equal_split(tmp_path, deployment) -> None:
    db = OracleDB(tmp_path / "o.sqlite")
    log = ServedRecordStore(tmp_path / "served.sqlite")
    context = Training(ChainClient("http://127.0.0.1:9"), deployment, BlobStore(tmp_path / "blobs"))
    attributor = RecordAttributor(db, StoreServedRecords(log.path), lambda _: VocabularyCheckingScorer(), context,
                            Metrics(), 0)  # fmt: skip
    with db.transaction() as c:
        for request_id, output in ((1, (999999,)), (2, (111,))):
            c.execute("INSERT INTO payments VALUES (?, 1, 9, '1000', '0')", (request_id,))
            c.execute("INSERT INTO served VALUES (?, 10, 0)", (request_id,))
            log.add(ServedRecord(request_id, 1, "22" * 32, "p", (112,), output, "o", 0.0))
    with db.transaction() as c:
        OracleDB.set_meta(c, "cursor_number", "20")
        OracleDB.set_meta(c, "cursor_hash", "h20")
    assert attributor.step().attributed == 2
    rows = {r: (load_scores(s), load_shares(sh)) for r, s, sh in db.query("SELECT request_id, scores, shares "
                                                                           "FROM attributions")}  # fmt: skip
    assert rows[1] == ({}, {ALICE: 500, BOB: 500})
    assert rows[2][0] == {"1": 1.0} and rows[2][1] == {ALICE: 1000}
    fallbacks = dict(db.query("SELECT request_id, reason FROM attribution_fallbacks"))
    assert list(fallbacks) == [1] and "cannot be scored" in fallbacks[1]  # the report says why
