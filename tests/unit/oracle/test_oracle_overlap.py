"""The overlapped node loop: scoring on a worker thread, reports sent without waiting for their receipt.

Real code throughout (SQLite, the content store, EIP-712 signing, the attributor and the node's loop methods);
the chain is replaced only where a fault must be caused on demand (a report transaction that reverts, is lost,
or loses the race to a peer's), by ``ScriptedChain``: a ``ChainClient`` whose ``latestEpoch`` read, send and
receipt are scripted (no RPC).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from attribution_oracle.chain.chain_errors import TransactionError
from attribution_oracle.chain.deployments import ContractRecord
from attribution_oracle.chain.wallets import dev_account
from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle import consensus as consensus_module
from attribution_oracle.oracle.consensus import Consensus
from attribution_oracle.oracle.db import OracleDB
from attribution_oracle.oracle.epochs import BlockEpochs, Draft, EpochBuilder
from attribution_oracle.oracle.node_metrics import Metrics
from attribution_oracle.oracle.oracle_node import NodeConfig, OracleNode
from attribution_oracle.oracle.peers import Peers
from attribution_oracle.oracle.record_attribution import RecordAttributor, load_shares
from attribution_oracle.oracle.scoring import ScorerContext
from attribution_oracle.oracle.served_sources import StoreServedRecords
from attribution_oracle.serving.served_log import ServedRecord, ServedRecordStore
from attribution_oracle.settlement.allocation import AttributedContribution, ServedInference, allocate
from attribution_oracle.settlement.epoch_report import InferenceShares, build_report
from attribution_oracle.settlement.report_service import report_uri
from attribution_oracle.settlement.report_typed_data import sign_report
from attribution_oracle.store.blobs import BlobStore

SIGNERS = [dev_account(k) for k in (7, 8, 9)]
DIGEST = bytes.fromhex("ab" * 32)
ALICE, BOB, OWNER = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20
CONTRIBUTIONS = [AttributedContribution("1", ALICE, 1), AttributedContribution("2", BOB, 1)]
OWNERS = {1: OWNER}
ADAPTER = "22" * 32


# ------------------------------------------------------------------------------------------ asynchronous submit


class ScriptedChain(ChainClient):
    """The distributor's ``latestEpoch``, sent report transactions and their receipts, scripted by the test."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9")
        self._chain_id = 31337
        self.latest = 0
        self.sent: list[str] = []
        self.receipts: dict[str, dict | None] = {}
        self.refuse: str | None = None  # the next send fails its pre-send check with this reason

    def call(self, fn, what: str = "call"):
        assert fn.fn_name == "latestEpoch", fn.fn_name
        return self.latest

    def send_nowait(self, fn, signer, what: str) -> str:
        assert fn.fn_name == "submitReport"
        if self.refuse is not None:
            raise TransactionError(f"{what} would revert: {self.refuse}")
        tx = "0x" + f"{len(self.sent) + 1:064x}"
        self.sent.append(tx)
        self.receipts[tx] = None  # pending
        return tx

    def receipt(self, tx_hash: str):
        return self.receipts[tx_hash]


class Submitter:
    """Node 7's consensus (m = 2 of 7, 8, 9) with asynchronous submit over a ``ScriptedChain``."""

    def __init__(self, root: Path, deployment) -> None:
        self.chain = ScriptedChain()
        self.db = OracleDB(root / "o.sqlite")
        self.store = BlobStore(root / "blobs")
        builder = EpochBuilder(self.chain, deployment, self.db, self.store, BlockEpochs(5), lambda _: None)
        builder._config_digest = DIGEST
        self.metrics = Metrics()
        self.consensus = Consensus(self.chain, deployment, self.db, SIGNERS[0], Peers([]), builder, self.metrics,
                                   0.0, async_submit=True)  # fmt: skip
        self.consensus._oracle_set = ([s.address.lower() for s in SIGNERS], 2)
        self.distributor = deployment.contracts["RewardDistributor"].address

    def signed_draft(self, epoch: int = 1) -> Draft:
        """A draft with this node's and a peer's matching signatures (m reached)."""
        report = build_report(
            chain_id=31337,
            distributor=self.distributor,
            config_digest=DIGEST,
            epoch=epoch,
            from_block=1,
            to_block=5,
            inferences=[InferenceShares(1, 1, {ALICE: 7}, {"1": 1.0})],
        )
        draft = Draft(epoch, report_uri(self.store.put_bytes(report.canonical_json())), report)  # fmt: skip
        sig = sign_report(draft.message, 31337, self.distributor, SIGNERS[1])
        m = draft.message
        assert self.consensus.receive(
            {"epoch": epoch, "reportURI": draft.uri, "signer": sig.signer, "rewardsRoot": "0x" + m.rewards_root.hex(),
             "totalCumulative": str(m.total_cumulative), "attributionRoot": "0x" + m.attribution_root.hex(),
             "v": sig.v, "r": "0x" + sig.r.hex(), "s": "0x" + sig.s.hex()}
        )  # fmt: skip
        return draft


