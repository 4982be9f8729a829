"""The SQLite catalog: applying DatanetRegistry / ModelRegistry events, queries, idempotence, rollback, resets."""

from __future__ import annotations

import hashlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution_oracle.store.catalog import Catalog
from attribution_oracle.store.catalog_records import ModelSource
from attribution_oracle.store.merkle import MerkleTree
from attribution_oracle.store.store_errors import CatalogError, InvalidDigestError, StoreError, UnknownIdError

OWNER = "0x1111111111111111111111111111111111111111"
NEW_OWNER = "0x2222222222222222222222222222222222222222"
CURATOR = "0x3333333333333333333333333333333333333333"
CURATOR2 = "0x4444444444444444444444444444444444444444"
ALICE = "0xA11cE00000000000000000000000000000000001"
BOB = "0xB0b0000000000000000000000000000000000002"
CAROL = "0xCa501000000000000000000000000000000000C3"
MODEL_OWNER = "0x5555555555555555555555555555555555555555"
OPEN = 10**18
KEY = "31337:0xRegistry:genesis"


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


H1, H2, H3, H4 = sha("alice.txt"), sha("bob.txt"), sha("carol.txt"), sha("alice-2.txt")
BASE, ADAPTER = sha("base model"), sha("adapter")
BOB_STAKE = 10 * OPEN + 1  # above 2**63: amounts must not go through SQLite integers


def block_hash(number: int) -> str:
    return "0x" + hashlib.sha256(f"block {number}".encode()).hexdigest()


def ev(event: str, block: int, log: int = 0, /, **args: Any) -> dict[str, Any]:
    """A decoded event as the chain client hands it over."""
    tx = "0x" + hashlib.sha256(f"tx {block}".encode()).hexdigest()
    return {"event": event, "args": args, "blockNumber": block, "logIndex": log, "transactionHash": tx}


def story() -> list[dict[str, Any]]:
    """Create, curate, contribute x4, approve x2, slash, withdraw, publish, register a model, reprice, deactivate."""
    root = MerkleTree([H2, H1]).root  # approval order: Bob first, then Alice
    return [
        ev("CreationFeeSet", 1, fee=5 * OPEN),
        ev("Transfer", 2, 0, sender=OWNER, receiver=OWNER, value=5 * OPEN),
        ev("DatanetCreated", 2, 1, datanetId=1, owner=OWNER, name="medical-qa", metadataURI="ipfs://meta",
           minStake=OPEN, feePaid=5 * OPEN),
        ev("CuratorSet", 3, datanetId=1, curator=CURATOR, enabled=True),
        ev("ContributionSubmitted", 4, 1, contributionId=1, datanetId=1, contributor=ALICE, contentHash=H1,
           uri="blob://alice", size=100, stake=2 * OPEN),
        ev("ContributionSubmitted", 5, contributionId=2, datanetId=1, contributor=BOB, contentHash=H2,
           uri="blob://bob", size=2**70, stake=BOB_STAKE),
        ev("ContributionSubmitted", 6, contributionId=3, datanetId=1, contributor=CAROL, contentHash=H3,
           uri="blob://carol", size=300, stake=OPEN),
        ev("ContributionApproved", 7, contributionId=2, datanetId=1, curator=CURATOR, approvalIndex=0,
           stakeReturned=BOB_STAKE),
        ev("ContributionApproved", 8, contributionId=1, datanetId=1, curator=OWNER, approvalIndex=1,
           stakeReturned=2 * OPEN),
        ev("ContributionRejected", 9, contributionId=3, datanetId=1, curator=CURATOR, malicious=True,
           stakeReturned=0, stakeSlashed=OPEN),
        ev("ContributionSubmitted", 10, contributionId=4, datanetId=1, contributor=ALICE, contentHash=H4,
           uri="blob://alice-2", size=40, stake=OPEN),
        ev("ContributionWithdrawn", 11, contributionId=4, datanetId=1, contributor=ALICE, stakeReturned=OPEN),
        ev("VersionPublished", 12, datanetId=1, version=1, merkleRoot=root, count=2, manifestURI="ipfs://v1"),
        ev("MinStakeSet", 13, 0, datanetId=1, minStake=3 * OPEN),
        ev("CuratorSet", 13, 1, datanetId=1, curator=CURATOR2, enabled=True),
        ev("CuratorSet", 13, 2, datanetId=1, curator=CURATOR, enabled=False),
        ev("DatanetOwnerChanged", 13, 3, datanetId=1, previousOwner=OWNER, newOwner=NEW_OWNER),
        ev("ModelRegistered", 14, modelId=1, owner=MODEL_OWNER, adapterHash=ADAPTER, baseModelHash=BASE,
           price=3 * 10**16, split={"ownerBps": 5000, "contributorsBps": 4000, "datanetOwnersBps": 1000},
           sources=[{"datanetId": 1, "version": 1}], metadataURI="ipfs://model"),
        ev("PriceUpdated", 15, modelId=1, oldPrice=3 * 10**16, newPrice=20 * OPEN),
        ev("ModelDeactivated", 16, modelId=1),
    ]  # fmt: skip


