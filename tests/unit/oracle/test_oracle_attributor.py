"""Attribution of served requests, and the grace rule for served requests whose record never appears."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
CONTRIBUTIONS = [
    AttributedContribution("1", ALICE, 1),
    AttributedContribution("2", ALICE, 1),
    AttributedContribution("3", BOB, 1),
]
OWNERS = {1: OWNER}
ADAPTER = "22" * 32


class GivenTrainingData(ScorerContext):
    """The model's contributions and Datanet owners as the chain would give them (no RPC in a unit test)."""

    def training_data(self, model_id: int) -> tuple[list[AttributedContribution], dict[int, str]]:
        return CONTRIBUTIONS, OWNERS

    def adapter_hash(self, model_id: int) -> str:
        return ADAPTER


class FixedScorer:
    """Scores every contribution: 1 gets 3.0, 2 gets -1.0, 3 gets 1.0."""

    def scores(self, prompt_token_ids, output_token_ids) -> dict[str, float]:
        return {"1": 3.0, "2": -1.0, "3": 1.0}


def make(tmp: Path, grace: int, deployment) -> tuple[RecordAttributor, OracleDB, ServedRecordStore, Metrics]:
    db = OracleDB(tmp / "o.sqlite")
    log = ServedRecordStore(tmp / "served.sqlite")
    context = GivenTrainingData(ChainClient("http://127.0.0.1:9"), deployment, BlobStore(tmp / "blobs"))
    metrics = Metrics()
    return (
        RecordAttributor(db, StoreServedRecords(log.path), lambda _: FixedScorer(), context, metrics, grace),
        db,
        log,
        metrics,
    )


def serve(db: OracleDB, log: ServedRecordStore | None, request_id: int, block: int, pools=(1000, 101)) -> None:
    with db.transaction() as c:
        c.execute("INSERT INTO payments VALUES (?, 1, ?, ?, ?)", (request_id, block - 1, str(pools[0]), str(pools[1])))
        c.execute("INSERT INTO served VALUES (?, ?, 0)", (request_id, block))
    if log is not None:
        log.add(ServedRecord(request_id, 1, "22" * 32, "p", (112,), (111,), "o", 0.0))


def set_cursor(db: OracleDB, number: int) -> None:
    with db.transaction() as c:
        OracleDB.set_meta(c, "cursor_number", str(number))
        OracleDB.set_meta(c, "cursor_hash", f"h{number}")


def attributed(db: OracleDB) -> dict[int, tuple[dict, dict]]:
    rows = db.query("SELECT request_id, scores, shares FROM attributions")
    return {r: (load_scores(sc), load_shares(sh)) for r, sc, sh in rows}


def test_a_missing_record_waits_for_the_grace_period_then_falls_back_to_equal_shares(tmp_path, deployment) -> None:
    attributor, db, log, metrics = make(tmp_path, 3, deployment)
    serve(db, log, 1, 11)
    serve(db, None, 2, 11)  # marked served on-chain, but the server never logged it
    serve(db, log, 3, 11)
    set_cursor(db, 13)  # 11 + 3 not reached
    done = attributor.step()
    assert (done.attributed, done.waiting) == (2, 1)
    assert set(attributed(db)) == {1, 3}
    assert attributed(db)[1][1] == allocate(ServedInference(1, 1, 1000, 101), FixedScorer().scores((), ()),
                                            CONTRIBUTIONS, OWNERS)  # fmt: skip
    assert attributor.step().attributed == 0, "still waiting"
    set_cursor(db, 14)
    assert attributor.step().attributed == 1
    scores, shares = attributed(db)[2]
    assert scores == {}
    assert shares == allocate(ServedInference(2, 1, 1000, 101), {}, CONTRIBUTIONS, OWNERS)
    assert shares == {ALICE: 500, BOB: 500, OWNER: 101}, "contributors equally (not per contribution), owners all"
    assert metrics.missing_records._value.get() == 1


def test_a_record_that_arrives_within_the_grace_period_is_scored(tmp_path, deployment) -> None:
    attributor, db, log, _ = make(tmp_path, 5, deployment)
    serve(db, None, 7, 20)
    set_cursor(db, 24)
    assert attributor.step().waiting == 1
    log.add(ServedRecord(7, 1, "22" * 32, "p", (112,), (111,), "o", 0.0))
    set_cursor(db, 30)
    assert attributor.step().attributed == 1
    assert attributed(db)[7][0] == FixedScorer().scores((), ())


def test_waiting_requests_do_not_hold_back_later_ones(tmp_path, deployment) -> None:
    attributor, db, log, _ = make(tmp_path, 100, deployment)
    serve(db, None, 1, 5)
    serve(db, log, 2, 5)
    set_cursor(db, 6)
    first = attributor.step()
    assert (first.attributed, first.waiting, first.last) == (1, 1, 2)
    assert attributor.step(after=first.last).attributed + attributor.step(after=first.last).waiting == 0


