"""RAG attribution on the oracle side: the retrieved ids in the attribution leaf, the oracle's checks of a record's
retrieved ids, the served log's new field (old logs stay readable) and the citations `report show` lists."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from attribution_oracle.attribution.lexical import LexicalIndex
from attribution_oracle.attribution.rag_shares import rag_scores
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.record_attribution import RecordAttributor, load_retrieved, load_scores, load_shares
from attribution_oracle.oracle.scoring import ScorerContext
from attribution_oracle.oracle.served_sources import StoreServedRecords
from attribution_oracle.serving.rag_retriever import MAX_TOP_K, Retriever, augment
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.settlement.allocation import AttributedContribution, ServedInference, allocate
from attribution_oracle.settlement.citations import citations
from attribution_oracle.settlement.epoch_report import InferenceShares, Report, build_report
from attribution_oracle.settlement.report_typed_data import recover_signer, sign_report
from attribution_oracle.settlement.trees import retrieved_hash, shares_hash
from attribution_oracle.store.blobs import BlobStore
from attribution_oracle.store.merkle import MerkleTree

ALICE, BOB, CAROL, OWNER = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "d4" * 20, "0x" + "c3" * 20
CONTRIBUTIONS = [
    AttributedContribution("1", ALICE, 1),
    AttributedContribution("2", BOB, 1),
    AttributedContribution("3", CAROL, 1),
]
TEXTS = {
    "1": "Varroa mites are counted with an alcohol wash of three hundred bees.",
    "2": "A smoker calms the colony before the hive is opened.",
    "3": "Queen cells along the bottom of the frame mean the colony will swarm.",
}
OWNERS = {1: OWNER}
ADAPTER = "22" * 32
DISTRIBUTOR = "0x" + "0f" * 20
PROMPT = "How are varroa mites counted?"


class GivenTrainingData(ScorerContext):
    """The model's contributions and Datanet owners as the chain would give them (no RPC in a unit test)."""

    def training_data(self, model_id: int):
        return CONTRIBUTIONS, OWNERS

    def adapter_hash(self, model_id: int) -> str:
        return ADAPTER


class ByteScorer:
    """Scores 2 and 3 (never the retrieved 1), with a byte tokenizer so the oracle checks the prompt token ids."""

    @staticmethod
    def tokenizer(text: str, add_special_tokens: bool = False) -> SimpleNamespace:
        return SimpleNamespace(input_ids=list(text.encode()))

    def scores(self, prompt_token_ids, output_token_ids) -> dict[str, float]:
        return {"2": 3.0, "3": 1.0}


def retriever() -> Retriever:
    return Retriever(LexicalIndex.from_texts(sorted(TEXTS.items())), dict(TEXTS))


def make(tmp: Path, deployment) -> tuple[RecordAttributor, OracleDB, ServedRecordStore]:
    db = OracleDB(tmp / "o.sqlite")
    log = ServedRecordStore(tmp / "served.sqlite")
    context = GivenTrainingData(ChainClient("http://127.0.0.1:9"), deployment, BlobStore(tmp / "blobs"))
    attributor = RecordAttributor(db, StoreServedRecords(log.path), lambda _: ByteScorer(), context, Metrics(), 0)
    attributor._retrievers[1] = retriever()  # what retriever_for_model rebuilds from the manifest on a real chain
    return attributor, db, log


def pay_and_serve(db: OracleDB, log: ServedRecordStore, record: ServedRecord, block: int = 5) -> None:
    with db.transaction() as c:
        c.execute("INSERT INTO payments VALUES (?, 1, ?, '1000', '101')", (record.request_id, block - 1))
        c.execute("INSERT INTO served VALUES (?, ?, 0)", (record.request_id, block))
        OracleDB.set_meta(c, "cursor_number", str(block + 1))
        OracleDB.set_meta(c, "cursor_hash", "h")
    log.add(record)


def rag_record(request_id: int, retrieved: tuple[str, ...], prompt_text: str | None = None) -> ServedRecord:
    read = augment(PROMPT, retriever().lookup(list(retrieved))) if prompt_text is None else prompt_text
    return ServedRecord(request_id, 1, ADAPTER, PROMPT, tuple(read.encode()), (111,), "o", 0.0, retrieved)