LAST = 16


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, read through a separate connection."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "catalog.sqlite"


@pytest.fixture
def catalog(db: Path) -> Catalog:
    with Catalog(db, KEY) as cat:
        yield cat


# ------------------------------------------------------------------ the story


def test_realistic_event_sequence(catalog: Catalog) -> None:
    assert catalog.cursor() is None
    applied = catalog.apply(story(), LAST, block_hash(LAST))
    assert applied == 18  # CreationFeeSet and Transfer are ignored
    assert catalog.cursor() == (LAST, block_hash(LAST))

    (datanet,) = catalog.list_datanets()
    assert datanet == catalog.get_datanet(1)
    assert (datanet.id, datanet.name, datanet.metadata_uri) == (1, "medical-qa", "ipfs://meta")
    assert datanet.owner == NEW_OWNER
    assert datanet.min_stake == 3 * OPEN
    assert datanet.fee_paid == 5 * OPEN
    assert datanet.curators == (CURATOR2,)
    assert (datanet.contribution_count, datanet.approved_count, datanet.version_count) == (4, 2, 1)
    assert datanet.created_block == 2

    statuses = {c.id: c.status for c in catalog.list_contributions(1)}
    assert statuses == {1: "approved", 2: "approved", 3: "slashed", 4: "withdrawn"}
    assert [c.id for c in catalog.list_contributions(1)] == [1, 2, 3, 4]  # submission order
    assert [c.id for c in catalog.list_contributions(1, "approved")] == [1, 2]
    assert [c.id for c in catalog.list_contributions(1, "slashed")] == [3]
    assert catalog.list_contributions(1, "pending") == []

    bob = catalog.get_contribution(2)
    assert bob.contributor == BOB
    assert bob.content_hash == H2.hex()
    assert bob.size == 2**70
    assert bob.stake == BOB_STAKE
    assert (bob.approval_index, bob.curator, bob.stake_returned, bob.decided_block) == (0, CURATOR, BOB_STAKE, 7)
    carol = catalog.get_contribution(3)
    assert (carol.stake_returned, carol.stake_slashed, carol.approval_index) == (0, OPEN, None)
    withdrawn = catalog.get_contribution(4)
    assert (withdrawn.status, withdrawn.curator, withdrawn.stake_returned) == ("withdrawn", None, OPEN)

    assert catalog.approved_hashes(1) == [H2.hex(), H1.hex()]  # approval order, not submission order

    (version,) = catalog.list_versions(1)
    assert version == catalog.get_version(1, 1)
    assert (version.count, version.manifest_uri, version.published_block) == (2, "ipfs://v1", 12)
    leaves = [bytes.fromhex(h) for h in catalog.approved_hashes(1)[: version.count]]
    assert version.merkle_root == MerkleTree(leaves).root.hex()

    (model,) = catalog.list_models()
    assert model == catalog.get_model(1)
    assert (model.owner, model.base_model_hash, model.adapter_hash) == (MODEL_OWNER, BASE.hex(), ADAPTER.hex())
    assert model.price == 20 * OPEN
    assert (model.owner_bps, model.contributors_bps, model.datanet_owners_bps) == (5000, 4000, 1000)
    assert model.sources == (ModelSource(datanet_id=1, version=1),)
    assert model.active is False
    assert model.metadata_uri == "ipfs://model"