@pytest.fixture
def submitter(tmp_path: Path, deployment) -> Submitter:
    return Submitter(tmp_path, deployment)


def test_fault_reverted_report_transaction_is_sent_again_exactly_once(submitter: Submitter) -> None:
    draft = submitter.signed_draft()
    assert submitter.consensus.step(draft) == "submitted"
    assert len(submitter.chain.sent) == 1
    for _ in range(3):  # pending: the loop goes on, nothing is sent twice
        assert submitter.consensus.step(draft) == "submitting"
    assert len(submitter.chain.sent) == 1
    submitter.chain.receipts[submitter.chain.sent[0]] = {"status": 0}  # mined, reverted
    assert submitter.consensus.step(draft) == "submitted"
    assert len(submitter.chain.sent) == 2, "one resend per revert"
    assert submitter.metrics.submit_retries._value.get() == 1
    for _ in range(3):
        assert submitter.consensus.step(draft) == "submitting"
    submitter.chain.receipts[submitter.chain.sent[1]] = {"status": 1}
    assert submitter.consensus.step(draft) == "submitting", "mined: the follower will see ReportSubmitted"
    submitter.chain.latest = 1  # confirmed and read
    assert submitter.consensus.step(draft) == "accepted"
    assert len(submitter.chain.sent) == 2


def test_attack_racing_peer_report_wins_the_epoch_and_ours_is_not_sent_again(submitter: Submitter) -> None:
    draft = submitter.signed_draft()
    assert submitter.consensus.step(draft) == "submitted"
    # a peer's report for the same epoch landed first: ours reverted ("epoch not after the latest")
    submitter.chain.receipts[submitter.chain.sent[0]] = {"status": 0}
    submitter.chain.latest = 1
    assert submitter.consensus.step(draft) == "accepted"
    assert len(submitter.chain.sent) == 1, "the distributor settles an epoch once: no second try"
    assert submitter.metrics.submit_retries._value.get() == 0


def test_fault_peer_report_lands_between_check_and_send(submitter: Submitter) -> None:
    draft = submitter.signed_draft()
    submitter.chain.refuse = "RewardDistributor: epoch not after the latest"

    original = submitter.chain.send_nowait

    def land_then_refuse(fn, signer, what):
        submitter.chain.latest = 1  # the peer's report is accepted just before ours is checked
        return original(fn, signer, what)

    submitter.chain.send_nowait = land_then_refuse
    assert submitter.consensus.step(draft) == "accepted"
    assert submitter.chain.sent == []


def test_fault_report_refused_for_another_reason_raises_for_the_loop_to_retry(submitter: Submitter) -> None:
    draft = submitter.signed_draft()
    submitter.chain.refuse = "RewardDistributor: bad signatures"
    with pytest.raises(TransactionError, match="bad signatures"):
        submitter.consensus.step(draft)
    submitter.chain.refuse = None
    assert submitter.consensus.step(draft) == "submitted"
    assert len(submitter.chain.sent) == 1


def test_fault_lost_report_transaction_is_sent_again_after_the_timeout(submitter, monkeypatch) -> None:
    draft = submitter.signed_draft()
    assert submitter.consensus.step(draft) == "submitted"
    assert submitter.consensus.step(draft) == "submitting"
    monkeypatch.setattr(consensus_module, "SUBMIT_TIMEOUT_S", 0.0)  # never mined (dropped from the pool)
    assert submitter.consensus.step(draft) == "submitted"
    assert len(submitter.chain.sent) == 2