def stored(db: OracleDB, request_id: int) -> tuple[dict, dict, tuple, str | None]:
    (row,) = db.query(
        "SELECT scores, shares, ids, reason FROM attributions LEFT JOIN attribution_retrieved USING (request_id) "
        "LEFT JOIN attribution_fallbacks USING (request_id) WHERE request_id = ?",
        (request_id,),
    )
    return load_scores(row[0]), load_shares(row[1]), load_retrieved(row[2]), row[3]


# ------------------------------------------------------------------ the attribution leaf


def rag_report(retrieved: tuple[str, ...]) -> Report:
    scores = {"2": 3.0, "3": 1.0}
    shares = allocate(ServedInference(1, 1, 1000, 101), scores, CONTRIBUTIONS, OWNERS, retrieved)
    inference = InferenceShares(1, 1, shares, scores, None, retrieved)
    return build_report(chain_id=31337, distributor=DISTRIBUTOR, config_digest=b"\x01" * 32, epoch=1, from_block=1,
                        to_block=9, inferences=[inference])  # fmt: skip


def test_the_attribution_leaf_commits_the_retrieved_ids_in_rank_order() -> None:
    report = rag_report(("1", "3"))
    (inference,) = report.inferences
    expected_hash = keccak(b'["1","3"]')
    assert retrieved_hash(("1", "3")) == expected_hash
    value = encode(["uint256", "uint256", "bytes32", "bytes32"], [1, 1, shares_hash(inference.shares), expected_hash])
    assert report.attribution_root == MerkleTree([value]).root
    assert rag_report(("3", "1")).attribution_root != report.attribution_root, "the rank order is committed"
    assert rag_report(("1",)).attribution_root != report.attribution_root
    parsed = Report.from_json(report.canonical_json())
    assert parsed.inferences[0].retrieved == ("1", "3") and parsed.attribution_root == report.attribution_root
    assert json.loads(report.canonical_json())["inferences"][0]["retrieved"] == ["1", "3"]


def test_a_report_without_retrieval_keeps_the_three_word_leaf_and_its_json() -> None:
    report = rag_report(())
    (inference,) = report.inferences
    value = encode(["uint256", "uint256", "bytes32"], [1, 1, shares_hash(inference.shares)])
    assert report.attribution_root == MerkleTree([value]).root
    assert "retrieved" not in json.loads(report.canonical_json())["inferences"][0]


def test_attack_oracle_dropping_or_changing_retrieved_ids_signs_a_root_the_quorum_does_not_share() -> None:
    honest = rag_report(("1", "3"))
    node = Account.from_key(b"\x07" * 32)
    for tampered in (rag_report(()), rag_report(("3",)), rag_report(("2", "3"))):
        assert tampered.attribution_root != honest.attribution_root
        assert tampered.canonical_json() != honest.canonical_json(), "so its report URI differs too"
        # its signature over its own report does not count for the honest report: it recovers another address
        signature = sign_report(tampered.message("sha256://" + "ab" * 32), 31337, DISTRIBUTOR, node)
        honest_message = honest.message("sha256://" + "ab" * 32)
        assert recover_signer(honest_message, 31337, DISTRIBUTOR, signature) != node.address


def test_a_report_whose_retrieved_ids_were_edited_after_signing_fails_its_own_root_check() -> None:
    data = json.loads(rag_report(("1", "3")).canonical_json())
    data["inferences"][0]["retrieved"] = ["3"]
    try:
        Report.from_json(json.dumps(data))
    except ValueError as exc:
        assert "attributionRoot" in str(exc)
    else:
        raise AssertionError("an edited retrieved list must not parse as the signed report")


# ------------------------------------------------------------------ the attributor