def test_batches_split_anywhere_give_the_same_catalog(tmp_path: Path) -> None:
    events = story()
    with Catalog(tmp_path / "one.sqlite", KEY) as one:
        one.apply(events, LAST, block_hash(LAST))
    expected = dump(tmp_path / "one.sqlite")
    for cut in (3, 9, 15):
        path = tmp_path / f"cut{cut}.sqlite"
        with Catalog(path, KEY) as cat:
            head = [e for e in events if e["blockNumber"] <= cut]
            tail = [e for e in events if e["blockNumber"] > cut]
            cat.apply(head, cut, block_hash(cut))
            assert cat.cursor() == (cut, block_hash(cut))
            cat.apply(tail, LAST, block_hash(LAST))
        assert dump(path) == expected


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(len(story()))))
def test_events_are_applied_in_block_and_log_order_whatever_the_input_order(order: list[int]) -> None:
    events = story()
    with tempfile.TemporaryDirectory() as tmp:
        with Catalog(Path(tmp) / "sorted.sqlite", KEY) as cat:
            cat.apply(events, LAST, block_hash(LAST))
        with Catalog(Path(tmp) / "shuffled.sqlite", KEY) as cat:
            cat.apply([events[i] for i in order], LAST, block_hash(LAST))
        assert dump(Path(tmp) / "shuffled.sqlite") == dump(Path(tmp) / "sorted.sqlite")


def test_empty_batch_advances_the_cursor(catalog: Catalog) -> None:
    assert catalog.apply([], 5, block_hash(5)) == 0
    assert catalog.cursor() == (5, block_hash(5))
    assert catalog.list_datanets() == []


def test_hashes_arrive_as_bytes_or_text(catalog: Catalog) -> None:
    event = story()[2]
    event["transactionHash"] = bytes.fromhex(event["transactionHash"][2:])
    catalog.apply([event], 2, bytes.fromhex(block_hash(2)[2:]).hex().upper())
    assert catalog.cursor() == (2, block_hash(2))


# --------------------------------------------------------------- idempotence


def test_reapplying_events_is_harmless(catalog: Catalog, db: Path) -> None:
    events = story()
    catalog.apply(events, LAST, block_hash(LAST))
    before = dump(db)
    assert catalog.apply(events, LAST, block_hash(LAST)) == 0
    assert catalog.apply(events[5:12], LAST, block_hash(LAST)) == 0
    assert dump(db) == before


def test_overlapping_batches_apply_each_event_once(catalog: Catalog, db: Path, tmp_path: Path) -> None:
    events = story()
    catalog.apply([e for e in events if e["blockNumber"] <= 9], 9, block_hash(9))
    catalog.apply([e for e in events if e["blockNumber"] >= 5], LAST, block_hash(LAST))  # 5..9 again
    with Catalog(tmp_path / "straight.sqlite", KEY) as straight:
        straight.apply(events, LAST, block_hash(LAST))
    assert dump(db) == dump(tmp_path / "straight.sqlite")


def test_duplicate_event_within_one_batch(catalog: Catalog) -> None:
    created = story()[2]
    assert catalog.apply([created, dict(created)], 2, block_hash(2)) == 1
    assert len(catalog.list_datanets()) == 1


# ------------------------------------------------------------------- rollback


def _broken(events: list[dict[str, Any]], index: int, **changes: Any) -> list[dict[str, Any]]:
    broken = [dict(e, args=dict(e["args"])) for e in events]
    for key, value in changes.items():
        if value is ...:
            del broken[index]["args"][key]
        else:
            broken[index]["args"][key] = value
    return broken