def test_fault_reorg_forgets_the_sent_report_so_it_is_checked_again(submitter: Submitter) -> None:
    draft = submitter.signed_draft()
    assert submitter.consensus.step(draft) == "submitted"
    submitter.chain.receipts[submitter.chain.sent[0]] = {"status": 1}
    submitter.consensus.forget(3)  # a rollback: the mined report may be gone with its block
    submitter.consensus._oracle_set = ([s.address.lower() for s in SIGNERS], 2)  # re-read (no RPC here)
    assert submitter.consensus.step(draft) == "submitted"
    assert len(submitter.chain.sent) == 2, "latestEpoch says it is not accepted: sent again"


# --------------------------------------------------------------------------------------- overlapped attribution


class GivenTrainingData(ScorerContext):
    """The model's contributions and Datanet owners as the chain would give them (no RPC in a unit test)."""

    def training_data(self, model_id: int):
        return CONTRIBUTIONS, OWNERS

    def adapter_hash(self, model_id: int) -> str:
        return ADAPTER


class GatedScorer:
    """A batched scorer that counts what it scores and can be held mid-batch (a long model pass)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.scored: Counter = Counter()
        self.threads: set[str] = set()

    def scores(self, prompt, output) -> dict[str, float]:
        return self.scores_many([(prompt, output)])[0]

    def scores_many(self, items) -> list[dict[str, float]]:
        assert self.gate.wait(10), "the test never released the scorer"
        self.threads.add(threading.current_thread().name)
        out = []
        for prompt, _output in items:
            self.scored[tuple(prompt)] += 1
            out.append({"1": float(prompt[0]), "2": 1.0})
        return out


def make_node(root: Path, deployment, scorer: GatedScorer) -> tuple[OracleNode, ServedRecordStore]:
    registry = ContractRecord(address="0x" + "99" * 20, abi=[])  # names the deployment (``Deployment.key``)
    deployment = dataclasses.replace(deployment, contracts={**deployment.contracts, "DatanetRegistry": registry})
    log = ServedRecordStore(root / "served.sqlite")
    client = ChainClient("http://127.0.0.1:9")
    client._chain_id = 31337
    context = GivenTrainingData(client, deployment, BlobStore(root / "blobs"))
    node = OracleNode(client, deployment, BlobStore(root / "blobs"), SIGNERS[0], StoreServedRecords(log.path),
                      lambda _: scorer, context, NodeConfig(state_dir=root / "state", epoch_blocks=5))  # fmt: skip
    with node.db.transaction() as c:
        OracleDB.set_meta(c, "cursor_number", "1000")
        OracleDB.set_meta(c, "cursor_hash", "h")
    return node, log


def serve(node: OracleNode, log: ServedRecordStore, request_id: int, block: int = 10, pool: int = 1000) -> None:
    with node.db.transaction() as c:
        c.execute("INSERT INTO payments VALUES (?, 1, ?, ?, '11')", (request_id, block - 1, str(pool)))
        c.execute("INSERT INTO served VALUES (?, ?, 0)", (request_id, block))
    log.add(ServedRecord(request_id, 1, ADAPTER, "p", (request_id,), (111,), "o", 0.0))


def settle(node: OracleNode, passes: int = 50) -> int:
    """Loop passes of the overlapped attribution until nothing is in flight; returns how many were stored."""
    stored = 0
    for _ in range(passes):
        stored += node._attribute_overlapped()
        if node._job is None:
            return stored
        node.wait_for_work(1.0)
    raise AssertionError("the job in flight never finished")


def test_overlap_scores_and_stores_each_request_once_while_passes_go_on(tmp_path, deployment) -> None:
    scorer = GatedScorer()
    node, log = make_node(tmp_path, deployment, scorer)
    for request_id in range(1, 6):
        serve(node, log, request_id)
    scorer.gate.clear()  # the first batch stays in the model pass
    assert node._attribute_overlapped() == 0
    assert node._job is not None
    for request_id in range(6, 9):  # new requests arrive while it is scored
        serve(node, log, request_id)
    for _ in range(5):  # the loop goes on (chain, signatures): no second job, nothing stored yet
        assert node._attribute_overlapped() == 0
    assert node.db.scalar("SELECT COUNT(*) FROM attributions") == 0
    scorer.gate.set()
    assert settle(node) + settle(node) == 8
    assert set(scorer.scored.values()) == {1}, "every request scored exactly once"
    assert sorted(scorer.scored) == [(i,) for i in range(1, 9)]
    assert scorer.threads == {t for t in scorer.threads if t.startswith("oracle-scoring")}, "off the loop thread"
    rows = node.db.query("SELECT request_id, shares FROM attributions ORDER BY request_id")
    assert [r for r, _ in rows] == list(range(1, 9))
    for request_id, shares in rows:
        expected = allocate(ServedInference(request_id, 1, 1000, 11), {"1": float(request_id), "2": 1.0},
                            CONTRIBUTIONS, OWNERS)  # fmt: skip
        assert load_shares(shares) == expected
    node._scoring.shutdown(wait=True)


def test_overlap_gives_the_sequential_shares(tmp_path, deployment) -> None:
    results = []
    for name, overlap in (("seq", False), ("ovl", True)):
        node, log = make_node(tmp_path / name, deployment, GatedScorer())
        for request_id in range(1, 12):
            serve(node, log, request_id, pool=1000 + 37 * request_id)
        if overlap:
            settle(node)
            node._scoring.shutdown(wait=True)
        else:
            node._attribute_all()
        results.append(node.db.query("SELECT request_id, model_id, served_block, scores, shares FROM attributions "
                                     "ORDER BY request_id"))  # fmt: skip
    assert results[0] == results[1] and len(results[0]) == 11


def test_fault_reorg_while_scoring_stores_nothing_from_the_old_chain(tmp_path, deployment) -> None:
    scorer = GatedScorer()
    node, log = make_node(tmp_path, deployment, scorer)
    serve(node, log, 1, block=10)
    serve(node, log, 2, block=20)
    scorer.gate.clear()
    node._attribute_overlapped()
    node.follower.rollback(15)  # request 2's payment and served mark are undone while it is scored
    with node.db.transaction() as c:  # the new chain pays request 2 again, with another pool
        c.execute("INSERT INTO payments VALUES (2, 1, 16, '5000', '11')")
        c.execute("INSERT INTO served VALUES (2, 17, 0)")
    scorer.gate.set()
    settle(node)
    settle(node)
    rows = dict(node.db.query("SELECT request_id, shares FROM attributions"))
    assert sum(load_shares(rows[2]).values()) == 5011, "attributed from the new chain's payment"
    assert sum(load_shares(rows[1]).values()) == 1011
    node._scoring.shutdown(wait=True)


def test_fault_payment_changed_while_scoring_is_left_pending(tmp_path, deployment) -> None:
    db = OracleDB(tmp_path / "o.sqlite")
    log = ServedRecordStore(tmp_path / "served.sqlite")
    client = ChainClient("http://127.0.0.1:9")
    context = GivenTrainingData(client, deployment, BlobStore(tmp_path / "blobs"))
    attributor = RecordAttributor(db, StoreServedRecords(log.path), lambda _: GatedScorer(), context, Metrics())
    with db.transaction() as c:
        OracleDB.set_meta(c, "cursor_number", "1000")
        for request_id in (1, 2):
            c.execute("INSERT INTO payments VALUES (?, 1, 9, '1000', '11')", (request_id,))
            c.execute("INSERT INTO served VALUES (?, 10, 0)", (request_id,))
            log.add(ServedRecord(request_id, 1, ADAPTER, "p", (request_id,), (111,), "o", 0.0))
    job = attributor.score(attributor.prepare())
    with db.transaction() as c:  # re-read from the chain meanwhile (charged per token): other pools
        c.execute("UPDATE payments SET contributors_amount = '400' WHERE request_id = 2")
    done = attributor.finish(job)
    assert (done.attributed, done.waiting) == (1, 1)
    assert [r for (r,) in db.query("SELECT request_id FROM attributions")] == [1]
    assert attributor.step().attributed == 1
    assert sum(load_shares(db.scalar("SELECT shares FROM attributions WHERE request_id = 2")).values()) == 411


def test_a_sequential_pass_first_stores_the_job_in_flight(tmp_path, deployment) -> None:
    scorer = GatedScorer()
    node, log = make_node(tmp_path, deployment, scorer)
    serve(node, log, 1)
    scorer.gate.clear()
    node._attribute_overlapped()
    threading.Timer(0.2, scorer.gate.set).start()
    started = time.monotonic()
    assert node._drain() == 1, "a sequential pass (or --once) first stores the job in flight"
    assert time.monotonic() - started < 10
    assert node._attribute_all() == 0
    assert scorer.scored[(1,)] == 1
    node._scoring.shutdown(wait=True)