def test_a_rag_record_is_paid_by_rag_scores_and_its_ids_are_stored(tmp_path, deployment) -> None:
    attributor, db, log = make(tmp_path, deployment)
    found = retriever().retrieve(PROMPT, 2)
    ids = tuple(r.contribution_id for r in found)
    assert ids[0] == "1"
    pay_and_serve(db, log, rag_record(1, ids))
    assert attributor.step().attributed == 1
    scores, shares, retrieved, reason = stored(db, 1)
    assert (scores, retrieved, reason) == ({"2": 3.0, "3": 1.0}, ids, None)
    assert shares == allocate(ServedInference(1, 1, 1000, 101), scores, CONTRIBUTIONS, OWNERS, ids)
    assert shares[ALICE] > 0, "the retrieved contribution earns although the model's scores gave it nothing"
    assert sum(shares.values()) == 1101


def test_a_record_naming_contributions_it_did_not_retrieve_takes_the_equal_split(tmp_path, deployment) -> None:
    attributor, db, log = make(tmp_path, deployment)
    pay_and_serve(db, log, rag_record(1, ("3",)))  # the server claims the least relevant one
    attributor.step()
    scores, shares, retrieved, reason = stored(db, 1)
    assert scores == {} and retrieved == () and "retriever returns" in reason
    assert shares == allocate(ServedInference(1, 1, 1000, 101), {}, CONTRIBUTIONS, OWNERS)


def test_a_record_whose_tokens_lack_the_retrieved_passages_takes_the_equal_split(tmp_path, deployment) -> None:
    attributor, db, log = make(tmp_path, deployment)
    ids = tuple(r.contribution_id for r in retriever().retrieve(PROMPT, 1))
    pay_and_serve(db, log, rag_record(1, ids, prompt_text=PROMPT))
    attributor.step()
    _, _, retrieved, reason = stored(db, 1)
    assert retrieved == () and "retrieved passages" in reason


def test_too_many_or_repeated_retrieved_ids_take_the_equal_split(tmp_path, deployment) -> None:
    attributor, db, log = make(tmp_path, deployment)
    pay_and_serve(db, log, rag_record(1, ("1", "1")))
    pay_and_serve(db, log, rag_record(2, tuple(str(i) for i in range(MAX_TOP_K + 1)), prompt_text=PROMPT), block=6)
    attributor.step()
    assert "at most" in stored(db, 1)[3] and "at most" in stored(db, 2)[3]


# ------------------------------------------------------------------ the served log and citations


def test_a_served_log_written_before_retrieval_reads_back_with_no_retrieved_ids(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE served (request_id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL, adapter_hash TEXT "
                   "NOT NULL, prompt TEXT NOT NULL, prompt_token_ids TEXT NOT NULL, output_token_ids TEXT NOT NULL, "
                   "output_text TEXT NOT NULL, served_at REAL NOT NULL)")  # fmt: skip
        db.execute("INSERT INTO served VALUES (1, 1, 'aa', 'p', '[112]', '[111]', 'o', 0.0)")
    log = ServedRecordStore(path)
    assert log.get(1) == ServedRecord(1, 1, "aa", "p", (112,), (111,), "o", 0.0)
    new = ServedRecord(2, 1, "aa", "p", (112,), (111,), "o", 0.0, ("7", "3"))
    assert log.add(new) and log.get(2) == new and log.after(0, 10)[1].retrieved == ("7", "3")
    old_dict = {k: v for k, v in new.to_dict().items() if k != "retrieved"}
    assert ServedRecord.from_dict(old_dict).retrieved == () and ServedRecord.from_dict(new.to_dict()) == new


def test_citations_list_each_retrieved_contribution_with_its_contributor_and_pool_share() -> None:
    (inference,) = rag_report(("1", "3")).inferences
    cited = citations(inference, {c.id: c.contributor for c in CONTRIBUTIONS})
    mixed = rag_scores(inference.scores, ("1", "3"))
    assert [(c.rank, c.contribution_id, c.contributor) for c in cited] == [(1, "1", ALICE), (2, "3", CAROL)]
    assert abs(cited[0].share - mixed["1"]) < 1e-12 and abs(cited[0].share - 0.1) < 1e-12, "half the 20% part"
    assert abs(cited[1].share - mixed["3"]) < 1e-12 and abs(cited[1].share - (0.1 + 0.8 * 0.25)) < 1e-12
    assert citations(rag_report(()).inferences[0], {}) == []