def test_grace_must_not_be_negative(tmp_path, deployment) -> None:
    with pytest.raises(ValueError, match="grace"):
        make(tmp_path, -1, deployment)


@settings(max_examples=30, deadline=None)
@given(
    contributors=st.integers(0, 10**21),
    owners=st.integers(0, 10**19),
    grace=st.integers(0, 20),
    served_block=st.integers(1, 50),
    cursor_delta=st.integers(0, 40),
)
def test_the_fallback_is_exact_and_only_after_the_grace(
    tmp_path_factory, deployment, contributors, owners, grace, served_block, cursor_delta
) -> None:
    attributor, db, _, _ = make(tmp_path_factory.mktemp("a"), grace, deployment)
    serve(db, None, 1, served_block, (contributors, owners))
    set_cursor(db, served_block + cursor_delta)
    done = attributor.step()
    if cursor_delta < grace:
        assert (done.attributed, done.waiting) == (0, 1)
        return
    _, shares = attributed(db)[1]
    assert sum(shares.values()) == contributors + owners
    assert abs(shares.get(ALICE, 0) - shares.get(BOB, 0)) <= 1
    assert shares.get(OWNER, 0) == owners
    assert json.dumps(shares, sort_keys=True) == json.dumps(
        allocate(ServedInference(1, 1, contributors, owners), {}, CONTRIBUTIONS, OWNERS), sort_keys=True
    )


# ------------------------------------------------------------ attacks (issue 13)


class CharTokenizer:
    """A tokenizer the scorer exposes: one token id per character."""

    class Encoded:
        def __init__(self, ids):
            self.input_ids = ids

    def __call__(self, text: str, add_special_tokens: bool = False):
        return self.Encoded([ord(c) for c in text])


class TokenizingScorer(FixedScorer):
    tokenizer = CharTokenizer()


def test_attack_tampered_served_log_steers_the_rewards(tmp_path, deployment) -> None:
    """Records naming another model or adapter, a prompt that is not the paid one, or token ids that are not the
    prompt's tokenization are not scored: the equal fallback applies and the report says why."""
    import hashlib

    from attribution_oracle.settlement.epoch_report import InferenceShares, Report, build_report

    db = OracleDB(tmp_path / "o.sqlite")
    log = ServedRecordStore(tmp_path / "served.sqlite")
    context = GivenTrainingData(ChainClient("http://127.0.0.1:9"), deployment, BlobStore(tmp_path / "blobs"))
    attributor = RecordAttributor(db, StoreServedRecords(log.path), lambda _: TokenizingScorer(), context, Metrics(), 5)
    paid = "0x" + hashlib.sha256(b"p").hexdigest()
    records = {
        1: ServedRecord(1, 1, ADAPTER, "p", (112,), (111,), "o", 0.0),  # honest
        2: ServedRecord(2, 2, ADAPTER, "p", (112,), (111,), "o", 0.0),  # another model
        3: ServedRecord(3, 1, "33" * 32, "p", (112,), (111,), "o", 0.0),  # another adapter
        4: ServedRecord(4, 1, ADAPTER, "q", (113,), (111,), "o", 0.0),  # not the paid prompt
        5: ServedRecord(5, 1, ADAPTER, "p", (999,), (111,), "o", 0.0),  # token ids that are not the prompt's
    }
    for request_id, record in records.items():
        serve(db, None, request_id, 11)
        with db.transaction() as c:
            c.execute("INSERT INTO payment_inputs VALUES (?, ?)", (request_id, paid))
        log.add(record)
    set_cursor(db, 12)
    assert attributor.step().attributed == 5
    got = attributed(db)
    equal = allocate(ServedInference(1, 1, 1000, 101), {}, CONTRIBUTIONS, OWNERS)
    assert got[1][0] == {"1": 3.0, "2": -1.0, "3": 1.0} and got[1][1] != equal
    for request_id in (2, 3, 4, 5):
        assert got[request_id] == ({}, equal), request_id
    reasons = dict(db.query("SELECT request_id, reason FROM attribution_fallbacks"))
    assert set(reasons) == {2, 3, 4, 5}
    assert "model" in reasons[2] and "adapter" in reasons[3] and "inputHash" in reasons[4] and "token" in reasons[5]
    report = build_report(
        chain_id=31337, distributor="0x" + "11" * 20, config_digest=b"\x01" * 32, epoch=1, from_block=1, to_block=12,
        inferences=[InferenceShares(4, 1, got[4][1], {}, reasons[4])],
    )  # fmt: skip
    entry = json.loads(report.canonical_json())["inferences"][0]
    assert entry["fallback"] == reasons[4]
    assert Report.from_json(report.canonical_json()).inferences[0].fallback == reasons[4]
