"""The node's SQLite state: transactions, binding, a follower step as one transaction, reorg rollback."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.chain.web3_client import ChainClient
from attribution_oracle.oracle.db import OracleDB, StateMismatchError
from attribution_oracle.oracle.follower import ChainFollower

TABLES = ("meta", "blocks", "payments", "served", "attributions", "submissions", "epochs", "signatures")
TABLES += ("disagreements",)


def snapshot(db: OracleDB) -> dict[str, list[tuple]]:
    """Every table's rows, sorted."""
    return {t: sorted(db.query(f"SELECT * FROM {t}"), key=repr) for t in TABLES}  # noqa: S608 - fixed names


def test_transaction_commits_or_leaves_nothing(tmp_path: Path) -> None:
    db = OracleDB(tmp_path / "o.sqlite")
    with db.transaction() as c:
        c.execute("INSERT INTO payments VALUES (1, 1, 10, '5', '1')")
    before = snapshot(db)
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as c:
        c.execute("INSERT INTO payments VALUES (2, 1, 11, '5', '1')")
        c.execute("INSERT INTO payments VALUES (1, 1, 12, '5', '1')")  # duplicate key: the whole step fails
    assert snapshot(db) == before
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"


def test_state_is_bound_to_one_deployment_and_signer(tmp_path: Path) -> None:
    db = OracleDB(tmp_path / "o.sqlite")
    db.bind("31337:0xabc", "0xAAA")
    db.bind("31337:0xabc", "0xaaa")  # same signer, any case
    with pytest.raises(StateMismatchError, match="another --state-dir"):
        db.bind("31337:0xdef", "0xaaa")
    with pytest.raises(StateMismatchError):
        OracleDB(tmp_path / "o.sqlite").bind("31337:0xabc", "0xbbb")


def _event(name: str, block: int, **args: object) -> dict:
    return {"event": name, "args": args, "blockNumber": block, "blockHash": f"0x{block:064x}", "logIndex": 0}


def test_a_follower_step_commits_events_and_cursor_together_or_not_at_all(tmp_path: Path, deployment) -> None:
    db = OracleDB(tmp_path / "o.sqlite")
    # no RPC happens here: _commit writes already fetched events (the client is never called)
    follower = ChainFollower(ChainClient("http://127.0.0.1:9"), deployment, db, confirmations=2)
    paid = _event("InferencePaid", 5, requestId=1, modelId=3)
    split = _event("FeeSplit", 5, requestId=1, contributorsAmount=40, datanetOwnersAmount=10)
    served = _event("InferenceServed", 6, requestId=1)
    follower._commit([paid, split, served], 8, "0x" + "88" * 32)
    assert db.cursor() == (8, "0x" + "88" * 32)
    assert db.query("SELECT * FROM payments") == [(1, 3, 5, "40", "10")]
    assert db.query("SELECT request_id, block_number FROM served") == [(1, 6)]
    assert [n for (n,) in db.query("SELECT number FROM blocks ORDER BY number")] == [5, 6, 8]
    before = snapshot(db)
    orphan = _event("InferencePaid", 9, requestId=2, modelId=3)  # no FeeSplit: the step fails midway
    with pytest.raises(KeyError):
        follower._commit([_event("InferenceServed", 9, requestId=1), orphan], 10, "0x" + "aa" * 32)
    assert snapshot(db) == before, "a failed step leaves the state (and the cursor) as it was"


ROW_BLOCKS = st.lists(st.integers(1, 60), min_size=0, max_size=25)


def _fill(db: OracleDB, payments: list[int], served: list[int], submissions: list[int], epochs: list[int]) -> None:
    with db.transaction() as c:
        for request_id, block in enumerate(payments):
            c.execute("INSERT INTO payments VALUES (?, 1, ?, '10', '2')", (request_id, block))
            c.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (block, f"h{block}"))
        for request_id, block in enumerate(served):
            if request_id < len(payments):
                block = max(block, payments[request_id])  # served after paid
                c.execute("INSERT INTO served VALUES (?, ?, 0)", (request_id, block))
                c.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (block, f"h{block}"))
                c.execute("INSERT INTO attributions VALUES (?, 1, ?, '{}', '{}', 0)", (request_id, block))
        for epoch, block in enumerate(submissions, start=1):
            c.execute("INSERT INTO submissions (epoch, report_uri, rewards_root, total_cumulative, block_number) "
                      "VALUES (?, ?, '0x', '0', ?)", (epoch, f"u{epoch}", block))  # fmt: skip
            c.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (block, f"h{block}"))
        for epoch, to_block in enumerate(epochs, start=1):
            status = "submitted" if epoch <= len(submissions) else "signed"
            c.execute("INSERT INTO epochs VALUES (?, '', 0, ?, ?, 0, '0', 0, ?, NULL)",
                      (epoch, to_block, f"u{epoch}", status))  # fmt: skip
            for signer in ("0xa", "0xb"):
                c.execute("INSERT INTO signatures VALUES (?, ?, ?, '0x', '0', '0x', 27, '0x', '0x', 0)",
                          (epoch, f"u{epoch}", signer))  # fmt: skip
            c.execute("INSERT INTO disagreements VALUES (?, 'other', '0xc', 'x')", (epoch,))
        top = max([*payments, *served, *submissions, 0])
        c.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (top, f"h{top}"))
        OracleDB.set_meta(c, "cursor_number", str(top))
        OracleDB.set_meta(c, "cursor_hash", f"h{top}")


@settings(max_examples=60, deadline=None)
@given(payments=ROW_BLOCKS, served=ROW_BLOCKS, submissions=ROW_BLOCKS, epochs=ROW_BLOCKS, ancestor=st.integers(0, 61))
def test_rollback_removes_exactly_the_undone_rows(payments, served, submissions, epochs, ancestor) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = OracleDB(Path(tmp) / "o.sqlite")
        _fill(db, payments, served, sorted(submissions), epochs)
        before = snapshot(db)
        db.rollback(ancestor)
        after = snapshot(db)
    assert after["blocks"] == [r for r in before["blocks"] if r[0] <= ancestor]
    assert after["payments"] == [r for r in before["payments"] if r[2] <= ancestor]
    assert after["served"] == [r for r in before["served"] if r[1] <= ancestor]
    kept_requests = {r[0] for r in after["served"]} & {r[0] for r in after["payments"]}
    assert after["attributions"] == [r for r in before["attributions"] if r[0] in kept_requests]
    assert after["submissions"] == [r for r in before["submissions"] if r[4] <= ancestor]
    kept_epochs = {r[0] for r in before["epochs"] if r[3] <= ancestor}
    assert {r[0] for r in after["epochs"]} == kept_epochs
    assert after["signatures"] == [r for r in before["signatures"] if r[0] in kept_epochs]
    assert after["disagreements"] == [r for r in before["disagreements"] if r[0] in kept_epochs]
    submitted = {r[0] for r in after["submissions"]}
    for epoch, *_rest, status, _tx in after["epochs"]:
        assert status == ("submitted" if epoch in submitted else "signed")
    meta = dict(after["meta"])
    if ancestor in {r[0] for r in after["blocks"]}:
        assert (meta["cursor_number"], meta["cursor_hash"]) == (str(ancestor), f"h{ancestor}")
    else:
        assert "cursor_number" not in meta and "cursor_hash" not in meta  # re-read from the deployment block