@pytest.mark.parametrize(
    ("index", "changes", "message"),
    [
        (9, {"malicious": ...}, "missing arg 'malicious'"),
        (9, {"stakeSlashed": "1"}, "'stakeSlashed' must be a uint256"),
        (9, {"stakeSlashed": -1}, "'stakeSlashed' must be a uint256"),
        (9, {"malicious": 1}, "'malicious' must be a bool"),
        (9, {"curator": "0x1234"}, "'curator' must be an address"),
        (9, {"contributionId": 99}, "unknown contribution 99"),
        (9, {"contributionId": 2**100}, "below 2**63"),
        (9, {"contributionId": 2}, "contribution 2 is approved, not pending"),
        (10, {"contentHash": b"\x01" * 31}, "'contentHash' must be a bytes32"),
        (10, {"contributionId": 7}, "expected contribution 4 next, got 7"),
        (8, {"approvalIndex": 5}, "approval index 5"),
        (12, {"count": 1}, "covers 1 contributions but datanet 1 has 2 approved"),
        (17, {"sources": [{"datanetId": 1, "version": 2}]}, "datanet 1 version 2, which is not published"),
        (17, {"split": {"ownerBps": 10000}}, "'split' lacks contributorsBps, datanetOwnersBps"),
    ],
)
def test_a_failing_batch_changes_nothing(
    catalog: Catalog, db: Path, index: int, changes: dict[str, Any], message: str
) -> None:
    events = story()
    head, tail = events[:7], events[7:]
    assert all(e["blockNumber"] <= 6 for e in head) and all(e["blockNumber"] > 6 for e in tail)
    catalog.apply(head, 6, block_hash(6))
    before = dump(db)

    broken = _broken(tail, index - len(head), **changes)
    with pytest.raises(CatalogError) as err:
        catalog.apply(broken, LAST, block_hash(LAST))
    assert message in str(err.value)
    assert events[index]["event"] in str(err.value)
    assert f"block {events[index]['blockNumber']}" in str(err.value)
    assert "\n" not in str(err.value)

    assert dump(db) == before  # earlier events of the failing batch were rolled back too
    assert catalog.cursor() == (6, block_hash(6))
    assert catalog.get_contribution(2).status == "pending"

    catalog.apply(tail, LAST, block_hash(LAST))  # the good batch still works
    assert catalog.get_model(1).active is False


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("blockNumber"), "bad blockNumber"),
        (lambda e: e.update(logIndex=True), "bad logIndex"),
        (lambda e: e.update(transactionHash="0x12"), "transactionHash must be a 32-byte hash"),
        (lambda e: e.update(args=None), "has no args"),
        (lambda e: e.pop("event"), "event without a name"),
    ],
)
def test_malformed_envelopes_are_rejected(catalog: Catalog, db: Path, mutate: Any, message: str) -> None:
    events = story()
    mutate(events[4])
    before = dump(db)
    with pytest.raises(CatalogError, match=message):
        catalog.apply(events, LAST, block_hash(LAST))
    assert dump(db) == before


def test_batch_bounds(catalog: Catalog) -> None:
    with pytest.raises(CatalogError, match="past the batch's last block 5"):
        catalog.apply(story(), 5, block_hash(5))
    catalog.apply([], 10, block_hash(10))
    with pytest.raises(CatalogError, match="cannot move back to block 9"):
        catalog.apply([], 9, block_hash(9))
    with pytest.raises(CatalogError, match="to_block_hash must be a 32-byte hash"):
        catalog.apply([], 11, "latest")
    assert catalog.cursor() == (10, block_hash(10))


# ---------------------------------------------------------------- unknown ids


def test_unknown_ids(catalog: Catalog) -> None:
    catalog.apply(story(), LAST, block_hash(LAST))
    cases = [
        (lambda: catalog.get_datanet(7), "unknown datanet 7"),
        (lambda: catalog.list_contributions(7), "unknown datanet 7"),
        (lambda: catalog.approved_hashes(7), "unknown datanet 7"),
        (lambda: catalog.list_versions(7), "unknown datanet 7"),
        (lambda: catalog.get_version(7, 1), "unknown datanet 7"),
        (lambda: catalog.get_version(1, 5), "unknown version 5 of datanet 1"),
        (lambda: catalog.get_contribution(99), "unknown contribution 99"),
        (lambda: catalog.get_model(2), "unknown model 2"),
    ]
    for call, message in cases:
        with pytest.raises(UnknownIdError) as err:
            call()
        assert str(err.value) == message
        assert isinstance(err.value, CatalogError) and isinstance(err.value, StoreError)


