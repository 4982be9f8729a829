"""`datanet audit` through the real CLI on a real Anvil: pending copies of approved contributions are flagged."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "demo" / "corpus"


@pytest.fixture(scope="module")
def audited(chain_cli, tmp_path_factory):
    """Alice's notes approved; Bob submits an exact copy, a near copy and his own note; Carol a late near copy."""
    ao = chain_cli
    files = tmp_path_factory.mktemp("audit-files")
    original = (CORPUS / "alice" / "03-queen-cells.txt").read_text()
    other = (CORPUS / "alice" / "05-varroa-wash.txt").read_text()
    (files / "copy.txt").write_text(original + "\n")
    (files / "near.txt").write_text("My notes. " + original[: len(original) * 3 // 4] + "\nAll checked in May.\n")
    (files / "own.txt").write_text("Drones are reared in larger cells and are evicted by the workers in autumn.\n")
    for who in ("owner", "alice", "bob"):
        ao("wallet", "new", who)
        ao("wallet", "fund", who, "--eth", "1", "--from", "dev:0")
        ao("token", "mint", who, "100", "--from", "dev:0")
    datanet = ao.json("datanet", "create", "Audit", "--min-stake", "1", "--from", "owner")["datanetId"]
    alice = ao.json(
        "datanet", "contribute", str(datanet), str(CORPUS / "alice" / "03-queen-cells.txt"),
        str(CORPUS / "alice" / "05-varroa-wash.txt"), "--from", "alice",
    )["contributionIds"]  # fmt: skip
    ao("datanet", "approve", *map(str, alice), "--from", "owner")
    bob = ao.json(
        "datanet", "contribute", str(datanet), str(files / "copy.txt"), str(files / "near.txt"),
        str(files / "own.txt"), "--from", "bob",
    )["contributionIds"]  # fmt: skip
    return {"datanet": datanet, "alice": alice, "bob": bob, "original": original, "other": other}


def test_audit_flags_pending_copies_and_near_copies(chain_cli, audited):
    result = chain_cli.json("datanet", "audit", str(audited["datanet"]))
    assert result["mode"] == "pending" and result["compared"] == 2 and result["missingBlobs"] == []
    verdicts = {c["id"]: c["verdict"] for c in result["contributions"]}
    copy, near, own = audited["bob"]
    assert verdicts == {copy: "copy", near: "near-copy", own: "ok"}
    by_id = {c["id"]: c for c in result["contributions"]}
    queen_cells = audited["alice"][0]
    assert by_id[copy]["sources"] == [{"id": str(queen_cells), "tokens": len(audited["original"].encode())}]
    assert [s["id"] for s in by_id[near]["sources"]] == [str(queen_cells)]
    assert by_id[own]["copiedTokens"] == 0
    # sorted by copied fraction, most copied first
    assert [c["id"] for c in result["contributions"]] == [copy, near, own]


def test_audit_table_and_version_mode(chain_cli, audited):
    datanet = str(audited["datanet"])
    table = chain_cli("datanet", "audit", datanet).stdout
    assert "near-copy" in table and "copy" in table and "verdict" in table
    copy, near, own = audited["bob"]
    chain_cli("datanet", "approve", str(near), str(own), "--from", "owner")
    chain_cli("datanet", "reject", str(copy), "--from", "owner")
    chain_cli("datanet", "publish", datanet, "--from", "owner")
    result = chain_cli.json("datanet", "audit", datanet, "--version", "1")
    verdicts = {c["id"]: c["verdict"] for c in result["contributions"]}
    first, second = audited["alice"]
    assert verdicts == {first: "ok", second: "ok", near: "near-copy", own: "ok"}
    assert chain_cli.json("datanet", "audit", datanet)["contributions"] == []  # nothing pending any more


def test_audit_errors_are_one_line(chain_cli, audited):
    datanet = str(audited["datanet"])
    for args, code in (
        (("datanet", "audit", datanet, "--version", "7"), 1),
        (("datanet", "audit", datanet, "--pending", "--version", "1"), 1),
        (("datanet", "audit", datanet, "--threshold", "2"), 2),  # a usage error: the valid range is stated
        (("datanet", "audit", "99"), 1),
    ):
        result = chain_cli(*args, ok=False)
        assert result.exit_code == code
        assert result.output.startswith("error: ") and "Traceback" not in result.output, result.output


def test_pending_contributions_are_compared_among_themselves(chain_cli, tmp_path):
    """Two near-identical pending files used to both pass (only approved ones were compared); the later is flagged."""
    ao = chain_cli
    for who in ("dana", "erin"):
        ao("wallet", "new", who)
        ao("wallet", "fund", who, "--eth", "1", "--from", "dev:0")
        ao("token", "mint", who, "100", "--from", "dev:0")
    datanet = str(ao.json("datanet", "create", "Fresh", "--min-stake", "1", "--from", "dana")["datanetId"])
    text = (CORPUS / "bob" / "01-nectar-flow.txt").read_text()
    (tmp_path / "mine.txt").write_text(text)
    (tmp_path / "theirs.txt").write_text("Copied notes: " + text.replace("\n", " \n"))
    (first,) = ao.json("datanet", "contribute", datanet, str(tmp_path / "mine.txt"), "--from", "dana")[
        "contributionIds"
    ]
    (later,) = ao.json("datanet", "contribute", datanet, str(tmp_path / "theirs.txt"), "--from", "erin")[
        "contributionIds"
    ]
    result = ao.json("datanet", "audit", datanet)
    assert result["compared"] == 0 and result["comparedPending"] == 2
    by_id = {c["id"]: c for c in result["contributions"]}
    assert by_id[first]["verdict"] == "ok"  # the first one sent owns its text
    assert by_id[later]["verdict"] in ("copy", "near-copy")
    assert [s["id"] for s in by_id[later]["sources"]] == [str(first)]
    table = ao("datanet", "audit", datanet).output
    assert "erin" in table and "dana" in table  # wallet names, not addresses
    assert "1 approved" not in table and "+ 2 pending" in table