def test_unknown_status(catalog: Catalog) -> None:
    catalog.apply(story(), LAST, block_hash(LAST))
    with pytest.raises(CatalogError, match="unknown contribution status 'done'"):
        catalog.list_contributions(1, "done")


# ---------------------------------------------------------------- local files


def test_local_files(catalog: Catalog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    digest = H1.hex()
    assert catalog.local_file(digest) is None
    catalog.record_local_file(digest, Path("data/alice.txt"), "alice.txt")
    record = catalog.local_file(digest)
    assert record is not None
    assert record.path == tmp_path / "data" / "alice.txt"  # stored absolute
    assert (record.content_hash, record.name) == (digest, "alice.txt")

    catalog.record_local_file(digest, tmp_path / "moved.txt", "moved.txt")
    assert catalog.local_file(digest).name == "moved.txt"
    with pytest.raises(InvalidDigestError):
        catalog.record_local_file("0x" + digest, tmp_path / "x", "x")
    with pytest.raises(InvalidDigestError):
        catalog.local_file("nope")


# ------------------------------------------------------------ deployment & db


def test_state_persists_across_reopen(db: Path) -> None:
    with Catalog(db, KEY) as cat:
        cat.apply(story(), LAST, block_hash(LAST))
    with Catalog(db, KEY) as cat:
        assert cat.was_reset is False
        assert cat.cursor() == (LAST, block_hash(LAST))
        assert cat.get_model(1).price == 20 * OPEN


def test_a_new_deployment_key_wipes_chain_state_but_keeps_local_files(db: Path, tmp_path: Path) -> None:
    with Catalog(db, KEY) as cat:
        assert cat.was_reset is False  # a brand-new file is not a reset
        cat.apply(story(), LAST, block_hash(LAST))
        cat.record_local_file(H1.hex(), tmp_path / "alice.txt", "alice.txt")

    with Catalog(db, "31337:0xOtherRegistry:genesis2") as cat:
        assert cat.was_reset is True
        assert cat.cursor() is None
        assert cat.list_datanets() == []
        assert cat.list_models() == []
        with pytest.raises(UnknownIdError):
            cat.get_contribution(1)
        assert cat.local_file(H1.hex()) is not None  # only this machine knows it; not re-syncable
        cat.apply(story(), LAST, block_hash(LAST))  # the same ids apply again on the fresh chain
        assert cat.get_datanet(1).name == "medical-qa"

    conn = sqlite3.connect(db)
    meta = dict(conn.execute("SELECT key, value FROM meta"))
    conn.close()
    assert meta["deployment_key"] == "31337:0xOtherRegistry:genesis2"
    assert meta["schema_version"] == "1"


def test_reset_forgets_chain_state(catalog: Catalog) -> None:
    catalog.apply(story(), LAST, block_hash(LAST))
    catalog.reset()
    assert catalog.cursor() is None
    assert catalog.list_datanets() == []
    catalog.apply(story(), LAST, block_hash(LAST))
    assert catalog.get_model(1).sources == (ModelSource(1, 1),)


def test_wal_mode_and_foreign_keys(catalog: Catalog, db: Path) -> None:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert catalog._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_readers_see_committed_state_while_open(catalog: Catalog, db: Path) -> None:
    catalog.apply(story()[:4], 3, block_hash(3))
    with Catalog(db, KEY) as second:
        assert second.get_datanet(1).curators == (CURATOR,)
        catalog.apply(story()[4:], LAST, block_hash(LAST))
        assert second.cursor() == (LAST, block_hash(LAST))


def test_bad_deployment_key_and_bad_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="deployment key"):
        Catalog(tmp_path / "c.sqlite", "")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogError, match="cannot open the catalog") as err:
        Catalog(junk, KEY)
    assert "\n" not in str(err.value)
